"""Statistics for success rates: intervals, suite averages and paired comparisons.

* single rates: Wilson's score interval is the default everywhere (good coverage even at
  small n and rates near 0 or 1); Clopper-Pearson is the exact, conservative alternative;
* suite averages (mean of per-task rates): stratified percentile bootstrap, strata = tasks;
* two policies on the same episodes (same seeds and init states): McNemar's exact test on
  the discordant pairs, Newcombe's hybrid score interval (method 10, paired data) for the
  difference in one task, and a stratified paired bootstrap for the difference of suite
  averages.

Every bootstrap draws from ``numpy.random.default_rng(seed)`` (seed 0 by default), so a
report built twice from the same store prints the same intervals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any


def _check(successes: int, n: int, confidence: float) -> None:
    if n < 0 or not 0 <= successes <= max(n, 0):
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``successes`` out of ``n``; ``(0.0, 1.0)`` when n is 0."""
    _check(successes, n, confidence)
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def clopper_pearson_interval(
    successes: int, n: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval; ``(0.0, 1.0)`` when n is 0.

    The quantiles of ``scipy.stats.beta``.
    """
    _check(successes, n, confidence)
    if n == 0:
        return 0.0, 1.0
    from scipy.stats import beta

    alpha = 1.0 - confidence
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return low, high


# -- paired comparisons ---------------------------------------------------------------------
def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts of paired outcomes.

    ``b``: pairs where only A succeeded, ``c``: only B. Under H0 (equal success rates)
    ``b ~ Binomial(b + c, 1/2)``; the p-value is ``min(1, 2 P(X <= min(b, c)))`` (as
    ``statsmodels.stats.contingency_tables.mcnemar(exact=True)``); 1.0 when ``b + c == 0``.
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    from scipy.stats import binom

    return min(1.0, 2.0 * float(binom.cdf(min(b, c), n, 0.5)))


@dataclass(frozen=True)
class PairedTable:
    """Paired binary outcomes of A and B on the same episodes.

    ``both``: both succeeded; ``only_a``/``only_b``: one of them; ``neither``.
    """

    both: int
    only_a: int
    only_b: int
    neither: int

    @property
    def n(self) -> int:
        return self.both + self.only_a + self.only_b + self.neither

    @property
    def rate_a(self) -> float:
        return (self.both + self.only_a) / self.n if self.n else 0.0

    @property
    def rate_b(self) -> float:
        return (self.both + self.only_b) / self.n if self.n else 0.0

    @property
    def difference(self) -> float:
        """Success rate of A minus that of B."""
        return (self.only_a - self.only_b) / self.n if self.n else 0.0

    def __add__(self, other: PairedTable) -> PairedTable:
        return PairedTable(
            self.both + other.both,
            self.only_a + other.only_a,
            self.only_b + other.only_b,
            self.neither + other.neither,
        )


def paired_difference_interval(
    table: PairedTable, confidence: float = 0.95
) -> tuple[float, float]:
    """Newcombe's hybrid score interval (1998, paired data, method 10) for ``rate_a - rate_b``.

    Combines the Wilson intervals of both marginal rates with the phi correlation of the
    pairs; it stays inside [-1, 1] and behaves at 0/n and n/n. ``(-1.0, 1.0)`` when n is 0.
    """
    n = table.n
    if n == 0:
        return -1.0, 1.0
    a, b, c, d = table.both, table.only_a, table.only_b, table.neither
    p1, p2 = table.rate_a, table.rate_b
    l1, u1 = wilson_interval(a + b, n, confidence)
    l2, u2 = wilson_interval(a + c, n, confidence)
    denominator = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(denominator) if denominator > 0 else 0.0
    theta = p1 - p2
    delta = (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2
    epsilon = (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2
    low = theta - math.sqrt(max(delta, 0.0))
    high = theta + math.sqrt(max(epsilon, 0.0))
    return max(-1.0, low), min(1.0, high)


# -- stratified bootstrap -------------------------------------------------------------------
DEFAULT_BOOTSTRAP = 10_000
DEFAULT_SEED = 0


def _percentile_interval(samples: Any, confidence: float) -> tuple[float, float]:
    import numpy as np

    alpha = 1.0 - confidence
    low, high = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def stratified_bootstrap(
    strata: Sequence[tuple[int, int]],
    statistic: Callable[[Any], Any],
    confidence: float = 0.95,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float]:
    """Percentile interval of ``statistic`` when episodes are resampled within each stratum.

    ``strata`` are ``(successes, n)`` (one per task); resampling the binary outcomes of a
    stratum with replacement draws ``Binomial(n, successes / n)`` successes, which is how it
    is done here. ``statistic(k)`` maps resampled successes, an ``(n_boot, S)`` int array, to
    ``(n_boot,)`` values. The generator is ``numpy.random.default_rng(seed)``: same input and
    seed, same interval.
    """
    import numpy as np

    if not strata:
        raise ValueError("stratified_bootstrap needs at least one stratum")
    for successes, n in strata:
        _check(successes, n, confidence)
        if n == 0:
            raise ValueError("every stratum needs at least one episode (n > 0)")
    ks = np.array([s for s, _ in strata], dtype=np.int64)
    ns = np.array([n for _, n in strata], dtype=np.int64)
    rng = np.random.default_rng(seed)
    resampled = rng.binomial(ns, ks / ns, size=(n_boot, len(strata)))
    return _percentile_interval(statistic(resampled), confidence)


def bootstrap_mean_interval(
    values: Sequence[float],
    confidence: float = 0.95,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of continuous ``values`` (one per episode),
    e.g. an open-loop error; one value gives a point."""
    import numpy as np

    data = np.asarray(values, dtype=np.float64)
    if len(data) == 1:
        return float(data[0]), float(data[0])
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(n_boot, len(data)))].mean(axis=1)
    return _percentile_interval(means, confidence)


