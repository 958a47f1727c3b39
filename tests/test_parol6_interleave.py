"""Interleaved A/B order (vlabench.interleave), end to end on the fake PAROL6."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from vlabench.catalog import catalog
from vlabench.execute.interleave import check_comparable, run_interleaved, schedule
from vlabench.execute.runner import Runner
from vlabench.plan.resolve import resolve_policy, resolve_suite
from vlabench.registry import load_registry
from vlabench.store import open_store


def test_schedule_orders() -> None:
    assert schedule(2, 3, "alternate") == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]
    assert schedule(2, 3, "abba") == [(0, 0), (1, 0), (1, 1), (0, 1), (0, 2), (1, 2)]
    shuffled = schedule(3, 20, "random", seed=1)
    assert shuffled == schedule(3, 20, "random", seed=1)
    assert shuffled != schedule(3, 20, "random", seed=2)
    rounds = [sorted(shuffled[i : i + 3]) for i in range(0, 60, 3)]
    assert all(r == [(0, e), (1, e), (2, e)] for e, r in enumerate(rounds))
    with pytest.raises(ValueError, match="unknown order"):
        schedule(2, 1, "zigzag")  # type: ignore[arg-type]


def test_interleaved_runs_on_the_fake_arm(tmp_path: Path) -> None:
    cat, reg = catalog(), load_registry()
    suite = reg.suites["parol6_fake"]
    options = {**suite.env_options, "episode_steps": 3, "camera": "none"}
    reg.suites["parol6_fake"] = suite.model_copy(update={"env_options": options})
    configs = [
        resolve_suite("parol6_fake", resolve_policy(name, reg, cat), reg, cat, max_steps=3)[0]
        for name in ("noop", "random")
    ]
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    runner = Runner(store, cat)
    calls: list[tuple[str, int]] = []

    def run_config(config):
        calls.append((config.policy.name, config.protocol.episodes - 1))
        return runner.run_config(config)

    results = run_interleaved(configs, run_config, order="abba")
    assert calls == [("noop", 0), ("random", 0), ("random", 1), ("noop", 1)]
    assert all(r.status == "finished" and r.new_episodes == 1 for r in results)
    run_ids = {r.run_id for r in results}
    assert len(run_ids) == 2  # one run per policy, extended episode by episode
    for run_id in run_ids:
        episodes = store.episodes(run_id)
        assert [e["episode_index"] for e in episodes] == [0, 1]
        assert [e["seed"] for e in episodes] == [1000, 1001]  # the same seeds for both
        assert all(e["failure_reason"] is None and e["steps"] == 3 for e in episodes)
    # resuming does nothing new
    assert all(r.new_episodes == 0 for r in run_interleaved(configs, runner.run_config))
    other = dataclasses.replace(configs[1], task="other")
    with pytest.raises(ValueError, match="must share task"):
        check_comparable([configs[0], other])


def test_cli_interleave(cli) -> None:
    out = cli(
        "interleave", "--policy", "noop", "--policy", "random", "--env", "parol6", "--fake",
        "-n", "2", "-E", "episode_steps=2", "--max-steps", "2", "-E", "camera=none",
    )
    lines = [line.split(" × ")[0] for line in out.stdout.splitlines() if " episode " in line]
    assert lines == ["noop", "random", "random", "noop"]
    assert "2 run(s), 4 new episode(s) stored, 0 failed" in out.stdout
