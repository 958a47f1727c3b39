"""Columns: labels (suite, task or group under one protocol, metric), the metric columns and
task groups stored with runs (see the columns and metric-columns rules in
:mod:`vlabench.report.board`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from vlabench.report.identity import report_meta
from vlabench.report.model import Column


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


def group_order(runs: Iterable[Mapping[str, Any]]) -> list[str]:
    """The groups' declared order (``group_order`` stored with the runs, first seen first);
    groups of runs stored without one come after, by name (see :func:`label_columns`)."""
    order: dict[str, None] = {}
    for run in runs:
        for name in report_meta(run).get("group_order") or ():
            order.setdefault(str(name))
    return list(order)


def metric_label(metric: str) -> str:
    """A metric's short name in column labels: ``open_loop.mse_norm`` -> ``mse_norm``."""
    return metric.split(".", 1)[-1]


def label_columns(
    names: Mapping[tuple[str, str, str, str], str],
    by: str = "suite",
    metric_order: Sequence[str] = (),
    lower_is_better: Mapping[str, bool] | None = None,
    groups: Sequence[str] = (),
) -> list[Column]:
    """Columns for (suite, task or group, protocol_hash, metric) keys ("" when by suite).

    Group columns of one suite follow ``groups`` (their declared order, :func:`group_order`),
    then the others by name; everything else is by name.

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
    rank = {g: i for i, g in enumerate(groups)} if by == "group" else {}
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
                place = (rank.get(task, len(rank)), task)
                keyed.append(((suite, place, label, order.get(metric, -1), shown), column))
    return [column for _, column in sorted(keyed, key=lambda pair: pair[0])]


def group_keys(
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
