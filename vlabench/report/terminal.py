"""The leaderboard and comparisons as rich tables for the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vlabench.report.board import Board
from vlabench.report.formats import caption, cell_text, rank_text

if TYPE_CHECKING:
    from vlabench.report.compare import Comparison


def board_table(board: Board) -> Any:
    """A ``rich.table.Table``: rank, policies as rows, suite/protocol columns, rate [CI] n."""
    from rich.table import Table
    from rich.text import Text

    filters = ", ".join(f"{k}={v}" for k, v in board.filters.items())
    table = Table(
        title="vlabench leaderboard" + (f" ({filters})" if filters else ""),
        caption=caption(board),
    )
    table.add_column("rank", justify="right")
    table.add_column("policy", style="bold")
    for column in board.columns:
        table.add_column(Text(column.label), justify="right")
    for row in board.rows:
        cells = []
        for cell in row.cells:  # Text, not markup: names and reasons are user strings
            text = cell_text(cell)
            if cell is not None and cell.rank is not None:
                text += f" #{rank_text(cell.rank, cell.tied)}"
            if cell is not None and cell.errors:
                text += f" ({cell.errors} errors)"
            style = "yellow" if cell is not None and cell.status != "ok" else ""
            cells.append(Text(text, style=style))
        table.add_row(Text(rank_text(row.rank, row.tied)), Text(row.policy), *cells)
    if not board.rows:
        table.caption = "the store has no runs yet: try `vlabench run --policy noop --suite pusht`"
    return table


def comparison_table(comparison: Comparison) -> Any:
    """Per task: both rates, the paired difference with its interval, McNemar's p."""
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=Text(f"{comparison.a} vs {comparison.b} (paired episodes)"),
        caption=Text(comparison.verdict()),
    )
    for header in ("suite", "task", "pairs", comparison.a, comparison.b, "A - B pts", "p"):
        table.add_column(Text(header), justify="left" if header in ("suite", "task") else "right")
    for t in comparison.tasks:
        table.add_row(
            Text(t.suite_label),
            Text(t.task),
            str(t.table.n),
            f"{100 * t.table.rate_a:.1f}",
            f"{100 * t.table.rate_b:.1f}",
            f"{100 * t.difference:+.1f} [{100 * t.low:+.1f}, {100 * t.high:+.1f}]",
            Text(f"{t.p_value:.3g}" + (" *" if t.significant else "")),
        )
    return table
