"""Sim-vs-real agreement: Pearson r and MMRV between simulated and real success rates.

Given, for one task, the success rate of several policies in simulation and in the real
world, a simulator is a good proxy when it ranks the policies as the real world does.
SimplerEnv (Li et al. 2024, "Evaluating Real-World Robot Manipulation Policies in
Simulation", arXiv 2405.05941) reports two numbers per task and per task set:

* **Pearson r** of the two vectors of rates (linear agreement; higher is better);
* **MMRV**, the mean maximum rank violation (lower is better, 0 = same ranking):
  ``MMRV = 1/N * sum_i max_j |R_i - R_j| * 1[(S_i > S_j) != (R_i > R_j)]``, i.e. for each
  policy the largest real-world gap to a policy that the simulator orders the other way.

Real rates come from a YAML table (published numbers, or your own robot's), sim rates from
the store. Nothing here knows a simulator.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Rates = dict[str, dict[str, float]]
"""task -> policy -> success rate in [0, 1]."""


def pearson_r(sim: Sequence[float], real: Sequence[float]) -> float:
    """Pearson correlation of two equally long vectors; NaN when either is constant.

    (SimplerEnv's own helper returns 1 when both centred vectors are equal, e.g. all zeros;
    here a constant side has no defined correlation and gives NaN.)
    """
    if len(sim) != len(real):
        raise ValueError(f"pearson_r needs equally long vectors, got {len(sim)} and {len(real)}")
    n = len(sim)
    if n < 2:
        return math.nan
    ms, mr = sum(sim) / n, sum(real) / n
    ds, dr = [s - ms for s in sim], [r - mr for r in real]
    ss, sr = sum(d * d for d in ds), sum(d * d for d in dr)
    if ss == 0 or sr == 0:
        return math.nan
    return sum(a * b for a, b in zip(ds, dr, strict=True)) / math.sqrt(ss * sr)


def mmrv(sim: Sequence[float], real: Sequence[float]) -> float:
    """Mean maximum rank violation (SimplerEnv's definition; ties never violate both ways)."""
    if len(sim) != len(real):
        raise ValueError(f"mmrv needs equally long vectors, got {len(sim)} and {len(real)}")
    if not sim:
        return math.nan
    worst = []
    for i in range(len(sim)):
        violation = 0.0
        for j in range(len(sim)):
            if (sim[i] > sim[j]) != (real[i] > real[j]):
                violation = max(violation, abs(real[i] - real[j]))
        worst.append(violation)
    return sum(worst) / len(worst)


@dataclass(frozen=True)
class Agreement:
    """Sim-vs-real agreement over the policies both sides have for one task (or the mean)."""

    task: str
    policies: tuple[str, ...]
    sim: tuple[float, ...]
    real: tuple[float, ...]
    pearson: float
    mmrv: float

    def as_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if math.isnan(x) else round(x, 6)

        return {
            "task": self.task,
            "policies": list(self.policies),
            "sim": [round(s, 6) for s in self.sim],
            "real": [round(r, 6) for r in self.real],
            "pearson": num(self.pearson),
            "mmrv": num(self.mmrv),
        }


MEAN = "mean"
"""Pseudo-task: each policy's rate averaged over the tasks (policies present in all)."""


def agreement(sim: Rates, real: Rates) -> list[Agreement]:
    """One :class:`Agreement` per task present on both sides, then the task-set mean.

    A task is compared over the policies that have a rate on both sides; tasks with fewer
    than two such policies are skipped (a ranking needs two).
    """
    results = []
    shared_tasks = [t for t in real if t in sim]
    for task in shared_tasks:
        policies = tuple(p for p in real[task] if p in sim[task])
        if len(policies) < 2:
            continue
        s = tuple(float(sim[task][p]) for p in policies)
        r = tuple(float(real[task][p]) for p in policies)
        results.append(Agreement(task, policies, s, r, pearson_r(s, r), mmrv(s, r)))
    if len(shared_tasks) > 1:
        everywhere = [
            p
            for p in real[shared_tasks[0]]
            if all(p in sim[t] and p in real[t] for t in shared_tasks)
        ]
        if len(everywhere) >= 2:
            s = tuple(sum(sim[t][p] for t in shared_tasks) / len(shared_tasks) for p in everywhere)
            r = tuple(sum(real[t][p] for t in shared_tasks) / len(shared_tasks) for p in everywhere)
            results.append(
                Agreement(MEAN, tuple(everywhere), s, r, pearson_r(s, r), mmrv(s, r))
            )
    return results


# -- inputs --------------------------------------------------------------------------------
@dataclass(frozen=True)
class RealTable:
    """Real-world success rates of one task set, with where they come from."""

    name: str
    source: str
    rates: Rates
    episodes: int | None = None
    suites: tuple[str, ...] = ()
    """Suites whose stored runs give the sim side (default: the task set's name)."""
    metric: str = "success"
    """``success``, or an episode metric (e.g. ``grasped``) averaged per task and policy."""


def load_real_tables(path: str | Path) -> dict[str, RealTable]:
    """Read ``{task_sets: {NAME: {source, episodes?, suites?, metric?, tasks: ...}}}``.

    ``tasks`` maps task -> policy -> rate, rates are fractions in [0, 1]; errors name the file
    and the key.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the real-results table: {exc}") from None
    sets = data.get("task_sets") if isinstance(data, dict) else None
    if not isinstance(sets, dict) or not sets:
        raise ValueError(f"{path}: expected a mapping 'task_sets: {{NAME: {{tasks: ...}}}}'")
    tables = {}
    for name, entry in sets.items():
        tasks = entry.get("tasks") if isinstance(entry, dict) else None
        if not isinstance(tasks, dict):
            raise ValueError(f"{path}: task_sets.{name}.tasks must map task -> policy -> rate")
        rates: Rates = {}
        for task, by_policy in tasks.items():
            if not isinstance(by_policy, dict):
                raise ValueError(f"{path}: task_sets.{name}.tasks.{task} must map policy -> rate")
            rates[str(task)] = {}
            for policy, rate in by_policy.items():
                number = isinstance(rate, int | float) and not isinstance(rate, bool)
                if not number or not 0 <= rate <= 1:
                    raise ValueError(
                        f"{path}: task_sets.{name}.tasks.{task}.{policy}: expected a success "
                        f"rate in [0, 1], got {rate!r}"
                    )
                rates[str(task)][str(policy)] = float(rate)
        suites = entry.get("suites") or [name]
        if not isinstance(suites, list) or not all(isinstance(x, str) for x in suites):
            raise ValueError(f"{path}: task_sets.{name}.suites must be a list of suite names")
        tables[str(name)] = RealTable(
            str(name),
            str(entry.get("source", "")),
            rates,
            entry.get("episodes"),
            tuple(suites),
            str(entry.get("metric", "success")),
        )
    return tables


def sim_rates_from_store(
    store: Any,
    suites: Sequence[str],
    aliases: Mapping[str, str] | None = None,
    metric: str = "success",
) -> Rates:
    """Success rate (or mean episode ``metric``) per task and policy over ``suites``' runs.

    Only the newest protocol of each suite counts (runs of other protocols are not mixed in).
    ``aliases`` renames stored policy names to the real table's names. For a metric, episodes
    without it are left out.
    """
    aliases = dict(aliases or {})
    runs = store.run_counts(suite=list(suites))
    newest: dict[str, str] = {}
    for run in runs:  # oldest first: the last one wins
        newest[run["suite"]] = run["protocol_hash"]
    pooled: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
    for run in runs:
        if run["protocol_hash"] != newest[run["suite"]] or not run["n"]:
            continue
        policy = aliases.get(run["policy"], run["policy"])
        cell = pooled[(run["task"], policy)]
        if metric == "success":
            cell[0] += run["successes"]
            cell[1] += run["n"]
            continue
        for episode in store.episodes(run["id"]):
            value = (episode.get("metrics") or {}).get(metric)
            if isinstance(value, int | float) and not math.isnan(value):
                cell[0] += float(value)
                cell[1] += 1
    rates: Rates = defaultdict(dict)
    for (task, policy), (total, n) in pooled.items():
        if n:
            rates[task][policy] = total / n
    return dict(rates)


def format_table(results: Sequence[Agreement]) -> str:
    """Plain-text table: task, policies compared, Pearson r, MMRV."""

    def num(x: float) -> str:
        return "n/a" if math.isnan(x) else f"{x:.3f}"

    lines = [f"{'task':<36} {'policies':>8} {'pearson r':>10} {'MMRV':>8}"]
    for a in results:
        lines.append(f"{a.task:<36} {len(a.policies):>8} {num(a.pearson):>10} {num(a.mmrv):>8}")
    return "\n".join(lines)