def suite_mean(strata: Sequence[tuple[int, int]]) -> float:
    """The suite average: the mean of the per-task success rates (each task weighs the same)."""
    return sum(k / n for k, n in strata) / len(strata)


def suite_mean_interval(
    strata: Sequence[tuple[int, int]],
    confidence: float = 0.95,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float]:
    """Stratified bootstrap interval (strata = tasks) of :func:`suite_mean`.

    With one task this is the plain percentile bootstrap, which collapses to a point at
    0/n and n/n: prefer :func:`wilson_interval` for single tasks.
    """
    import numpy as np

    ns = np.array([n for _, n in strata], dtype=np.float64)
    return stratified_bootstrap(
        strata, lambda k: (k / ns).mean(axis=1), confidence, n_boot=n_boot, seed=seed
    )


def paired_bootstrap_difference(
    tables: Sequence[PairedTable],
    confidence: float = 0.95,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float, float]:
    """Mean over tasks of ``rate_a - rate_b`` and its stratified paired bootstrap interval.

    Pairs (the same episode run by A and B) are resampled with replacement within each task
    (a multinomial draw over the four outcome cells), keeping the pairing. Returns
    ``(difference, low, high)``.
    """
    import numpy as np

    tables = [t for t in tables if t.n]
    if not tables:
        raise ValueError("paired_bootstrap_difference needs at least one non-empty table")
    rng = np.random.default_rng(seed)
    diffs = np.zeros(n_boot)
    for t in tables:
        probs = np.array([t.both, t.only_a, t.only_b, t.neither], dtype=np.float64) / t.n
        draws = rng.multinomial(t.n, probs, size=n_boot)
        diffs += (draws[:, 1] - draws[:, 2]) / t.n
    diffs /= len(tables)
    point = sum(t.difference for t in tables) / len(tables)
    low, high = _percentile_interval(diffs, confidence)
    return point, low, high


def mover_mean_interval(
    estimates: Sequence[tuple[float, float, float]],
) -> tuple[float, float]:
    """Interval for the mean of independent rates from their own intervals (MOVER).

    ``estimates`` are ``(rate, low, high)``. Zou & Donner's method of variance estimates
    recovery (the construction behind Newcombe's difference interval): for a sum,
    ``L = S - sqrt(sum (r_i - l_i)^2)`` and ``U = S + sqrt(sum (u_i - r_i)^2)``; divided by
    the count for the mean. With Wilson inputs it stays sensible at 0/n and n/n.
    """
    if not estimates:
        raise ValueError("mover_mean_interval needs at least one estimate")
    total = sum(r for r, _, _ in estimates)
    down = math.sqrt(sum((r - lo) ** 2 for r, lo, _ in estimates))
    up = math.sqrt(sum((hi - r) ** 2 for r, _, hi in estimates))
    k = len(estimates)
    return max(0.0, (total - down) / k), min(1.0, (total + up) / k)
