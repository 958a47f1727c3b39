"""A fixed small matrix finds every stored episode as it was before the core was reorganised.

``tests/golden/matrix_episodes.json`` was written by the flat core (commit 4bceac9) from the
command it names: PushT and Meta-World, three scripted policies, process workers. The same
command today must store the same runs (status) and the same episodes (seed, init state,
success, steps, reward, failure), so a refactor that changes behaviour fails here.
"""

from __future__ import annotations

import json
import shlex
import sqlite3
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden" / "matrix_episodes.json"
EPISODE_FIELDS = ("episode_index", "seed", "init_state_id", "success", "steps", "failure_reason")


def stored_runs(db: Path) -> dict[tuple[str, str, str], dict]:
    con = sqlite3.connect(db)
    try:
        out = {}
        for run_id, policy, suite, task, status in con.execute(
            "SELECT id, policy, suite, task, status FROM runs"
        ):
            episodes = [
                dict(zip((*EPISODE_FIELDS, "reward_sum"), row, strict=True))
                for row in con.execute(
                    f"SELECT {', '.join(EPISODE_FIELDS)}, reward_sum FROM episodes "
                    "WHERE run_id = ? ORDER BY episode_index",
                    (run_id,),
                )
            ]
            for episode in episodes:
                episode["success"] = bool(episode["success"])
            out[(policy, suite, task)] = {"status": status, "episodes": episodes}
        return out
    finally:
        con.close()


def test_golden_matrix_stores_the_same_episodes(cli) -> None:
    golden = json.loads(GOLDEN.read_text())
    args = shlex.split(golden["command"])[1:]  # drop the program name
    cli(*args, "--no-leaderboard")
    stored = stored_runs(cli.db_path)
    expected = {(r["policy"], r["suite"], r["task"]): r for r in golden["runs"]}
    assert sorted(stored) == sorted(expected)
    for key, run in expected.items():
        got = stored[key]
        assert got["status"] == run["status"], key
        assert len(got["episodes"]) == len(run["episodes"]), key
        for mine, theirs in zip(got["episodes"], run["episodes"], strict=True):
            for field in EPISODE_FIELDS:
                assert mine[field] == theirs[field], (key, mine["episode_index"], field)
            assert mine["reward_sum"] == pytest.approx(theirs["reward_sum"], rel=1e-9, abs=1e-12)
