"""The leaderboard and comparisons as rich tables for the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vlabench.report.board import rank_scope
from vlabench.report.formats import MISSING, caption, rank_text
from vlabench.report.model import Board, Cell, Row

if TYPE_CHECKING:
    from vlabench.report.compare import Comparison
    from vlabench.report.latency import LatencyCost


ERRORED = "err"
"""The compact cell's mark for episodes ended by an error: ``n=50, 1 err``."""
ANYTIME = "~"
"""The mark of an anytime-valid interval (a run stopped by a sequential rule)."""


def compact_cell(cell: Cell | None) -> str:
    """A board cell for the terminal: ``98 [90,100] n=50``, ``, 1 err`` when episodes ended
    by an error, `` #1``/`` #=2`` its rank in the column; ``—`` never run."""
    if cell is None:
        return MISSING
    n = f"n={cell.n}" + (f", {cell.errors} {ERRORED}" if cell.errors else "")
    rank = "" if cell.rank is None else f" #{rank_text(cell.rank, cell.tied)}"
    low, high = cell.ci_low or 0.0, cell.ci_high or 0.0
    if cell.status == "ok" and cell.column.metric and cell.value is not None:
        return f"{cell.value:.3g} [{low:.3g},{high:.3g}] {n}{rank}"
    if cell.status == "ok" and cell.rate is not None:
        seq = ANYTIME if cell.anytime else ""
        return f"{100 * cell.rate:.0f} [{100 * low:.0f},{100 * high:.0f}]{seq} {n}{rank}"
    return cell.status  # its reason is listed under the table (see notes)


def notes(board: Board) -> list[str]:
    """The reasons of cells without results, once each: ``policy on column: status: reason``."""
    lines = [
        f"{row.policy} on {cell.column.label}: {cell.status}: {cell.reason}"
        for row in board.rows for cell in row.cells if cell is not None and cell.reason
    ]
    return list(dict.fromkeys(lines))


def overall_rank_text(board: Board, row: Row) -> str:
    """The row's overall rank; ``*`` when ranked only among rows run on the same columns,
    fewer than all of them."""
    text = rank_text(row.rank, row.tied)
    full = frozenset().union(*(rank_scope(r) for r in board.rows)) if board.rows else frozenset()
    if row.rank is not None and rank_scope(row) != full:
        text += "*"
    return text


def legend(board: Board) -> list[str]:
    """What every mark of the terminal board means."""
    lines = [
        caption(board),
        f"cell: success % [{board.interval_label}] in whole % n=episodes; "
        f"', k {ERRORED}': k episodes ended by an error (counted as failures)",
        "#k: rank in the column = 1 + cells whose interval lies entirely above; "
        "=k: tied (intervals overlap); — : not run there / not ranked",
        "rank: overall, on the row mean [interval], only among policies run on the same "
        "columns; k*: among those with fewer than all columns; — alone on its columns "
        "(see its #k per column)",
    ]
    return lines


def board_table(board: Board) -> Any:
    """The board for a terminal, in a layout it chooses at print time for the console's width
    (a non-TTY console is ``COLUMNS`` or 80 wide): one wide table (rank, policy, a column
    per suite/task) when it fits whole; else a long table, one row per column x policy,
    after the overall ranks. Numbers never wrap nor get cut (cells are ``no_wrap``); names
    and reasons fold. The legend below explains every mark.

    Every string is a ``Text`` (never markup), whichever console prints it: names, filters,
    protocols and reasons are user strings (``[/oops]`` would raise ``MarkupError``)."""
    return _BoardView(board)


def short_labels(board: Board) -> tuple[str, list[str]]:
    """The columns' labels without the ``suite/`` that every one of them starts with (a
    board ``--by task`` of one suite), and that prefix ("" when they do not share one)."""
    labels = [c.label for c in board.columns]
    suites = {c.suite for c in board.columns}
    if len(suites) == 1:
        prefix = f"{next(iter(suites))}/"
        if all(label.startswith(prefix) and label != prefix for label in labels):
            return prefix, [label.removeprefix(prefix) for label in labels]
    return "", labels


