"""The leaderboard: policies x columns, where a column is one suite (or task) under one protocol.

A board is built from the store alone: what it needs of a run beyond its results (inference
label, metric columns, task groups) was stored with the run (``Run.report_meta``), so a
store prints the same board on every machine, whatever plugins or registry it has.

This module builds a board by the rules below; :mod:`~vlabench.report.model` holds its data
types, and the rules are implemented in :mod:`~vlabench.report.identity` (rows),
:mod:`~vlabench.report.columns` (columns, groups, metric columns) and
:mod:`~vlabench.report.cells` (cells, metric cells, ranks).

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
  the cells' intervals, see :func:`vlabench.stats.mover_mean_interval`), among the rows
  with results on the same set of columns only (their means average the same columns): the
  rows with every column are ranked among themselves, rows sharing a smaller set among
  themselves, and a row alone on its set of columns gets no overall rank (``—``); its
  per-column ranks still say where it separates.
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

import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from vlabench.report.cells import (
    metric_cell,
    rank_cells,
    row_mean_interval,
    separated_ranks,
    success_cell,
)
from vlabench.report.columns import (
    group_keys,
    group_order,
    label_columns,
    run_metrics,
    stored_groups,
)
from vlabench.report.identity import policy_identity, policy_labels
from vlabench.report.model import Board, Cell, Row
from vlabench.report.robustness import is_perturbed

if TYPE_CHECKING:
    from vlabench.store import Store

INTERVALS = ("wilson", "clopper-pearson", "bootstrap")
GROUPINGS = ("suite", "task", "group")


class UnknownGroupError(ValueError):
    """A group asked for that no stored run has."""


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
    in_groups = group_keys(runs, groups) if by == "group" else {}
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
    columns = label_columns(names, by, list(order), lower_is_better, group_order(runs))
    index = {
        (c.suite, c.task or c.group or "", c.protocol_hash, c.metric or ""): i
        for i, c in enumerate(columns)
    }
    slots: dict[str, list[Cell | None]] = {}
    for (policy, suite, task, protocol_hash, metric), group in pooled.items():
        i = index[(suite, task, protocol_hash, metric)]
        if metric:
            cell = metric_cell(policy, columns[i], group, metric_values or {}, confidence)
        else:
            cell = success_cell(policy, columns[i], group, interval, confidence)
        slots.setdefault(policy, [None] * len(columns))[i] = cell
    rank_cells(slots, len(columns))
    ranked_columns = {
        i for i in range(len(columns)) for cells in slots.values()
        if cells[i] is not None and cells[i].status == "ok"  # type: ignore[union-attr]
        and not columns[i].metric and not is_perturbed(columns[i].suite)
    }
    rows = []
    for policy, cells in slots.items():
        ok = [c for c in cells if c is not None and c.status == "ok" and not c.column.metric
              and not is_perturbed(c.column.suite)]  # a variant never pools with its control
        mean = sum(c.rate for c in ok) / len(ok) if ok else None  # type: ignore[misc]
        low = high = None
        if ok:
            low, high = row_mean_interval(ok)
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
    scopes = [rank_scope(r) for r in rows]
    full = frozenset(ranked_columns)
    if len(ranked_columns) == 1 and len(columns) == 1:
        for i, row in enumerate(rows):
            cell = row.cells[0]
            if cell is not None and cell.status == "ok":
                rows[i] = replace(row, rank=cell.rank, tied=cell.tied)
    else:
        # rows are ranked overall only against rows with results on the same columns (their
        # row means average the same columns); a row alone on its set of columns is not
        # ranked overall, except on the full set
        same: dict[frozenset[int], list[int]] = defaultdict(list)
        for i, scope in enumerate(scopes):
            if scope:
                same[scope].append(i)
        for scope, members in same.items():
            if scope != full and len(members) < 2:
                continue
            pairs = separated_ranks([(rows[i].mean_low, rows[i].mean_high) for i in members])  # type: ignore[misc]
            for i, (rank, tied) in zip(members, pairs, strict=True):
                rows[i] = replace(rows[i], rank=rank, tied=tied)
    # a row mean's interval is shown where it was ranked on (as before: not for a lone row)
    rows = [r if r.rank is not None else replace(r, mean_low=None, mean_high=None) for r in rows]
    order_of = {r.policy: rank_scope(r) for r in rows}
    rows.sort(
        key=lambda r: (
            r.rank is None,
            order_of[r.policy] != full,
            sorted(order_of[r.policy]) if r.rank is not None else [],
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


def rank_scope(row: Row) -> frozenset[int]:
    """The success columns (indices) a row has results in: its overall rank, if any, is
    among the rows with the same set (see the ranks rule)."""
    return frozenset(
        i for i, c in enumerate(row.cells)
        if c is not None and c.status == "ok" and not c.column.metric
        and not is_perturbed(c.column.suite)
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
