"""The leaderboard: policies x columns, where a column is one suite (or task) under one protocol.

A board is built from the store alone: what it needs of a run beyond its results (inference
label, metric columns, task groups) was stored with the run (``Run.report_meta``), so a
store prints the same board on every machine, whatever plugins or registry it has.

Rules (the README repeats them):

* **rows** are policies as they were run: preset name + policy type + checkpoint (and its
  hash) + options + inference mode. Two checkpoints under one preset name are two rows,
  labelled ``name@<checkpoint hash>`` (or ``name@<config hash>`` when there is no checkpoint
  hash); a run in a latency-aware inference mode is its own row, labelled
  ``name [async 120ms g=0.5 weighted]`` (the stored inference label, see
  :mod:`vlabench.runtime.inference`), so one policy under several modes sits side by side.
* **columns** are suites (``by="suite"``), tasks (``by="task"``) or task groups
  (``by="group"``: a group, stored with the runs it applies to, is a registry suite of the
  same env with an explicit task list; it makes a column where that list is a subset of a
  stored column's tasks, shown ``stored suite:group``), one per protocol:
  runs of different protocols (``protocol_hash``) are never pooled into one column; a
  suite run under two protocols gives two columns labelled ``suite [protocol name]``.
* **cells** pool the episodes of every run of (policy, column) across tasks; errored
  episodes count as failures and are also reported as ``errors``. The rate is the pooled
  success rate with a 95% Wilson interval (``interval="clopper-pearson"`` for the exact
  one; ``interval="bootstrap"`` makes the rate the mean of per-task rates with a
  stratified bootstrap interval, strata = tasks, for multi-task cells).
* **ranks** are given only where intervals separate: in each column a cell's rank is
  1 + the number of cells whose interval lies entirely above its own. Cells whose
  intervals overlap share a rank (a tie, shown ``=2``). The overall rank of a row uses the
  same rule on the row mean (mean of its column rates, with a MOVER interval built from
  the cells' intervals, see :func:`vlabench.stats.mover_mean_interval`); only rows with
  results in every column are ranked overall.
* **metric columns** (open-loop evaluation on datasets): a run whose env declares
  ``metric_columns`` (``EnvSpec.metric_columns``, stored with the run as
  ``report_meta["metrics"]``, each with its direction) gets, instead of a success column, one
  column per metric, labelled ``suite metric`` (``so100_x mse_norm``). Its cell is the mean
  of the metric over the episodes that carry it, with a 95% percentile bootstrap interval
  over episodes; where lower is better (every metric so far) a cell's rank is 1 + the number
  of cells whose interval lies entirely below its own. Metric columns never enter the row
  mean, nor the overall rank, which stay about success rates.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from vlabench import stats

if TYPE_CHECKING:
    from vlabench.store import Store

ACTIVE_STATUSES = frozenset({"pending", "running"})
INTERVALS = ("wilson", "clopper-pearson", "bootstrap")
GROUPINGS = ("suite", "task", "group")


class UnknownGroupError(ValueError):
    """A group asked for that no stored run has."""


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
    def interval_label(self) -> str:
        """``95% Wilson interval`` and the like, for captions."""
        names = {
            "wilson": "Wilson",
            "clopper-pearson": "Clopper-Pearson",
            "bootstrap": "stratified bootstrap",
        }
        return f"{round(100 * self.confidence)}% {names.get(self.interval, self.interval)} interval"


# -- policy identity ----------------------------------------------------------------------
def policy_identity(run: Mapping[str, Any]) -> tuple[str, str, str, str, str, str]:
    """What makes a row: (name, type, checkpoint, checkpoint hash, options as JSON, inference).

    ``inference`` is the mode's label (empty for ``sync``).
    """
    options = json.dumps(run.get("policy_options") or {}, sort_keys=True, default=str)
    return (
        str(run["policy"]),
        str(run.get("policy_type") or ""),
        str(run.get("checkpoint") or ""),
        str(run.get("checkpoint_hash") or ""),
        options,
        inference_label(run),
    )


def report_meta(run: Mapping[str, Any]) -> Mapping[str, Any]:
    """What the run stored for boards (``Run.report_meta``); ``{}`` where nothing was."""
    meta = run.get("report_meta")
    return meta if isinstance(meta, Mapping) else {}


def inference_label(run: Mapping[str, Any]) -> str:
    """The run's stored inference label; empty for ``sync``.

    A run stored without one (written by hand) shows its bare mode name.
    """
    meta = report_meta(run)
    if "inference_label" in meta:
        return str(meta["inference_label"] or "")
    mode = str(run.get("inference_mode") or "sync")
    return "" if mode == "sync" else mode


def run_metrics(run: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """The run's stored metric columns as ``(name, lower_is_better)``, in declaration order."""
    out = []
    for metric in report_meta(run).get("metrics") or ():
        if isinstance(metric, Mapping) and metric.get("name"):
            out.append((str(metric["name"]), bool(metric.get("lower_is_better", True))))
    return out


