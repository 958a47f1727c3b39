"""Two teams, one store: two ``vlabench matrix`` commands (separate processes, as from two
hosts) write overlapping policy x suite cells into the same store at once. Both finish, and
the store holds exactly an inline run's episodes: none duplicated, none lost; the episodes
the two commands report as new add up to the matrix. PostgreSQL, and SQLite on one host."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import BIN
from pg import postgres  # noqa: F401 (the session fixture)

from vlabench.catalog import load_catalog
from vlabench.execute.inline import InlineExecutor
from vlabench.execute.runner import Runner
from vlabench.plan.jobs import plan
from vlabench.registry import load_registry
from vlabench.store import open_store

SUITE, EPISODES, STEPS = "pusht_quick", 6, 40
FIELDS = ("task", "episode_index", "seed", "init_state_id", "success", "steps", "reward_sum")
TEAMS = (("noop", "random"), ("random", "noop"))  # the same cells, in the other order


def episodes_of(url: str) -> dict[str, list[tuple]]:
    with open_store(url) as store:
        return {
            run["policy"]: sorted(tuple(e[k] for k in FIELDS) for e in store.episodes(run["id"]))
            for run in store.runs()
        }


@pytest.fixture(scope="module")
def inline_episodes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('inline') / 'inline.db'}"
    catalog, registry = load_catalog(), load_registry()
    pairs = plan(["noop", "random"], [SUITE], registry, catalog, episodes=EPISODES, max_steps=STEPS)
    with open_store(url) as store:
        Runner(store, catalog, executor=InlineExecutor(catalog)).run_pairs(pairs)
    return episodes_of(url)


@pytest.fixture(params=["postgresql", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("postgres").create_database("teams")
    return f"sqlite:///{tmp_path / 'shared.db'}"


def test_two_matrices_into_one_store_at_once(
    store_url: str, inline_episodes: dict, tmp_path: Path
) -> None:
    env = {**os.environ, "VLABENCH_DB": store_url}
    procs = []
    for team, policies in enumerate(TEAMS):
        cwd = tmp_path / f"team{team}"
        cwd.mkdir()
        args = [str(BIN / "vlabench"), "matrix", *(a for p in policies for a in ("--policy", p)),
                "--suite", SUITE, "-n", str(EPISODES), "--max-steps", str(STEPS),
                "--workers", "1", "--no-leaderboard"]  # fmt: skip
        procs.append(subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))  # fmt: skip
    outputs = [proc.communicate(timeout=240)[0] for proc in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(outputs)
    assert episodes_of(store_url) == inline_episodes
    new = [int(re.search(r"(\d+) new episode\(s\) stored", out)[1]) for out in outputs]
    assert sum(new) == 2 * EPISODES, outputs  # each episode stored (and counted) once
    with open_store(store_url) as store:
        assert sorted(r["policy"] for r in store.runs()) == ["noop", "random"]