class _BoardView:
    def __init__(self, board: Board) -> None:
        self.board = board
        self.prefix, self.labels = short_labels(board)

    def title(self) -> Any:
        from rich.text import Text

        filters = ", ".join(f"{k}={v}" for k, v in self.board.filters.items())
        return Text("vlabench leaderboard" + (f" ({filters})" if filters else ""))

    def wide(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        board = self.board
        table = Table(title=self.title())
        table.add_column("rank", justify="right", no_wrap=True)
        table.add_column("policy", style="bold", overflow="fold")
        if self.prefix:
            table.title = Text(f"{table.title} - columns: tasks of {self.prefix[:-1]}")
        for label in self.labels:
            table.add_column(Text(label), justify="right", no_wrap=True)
        for row in board.rows:
            cells = [_styled(c) for c in row.cells]
            table.add_row(Text(overall_rank_text(board, row)), Text(row.policy), *cells)
        return table

    def long(self) -> list[Any]:
        from rich.table import Table
        from rich.text import Text

        board = self.board
        level = f"{round(100 * board.confidence)}%"
        ranks = Table(title=self.title())
        ranks.add_column("rank", justify="right", no_wrap=True)
        ranks.add_column("policy", style="bold", overflow="fold")
        ranks.add_column(Text(f"mean % [{level}]"), justify="right", no_wrap=True)
        ranks.add_column("columns", justify="right", no_wrap=True)
        total = len([c for c in board.columns if not c.metric])
        for row in board.rows:
            mean = "—" if row.mean_rate is None else f"{100 * row.mean_rate:.0f}"
            if row.mean_low is not None and row.mean_high is not None:
                mean += f" [{100 * row.mean_low:.0f},{100 * row.mean_high:.0f}]"
            ranks.add_row(
                Text(overall_rank_text(board, row)), Text(row.policy), mean,
                f"{len(rank_scope(row))} of {total}",
            )
        of = f": tasks of {self.prefix[:-1]}" if self.prefix else ""
        cells = Table(title=Text(f"per column ({len(board.columns)} columns{of})"))
        cells.add_column("column", overflow="fold")
        cells.add_column("policy", style="bold", overflow="fold")
        cells.add_column(Text("success % [interval] n #rank"), justify="right", no_wrap=True)
        for i in range(len(board.columns)):
            shown = [r for r in board.rows if r.cells[i] is not None]
            shown.sort(key=lambda r: (r.cells[i].rank is None, r.cells[i].rank or 0))  # type: ignore[union-attr]
            for j, row in enumerate(shown):
                cells.add_row(
                    Text(self.labels[i] if j == 0 else ""), Text(row.policy),
                    _styled(row.cells[i]),
                    end_section=j == len(shown) - 1,
                )
        return [ranks, cells]

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.measure import Measurement
        from rich.text import Text

        board = self.board
        if not board.rows:
            from rich.table import Table

            table = Table(title=self.title())
            table.add_column("rank")
            table.add_column("policy")
            yield table
            yield Text("the store has no runs yet: try `vlabench run --policy noop --suite pusht`")
            return
        width = options.max_width
        wide = self.wide()
        if Measurement.get(console, options.update(width=10_000), wide).maximum <= width:
            yield wide
        else:
            yield from self.long()
        for line in notes(board):
            yield Text(line, style="yellow", overflow="fold")
        for line in legend(board):
            yield Text(line, style="dim", overflow="fold")


def _styled(cell: Cell | None) -> Any:
    from rich.text import Text

    style = "yellow" if cell is not None and cell.status != "ok" else ""
    return Text(compact_cell(cell), style=style, no_wrap=True)


def comparison_table(comparison: Comparison) -> Any:
    """Per task: both rates, the paired difference with its exact interval, McNemar's p, in
    the board's layout rules (numbers never wrap nor get cut, names fold), then the decision
    rule and what each mark means. The verdict is not in it: print it once, after it."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    level = f"{round(100 * comparison.confidence)}%"
    table = Table(title=Text(f"A = {comparison.a} vs B = {comparison.b} (paired episodes)"))
    table.add_column("suite", overflow="fold")
    table.add_column("task", overflow="fold")
    kind = "anytime" if comparison.anytime else "exact"
    for header in ("pairs", "A %", "B %", f"A - B pts [{level} {kind}]", "p"):
        table.add_column(Text(header), justify="right", no_wrap=True)
    for t in comparison.tasks:
        mark = (" *" if t.significant else "") + (" †" if t.too_few else "")
        table.add_row(
            Text(t.suite_label),
            Text(t.task),
            str(t.table.n),
            f"{100 * t.table.rate_a:.1f}",
            f"{100 * t.table.rate_b:.1f}",
            f"{100 * t.difference:+.1f} [{100 * t.low:+.1f}, {100 * t.high:+.1f}]",
            f"{t.p_value:.3g}{mark}",
        )
    from vlabench.report.compare import pairs_needed

    alpha = f"{1.0 - comparison.confidence:g}"
    differs = "its interval excludes 0" if comparison.anytime else f"p < {alpha}"
    lines = [
        f"rule: {comparison.rule()}",
        f"*: differs at {level} ({differs}); †: fewer than "
        f"{pairs_needed(comparison.confidence)} pairs, too few for the test ever to decide "
        "(p >= 2 / 2**pairs even when every pair goes one way)",
    ]
    return Group(table, *(Text(line, style="dim", overflow="fold") for line in lines))


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