def run_groups(run: Mapping[str, Any]) -> dict[str, list[str]]:
    """The task groups stored with the run: name -> task names."""
    groups = report_meta(run).get("groups") or {}
    return {str(name): [str(t) for t in tasks] for name, tasks in groups.items() if tasks}


def stored_groups(runs: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Every group stored with ``runs``, name -> tasks (a later run's definition wins)."""
    out: dict[str, list[str]] = {}
    for run in runs:
        out.update(run_groups(run))
    return dict(sorted(out.items()))


def _short_hash(identity: tuple[str, ...]) -> str:
    return hashlib.sha256("\x1f".join(identity).encode()).hexdigest()[:8]


def policy_labels(runs: Iterable[Mapping[str, Any]]) -> dict[tuple[str, ...], str]:
    """A unique row label per policy identity: the name, or ``name@hash`` when ambiguous."""
    by_name: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for run in runs:
        identity = policy_identity(run)
        name = f"{identity[0]} [{identity[5]}]" if identity[5] else identity[0]
        by_name[name].add(identity)
    labels = {}
    for name, identities in by_name.items():
        if len(identities) == 1:
            labels[next(iter(identities))] = name
            continue
        for identity in identities:
            ckpt_hash = identity[3]
            same_hash = sum(1 for i in identities if i[3] == ckpt_hash)
            suffix = ckpt_hash[:8] if ckpt_hash and same_hash == 1 else _short_hash(identity)
            labels[identity] = f"{name}@{suffix}"
    return labels


# -- columns --------------------------------------------------------------------------------
def metric_label(metric: str) -> str:
    """A metric's short name in column labels: ``open_loop.mse_norm`` -> ``mse_norm``."""
    return metric.split(".", 1)[-1]


def _label_columns(
    names: Mapping[tuple[str, str, str, str], str],
    by: str = "suite",
    metric_order: Sequence[str] = (),
    lower_is_better: Mapping[str, bool] | None = None,
) -> list[Column]:
    """Columns for (suite, task or group, protocol_hash, metric) keys ("" when by suite).

    Metric columns of one place follow ``metric_order`` (the env's declaration), with the
    direction given in ``lower_is_better`` (default: lower).
    """
    lower_is_better = lower_is_better or {}
    by_place: dict[tuple[str, str], list[str]] = defaultdict(list)
    metrics: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for suite, task, protocol_hash, metric in sorted(names):
        if protocol_hash not in by_place[(suite, task)]:
            by_place[(suite, task)].append(protocol_hash)
        metrics[(suite, task, protocol_hash)].append(metric)
    order = {m: i for i, m in enumerate(metric_order)}
    keyed: list[tuple[tuple[Any, ...], Column]] = []
    for (suite, task), hashes in by_place.items():
        base = f"{suite}{':' if by == 'group' else '/'}{task}" if task else suite
        place_names = [
            names[(suite, task, h, metrics[(suite, task, h)][0])] for h in hashes
        ]
        where = {"group" if by == "group" else "task": task or None}
        for protocol_hash, name in zip(hashes, place_names, strict=True):
            if len(hashes) == 1:
                label = base
            elif name and place_names.count(name) == 1:
                label = f"{base} [{name}]"
            else:
                label = f"{base} [{protocol_hash[:6]}]"
            for metric in metrics[(suite, task, protocol_hash)]:
                shown = f"{label} {metric_label(metric)}" if metric else label
                column = Column(
                    suite, protocol_hash, name, shown, metric=metric or None,
                    lower_is_better=lower_is_better.get(metric, True), **where,
                )
                keyed.append(((suite, task, label, order.get(metric, -1), shown), column))
    return [column for _, column in sorted(keyed, key=lambda pair: pair[0])]


def _group_keys(
    runs: Sequence[Mapping[str, Any]], selected: Collection[str] | None = None
) -> dict[int, list[str]]:
    """For each run (by position), the groups it falls in under the ``by="group"`` rule.

    The groups of a stored column (suite, protocol) are those stored with its runs (a later
    run's definition wins; ``selected`` names keep only those). One applies when its task
    list is not empty, is a subset of the tasks stored for the column, and it is not the
    stored suite itself. Its runs are the column's runs of its tasks.
    """
    stored: dict[tuple[str, str], set[str]] = defaultdict(set)
    defined: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(dict)
    for run in runs:
        key = (str(run["suite"]), str(run["protocol_hash"]))
        stored[key].add(str(run["task"]))
        for name, group_tasks in run_groups(run).items():
            defined[key][name] = set(group_tasks)
    applies: dict[tuple[str, str], list[tuple[str, set[str]]]] = {}
    for key, tasks in stored.items():
        applies[key] = [
            (name, group_tasks)
            for name, group_tasks in sorted(defined[key].items())
            if name != key[0] and group_tasks and group_tasks <= tasks
            and (selected is None or name in selected)
        ]
    out: dict[int, list[str]] = {}
    for i, run in enumerate(runs):
        key = (str(run["suite"]), str(run["protocol_hash"]))
        out[i] = [name for name, tasks in applies[key] if str(run["task"]) in tasks]
    return out


# -- cells ----------------------------------------------------------------------------------
def _interval(successes: int, n: int, method: str, confidence: float) -> tuple[float, float]:
    if method == "clopper-pearson":
        return stats.clopper_pearson_interval(successes, n, confidence)
    return stats.wilson_interval(successes, n, confidence)


def _empty_status(runs: Sequence[Mapping[str, Any]]) -> tuple[str, str | None]:
    statuses = {r["status"] for r in runs}
    if statuses == {"incompatible"}:
        status = "incompatible"
    elif statuses & ACTIVE_STATUSES:
        status = "running"
    elif statuses == {"failed"}:
        status = "failed"
    else:
        status = "empty"
    errors_seen = [str(r["error"]) for r in runs if r.get("error")]
    return status, "; ".join(dict.fromkeys(errors_seen)) or None


def _task_result(task: str, runs: list[Mapping[str, Any]], method: str, conf: float) -> TaskResult:
    n = sum(r["n"] for r in runs)
    successes = sum(r["successes"] for r in runs)
    errors = sum(r["errors"] for r in runs)
    ids = tuple(sorted(int(r["id"]) for r in runs if "id" in r))
    if n:
        low, high = _interval(successes, n, method, conf)
        return TaskResult(task, n, successes, errors, successes / n, low, high, "ok", None, ids)
    status, reason = _empty_status(runs)
    return TaskResult(task, 0, 0, errors, None, None, None, status, reason, ids)


def _cell(
    policy: str, column: Column, runs: list[Mapping[str, Any]], method: str, conf: float
) -> Cell:
    by_task: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for run in runs:
        by_task[str(run["task"])].append(run)
    tasks = tuple(_task_result(t, rs, method, conf) for t, rs in sorted(by_task.items()))
    n = sum(t.n for t in tasks)
    successes = sum(t.successes for t in tasks)
    errors = sum(t.errors for t in tasks)
    common = dict(
        policy=policy,
        column=column,
        n=n,
        successes=successes,
        errors=errors,
        tasks=len(tasks),
        runs=len(runs),
        task_results=tasks,
        run_ids=tuple(sorted(int(r["id"]) for r in runs if "id" in r)),
    )
    if not n:
        status, reason = _empty_status(runs)
        return Cell(rate=None, ci_low=None, ci_high=None, status=status, reason=reason, **common)
    strata = [(t.successes, t.n) for t in tasks if t.n]
    if method == "bootstrap" and len(strata) > 1:
        rate = stats.suite_mean(strata)
        low, high = stats.suite_mean_interval(strata, conf)
    else:
        rate = successes / n
        low, high = _interval(successes, n, method, conf)
    return Cell(rate=rate, ci_low=low, ci_high=high, status="ok", **common)


def _metric_cell(
    policy: str,
    column: Column,
    runs: list[Mapping[str, Any]],
    values: Mapping[int, Mapping[str, Sequence[float]]],
    conf: float,
) -> Cell:
    """A metric column's cell: the metric's episode mean and bootstrap interval."""
    import math

    metric = column.metric or ""
    pooled = [
        float(v)
        for run in runs
        for v in values.get(int(run.get("id", -1)), {}).get(metric, ())
        if v is not None and math.isfinite(float(v))
    ]
    common = dict(
        policy=policy,
        column=column,
        n=len(pooled),
        successes=0,
        errors=sum(int(r.get("errors") or 0) for r in runs),
        tasks=len({str(r["task"]) for r in runs}),
        runs=len(runs),
        run_ids=tuple(sorted(int(r["id"]) for r in runs if "id" in r)),
    )
    if not pooled:
        status, reason = _empty_status(runs)
        if status == "empty" and any(r.get("n") for r in runs):
            reason = f"no episode carries the metric {metric}"
        return Cell(rate=None, ci_low=None, ci_high=None, status=status, reason=reason, **common)
    low, high = stats.bootstrap_mean_interval(pooled, conf)
    return Cell(
        rate=None, ci_low=low, ci_high=high, status="ok", value=sum(pooled) / len(pooled),
        **common,
    )


# -- ranks ----------------------------------------------------------------------------------
def separated_ranks(intervals: Sequence[tuple[float, float]]) -> list[tuple[int, bool]]:
    """``(rank, tied)`` for each interval: rank = 1 + how many intervals lie entirely above.

    Overlapping intervals can share a rank; ``tied`` says that another one has the same.
    """
    ranks = [1 + sum(1 for lo, _ in intervals if lo > high) for _, high in intervals]
    return [(r, ranks.count(r) > 1) for r in ranks]


def _rank_cells(slots: dict[str, list[Cell | None]], n_columns: int) -> None:
    for i in range(n_columns):
        ok = [
            (policy, cells[i])
            for policy, cells in slots.items()
            if cells[i] is not None and cells[i].status == "ok"
        ]
        column = ok[0][1].column if ok else None  # type: ignore[union-attr]
        if column is not None and column.metric and column.lower_is_better:
            flipped = [(-c.ci_high, -c.ci_low) for _, c in ok]  # type: ignore[operator,union-attr]
            ranks = separated_ranks(flipped)
        else:
            ranks = separated_ranks([(c.ci_low, c.ci_high) for _, c in ok])  # type: ignore[misc]
        for (policy, cell), (rank, tied) in zip(ok, ranks, strict=True):
            slots[policy][i] = replace(cell, rank=rank, tied=tied)  # type: ignore[arg-type]


def _row_mean_interval(cells: Sequence[Cell]) -> tuple[float, float]:
    """Interval of the mean of column rates from the cells' own intervals (MOVER)."""
    return stats.mover_mean_interval([(c.rate, c.ci_low, c.ci_high) for c in cells])  # type: ignore[misc]


# -- building -------------------------------------------------------------------------------
def build_board(
    runs: Iterable[Mapping[str, Any]],
    *,
    by: str = "suite",
    interval: str = "wilson",
    confidence: float = 0.95,
    episodes: Mapping[int, Sequence[Mapping[str, Any]]] | None = None,
    groups: Collection[str] | None = None,
    metric_values: Mapping[int, Mapping[str, Sequence[float]]] | None = None,
    **filters: str,
) -> Board:
    """A board from run dicts with episode counts (``reads.run_counts`` rows).

    Everything else comes from the runs' stored ``report_meta``: ``by="group"`` makes
    columns of the task groups stored with the runs (only those named in ``groups`` when
    given); a run in several groups counts in each of their columns, and runs in none are
    left out. A run with stored metric columns gets those columns instead of a success
    column, filled from ``metric_values`` (run id -> metric -> per-episode values).
    """
    if by not in GROUPINGS:
        raise ValueError(f"board columns must be one of {GROUPINGS}, got by={by!r}")
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {INTERVALS}, got {interval!r}")
    runs = list(runs)
    labels = policy_labels(runs)
    identities: dict[str, tuple[str, ...]] = {}
    pooled: dict[tuple[str, str, str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    names: dict[tuple[str, str, str, str], str] = {}
    in_groups = _group_keys(runs, groups) if by == "group" else {}
    order: dict[str, None] = {}
    lower_is_better: dict[str, bool] = {}
    for i, run in enumerate(runs):
        identity = policy_identity(run)
        policy = labels[identity]
        identities[policy] = identity
        parts = in_groups[i] if by == "group" else [str(run["task"]) if by == "task" else ""]
        stored_metrics = run_metrics(run)
        for metric, lower in stored_metrics:
            order.setdefault(metric)
            lower_is_better[metric] = lower
        metrics = tuple(m for m, _ in stored_metrics) or ("",)
        for part in parts:
            for metric in metrics:
                key = (str(run["suite"]), part, run["protocol_hash"], metric)
                pooled[(policy, *key)].append(run)
                names.setdefault(key, str((run.get("protocol") or {}).get("name") or ""))
    columns = _label_columns(names, by, list(order), lower_is_better)
    index = {
        (c.suite, c.task or c.group or "", c.protocol_hash, c.metric or ""): i
        for i, c in enumerate(columns)
    }
    slots: dict[str, list[Cell | None]] = {}
    for (policy, suite, task, protocol_hash, metric), group in pooled.items():
        i = index[(suite, task, protocol_hash, metric)]
        if metric:
            cell = _metric_cell(policy, columns[i], group, metric_values or {}, confidence)
        else:
            cell = _cell(policy, columns[i], group, interval, confidence)
        slots.setdefault(policy, [None] * len(columns))[i] = cell
    _rank_cells(slots, len(columns))
    ranked_columns = {
        i for i in range(len(columns)) for cells in slots.values()
        if cells[i] is not None and cells[i].status == "ok"  # type: ignore[union-attr]
        and not columns[i].metric
    }
    rows = []
    for policy, cells in slots.items():
        ok = [c for c in cells if c is not None and c.status == "ok" and not c.column.metric]
        mean = sum(c.rate for c in ok) / len(ok) if ok else None  # type: ignore[misc]
        low = high = None
        if ok and {columns.index(c.column) for c in ok} == ranked_columns:
            low, high = _row_mean_interval(ok)
        name, policy_type, checkpoint, checkpoint_hash, options, _ = identities[policy]
        rows.append(
            Row(
                policy,
                mean,
                tuple(cells),
                name=name,
                policy_type=policy_type,
                checkpoint=checkpoint or None,
                checkpoint_hash=checkpoint_hash or None,
                options=json.loads(options),
                mean_low=low,
                mean_high=high,
            )
        )
    ranked = [i for i, r in enumerate(rows) if r.mean_low is not None]
    if len(ranked_columns) == 1 and len(columns) == 1:
        for i in ranked:
            cell = rows[i].cells[0]
            assert cell is not None
            rows[i] = replace(rows[i], rank=cell.rank, tied=cell.tied)
    else:
        pairs = separated_ranks([(rows[i].mean_low, rows[i].mean_high) for i in ranked])  # type: ignore[misc]
        for i, (rank, tied) in zip(ranked, pairs, strict=True):
            rows[i] = replace(rows[i], rank=rank, tied=tied)
    rows.sort(
        key=lambda r: (
            r.rank is None,
            r.rank or 0,
            r.mean_rate is None,
            -(r.mean_rate or 0.0),
            r.policy,
        )
    )
    run_meta = {int(r["id"]): _run_meta(r) for r in runs if "id" in r}
    return Board(
        tuple(columns),
        tuple(rows),
        {k: v for k, v in filters.items() if v},
        by=by,
        interval=interval,
        confidence=confidence,
        runs=run_meta,
        episodes=dict(episodes or {}),
    )


_COUNT_KEYS = ("n", "successes", "errors")


def _run_meta(run: Mapping[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in run.items() if k not in _COUNT_KEYS}
    meta.update({k: run[k] for k in _COUNT_KEYS if k in run})
    return meta


def _joined(value: str | Sequence[str] | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else ",".join(value)


def board_from_store(
    store: Store,
    *,
    suite: str | Sequence[str] | None = None,
    env: str | Sequence[str] | None = None,
    policy: str | Sequence[str] | None = None,
    protocol: str | Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    by: str = "suite",
    interval: str = "wilson",
    confidence: float = 0.95,
    episodes: bool = False,
    group: str | Sequence[str] | None = None,
) -> Board:
    """The leaderboard of everything in ``store`` matching the filters, from the store alone.

    Each filter is one name or several (any of them); None or empty means all. ``protocol``
    matches a protocol name or hash prefix; ``since``/``until`` bound the runs' creation
    time. ``episodes=True`` also loads every episode (for drill-downs and video links).
    ``group`` (with ``by="group"``) keeps only these of the task groups stored with the runs;
    :class:`UnknownGroupError` when no matching run has one of them. Metric columns and
    inference labels are the ones stored with the runs (``Run.report_meta``).
    """
    from vlabench.store import reads

    wanted = [group] if isinstance(group, str) else [g for g in group or () if g]
    if wanted and by != "group":
        raise ValueError(f"group {', '.join(wanted)} needs by='group', got by={by!r}")
    runs = reads.run_counts(
        store, policy=policy, suite=suite, env=env, protocol=protocol, since=since, until=until
    )
    if wanted:
        known = stored_groups(runs)
        unknown = [g for g in wanted if g not in known]
        if unknown:
            listed = ", ".join(known) or "none"
            raise UnknownGroupError(
                f"no stored run has the group {', '.join(unknown)} "
                f"(groups stored with these runs: {listed})"
            )
    loaded = reads.episodes_by_run(store, [r["id"] for r in runs]) if episodes else {}
    measured = {int(r["id"]): run_metrics(r) for r in runs}
    metric_values = reads.episode_metrics(
        store,
        [i for i, metrics in measured.items() if metrics],
        sorted({m for metrics in measured.values() for m, _ in metrics}),
    )
    filters = {
        "suite": _joined(suite),
        "env": _joined(env),
        "policy": _joined(policy),
        "protocol": _joined(protocol),
        "group": _joined(wanted),
        "since": since.isoformat() if since else "",
        "until": until.isoformat() if until else "",
    }
    return build_board(
        runs,
        by=by,
        interval=interval,
        confidence=confidence,
        episodes=loaded,
        groups=wanted or None,
        metric_values=metric_values,
        **filters,
    )
