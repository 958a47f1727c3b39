"""Cells and ranks: a cell pools its runs' episodes with an interval (success or metric
columns), and ranks are given only where intervals separate (see the cells, ranks and
metric-columns rules in :mod:`vlabench.report.board`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from vlabench import sequential, stats
from vlabench.report.identity import report_meta
from vlabench.report.model import Cell, Column, TaskResult

ACTIVE_STATUSES = frozenset({"pending", "running"})


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


def stopped_sequentially(run: Mapping[str, Any]) -> bool:
    """Whether the run's episode count was chosen by a sequential rule (``--precision``,
    ``--until-decided``): a fixed-n interval would be invalid for it."""
    return bool(report_meta(run).get("sequential"))


def _task_result(task: str, runs: list[Mapping[str, Any]], method: str, conf: float) -> TaskResult:
    n = sum(r["n"] for r in runs)
    successes = sum(r["successes"] for r in runs)
    errors = sum(r["errors"] for r in runs)
    ids = tuple(sorted(int(r["id"]) for r in runs if "id" in r))
    if n:
        anytime = any(stopped_sequentially(r) for r in runs)
        if anytime:  # never a fixed-n interval after optional stopping
            low, high = sequential.rate_sequence(successes, n, 1.0 - conf)
        else:
            low, high = _interval(successes, n, method, conf)
        return TaskResult(
            task, n, successes, errors, successes / n, low, high, "ok", None, ids, anytime
        )
    status, reason = _empty_status(runs)
    return TaskResult(task, 0, 0, errors, None, None, None, status, reason, ids)


def success_cell(
    policy: str, column: Column, runs: list[Mapping[str, Any]], method: str, conf: float
) -> Cell:
    """A success column's cell: its runs' episodes pooled across tasks, with their interval."""
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
    if any(t.anytime for t in tasks):
        rate, low, high = _anytime_mean(strata, conf)
        return Cell(rate=rate, ci_low=low, ci_high=high, status="ok", anytime=True, **common)
    if method == "bootstrap" and len(strata) > 1:
        rate = stats.suite_mean(strata)
        low, high = stats.suite_mean_interval(strata, conf)
    else:
        rate = successes / n
        low, high = _interval(successes, n, method, conf)
    return Cell(rate=rate, ci_low=low, ci_high=high, status="ok", **common)


def _anytime_mean(strata: list[tuple[int, int]], conf: float) -> tuple[float, float, float]:
    """A cell with a sequentially stopped task: the mean of per-task rates (tasks may have
    stopped at different n, so the pooled rate would weigh them by when they stopped) and
    the mean of their confidence sequences at ``(1 - conf) / tasks`` each, which hold
    simultaneously with probability >= conf (a union bound); one task: its own sequence."""
    alpha = (1.0 - conf) / len(strata)
    bounds = [sequential.rate_sequence(k, n, alpha) for k, n in strata]
    return (
        stats.suite_mean(strata),
        sum(lo for lo, _ in bounds) / len(bounds),
        sum(hi for _, hi in bounds) / len(bounds),
    )


def metric_cell(
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


def separated_ranks(intervals: Sequence[tuple[float, float]]) -> list[tuple[int, bool]]:
    """``(rank, tied)`` for each interval: rank = 1 + how many intervals lie entirely above.

    Overlapping intervals can share a rank; ``tied`` says that another one has the same.
    """
    ranks = [1 + sum(1 for lo, _ in intervals if lo > high) for _, high in intervals]
    return [(r, ranks.count(r) > 1) for r in ranks]


def rank_cells(slots: dict[str, list[Cell | None]], n_columns: int) -> None:
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


def row_mean_interval(cells: Sequence[Cell]) -> tuple[float, float]:
    """Interval of the mean of column rates from the cells' own intervals (MOVER)."""
    return stats.mover_mean_interval([(c.rate, c.ci_low, c.ci_high) for c in cells])  # type: ignore[misc]
