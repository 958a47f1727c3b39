"""Anytime-valid statistics: intervals and decisions that stay valid however often one looks.

An evaluation that looks at its results after every round and stops when they are good
enough must not report a fixed-n interval (Wilson, Clopper-Pearson) at the end: with optional
stopping their coverage falls below the nominal level. A *confidence sequence* covers the
true value at every n simultaneously, so it is valid at any stopping time.

* one success rate: the beta-binomial mixture confidence sequence (Robbins 1970; Howard,
  Ramdas, McAuliffe & Sekhon, Ann. Statist. 2021, sec. 3 "conjugate mixtures"; Lindon &
  Malek 2022 for the multinomial form). For each candidate rate ``p`` the Bayes factor
  ``M_n(p) = B(a + S, b + F) / B(a, b) / (p^S (1 - p)^F)`` (Beta(a, b) mixing, S successes,
  F failures) is a non-negative martingale with mean 1 when ``p`` is the true rate, so by
  Ville's inequality ``P(exists n: M_n(p) >= 1 / alpha) <= alpha``. The sequence at n is
  ``{p : M_n(p) < 1 / alpha}``, an interval (the log-likelihood is concave) found here by
  bisection; ``scipy.special.betaln`` gives the Beta function.
* two policies on the same episodes: each pair contributes ``X = 1[only A] - 1[only B]``,
  whose mean is ``rate_A - rate_B``. Its sequence combines two of the above at ``alpha / 2``
  each (a union bound): one for the discordant share ``D = P(discordant)`` over all pairs,
  one for ``theta = P(only A | discordant)`` over the discordant pairs (exact McNemar's
  conditioning, made sequential; its mixing prior Beta(4, 4) is centred on 1/2); the
  difference ``(2 theta - 1) D`` is bilinear, so its
  bounds are at the corners of the two intervals.

A decision read off a confidence sequence (the interval excludes 0, or lies inside
``(-delta, delta)``) is wrong with probability at most alpha, whenever it is taken.
``tests/test_sequential_stats.py`` checks this by simulation and
``benchmarks/sequential_study.py`` reports error rates and episodes saved.

No maintained library fits (see BENCHMARKS.md, "Sequential evaluation"): the construction is
the textbook one above, vectorised so that a simulation can run thousands of sequences.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_ALPHA = 0.05
PRIOR = (0.5, 0.5)
"""Beta(a, b) mixing distribution of the rate's confidence sequence (Jeffreys)."""
PAIRED_PRIOR = (4.0, 4.0)
"""Beta mixing distribution of ``theta = P(only A | discordant)``: centred on McNemar's null
(1/2), where the hard alternatives are; chosen by ``benchmarks/sequential_study.py`` (any
prior fixed in advance keeps the guarantee, a better-placed one decides sooner)."""
DEFAULT_ROUND = 10
"""Episodes per cell between two looks."""
_BISECTIONS = 50  # interval ends to ~1e-15


def _log_ratio(successes: Any, failures: Any, p: Any, prior: tuple[float, float]) -> Any:
    """``log M_n(p)``: the mixture's log Bayes factor against rate ``p`` (arrays broadcast)."""
    import numpy as np
    from scipy.special import betaln

    a, b = prior
    p = np.clip(p, 1e-300, 1.0 - 1e-16)
    return (
        betaln(a + successes, b + failures)
        - betaln(a, b)
        - successes * np.log(p)
        - failures * np.log1p(-p)
    )


def rate_sequence_bounds(
    successes: Any, n: Any, alpha: float = DEFAULT_ALPHA, prior: tuple[float, float] = PRIOR
) -> tuple[Any, Any]:
    """Arrays of the confidence sequence's ``(low, high)`` for ``successes`` of ``n`` (any
    broadcastable shapes); ``(0, 1)`` where n is 0."""
    import numpy as np

    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    s = np.asarray(successes, dtype=np.float64)
    n_ = np.asarray(n, dtype=np.float64)
    s, n_ = np.broadcast_arrays(s, n_)
    if np.any(n_ < 0) or np.any(s < 0) or np.any(s > n_):
        raise ValueError("need 0 <= successes <= n")
    f = n_ - s
    mle = np.divide(s, n_, out=np.full(s.shape, 0.5), where=n_ > 0)
    level = math.log(1.0 / alpha)

    from scipy.special import betaln

    a, b = prior
    # outside the sequence where log M_n(p) >= level, i.e. where the log-likelihood
    # S log p + F log(1 - p) <= log B(a + S, b + F) - log B(a, b) - level (fixed per cell)
    floor = betaln(a + s, b + f) - betaln(a, b) - level

    def outside(p: Any) -> Any:
        p = np.clip(p, 1e-300, 1.0 - 1e-16)
        return s * np.log(p) + f * np.log1p(-p) <= floor

    # low: the smallest p inside, in [0, mle] (outside -> inside as p grows)
    lo, hi = np.zeros_like(mle), mle.copy()
    for _ in range(_BISECTIONS):
        mid = (lo + hi) / 2
        out = outside(mid)
        lo, hi = np.where(out, mid, lo), np.where(out, hi, mid)
    low = np.where((s == 0) | (n_ == 0), 0.0, hi)
    # high: the largest p inside, in [mle, 1]
    lo, hi = mle.copy(), np.ones_like(mle)
    for _ in range(_BISECTIONS):
        mid = (lo + hi) / 2
        out = outside(mid)
        lo, hi = np.where(out, lo, mid), np.where(out, mid, hi)
    high = np.where((f == 0) | (n_ == 0), 1.0, lo)
    return low, high


