"""Meta-World end to end: the scripted expert through `vlabench run` / `vlabench matrix`.

The expert succeeds on nearly every Meta-World episode, so a low score here means the env
plugin (seeding, observation layout, action scale, success) is broken.
"""

from __future__ import annotations

import csv
import io
import os

import pytest
from conftest import CLI

os.environ.setdefault("MUJOCO_GL", "egl")
pytest.importorskip("metaworld")

SMOKE = """
version: 1
suites:
  metaworld_smoke:
    env: metaworld
    tasks: [reach-v3, drawer-close-v3, button-press-topdown-v3, pick-place-v3]
    episodes: 3
    env_options: {cameras: [corner2], image_size: 32, shadows: false}
"""


def test_expert_through_vlabench_run(cli: CLI) -> None:
    cli.env["MUJOCO_GL"] = "egl"
    registry = cli.registry(SMOKE)
    args = ("--registry", str(registry), "run", "--policy", "metaworld-expert")
    out = cli(*args, "--suite", "metaworld_smoke", "--batch-size", "2")
    assert "4 run(s), 12 new episode(s) stored, 0 failed" in out.stdout
    with cli.store() as store:
        runs = store.run_counts()
        assert sorted(r["task"] for r in runs) == sorted(
            ["reach-v3", "drawer-close-v3", "button-press-topdown-v3", "pick-place-v3"]
        )
        assert all(r["status"] == "finished" and r["n"] == 3 and r["errors"] == 0 for r in runs)
        successes = sum(r["successes"] for r in runs)
        assert successes / 12 >= 0.9, f"expert success {successes}/12"
        run = runs[0]
        assert run["config"]["env_options"]["image_size"] == 32  # recorded with the run
        assert "metaworld" in run["versions"]["packages"]
        episodes = store.episodes(run["id"])
    assert [e["seed"] for e in episodes] == [1000, 1001, 1002]
    assert all(e["steps"] < 500 for e in episodes if e["success"])


def test_mt10_matrix_of_the_expert(cli: CLI) -> None:
    cli.env["MUJOCO_GL"] = "egl"
    args = ("matrix", "--policy", "metaworld-expert", "--suite", "metaworld_mt10")
    out = cli(*args, "--episodes", "1")
    assert "10 run(s), 10 new episode(s) stored, 0 failed" in out.stdout
    assert "metaworld_mt10" in out.stdout  # the leaderboard printed at the end
    with cli.store() as store:
        runs = store.run_counts()
    assert len(runs) == 10 and all(r["n"] == 1 for r in runs)
    assert sum(r["successes"] for r in runs) >= 9
    again = cli(*args, "--episodes", "1", "--no-leaderboard")
    assert "0 new episode(s) stored" in again.stdout  # resumable: nothing is re-run
    # task groups were stored with the runs (registry suites of metaworld within MT10's
    # tasks: the MT1 suites), so --by group needs neither the registry nor the plugins
    by_group = cli("leaderboard", "--by", "group", "--format", "csv").stdout
    columns = {row["column"] for row in csv.DictReader(io.StringIO(by_group))}
    assert {f"metaworld_mt10:metaworld_mt1_{r['task']}" for r in runs} == columns
    one = cli("leaderboard", "--group", "metaworld_mt1_reach-v3", "--format", "csv").stdout
    cli.env["VLABENCH_PLUGINS"] = "no-such-plugin"
    assert cli("leaderboard", "--group", "metaworld_mt1_reach-v3", "--format", "csv").stdout == one
    assert {row["column"] for row in csv.DictReader(io.StringIO(one))} == {
        "metaworld_mt10:metaworld_mt1_reach-v3"
    }
