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
def test_clopper_pearson_without_scipy_matches(successes: int, n: int) -> None:
    exact = clopper_pearson_interval(successes, n)
    bisected = stats._clopper_pearson_bisect(successes, n, 0.05)
    assert bisected == pytest.approx(exact, abs=1e-9)


def test_clopper_pearson_falls_back_when_scipy_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "scipy.stats", None)
    low, high = clopper_pearson_interval(9, 10)
    assert (round(low, 4), round(high, 4)) == (0.5550, 0.9975)


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
