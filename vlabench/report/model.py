"""What a board is made of: a :class:`Board` of :class:`Row` (policies) x :class:`Column`,
holding :class:`Cell` results and their :class:`TaskResult` drill-down.

The rules that fill them are in :mod:`vlabench.report.board`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Column:
    """One suite (or one task of a suite) under one protocol; ``label`` is what tables show."""

    suite: str
    protocol_hash: str
    protocol: str
    label: str
    task: str | None = None
    group: str | None = None
    metric: str | None = None
    """Set for a metric column: the episode metric shown, not a success rate."""
    lower_is_better: bool = True
    """A metric column's direction (as stored with its runs); success columns: higher."""


@dataclass(frozen=True)
class TaskResult:
    """One task of a cell (pooled over its runs): the drill-down level above episodes."""

    task: str
    n: int
    successes: int
    errors: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    status: str
    reason: str | None
    run_ids: tuple[int, ...]
    anytime: bool = False
    """The interval is a confidence sequence (a run of the task stopped by a sequential rule:
    :mod:`vlabench.sequential`), valid at its data-dependent stopping time."""


@dataclass(frozen=True)
class Cell:
    """The pooled result of one policy in one column.

    ``status``: ``ok`` (has episodes), ``incompatible`` (every run was refused; ``reason``
    says why), ``failed`` (every run failed before an episode), ``running`` (no episodes
    yet, a run pending or running) or ``empty``. ``rate``/``ci_low``/``ci_high`` are None
    when ``n`` is 0. ``rank`` is set for ``ok`` cells; ``tied`` when another cell of the
    column has the same rank.
    """

    policy: str
    column: Column
    n: int
    successes: int
    errors: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    status: str
    reason: str | None = None
    tasks: int = 0
    runs: int = 0
    rank: int | None = None
    tied: bool = False
    task_results: tuple[TaskResult, ...] = ()
    run_ids: tuple[int, ...] = ()
    value: float | None = None
    """Metric columns: the metric's mean over episodes (``rate`` is None there, the interval
    is in ``ci_low``/``ci_high``)."""
    anytime: bool = False
    """A run of the cell was stopped by a sequential rule: its interval is anytime-valid (a
    confidence sequence; over several tasks the mean of per-task rates with simultaneous
    per-task sequences), never a fixed-n interval."""

    @property
    def suite(self) -> str:
        return self.column.suite

    @property
    def metric(self) -> str | None:
        return self.column.metric


@dataclass(frozen=True)
class Row:
    """One policy: its cells aligned with :attr:`Board.columns` (None where never run)."""

    policy: str
    mean_rate: float | None
    cells: tuple[Cell | None, ...]
    name: str = ""
    """The preset (or type) name it was run under; ``policy`` is the unique row label."""
    policy_type: str = ""
    checkpoint: str | None = None
    checkpoint_hash: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    mean_low: float | None = None
    mean_high: float | None = None
    rank: int | None = None
    tied: bool = False


@dataclass(frozen=True)
class Board:
    """A leaderboard: ``rows`` best first, each with one slot per column."""

    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    filters: dict[str, str] = field(default_factory=dict)
    """The filters it was built with (several values comma-joined), for titles."""
    by: str = "suite"
    interval: str = "wilson"
    confidence: float = 0.95
    runs: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    """Every run behind the board by id: full metadata (config, protocol, versions...)."""
    episodes: Mapping[int, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    """Episodes by run id; filled only when asked for (HTML drill-down, videos)."""

    @property
    def cells(self) -> list[Cell]:
        """Every existing cell, row by row."""
        return [c for row in self.rows for c in row.cells if c is not None]

    def cell(self, policy: str, column: str | Column) -> Cell | None:
        """The cell of ``policy`` in a column (given by label or object), or None."""
        label = column.label if isinstance(column, Column) else column
        for row in self.rows:
            if row.policy == policy:
                for cell in row.cells:
                    if cell is not None and cell.column.label == label:
                        return cell
        return None

    def row(self, policy: str) -> Row | None:
        return next((r for r in self.rows if r.policy == policy), None)

    @property
    def anytime(self) -> bool:
        """Whether some cell shows an anytime-valid interval (a sequentially stopped run)."""
        return any(c.anytime for c in self.cells)

    @property
    def interval_label(self) -> str:
        """``95% Wilson interval`` and the like, for captions."""
        names = {
            "wilson": "Wilson",
            "clopper-pearson": "Clopper-Pearson",
            "bootstrap": "stratified bootstrap",
        }
        return f"{round(100 * self.confidence)}% {names.get(self.interval, self.interval)} interval"
