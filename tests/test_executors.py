"""Executors of the matrix: inline, local worker processes and Ray give the same episodes;
Ctrl-C and kill -9 leave a store that a rerun completes exactly; an episode whose worker
segfaults is retried a bounded number of times, then stored as failed (it counts in n)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import CLI

from vlabench.catalog import load_catalog
from vlabench.execute.choose import make_executor
from vlabench.execute.executor import describe_exit, visible_gpus
from vlabench.execute.inline import InlineExecutor
from vlabench.execute.processes import ProcessExecutor
from vlabench.execute.runner import Runner
from vlabench.execute.settings import ExecutionSettings
from vlabench.plan.jobs import plan
from vlabench.registry import load_registry
from vlabench.store import open_store

EPISODE_FIELDS = (
    "task",
    "episode_index",
    "seed",
    "init_state_id",
    "success",
    "steps",
    "reward_sum",
    "clipped_actions",
    "failure_reason",
)


def _run_matrix(executor_for: Any, db: Path, block: int | None = None) -> dict[str, list]:
    """noop and random on PushT (5 episodes of 15 steps) into a fresh store; episodes per run."""
    catalog, registry = load_catalog(), load_registry()
    pairs = plan(["noop", "random"], ["pusht_quick"], registry, catalog, episodes=5, max_steps=15)
    with open_store(f"sqlite:///{db}") as store:
        results = Runner(store, catalog, executor=executor_for(catalog), block=block).run_pairs(
            pairs
        )
        assert [r.status for r in results] == ["finished", "finished"]
        assert sum(r.new_episodes for r in results) == 10
        return {
            run["policy"]: [
                tuple(e[k] for k in EPISODE_FIELDS) for e in store.episodes(run["id"])
            ]
            for run in store.runs()
        }


@pytest.fixture(scope="module")
def inline_episodes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    db = tmp_path_factory.mktemp("inline") / "inline.db"
    episodes = _run_matrix(lambda cat: InlineExecutor(cat), db)
    assert {p: len(e) for p, e in episodes.items()} == {"noop": 5, "random": 5}
    return episodes


def test_two_worker_processes_give_exactly_the_inline_episodes(
    inline_episodes: dict[str, list], tmp_path: Path
) -> None:
    executor = ProcessExecutor(2, retries=0)
    # blocks of 2 episodes: 6 jobs on 2 workers, each worker reusing its loaded policies
    episodes = _run_matrix(lambda cat: executor, tmp_path / "processes.db", block=2)
    assert episodes == inline_episodes
    assert {e[0] for runs in episodes.values() for e in runs} == {"push_t"}
    assert any(e[6] != 0 for e in episodes["random"])  # rewards really were compared


def test_ray_executor_streams_a_small_matrix_into_the_store(
    inline_episodes: dict[str, list], tmp_path: Path
) -> None:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    # the actors get the execution settings on their WorkerSetup: --record-video 1
    settings = ExecutionSettings.create(record_video=1, video_dir=tmp_path / "videos")
    try:
        episodes = _run_matrix(
            lambda cat: make_executor("ray", cat, workers=2, settings=settings),
            tmp_path / "ray.db",
            block=3,
        )
        assert ray.is_initialized()  # an initialised Ray is reused, not shut down
    finally:
        ray.shutdown()
    assert episodes == inline_episodes
    videos = sorted((tmp_path / "videos").glob("*/*.mp4"))
    assert [v.name for v in videos] == ["push_t_ep0000.mp4"] * 2  # one per run (2 policies)
    assert len({v.parent.name for v in videos}) == 2


def test_worker_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    assert describe_exit(-signal.SIGSEGV) == "was killed by SIGSEGV"
    assert describe_exit(3) == "exited with code 3"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 5")
    assert visible_gpus() == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    with pytest.raises(ValueError, match="unknown executor 'threads'"):
        make_executor("threads", load_catalog())


# -- the real CLI --------------------------------------------------------------------------
SLOW = """
policies:
  slowpoke:
    type: slow
    options: {sleep_s: 0.05}
