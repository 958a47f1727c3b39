"""Binomial confidence intervals against published values."""

from __future__ import annotations

import pytest

from vlabench import stats
from vlabench.stats import clopper_pearson_interval, wilson_interval


@pytest.mark.parametrize(
    ("successes", "n", "expected"),
    [
        (9, 10, (0.596, 0.982)),
        (45, 50, (0.786, 0.957)),
        (349, 400, (0.836, 0.902)),
        (5, 10, (0.237, 0.763)),
    ],
)
def test_wilson_known_values(successes: int, n: int, expected: tuple[float, float]) -> None:
    low, high = wilson_interval(successes, n)
    assert (round(low, 3), round(high, 3)) == expected


def test_wilson_confidence_level() -> None:
    low90, high90 = wilson_interval(9, 10, confidence=0.90)
    low99, high99 = wilson_interval(9, 10, confidence=0.99)
    assert (round(low90, 3), round(high90, 3)) == (0.652, 0.977)  # z = 1.645, by hand
    assert low99 < low90 and high99 > high90


def test_wilson_edges() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and round(high, 4) == 0.2775
    low, high = wilson_interval(10, 10)
    assert round(low, 4) == 0.7225 and high == 1.0
    low, high = wilson_interval(1, 1)
    assert 0.0 < low < 1.0 and high == 1.0


@pytest.mark.parametrize(
    ("successes", "n", "expected"),
    [
        (9, 10, (0.5550, 0.9975)),
        (0, 10, (0.0, 0.3085)),
        (10, 10, (0.6915, 1.0)),
        (45, 50, (0.7819, 0.9667)),
    ],
)
def test_clopper_pearson_known_values(
    successes: int, n: int, expected: tuple[float, float]
) -> None:
    low, high = clopper_pearson_interval(successes, n)
    assert (round(low, 4), round(high, 4)) == expected


@pytest.mark.parametrize(("successes", "n"), [(0, 7), (3, 7), (7, 7), (9, 10), (349, 400)])
def test_clopper_pearson_matches_statsmodels(successes: int, n: int) -> None:
    from statsmodels.stats.proportion import proportion_confint

    expected = proportion_confint(successes, n, alpha=0.05, method="beta")
    assert clopper_pearson_interval(successes, n) == pytest.approx(expected, abs=1e-9)


def test_clopper_pearson_is_wider_than_wilson() -> None:
    cp_low, cp_high = clopper_pearson_interval(45, 50)
    w_low, w_high = wilson_interval(45, 50)
    assert cp_low < w_low and cp_high > w_high
    assert clopper_pearson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("successes", "n", "confidence"), [(11, 10, 0.95), (-1, 10, 0.95), (1, 10, 1.0), (1, 10, 0.0)]
)
def test_invalid_arguments(successes: int, n: int, confidence: float) -> None:
    with pytest.raises(ValueError):
        wilson_interval(successes, n, confidence)
    with pytest.raises(ValueError):
        clopper_pearson_interval(successes, n, confidence)


# -- against SciPy / statsmodels on many inputs ------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CONFIDENCES = st.sampled_from([0.8, 0.9, 0.95, 0.99])


@st.composite
def counts(draw: st.DrawFn, max_n: int = 400) -> tuple[int, int]:
    n = draw(st.integers(1, max_n))
    k = draw(st.one_of(st.just(0), st.just(n), st.integers(0, n)))  # 0/n and n/n often
    return k, n


@settings(max_examples=300, deadline=None)
@given(counts(), CONFIDENCES)
def test_wilson_and_clopper_pearson_match_statsmodels(kn: tuple[int, int], conf: float) -> None:
    from statsmodels.stats.proportion import proportion_confint

    k, n = kn
    expected = proportion_confint(k, n, alpha=1 - conf, method="wilson")
    assert wilson_interval(k, n, conf) == pytest.approx(expected, abs=1e-9)
    expected = proportion_confint(k, n, alpha=1 - conf, method="beta")
    assert clopper_pearson_interval(k, n, conf) == pytest.approx(expected, abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 300), st.integers(0, 300), st.integers(0, 50), st.integers(0, 50))
