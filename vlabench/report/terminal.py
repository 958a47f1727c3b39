"""The leaderboard and comparisons as rich tables for the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vlabench.report.formats import caption, cell_text, rank_text
from vlabench.report.model import Board

if TYPE_CHECKING:
    from vlabench.report.compare import Comparison
    from vlabench.report.latency import LatencyCost


def board_table(board: Board) -> Any:
    """A ``rich.table.Table``: rank, policies as rows, suite/protocol columns, rate [CI] n.

    Every string is a ``Text`` (never markup), whichever console prints it: names, filters,
    protocols and reasons are user strings (``[/oops]`` would raise ``MarkupError``)."""
    from rich.table import Table
    from rich.text import Text

    filters = ", ".join(f"{k}={v}" for k, v in board.filters.items())
    table = Table(
        title=Text("vlabench leaderboard" + (f" ({filters})" if filters else "")),
        caption=Text(caption(board)),
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
            style = "yellow" if cell is not None and cell.status != "ok" else ""
            cells.append(Text(text, style=style))
        table.add_row(Text(rank_text(row.rank, row.tied)), Text(row.policy), *cells)
    if not board.rows:
        table.caption = Text(
            "the store has no runs yet: try `vlabench run --policy noop --suite pusht`"
        )
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


def _number(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def latency_table(costs: list[LatencyCost]) -> Any:
    """Per policy x suite x mode: success and latency metrics, realtime vs sync (same episodes)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title="what latency cost (realtime mode vs the same episodes in sync)",
        caption="time to success: mean over successful episodes, in simulated seconds; "
        "jump: mean L2 distance between consecutive chunks' actions",
    )
    headers = ("policy", "suite", "mode", "n", "success %", "to success s", "calls",
               "idle", "latency ms", "jump")
    for header in headers:
        table.add_column(header, justify="left" if header in headers[:3] else "right")
    for cost in costs:
        for name, side in (("realtime", cost.realtime), ("sync", cost.sync)):
            if side is None:
                table.add_row(
                    "", "", Text("sync: not stored (run again with --inference sync)"),
                    style="dim",
                )
                continue
            first = name == "realtime"
            table.add_row(
                Text(cost.name if first else ""),
                Text(cost.suite if first else ""),
                Text(cost.mode if first else "sync"),
                str(side.n),
                f"{100 * side.success_rate:.1f}",
                _number(side.time_to_success_s, ".2f"),
                _number(side.inference_calls, ".1f"),
                _number(side.idle_steps, ".1f"),
                _number(side.latency_ms, ".1f"),
                _number(side.discontinuity, ".3f"),
            )
        if cost.realtime.stale_chunks:
            table.add_row(
                "", "", Text(
                    f"warning: {cost.realtime.stale_chunks:.1f} chunks per episode arrived "
                    "with every action already past: the latency spans more steps than a "
                    "chunk holds (async needs chunk_size > latency x fps)"
                ), style="yellow",
            )
    return table