"""


def _stored(cli: CLI) -> dict[str, list[int]]:
    if not cli.db_path.exists():
        return {}
    with cli.store() as store:
        return {
            r["policy"]: sorted(store.finished_episode_indices(r["id"])) for r in store.runs()
        }


def _start(cli: CLI, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        cli.command(*args),
        cwd=cli.cwd,
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the matrix and all its workers
        # A shell that starts this suite in the background ignores SIGINT, and that is
        # inherited: give the matrix the default Ctrl-C behaviour a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for(cli: CLI, proc: subprocess.Popen, at_least: int) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        stored = sum(len(v) for v in _stored(cli).values())
        if stored >= at_least:
            return stored
        time.sleep(0.1)
    raise AssertionError(f"the matrix ended or stalled before {at_least} episodes: {_stored(cli)}")


def test_ctrl_c_then_kill_9_then_rerun_completes_the_matrix_exactly(
    cli: CLI, plugin_dirs: dict[str, Path]
) -> None:
    cli.with_plugins(plugin_dirs["faulty"])
    extra = cli.registry(SLOW)
    args = ("--registry", str(extra), "matrix", "--policy", "slowpoke", "--policy", "noop",
            "--suite", "pusht_quick", "-n", "8", "--max-steps", "40", "--workers", "2",
            "--no-leaderboard")  # fmt: skip
    total = 16

    proc = _start(cli, *args)  # Ctrl-C (SIGINT to the process group, as a terminal sends it)
    _wait_for(cli, proc, 2)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "interrupted" in out and "Traceback" not in out
    with cli.store() as store:
        statuses = {r["policy"]: r["status"] for r in store.runs()}
    assert "interrupted" in statuses.values() and "running" not in statuses.values()
    after_int = _stored(cli)

    proc = _start(cli, *args)  # kill -9 of the whole matrix, workers included
    _wait_for(cli, proc, sum(len(v) for v in after_int.values()) + 2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    before = sum(len(v) for v in _stored(cli).values())
    assert before < total

    rerun = cli(*args)
    assert f"2 run(s), {total - before} new episode(s) stored, 0 failed" in rerun.stdout
    assert _stored(cli) == {"slowpoke": list(range(8)), "noop": list(range(8))}
    with cli.store() as store:
        assert sum(len(store.episodes(r["id"])) for r in store.runs()) == total  # no duplicates
        assert {r["status"] for r in store.runs()} == {"finished"}


def test_a_segfaulting_policy_fails_its_episodes_after_bounded_retries_the_rest_completes(
    cli: CLI, plugin_dirs: dict[str, Path]
) -> None:
    cli.with_plugins(plugin_dirs["faulty"])
    proc = cli("matrix", "--policy", "segfault", "--policy", "noop", "--suite", "pusht_quick",
               "-n", "4", "--max-steps", "5", "--workers", "2", "--retries", "1",
               "--no-leaderboard")  # fmt: skip
    # blocks of 2 episodes: segfault's jobs [0, 1] and [2, 3] crash at odd episodes, twice each;
    # then the episode is stored as failed with the cause and counts in n
    assert proc.stdout.count("retrying: worker process was killed by SIGSEGV") == 2
    assert "2 run(s), 8 new episode(s) stored, 0 failed" in proc.stdout
    with cli.store() as store:
        runs = {r["policy"]: r for r in store.runs()}
        assert runs["segfault"]["status"] == "finished"
        reasons = {e["episode_index"]: e["failure_reason"]
                   for e in store.episodes(runs["segfault"]["id"])}
        crashed = "worker process was killed by SIGSEGV in policy.predict (attempt 2 of 2)"
        assert reasons == {0: None, 1: crashed, 2: None, 3: crashed}
        assert runs["noop"]["status"] == "finished"
        assert store.finished_episode_indices(runs["noop"]["id"]) == {0, 1, 2, 3}


def test_dry_run_prints_the_plan_and_writes_nothing(
    cli: CLI, plugin_dirs: dict[str, Path]
) -> None:
    cli.with_plugins(plugin_dirs["faulty"])
    proc = cli("matrix", "--policy", "noop", "--policy", "normalized", "--suite", "pusht_quick",
               "-n", "6", "--workers", "3", "--dry-run")  # fmt: skip
    out = " ".join(proc.stdout.split())
    assert "plan: 2 pair(s), 2 run(s); 6 job(s), 6 episode(s) to run (0 already stored)" in out
    assert "executor processes × 3" in out
    assert "noop × pusht_quick: 1 run(s), 6 job(s), 6 episode(s) to run, 0 stored" in out
    assert "normalized × pusht_quick: incompatible: action space" in out
    assert not cli.db_path.exists()
