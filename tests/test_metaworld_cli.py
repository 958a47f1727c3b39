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
    # MT10 declares no groups: --by group has no columns (subset suites are not its groups)
    by_group = cli("leaderboard", "--by", "group", "--format", "csv").stdout
    assert list(csv.DictReader(io.StringIO(by_group))) == []


MT50_GROUPS = ["metaworld_easy", "metaworld_medium", "metaworld_hard", "metaworld_very_hard"]


def test_mt50_by_group_is_the_declared_difficulty_groups(cli: CLI) -> None:
    """Golden check of --by group on MT50 (issue 25): exactly the four difficulty groups the
    registry declares for metaworld_mt50, in declared order (not by name), not the 50 MT1
    suites nor MT10; read back without the registry or the plugins."""
    cli.env["MUJOCO_GL"] = "egl"
    out = cli(
        "matrix", "--policy", "metaworld-expert", "--suite", "metaworld_mt50", "-n", "1",
        "--max-steps", "5", "--no-leaderboard",
        "--executor", "inline",
    )
    assert "50 run(s), 50 new episode(s) stored, 0 failed" in out.stdout
    cli.env["VLABENCH_PLUGINS"] = "no-such-plugin"
    by_group = cli("leaderboard", "--by", "group", "--format", "csv").stdout
    columns = list(dict.fromkeys(r["column"] for r in csv.DictReader(io.StringIO(by_group))))
    assert columns == [f"metaworld_mt50:{g}" for g in MT50_GROUPS]
    rows = list(csv.DictReader(io.StringIO(by_group)))
    assert [int(r["n"]) for r in rows] == [28, 11, 6, 5]  # every MT50 episode in one group
