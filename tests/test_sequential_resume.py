"""`vlabench run --precision` end to end on Meta-World: killed with SIGKILL mid-way, run again,
it continues the same sequence of episodes and stops at the look the rule picks from the
stored outcomes; boards then show the anytime-valid interval for it, never a fixed-n one.
`interleave --until-decided` stops as soon as the paired interval decides."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time

import pytest
from conftest import CLI

from vlabench import sequential
from vlabench.execute.rounds import paired_standing, standing
from vlabench.sequential import StoppingRule
from vlabench.stats import wilson_interval

os.environ.setdefault("MUJOCO_GL", "egl")
pytest.importorskip("metaworld")

BUDGET, ROUND, PRECISION = 40, 5, 0.3
# the chunked expert with 200 ms of latency it does not wait for: door-open fails often,
# reach rarely, so the two runs stop at different looks; state only (no camera) for speed
RUN = (
    "run", "--policy", "metaworld-expert-chunked", "--suite", "metaworld_mt10",
    "--task", "door-open-v3", "--task", "reach-v3", "-E", "cameras=[]",
    "--inference", "sync-realtime", "--latency-ms", "200",
    "-n", str(BUDGET), "--precision", str(PRECISION), "--round", str(ROUND), "--workers", "1",
)


def _stored(db: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("select count(*) from episodes").fetchone()[0])
    except sqlite3.Error:  # not created yet, or locked for a moment
        return 0


def test_precision_run_killed_and_rerun_continues_the_same_sequence(cli: CLI) -> None:
    cli.env["MUJOCO_GL"] = "egl"
    proc = subprocess.Popen(
        cli.command(*RUN), cwd=cli.cwd, env=cli.env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while _stored(str(cli.db_path)) < 12 and proc.poll() is None:
            assert time.monotonic() < deadline, "no episodes stored within 120 s"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the command and its worker, mid-round
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    before = _stored(str(cli.db_path))

    out = cli(*RUN).stdout
    new = int(re.search(r"(\d+) new episode\(s\) stored", out).group(1))
    assert "round" in out and "decided" in out
    rule = StoppingRule("precision", precision=PRECISION, round=ROUND)
    with cli.store() as store:
        runs = store.run_counts()
        assert len(runs) == 2
        total = 0
        for run in runs:
            episodes = store.episodes(run["id"])
            indices = [e["episode_index"] for e in episodes]
            # the same sequence: episodes 0..N-1 once each, seeded seed + index
            assert indices == list(range(len(indices)))
            assert [e["seed"] for e in episodes] == [run["protocol"]["seed"] + i for i in indices]
            outcomes = [bool(e["success"]) for e in episodes]
            state = standing(outcomes, rule, BUDGET)
            # it stopped exactly at the look the rule picks, with nothing run past it
            assert state.stopped in ("precision", "budget") and state.look == len(outcomes)
            meta = run["report_meta"]["sequential"]
            assert meta["looks"] == state.looks == list(range(ROUND, state.look + 1, ROUND))
            assert (meta["stopped"], meta["precision"], meta["alpha"]) == (
                state.stopped, PRECISION, 0.05,
            )
            total += len(outcomes)
        assert 0 < before < total and before + new == total  # continued, not restarted
        looks = {r["task"]: len(r["report_meta"]["sequential"]["looks"]) for r in runs}
        assert looks["reach-v3"] != looks["door-open-v3"]

    # boards: the interval of a stopped run is the confidence sequence, never Wilson
    board = json.loads(cli("leaderboard", "--by", "task", "--format", "json").stdout)
    assert "anytime-valid" in board["caption"]
    for cell in board["cells"]:
        k, n = cell["successes"], cell["n"]
        low, high = sequential.rate_sequence(k, n)
        assert cell["interval"].startswith("anytime-valid")
        assert (cell["ci_low"], cell["ci_high"]) == (round(low, 6), round(high, 6))
        fixed_n = tuple(round(x, 6) for x in wilson_interval(k, n))
        assert (cell["ci_low"], cell["ci_high"]) != fixed_n
    table = cli("leaderboard", "--by", "task").stdout
    assert re.search(r"\[\d+,\d+\]~ n=\d+", table)
    shown = cli("show", "metaworld-expert-chunked [sync-realtime 200ms]").stdout
    assert shown.count("]~") == 2


def test_compare_until_decided_extends_fixed_runs_to_the_first_decisive_look(cli: CLI) -> None:
    cli.env["MUJOCO_GL"] = "egl"
    where = ("--suite", "metaworld_mt10", "--task", "reach-v3", "-E", "cameras=[]")
    pair = ("--policy", "metaworld-expert", "--policy", "noop")
    cli("interleave", *pair, *where, "-n", "3")  # a fixed-n comparison, too small to decide
    with cli.store() as store:
        fixed = {r["policy"]: r["id"] for r in store.run_counts()}
    out = cli("compare", "metaworld-expert", "noop", "--until-decided", "-n", "50",
              "--round", "5").stdout  # fmt: skip
    assert "look at 5 episode(s) per task" in out and "anytime-valid over" in out
    with cli.store() as store:
        runs = {r["policy"]: r for r in store.run_counts()}
        outcomes = {
            name: [bool(e["success"]) for e in store.episodes(run["id"])]
            for name, run in runs.items()
        }
    # the same runs (a fixed-n run's config hash is the sequential one's), extended to the
    # first look at which the stored pairs decide, long before 50
    assert {name: run["id"] for name, run in runs.items()} == fixed
    rule = StoppingRule("until-decided", delta=0.1, round=5)
    state = paired_standing([outcomes["metaworld-expert"]], [outcomes["noop"]], rule, 50)
    assert state.stopped == sequential.A_BETTER and state.low > 0
    assert {len(o) for o in outcomes.values()} == {state.look} and state.look < 50
    meta = runs["noop"]["report_meta"]["sequential"]
    assert (meta["kind"], meta["looks"], meta["stopped"]) == (
        "until-decided", state.looks, sequential.A_BETTER,
    )
    # interleave --until-decided on the decided pair: nothing more to run, the same verdict
    again = cli("interleave", *pair, *where, "-n", "50", "--until-decided", "--round", "5")
    assert "metaworld-expert is better than noop" in again.stdout
    with cli.store() as store:
        assert {r["n"] for r in store.run_counts()} == {state.look}
