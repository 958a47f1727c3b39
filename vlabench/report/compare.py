"""Paired comparison of two policies on the same episodes (``vlabench compare A B``).

Episodes of A and B are paired by (suite, protocol, task, episode index, seed, init state):
the same start for both, so the comparison is paired, never across protocols.

One decision rule, per task and overall: A and B differ where McNemar's exact test on the
discordant pairs gives p < 1 - confidence. The interval shown beside it is the exact one that
matches the test (:func:`exact_difference_interval`: the Clopper-Pearson interval of A's share
of the discordant pairs, as a difference of success rates); it excludes 0 exactly when the test
decides, so the verdict and the intervals never disagree. With n pairs the test can never
decide below :func:`pairs_needed` (6 at 95%, every pair going one way): such a task is marked.
Overall: the same test and interval on the pairs of every task pooled (the test is
conditional on each pair, so pooling tasks keeps it exact). Per-task tests are not corrected
for multiplicity. Errored episodes count as failures, as on the leaderboard.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vlabench import sequential, stats
from vlabench.report.cells import stopped_sequentially
from vlabench.report.identity import policy_identity, policy_labels

if TYPE_CHECKING:
    from vlabench.store import Store


RULE = (
    "a difference counts where exact McNemar p < {alpha:g}, i.e. where its exact interval "
    "(conditional on the discordant pairs) excludes 0"
)
ANYTIME_RULE = (
    "runs stopped by a sequential rule: a difference counts where its anytime-valid "
    "{level} interval (confidence sequence) excludes 0; McNemar p is shown for reference "
    "only, it is not valid after stopping early"
)


def exact_difference_interval(
    table: stats.PairedTable, confidence: float = 0.95
) -> tuple[float, float]:
    """The interval for ``rate_a - rate_b`` that matches McNemar's exact test: with ``d``
    discordant pairs of ``n``, the difference is ``(2 theta - 1) d / n`` where theta is A's
    share of the discordant pairs, bounded by its Clopper-Pearson interval. It excludes 0
    exactly when the two-sided exact p < 1 - confidence; ``(0, 0)`` with no discordant pair."""
    d = table.only_a + table.only_b
    if d == 0:
        return 0.0, 0.0
    low, high = stats.clopper_pearson_interval(table.only_a, d, confidence)
    return (2 * low - 1) * d / table.n, (2 * high - 1) * d / table.n


def pairs_needed(confidence: float = 0.95) -> int:
    """The fewest pairs with which the exact McNemar test can decide at all (every pair
    discordant, all one way: p = 2 / 2**n): 6 at 95%."""
    n = 1
    while 2.0 * 0.5**n >= 1.0 - confidence:
        n += 1
    return n


class CompareError(ValueError):
    """The comparison cannot be made (unknown policy, nothing paired...)."""


@dataclass(frozen=True)
class TaskComparison:
    """A and B on one task of one suite under one protocol."""

    suite: str
    protocol: str
    protocol_hash: str
    suite_label: str
    task: str
    table: stats.PairedTable
    difference: float
    low: float
    high: float
    p_value: float
    significant: bool

    @property
    def too_few(self) -> bool:
        """Whether the test could never decide with this many pairs, whatever their outcomes."""
        return self.table.n < pairs_needed(1.0 - self.alpha)

    alpha: float = 0.05


@dataclass(frozen=True)
class Comparison:
    """The whole comparison; :meth:`verdict` says it in one sentence."""

    a: str
    b: str
    confidence: float
    tasks: tuple[TaskComparison, ...]
    table: stats.PairedTable
    difference: float
    low: float
    high: float
    p_value: float
    unpaired_a: int = 0
    unpaired_b: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
    anytime: bool = False
    """A run was stopped by a sequential rule: intervals and decisions are anytime-valid."""

    @property
    def a_better(self) -> int:
        return sum(1 for t in self.tasks if t.significant and t.difference > 0)

    @property
    def b_better(self) -> int:
        return sum(1 for t in self.tasks if t.significant and t.difference < 0)

    @property
    def too_few(self) -> int:
        """How many tasks have too few pairs for the test ever to decide."""
        return sum(1 for t in self.tasks if t.too_few)

    @property
    def significant(self) -> bool:
        if self.anytime:
            return self.low > 0 or self.high < 0
        return self.p_value < 1.0 - self.confidence

    def rule(self) -> str:
        """The decision rule, in words."""
        if self.anytime:
            return ANYTIME_RULE.format(level=f"{round(100 * self.confidence)}%")
        return RULE.format(alpha=round(1.0 - self.confidence, 6))

    def verdict(self) -> str:
        """``A better than B on 3 of 10 tasks at 95%; overall +6.2 pts [+1.1, +11.0] (A
        better), McNemar p=0.003 over 200 pairs``, then the tasks too small to decide."""
        level = f"{round(100 * self.confidence)}%"
        n = len(self.tasks)
        parts = [f"{self.a} better than {self.b} on {self.a_better} of {n} tasks at {level}"]
        if self.b_better:
            parts[0] += f", worse on {self.b_better}"
        overall = (
            f"overall {100 * self.difference:+.1f} pts "
            f"[{100 * self.low:+.1f}, {100 * self.high:+.1f}]"
        )
        if self.significant and self.difference > 0:
            overall += f" ({self.a} better)"
        elif self.significant and self.difference < 0:
            overall += f" ({self.b} better)"
        else:
            overall += " (no significant difference)"
        if self.anytime:
            parts.append(overall + f", anytime-valid over {self.table.n} pairs")
        else:
            parts.append(overall + f", McNemar p={self.p_value:.3g} over {self.table.n} pairs")
        if self.too_few:
            parts.append(
                f"{self.too_few} of {n} tasks have too few pairs for the test ever to decide "
                f"(needs >= {pairs_needed(self.confidence)} pairs per task)"
            )
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        def table(t: stats.PairedTable) -> dict[str, int]:
            return {"both": t.both, "only_a": t.only_a, "only_b": t.only_b, "neither": t.neither}

        return {
            "a": self.a,
            "b": self.b,
            "confidence": self.confidence,
            "verdict": self.verdict(),
            "overall": {
                "pairs": self.table.n,
                "table": table(self.table),
                "difference": self.difference,
                "ci_low": self.low,
                "ci_high": self.high,
                "p_value": self.p_value,
                "significant": self.significant,
                "interval": ANYTIME_INTERVAL if self.anytime else INTERVAL,
            },
            "rule": self.rule(),
            "pairs_needed": pairs_needed(self.confidence),
            "tasks": [
                {
                    "suite": t.suite,
                    "protocol": t.protocol,
                    "protocol_hash": t.protocol_hash,
                    "task": t.task,
                    "pairs": t.table.n,
                    "table": table(t.table),
                    "rate_a": t.table.rate_a,
                    "rate_b": t.table.rate_b,
                    "difference": t.difference,
                    "ci_low": t.low,
                    "ci_high": t.high,
                    "p_value": t.p_value,
                    "significant": t.significant,
                    "too_few_pairs": t.too_few,
                    "interval": ANYTIME_INTERVAL if self.anytime else INTERVAL,
                }
                for t in self.tasks
            ],
            "unpaired": {"a": self.unpaired_a, "b": self.unpaired_b},
            "notes": list(self.notes),
        }


INTERVAL = "exact, matching McNemar (Clopper-Pearson on the discordant pairs)"
ANYTIME_INTERVAL = "anytime-valid confidence sequence (runs stopped sequentially)"


def select_runs(runs: list[dict[str, Any]], who: str) -> list[dict[str, Any]]:
    """The runs of policy ``who`` (a row label, or a preset name with one variant);
    :class:`CompareError` when there are none or the name is ambiguous."""
    labels = policy_labels(runs)
    chosen = [r for r in runs if labels[policy_identity(r)] == who]
    if chosen:
        return chosen
    named = [r for r in runs if r["policy"] == who]
    variants = sorted({labels[policy_identity(r)] for r in named})
    if len(variants) > 1:
        raise CompareError(
            f"policy {who!r} names {len(variants)} different checkpoints or options; "
            f"choose one of: {', '.join(variants)}"
        )
    if not named:
        known = sorted(set(labels.values()))
        raise CompareError(
            f"no runs of policy {who!r} in the store (policies: {', '.join(known) or 'none'})"
        )
    return named


EpisodeKey = tuple[str, str, str, int, int, int | None]


def _outcomes(
    runs: list[dict[str, Any]], episodes: dict[int, list[dict[str, Any]]]
) -> dict[EpisodeKey, bool]:
    out: dict[EpisodeKey, bool] = {}
    for run in runs:
        for ep in episodes.get(run["id"], ()):
            key = (
                run["suite"],
                run["protocol_hash"],
                ep["task"],
                int(ep["episode_index"]),
                int(ep["seed"]),
                ep["init_state_id"],
            )
            out.setdefault(key, bool(ep["success"]) and not ep.get("failure_reason"))
    return out


def compare(
    store: Store,
    a: str,
    b: str,
    *,
    suite: str | Sequence[str] | None = None,
    confidence: float = 0.95,
) -> Comparison:
    """Compare policy ``a`` with ``b`` (row labels or preset names) on their paired episodes."""
    from vlabench.store import reads

    if a == b:
        raise CompareError(f"compare needs two different policies, got {a!r} twice")
    runs = reads.run_counts(store, suite=suite)
    runs_a, runs_b = select_runs(runs, a), select_runs(runs, b)
    episodes = reads.episodes_by_run(store, [r["id"] for r in runs_a + runs_b])
    out_a, out_b = _outcomes(runs_a, episodes), _outcomes(runs_b, episodes)
    shared = sorted(set(out_a) & set(out_b), key=lambda k: (k[0], k[1], k[2], k[3]))
    if not shared:
        suites_a = sorted({r["suite"] for r in runs_a})
        suites_b = sorted({r["suite"] for r in runs_b})
        raise CompareError(
            f"no paired episodes: {a} has episodes on suites {suites_a}, {b} on {suites_b}; "
            "episodes pair only on the same suite, protocol, task, index, seed and init state"
        )
    names = {r["protocol_hash"]: str((r.get("protocol") or {}).get("name") or "") for r in runs}
    cells: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for key in shared:
        x, y = out_a[key], out_b[key]
        slot = 0 if x and y else 1 if x else 2 if y else 3
        cells[key[:3]][slot] += 1
    protocols_per_suite: dict[str, set[str]] = defaultdict(set)
    for suite_name, protocol_hash, _ in cells:
        protocols_per_suite[suite_name].add(protocol_hash)
    alpha = 1.0 - confidence
    anytime = any(stopped_sequentially(r) for r in runs_a + runs_b)

    def interval(table: stats.PairedTable) -> tuple[float, float]:
        if anytime:  # never a fixed-n interval after optional stopping
            return sequential.paired_sequence(table.only_a, table.only_b, table.n, alpha)
        return exact_difference_interval(table, confidence)

    tasks = []
    for (suite_name, protocol_hash, task), counts in sorted(cells.items()):
        table = stats.PairedTable(*counts)
        low, high = interval(table)
        p = stats.mcnemar_exact(table.only_a, table.only_b)
        label = suite_name
        if len(protocols_per_suite[suite_name]) > 1:
            label += f" [{names.get(protocol_hash) or protocol_hash[:6]}]"
        tasks.append(
            TaskComparison(
                suite_name,
                names.get(protocol_hash, ""),
                protocol_hash,
                label,
                task,
                table,
                table.difference,
                low,
                high,
                p,
                (low > 0 or high < 0) if anytime else p < alpha,
                alpha,
            )
        )
    total = stats.PairedTable(0, 0, 0, 0)
    for t in tasks:
        total = total + t.table
    difference = total.difference
    low, high = interval(total)
    notes = []
    unpaired_a, unpaired_b = len(out_a) - len(shared), len(out_b) - len(shared)
    if unpaired_a or unpaired_b:
        notes.append(
            f"left out {unpaired_a} episode(s) of {a} and {unpaired_b} of {b} without a partner "
            "(other suites, protocols, seeds or init states)"
        )
    return Comparison(
        a,
        b,
        confidence,
        tuple(tasks),
        total,
        difference,
        low,
        high,
        stats.mcnemar_exact(total.only_a, total.only_b),
        unpaired_a,
        unpaired_b,
        tuple(notes),
        anytime,
    )