def test_mcnemar_exact_matches_statsmodels(b: int, c: int, both: int, neither: int) -> None:
    from statsmodels.stats.contingency_tables import mcnemar

    expected = mcnemar([[both, b], [c, neither]], exact=True).pvalue
    assert stats.mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_mcnemar_hand_worked() -> None:
    # 12 vs 2 discordant pairs: 2 * P(X <= 2 | 14, 1/2) = 2 * (1 + 14 + 91) / 2**14
    assert stats.mcnemar_exact(12, 2) == pytest.approx(2 * 106 / 2**14)
    assert stats.mcnemar_exact(0, 0) == 1.0
    assert stats.mcnemar_exact(5, 5) == 1.0
    assert stats.mcnemar_exact(4, 0) == pytest.approx(0.125)
    with pytest.raises(ValueError):
        stats.mcnemar_exact(-1, 2)


def test_newcombe_paired_published_example() -> None:
    """Newcombe (1998, Stat Med 17:2635), paired example 36/12/2/0: 0.0569 to 0.3404."""
    table = stats.PairedTable(36, 12, 2, 0)
    assert table.difference == pytest.approx(0.2)
    low, high = stats.paired_difference_interval(table)
    assert (round(low, 4), round(high, 4)) == (0.0569, 0.3404)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 12), st.integers(0, 12), st.integers(0, 12), st.integers(0, 12), CONFIDENCES
)
def test_newcombe_without_correlation_matches_independent_newcombe(
    x: int, z: int, y: int, w: int, conf: float
) -> None:
    """With phi = 0 (ad = bc) the paired interval is Newcombe's independent one (statsmodels)."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    table = stats.PairedTable(x * y, x * w, z * y, z * w)  # ad - bc = 0
    if table.n == 0:
        return
    k1, k2, n = table.both + table.only_a, table.both + table.only_b, table.n
    expected = confint_proportions_2indep(k1, n, k2, n, method="newcomb", alpha=1 - conf)
    assert stats.paired_difference_interval(table, conf) == pytest.approx(expected, abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 60), st.integers(0, 60), st.integers(0, 60), st.integers(0, 60))
def test_newcombe_paired_is_a_sane_interval(a: int, b: int, c: int, d: int) -> None:
    table = stats.PairedTable(a, b, c, d)
    low, high = stats.paired_difference_interval(table)
    if table.n == 0:
        assert (low, high) == (-1.0, 1.0)
        return
    assert -1.0 <= low <= table.difference <= high <= 1.0
    wider_low, wider_high = stats.paired_difference_interval(table, 0.99)
    assert wider_low <= low + 1e-12 and wider_high >= high - 1e-12


def test_newcombe_edges() -> None:
    all_success = stats.PairedTable(10, 0, 0, 0)  # n/n for both
    low, high = stats.paired_difference_interval(all_success)
    assert low < 0 < high and low > -0.35 and high < 0.35
    only_a = stats.PairedTable(0, 10, 0, 0)  # A 10/10, B 0/10
    low, high = stats.paired_difference_interval(only_a)
    assert high == 1.0 and 0.5 < low < 1.0


# -- bootstrap ---------------------------------------------------------------------------------
def test_suite_mean_bootstrap_is_deterministic_and_brackets_the_mean() -> None:
    strata = [(7, 10), (5, 10), (9, 10), (2, 10)]
    first = stats.suite_mean_interval(strata)
    assert first == stats.suite_mean_interval(strata)  # seed 0 by default
    other_seed = stats.suite_mean_interval(strata, seed=1)
    assert other_seed == pytest.approx(first, abs=0.05)
    assert stats.suite_mean(strata) == pytest.approx(0.575)
    assert first[0] < 0.575 < first[1]
    assert stats.suite_mean_interval([(0, 10), (0, 20)]) == (0.0, 0.0)
    assert stats.suite_mean_interval([(10, 10), (20, 20)]) == (1.0, 1.0)
    with pytest.raises(ValueError):
        stats.suite_mean_interval([(1, 0)])
    with pytest.raises(ValueError):
        stats.suite_mean_interval([])


def test_single_stratum_bootstrap_matches_scipy() -> None:
    """One stratum: the plain percentile bootstrap of the mean of 0/1 outcomes (scipy)."""
    import numpy as np
    from scipy.stats import bootstrap

    for k, n in ((13, 40), (3, 25), (45, 50)):
        data = np.array([1] * k + [0] * (n - k))
        ref = bootstrap(
            (data,), np.mean, n_resamples=20_000, method="percentile", random_state=1
        ).confidence_interval
        low, high = stats.suite_mean_interval([(k, n)], n_boot=20_000)
        assert low == pytest.approx(ref.low, abs=0.021)
        assert high == pytest.approx(ref.high, abs=0.021)


def test_stratified_bootstrap_matches_the_normal_approximation_at_large_n() -> None:
    """Var(mean of task rates) = sum p(1-p)/n_t / T^2; at n=2000 per task, percentiles ~ z."""
    from statistics import NormalDist

    strata = [(600, 2000), (1400, 2000), (1000, 2000)]
    ps = [k / n for k, n in strata]
    sd = (sum(p * (1 - p) / 2000 for p in ps)) ** 0.5 / 3
    z = NormalDist().inv_cdf(0.975)
    low, high = stats.suite_mean_interval(strata, n_boot=40_000)
    assert low == pytest.approx(0.5 - z * sd, abs=6e-4)
    assert high == pytest.approx(0.5 + z * sd, abs=6e-4)
    # stratification removes between-task variance: narrower than pooled Wilson
    w_low, w_high = wilson_interval(3000, 6000)
    assert high - low < w_high - w_low


def test_paired_bootstrap_difference() -> None:
    tables = [stats.PairedTable(40, 30, 10, 20), stats.PairedTable(50, 20, 20, 10)]
    diff, low, high = stats.paired_bootstrap_difference(tables, n_boot=40_000)
    assert diff == pytest.approx((0.2 + 0.0) / 2)
    assert (diff, low, high) == pytest.approx(
        stats.paired_bootstrap_difference(tables, n_boot=40_000)
    )
    # normal approximation: Var(d_t) = (b + c)/n^2 - (b - c)^2/n^3 per task
    var = sum((t.only_a + t.only_b) / t.n**2 - (t.only_a - t.only_b) ** 2 / t.n**3 for t in tables)
    sd = var**0.5 / 2
    assert low == pytest.approx(diff - 1.96 * sd, abs=0.01)
    assert high == pytest.approx(diff + 1.96 * sd, abs=0.01)
    same = stats.paired_bootstrap_difference([stats.PairedTable(5, 0, 0, 5)])
    assert same == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        stats.paired_bootstrap_difference([stats.PairedTable(0, 0, 0, 0)])


def test_mover_mean_interval_hand_worked() -> None:
    a = (1.0, *wilson_interval(4, 4))  # (1.0, 0.5101, 1.0)
    b = (0.6, *wilson_interval(12, 20))  # (0.6, 0.3866, 0.7812)
    low, high = stats.mover_mean_interval([a, b])
    down = ((1.0 - a[1]) ** 2 + (0.6 - b[1]) ** 2) ** 0.5
    up = ((a[2] - 1.0) ** 2 + (b[2] - 0.6) ** 2) ** 0.5
    assert (low, high) == pytest.approx(((1.6 - down) / 2, (1.6 + up) / 2))
    assert (round(low, 3), round(high, 3)) == (0.533, 0.891)
    assert stats.mover_mean_interval([b]) == pytest.approx(b[1:])
    with pytest.raises(ValueError):
        stats.mover_mean_interval([])
