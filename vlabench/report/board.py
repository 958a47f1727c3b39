"""The leaderboard: policies x columns, where a column is one suite under one protocol.

Runs of different protocols (``protocol_hash``) are never mixed in one column. A cell pools
the episodes of every run of (policy, suite, protocol) across tasks; errored episodes count
as failures and are also reported as ``errors``. Rows are sorted by the mean success rate of
their cells that have episodes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vlabench.stats import wilson_interval

if TYPE_CHECKING:
    from vlabench.store import Store

ACTIVE_STATUSES = frozenset({"pending", "running"})


@dataclass(frozen=True)
class Column:
    """One suite under one protocol; ``label`` is what tables show."""

    suite: str
    protocol_hash: str
    protocol: str
    label: str


@dataclass(frozen=True)
class Cell:
    """The pooled result of one policy in one column.

    ``status``: ``ok`` (has episodes), ``incompatible`` (every run was refused; ``reason``
    says why), ``running`` (no episodes yet, a run pending or running) or ``empty``.
    ``rate``/``ci_low``/``ci_high`` (Wilson 95%) are None when ``n`` is 0.
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

    @property
    def suite(self) -> str:
        return self.column.suite


@dataclass(frozen=True)
class Row:
    """One policy: its cells aligned with :attr:`Board.columns` (None where never run)."""

    policy: str
    mean_rate: float | None
    cells: tuple[Cell | None, ...]


@dataclass(frozen=True)
class Board:
    """A leaderboard: ``rows`` best first, each with one slot per column."""

    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    filters: dict[str, str] = field(default_factory=dict)
    """The filters it was built with (several values comma-joined), for titles."""

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


def _label_columns(names: Mapping[tuple[str, str], str]) -> list[Column]:
    """Columns for (suite, protocol_hash) keys; ``names`` maps each key to its protocol name."""
    by_suite: dict[str, list[str]] = defaultdict(list)
    for suite, protocol_hash in sorted(names):
        by_suite[suite].append(protocol_hash)
    columns: dict[tuple[str, str], Column] = {}
    for suite, hashes in by_suite.items():
        suite_names = [names[(suite, h)] for h in hashes]
        for protocol_hash, name in zip(hashes, suite_names, strict=True):
            if len(hashes) == 1:
                label = suite
            elif name and suite_names.count(name) == 1:
                label = f"{suite} [{name}]"
            else:
                label = f"{suite} [{protocol_hash[:6]}]"
            columns[(suite, protocol_hash)] = Column(suite, protocol_hash, name, label)
    return sorted(columns.values(), key=lambda c: (c.suite, c.label))


def _cell(policy: str, column: Column, runs: list[Mapping[str, Any]]) -> Cell:
    n = sum(r["n"] for r in runs)
    successes = sum(r["successes"] for r in runs)
    errors = sum(r["errors"] for r in runs)
    reason = None
    rate: float | None = None
    low: float | None = None
    high: float | None = None
    if n:
        status = "ok"
        rate = successes / n
        low, high = wilson_interval(successes, n)
    else:
        statuses = {r["status"] for r in runs}
        if statuses == {"incompatible"}:
            status = "incompatible"
        elif statuses & ACTIVE_STATUSES:
            status = "running"
        else:
            status = "empty"
        errors_seen = [r["error"] for r in runs if r.get("error")]
        reason = "; ".join(dict.fromkeys(errors_seen)) or None
    return Cell(
        policy=policy,
        column=column,
        n=n,
        successes=successes,
        errors=errors,
        rate=rate,
        ci_low=low,
        ci_high=high,
        status=status,
        reason=reason,
        tasks=len({r["task"] for r in runs}),
        runs=len(runs),
    )


def build_board(runs: Iterable[Mapping[str, Any]], **filters: str) -> Board:
    """A board from run dicts with episode counts (``Store.run_counts()`` rows)."""
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    names: dict[tuple[str, str], str] = {}
    for run in runs:
        key = (run["suite"], run["protocol_hash"])
        groups[(run["policy"], *key)].append(run)
        names.setdefault(key, str((run.get("protocol") or {}).get("name") or ""))
    columns = _label_columns(names)
    index = {(c.suite, c.protocol_hash): i for i, c in enumerate(columns)}
    slots: dict[str, list[Cell | None]] = {}
    for (policy, suite, protocol_hash), group in groups.items():
        i = index[(suite, protocol_hash)]
        slots.setdefault(policy, [None] * len(columns))[i] = _cell(policy, columns[i], group)
    rows = []
    for policy, cells in slots.items():
        rates = [c.rate for c in cells if c is not None and c.rate is not None]
        rows.append(Row(policy, sum(rates) / len(rates) if rates else None, tuple(cells)))
    rows.sort(key=lambda r: (r.mean_rate is None, -(r.mean_rate or 0.0), r.policy))
    return Board(tuple(columns), tuple(rows), {k: v for k, v in filters.items() if v})


def board_from_store(
    store: Store,
    *,
    suite: str | Sequence[str] | None = None,
    env: str | Sequence[str] | None = None,
    policy: str | Sequence[str] | None = None,
) -> Board:
    """The leaderboard of everything in ``store`` matching the filters.

    Each filter is one name or several (any of them); None or empty means all.
    """
    runs = store.run_counts(policy=policy, suite=suite, env=env)
    filters = {
        key: value if isinstance(value, str) else ",".join(value or ())
        for key, value in (("suite", suite), ("env", env), ("policy", policy))
    }
    return build_board(runs, **filters)
