"""Confidence intervals for success rates (binomial proportions).

Wilson's score interval is the default everywhere (good coverage even at small n and rates
near 0 or 1); Clopper-Pearson is the exact, conservative alternative.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist


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

    Uses ``scipy.stats.beta`` when scipy is installed, else bisection on the binomial tail.
    """
    _check(successes, n, confidence)
    if n == 0:
        return 0.0, 1.0
    alpha = 1.0 - confidence
    try:
        from scipy.stats import beta
    except ImportError:
        return _clopper_pearson_bisect(successes, n, alpha)
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return low, high


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    lg = math.lgamma
    return min(
        1.0,
        sum(
            math.exp(lg(n + 1) - lg(i + 1) - lg(n - i + 1) + i * log_p + (n - i) * log_q)
            for i in range(k + 1)
        ),
    )


def _bisect(f: Callable[[float], float], target: float, increasing: bool) -> float:
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if (f(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _clopper_pearson_bisect(successes: int, n: int, alpha: float) -> tuple[float, float]:
    """Lower: P(X >= k | p) = alpha/2; upper: P(X <= k | p) = alpha/2."""
    low = 0.0
    if successes > 0:
        low = _bisect(lambda p: 1.0 - _binom_cdf(successes - 1, n, p), alpha / 2, True)
    high = 1.0
    if successes < n:
        high = _bisect(lambda p: _binom_cdf(successes, n, p), alpha / 2, False)
    return low, high
