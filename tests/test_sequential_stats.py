"""Anytime-valid statistics (vlabench.sequential), checked by simulation: thousands of seeded
sequences, looked at every few episodes, never wrong more often than alpha at any stopping
time, while a fixed-n interval looked at the same way is; and they do decide."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vlabench import sequential
from vlabench.execute.rounds import paired_standing, standing
from vlabench.sequential import StoppingRule, paired_sequence_bounds, rate_sequence_bounds
from vlabench.stats import wilson_interval

ALPHA = 0.05
SEQUENCES = 2000
LENGTH = 300
EVERY = 5  # a look every 5 episodes: 60 looks per sequence
SLACK = 3 * math.sqrt(ALPHA * (1 - ALPHA) / SEQUENCES)  # three standard errors


def _looks(outcomes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Successes and n at every look of each sequence (rows)."""
    counts = np.cumsum(outcomes, axis=1)[:, EVERY - 1 :: EVERY]
    n = np.arange(EVERY, outcomes.shape[1] + 1, EVERY)
    return counts, np.broadcast_to(n, counts.shape)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_rate_sequence_covers_at_every_look(p: float) -> None:
    rng = np.random.default_rng(int(100 * p))
    k, n = _looks(rng.random((SEQUENCES, LENGTH)) < p)
    low, high = rate_sequence_bounds(k, n, ALPHA)
    ever_missed = ((low > p) | (high < p)).any(axis=1).mean()
    assert ever_missed <= ALPHA + SLACK, ever_missed
    # a 95% Wilson interval watched at the same looks misses far more often than 5%
    from statsmodels.stats.proportion import proportion_confint

    w_low, w_high = proportion_confint(k, n, ALPHA, method="wilson")
    assert ((w_low > p) | (w_high < p)).any(axis=1).mean() > 2 * ALPHA
    # and the sequence still narrows: at 300 episodes it is within +-10 points
    assert (high[:, -1] - low[:, -1]).max() / 2 < 0.1


def test_rate_sequence_ends_are_the_mixture_boundary() -> None:
    level = math.log(1 / ALPHA)
    for k, n in [(0, 7), (3, 10), (50, 100), (97, 100), (20, 20)]:
        low, high = sequential.rate_sequence(k, n, ALPHA)
        w_low, w_high = wilson_interval(k, n)
        assert low <= w_low and w_high <= high  # wider than the fixed-n interval
        ratio = lambda q, k=k, n=n: sequential._log_ratio(k, n - k, q, sequential.PRIOR)  # noqa: E731
        if low > 0:
            assert ratio(low - 1e-6) >= level > ratio(low + 1e-6)
        if high < 1:
            assert ratio(high + 1e-6) >= level > ratio(high - 1e-6)
    assert sequential.rate_sequence(0, 0) == (0.0, 1.0)


def _pairs(rng: np.random.Generator, pa: float, pb: float, rho: float = 0.0) -> np.ndarray:
    """X = 1[only A] - 1[only B] for SEQUENCES x LENGTH pairs; with ``rho`` B copies A's
    outcome that often (correlated policies, as on the same episodes)."""
    a = rng.random((SEQUENCES, LENGTH)) < pa
    b = rng.random((SEQUENCES, LENGTH)) < pb
    if rho:
        copy = rng.random((SEQUENCES, LENGTH)) < rho
        b = np.where(copy & (pa == pb), a, b)
    return a.astype(np.int8) - b.astype(np.int8)


def _paired_looks(x: np.ndarray, delta: float | None) -> np.ndarray:
    """The decision at every look, as codes: 1 A > B, -1 B > A, 2 no difference, 0 none."""
    only_a = np.cumsum(x == 1, axis=1)[:, EVERY - 1 :: EVERY]
    only_b = np.cumsum(x == -1, axis=1)[:, EVERY - 1 :: EVERY]
    n = np.arange(EVERY, x.shape[1] + 1, EVERY)
    low, high = paired_sequence_bounds(only_a, only_b, n, ALPHA)
    code = np.where(low > 0, 1, np.where(high < 0, -1, 0))
    if delta is not None:
        code = np.where((code == 0) & (low > -delta) & (high < delta), 2, code)
    return code


def _first_decision(codes: np.ndarray) -> np.ndarray:
    """What a run that stops at its first decision concludes (0: none within the budget)."""
    decided = codes != 0
    first = np.where(decided.any(axis=1), decided.argmax(axis=1), 0)
    return np.where(decided.any(axis=1), codes[np.arange(len(codes)), first], 0)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_paired_null_false_decisions_stay_below_alpha(p: float) -> None:
    rng = np.random.default_rng(7 + int(10 * p))
    for rho in (0.0, 0.8):
        codes = _paired_looks(_pairs(rng, p, p, rho), delta=None)
        # a sign at ANY look, not only the first: every stopping time is covered
        ever_signed = (np.abs(codes) == 1).any(axis=1).mean()
        assert ever_signed <= ALPHA + SLACK, (p, rho, ever_signed)


def test_paired_no_difference_is_not_declared_at_delta() -> None:
    rng = np.random.default_rng(11)
    delta = 0.1
    codes = _paired_looks(_pairs(rng, 0.6, 0.5), delta=delta)
    concluded = _first_decision(codes)
    wrong = np.isin(concluded, (-1, 2)).mean()  # B > A, or "no difference > delta"
    assert wrong <= ALPHA + SLACK, wrong


def test_paired_sequence_decides_real_differences() -> None:
    rng = np.random.default_rng(3)
    concluded = _first_decision(_paired_looks(_pairs(rng, 0.8, 0.5), delta=0.1))
    assert (concluded == 1).mean() > 0.9  # 30 points: A > B within 300 pairs
    equal = _first_decision(_paired_looks(_pairs(rng, 0.5, 0.5, rho=0.95), delta=0.1))
    assert (equal == 2).mean() > 0.5  # near-identical policies: "no difference" decided


def test_standing_replays_the_rule_and_resumes_at_the_same_look() -> None:
    rule = StoppingRule("precision", precision=0.2, round=5)
    assert rule.looks(12) == [5, 10, 12]
    ones = [True] * 40
    state = standing(ones, rule, budget=40)
    assert state.stopped == "precision" and state.looks[-1] == state.look
    low, _ = sequential.rate_sequence(state.look, state.look)
    assert (1 - low) / 2 <= 0.2
    earlier = state.look - rule.round
    assert (1 - sequential.rate_sequence(earlier, earlier)[0]) / 2 > 0.2
    # a killed run (7 stored, mid-round): the last complete look, not stopped
    cut = standing(ones[:7], rule, budget=40)
    assert (cut.look, cut.stopped, cut.looks) == (5, None, [5])
    mixed = [bool(i % 2) for i in range(12)]
    assert standing(mixed, rule, budget=12).stopped == "budget"
    with pytest.raises(ValueError):
        StoppingRule("precision", precision=0.7)


def test_paired_standing_pools_tasks_by_episode() -> None:
    rule = StoppingRule("until-decided", delta=0.1, round=5)
    a = [[True] * 10, [True] * 10]
    b = [[False] * 10, [False] * 8]  # task 2 of B has 8 episodes: looks stop at 5
    state = paired_standing(a, b, rule, budget=50)
    assert state.look == 5 and state.table.only_a == 10 and state.table.n == 10
    assert state.stopped is None or state.stopped == sequential.A_BETTER
    full = paired_standing([[True] * 20] * 2, [[False] * 20] * 2, rule, budget=50)
    assert full.stopped == sequential.A_BETTER and full.low > 0
