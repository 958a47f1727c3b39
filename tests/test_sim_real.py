"""Sim-vs-real agreement: Pearson r and MMRV on inputs worked out by hand, the real-results
table, pooling sim rates from a store, and the `vlabench sim-real` command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from vlabench.report.sim_real import (
    MEAN,
    agreement,
    load_real_tables,
    mmrv,
    pearson_r,
    sim_rates_from_store,
)

ROOT = Path(__file__).resolve().parent.parent
REAL_RESULTS = ROOT / "plugins" / "simpler" / "real_results.yaml"


def test_pearson_and_mmrv_by_hand() -> None:
    # sim (0.1, 0.5, 0.3), real (0.2, 0.4, 0.6):
    #   deviations sim (-0.2, 0.2, 0), real (-0.2, 0, 0.2): sum of products 0.04,
    #   sums of squares 0.08 and 0.08 -> r = 0.04 / 0.08 = 0.5.
    #   Pairs: (0,1) and (0,2) ordered alike; (1,2) sim says 1 > 2, real says 1 < 2, a real gap
    #   of 0.2 -> worst violations per policy (0, 0.2, 0.2) -> MMRV = 0.4 / 3.
    sim, real = [0.1, 0.5, 0.3], [0.2, 0.4, 0.6]
    assert pearson_r(sim, real) == pytest.approx(0.5)
    assert mmrv(sim, real) == pytest.approx(0.4 / 3)


def test_same_and_reversed_ranking() -> None:
    real = [0.2, 0.4, 0.6]
    # same order, linear: r = 1, no violation
    assert pearson_r([0.1, 0.2, 0.3], real) == pytest.approx(1.0)
    assert mmrv([0.1, 0.2, 0.3], real) == 0.0
    # reversed: r = -1; worst gaps per policy: |0.2-0.6|, max(0.2, 0.2), |0.6-0.2| -> 1.0 / 3
    assert pearson_r([0.3, 0.2, 0.1], real) == pytest.approx(-1.0)
    assert mmrv([0.3, 0.2, 0.1], real) == pytest.approx(1.0 / 3)


def test_ties_and_constant_vectors() -> None:
    # sim ties (0.5, 0.5), real (0.2, 0.6): only policy 1 sees a violation (real 0.6 > 0.2 but
    # sim not >), gap 0.4 -> MMRV = 0.4 / 2; a constant side has no correlation -> NaN.
    assert mmrv([0.5, 0.5], [0.2, 0.6]) == pytest.approx(0.2)
    assert math.isnan(pearson_r([0.5, 0.5], [0.2, 0.6]))
    with pytest.raises(ValueError, match="equally long"):
        mmrv([0.1], [0.1, 0.2])


def test_agreement_per_task_and_mean() -> None:
    real = {"a": {"p": 0.2, "q": 0.4, "r": 0.6}, "b": {"p": 0.0, "q": 0.5, "r": 1.0}}
    sim = {"a": {"p": 0.1, "q": 0.5, "r": 0.3}, "b": {"p": 0.0, "q": 0.25, "r": 0.5}}
    results = {a.task: a for a in agreement(sim, real)}
    assert results["a"].mmrv == pytest.approx(0.4 / 3)
    assert results["b"].pearson == pytest.approx(1.0) and results["b"].mmrv == 0.0
    # mean over tasks: sim (0.05, 0.375, 0.4), real (0.1, 0.45, 0.8): same order -> MMRV 0
    mean = results[MEAN]
    assert mean.sim == pytest.approx((0.05, 0.375, 0.4))
    assert mean.real == pytest.approx((0.1, 0.45, 0.8))
    assert mean.mmrv == 0.0
    # a task with one shared policy cannot rank anything and is skipped
    assert not agreement({"a": {"p": 0.1}}, {"a": {"p": 0.2, "q": 0.3}})


def test_published_simpler_table() -> None:
    tables = load_real_tables(REAL_RESULTS)
    bridge = tables["simpler_bridge"]
    assert set(bridge.rates) == {
        "put_spoon_on_tablecloth",
        "put_carrot_on_plate",
        "stack_green_block_on_yellow_block",
        "put_eggplant_in_basket",
    }
    assert bridge.rates["put_spoon_on_tablecloth"]["octo-small"] == pytest.approx(0.417)
    assert bridge.episodes == 24 and "2405.05941" in bridge.source
    assert bridge.suites == ("simpler_bridge",) and bridge.metric == "success"
    assert tables["simpler_bridge_grasp"].metric == "grasped"
    # sim = real gives a perfect mean agreement
    mean = next(a for a in agreement(bridge.rates, bridge.rates) if a.task == MEAN)
    assert mean.mmrv == 0.0 and mean.pearson == pytest.approx(1.0)


def test_bad_real_table(tmp_path: Path) -> None:
    bad = tmp_path / "real.yaml"
    bad.write_text("task_sets:\n  s:\n    tasks:\n      t: {p: 1.5}\n")
    with pytest.raises(ValueError, match=r"task_sets\.s\.tasks\.t\.p: expected a success rate"):
        load_real_tables(bad)


class _FakeStore:
    def __init__(self, runs: list[dict], episodes: dict[int, list[dict]] | None = None) -> None:
        self._runs, self._episodes = runs, episodes or {}

    def run_counts(self, suite=None, **_: object) -> list[dict]:
        return [r for r in self._runs if r["suite"] in suite]

    def episodes(self, run_id: int) -> list[dict]:
        return self._episodes.get(run_id, [])


def test_sim_rates_pool_newest_protocol_and_aliases() -> None:
    runs = [
        dict(suite="s", protocol_hash="old", policy="mine", task="t", n=10, successes=10),
        dict(suite="s", protocol_hash="new", policy="mine", task="t", n=4, successes=1),
        dict(suite="s", protocol_hash="new", policy="mine", task="t", n=4, successes=2),
        dict(suite="s", protocol_hash="new", policy="other", task="t", n=5, successes=5),
        dict(suite="x", protocol_hash="new", policy="mine", task="t", n=5, successes=5),
    ]
    rates = sim_rates_from_store(_FakeStore(runs), ["s"], {"mine": "octo-base"})
    assert rates == {"t": {"octo-base": 3 / 8, "other": 1.0}}


def test_sim_real_cli(cli, tmp_path: Path) -> None:
    store = cli.store()
    cases = {"p": (1, 4), "q": (2, 4), "r": (4, 4)}  # sim rates 0.25, 0.5, 1.0
    for policy, (successes, n) in cases.items():
        run_id, _ = store.get_or_create_run(
            f"hash-{policy}",
            policy=policy,
            policy_type="noop",
            policy_plugin="scripted",
            env="e",
            env_plugin="x",
            suite="myset",
            task="t",
            protocol={"name": "standard"},
            protocol_hash="ph",
            n_episodes=n,
        )
        from vlabench.api import EpisodeRecord

        for i in range(n):
            store.add_episode(run_id, EpisodeRecord("t", i, i, None, i < successes, 1, 0.0, 0.1))
    real = tmp_path / "real.yaml"
    real.write_text(
        "task_sets:\n  myset:\n    source: test\n    tasks:\n      t: {p: 0.2, q: 0.6, R: 0.4}\n"
    )
    # stored r is the table's R; sim (0.25, 0.5, 1.0) vs real (0.2, 0.6, 0.4):
    # q and r are ordered differently, gap 0.2 -> MMRV = (0 + 0.2 + 0.2) / 3
    out = cli("sim-real", "--real", str(real), "--alias", "r=R", "--json").stdout
    result = json.loads(out)["myset"]["agreement"][0]
    assert result["policies"] == ["p", "q", "R"]
    assert result["mmrv"] == pytest.approx(0.4 / 3, abs=1e-6)
    text = cli("sim-real", "--real", str(real), "--alias", "r=R").stdout
    assert "MMRV" in text and "0.133" in text


def test_sim_rates_from_an_episode_metric() -> None:
    runs = [dict(id=1, suite="s", protocol_hash="h", policy="p", task="t", n=4, successes=0)]
    episodes = {
        1: [
            {"metrics": {"grasped": 1.0}},
            {"metrics": {"grasped": 0.0}},
            {"metrics": {"grasped": 1.0}},
            {"metrics": {}},  # no value: left out, not counted as 0
        ]
    }
    rates = sim_rates_from_store(_FakeStore(runs, episodes), ["s"], metric="grasped")
    assert rates == {"t": {"p": pytest.approx(2 / 3)}}