def rate_sequence(
    successes: int, n: int, alpha: float = DEFAULT_ALPHA
) -> tuple[float, float]:
    """The anytime-valid ``(low, high)`` of a success rate after ``successes`` of ``n``: it
    covers the true rate at every n at once with probability >= 1 - alpha, so it stays valid
    when the evaluation stopped because of what it saw."""
    low, high = rate_sequence_bounds(successes, n, alpha)
    return float(low), float(high)


def paired_sequence_bounds(
    only_a: Any, only_b: Any, n: Any, alpha: float = DEFAULT_ALPHA
) -> tuple[Any, Any]:
    """Arrays of the confidence sequence's ``(low, high)`` for ``rate_A - rate_B`` from
    paired outcomes: ``only_a``/``only_b`` discordant pairs of ``n``."""
    import numpy as np

    b = np.asarray(only_a, dtype=np.float64)
    c = np.asarray(only_b, dtype=np.float64)
    d = b + c
    t_low, t_high = rate_sequence_bounds(b, d, alpha / 2, PAIRED_PRIOR)
    d_low, d_high = rate_sequence_bounds(d, n, alpha / 2)
    corners = [(2 * t - 1) * share for t in (t_low, t_high) for share in (d_low, d_high)]
    return np.minimum.reduce(corners), np.maximum.reduce(corners)


def paired_sequence(
    only_a: int, only_b: int, n: int, alpha: float = DEFAULT_ALPHA
) -> tuple[float, float]:
    """The anytime-valid ``(low, high)`` of ``rate_A - rate_B`` after ``n`` paired episodes
    (``only_a``: pairs only A succeeded in; ``only_b``: only B)."""
    low, high = paired_sequence_bounds(only_a, only_b, n, alpha)
    return float(low), float(high)


A_BETTER, B_BETTER, EQUIVALENT = "A > B", "B > A", "no difference"


def decision(low: float, high: float, delta: float | None) -> str | None:
    """What an interval of ``rate_A - rate_B`` decides: ``A > B`` (it excludes 0 from
    below), ``B > A``, ``no difference`` (it lies inside ``(-delta, delta)``) or None."""
    if low > 0:
        return A_BETTER
    if high < 0:
        return B_BETTER
    if delta is not None and -delta < low and high < delta:
        return EQUIVALENT
    return None


@dataclass(frozen=True)
class StoppingRule:
    """How a sequential evaluation decides to stop; stored with each of its runs
    (``Run.report_meta["sequential"]``) together with its looks.

    ``kind``: ``precision`` (stop a cell when its interval is at most +-``precision``) or
    ``until-decided`` (stop a comparison when :func:`decision` says something, with
    ``delta`` the smallest difference that matters). ``round``: episodes per cell between
    looks; the budget is the suite's episode count.
    """

    kind: str
    alpha: float = DEFAULT_ALPHA
    precision: float | None = None
    delta: float | None = None
    round: int = DEFAULT_ROUND

    def __post_init__(self) -> None:
        if self.kind not in ("precision", "until-decided"):
            raise ValueError(f"unknown stopping rule {self.kind!r}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.kind == "precision" and not (self.precision and 0 < self.precision <= 0.5):
            raise ValueError(f"precision must be in (0, 0.5], got {self.precision}")
        if self.round < 1:
            raise ValueError(f"round must be >= 1, got {self.round}")

    def looks(self, budget: int) -> list[int]:
        """The episode counts at which the rule looks: every ``round``, and the budget."""
        marks = list(range(self.round, budget, self.round))
        return [*marks, budget] if budget > 0 else []

    def as_dict(self) -> dict[str, Any]:
        """The rule as stored, with the construction of its interval."""
        method = (
            "beta-binomial mixture confidence sequence, Beta(1/2, 1/2)"
            if self.kind == "precision"
            else "paired: mixture confidence sequences for the discordant share, Beta(1/2, "
            "1/2), and A's share of discordant pairs, Beta(4, 4), at alpha/2 each"
        )
        return {**asdict(self), "method": method}


@dataclass
class Progress:
    """Where one sequential cell stands: its looks so far and whether it stopped, and why."""

    looks: list[int] = field(default_factory=list)
    stopped: str | None = None
    """``precision``, ``decided: A > B`` and the like, or ``budget``; None while running."""
