"""The leaderboard as a rich table for the terminal."""

from __future__ import annotations

from typing import Any

from vlabench.report.board import Board
from vlabench.report.formats import cell_text


def board_table(board: Board) -> Any:
    """A ``rich.table.Table``: policies as rows, suite/protocol columns, rate [95% CI] n."""
    from rich.table import Table
    from rich.text import Text

    filters = ", ".join(f"{k}={v}" for k, v in board.filters.items())
    table = Table(
        title="vlabench leaderboard" + (f" ({filters})" if filters else ""),
        caption="success % [95% Wilson interval] n=episodes",
    )
    table.add_column("policy", style="bold")
    for column in board.columns:
        table.add_column(column.label, justify="right")
    for row in board.rows:
        cells = []
        for cell in row.cells:  # Text, not markup: names and reasons are user strings
            text = cell_text(cell)
            if cell is not None and cell.errors:
                text += f" ({cell.errors} errors)"
            style = "yellow" if cell is not None and cell.status != "ok" else ""
            cells.append(Text(text, style=style))
        table.add_row(Text(row.policy), *cells)
    if not board.rows:
        table.caption = "the store has no runs yet: try `vlabench run --policy noop --suite pusht`"
    return table
