"""vlabench on a real Ray cluster with a PostgreSQL store: a head and two worker nodes started
as separate ``ray start`` processes (tests/ray_nodes.py), the real CLI as the driver.

The cluster's episodes equal an inline run's; placement follows the presets' ``resources``
and a job no node can place fails at once; a worker node killed with SIGKILL mid-matrix loses
no stored episode and duplicates none (its jobs finish on the survivor); a killed driver's
matrix is completed exactly by a rerun; a killed head stops the driver with one line, and a
rerun against a new head resumes. The tests share one cluster and run in file order.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BIN
from pg import postgres  # noqa: F401 (the session fixture)
from ray_nodes import RayCluster, ray_env

from vlabench.catalog import load_catalog
from vlabench.execute.inline import InlineExecutor
from vlabench.execute.runner import Runner
from vlabench.plan.jobs import plan
from vlabench.registry import load_registry
from vlabench.store import open_store

POLICIES, SUITE, EPISODES, STEPS = ("noop", "random"), "pusht_quick", 6, 40
# The matrices killed mid-way run a policy that sleeps 50 ms a step (10 steps: about 0.5 s an
# episode on any machine; 20 for the head's), so that a kill lands while most of the matrix is
# still ahead.
SLOW, LONG, HEAD = "slowpoke", 8, 20
FIELDS = ("task", "episode_index", "seed", "init_state_id", "success", "steps", "reward_sum")
# fast node-death detection, so that a lost node's jobs move on within seconds
FAST_HEALTH = {"health_check_period_ms": 500, "health_check_failure_threshold": 4}
PLACEMENT = """
policies:
  slowpoke: {type: slow, options: {sleep_s: 0.05}}
  noop_on_b: {type: noop, resources: {node_b: 1}}
  noop_nowhere: {type: noop, resources: {node_gpu_x: 1}}
"""


def episodes_of(url: str) -> dict[str, list[tuple]]:
    """Stored episodes by policy (every field that must match between executors)."""
    with open_store(url) as store:
        return {
            run["policy"]: sorted(tuple(e[k] for k in FIELDS) for e in store.episodes(run["id"]))
            for run in store.runs()
        }


def stored_count(url: str) -> int:
    try:
        with open_store(url) as store:
            return sum(len(store.finished_episode_indices(r["id"])) for r in store.runs())
    except Exception:  # not created yet
        return 0


@pytest.fixture(scope="module")
def inline_episodes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('inline') / 'inline.db'}"
    catalog, registry = load_catalog(), load_registry()
    pairs = plan(list(POLICIES), [SUITE], registry, catalog, episodes=EPISODES, max_steps=STEPS)
    with open_store(url) as store:
        Runner(store, catalog, executor=InlineExecutor(catalog)).run_pairs(pairs)
    episodes = episodes_of(url)
    assert {p: len(e) for p, e in episodes.items()} == dict.fromkeys(POLICIES, EPISODES)
    return episodes


@pytest.fixture(scope="module")
def plugins(plugin_dirs: dict[str, Path]) -> dict[str, str]:
    """The environment that shows the faulty test plugin (its ``slow`` policy) to nodes and
    drivers."""
    return {"PYTHONPATH": str(plugin_dirs["faulty"])}


@pytest.fixture(scope="module")
def cluster(plugins: dict[str, str]) -> Iterator[RayCluster]:
    """A head (no CPUs) and worker nodes node_a and node_b (one CPU and a custom resource
    each); skipped, with the reason, when Ray cannot start its nodes here."""
    nodes = RayCluster(system_config=FAST_HEALTH, env=plugins)
    try:
        nodes.start()
    except (RuntimeError, OSError) as exc:
        nodes.stop()
        reason = f"Ray cannot start its nodes here: {str(exc).splitlines()[0]}"
        print(reason)
        pytest.skip(reason)
    try:
        yield nodes
    finally:
        nodes.stop()


def matrix_args(
    address: str, *policies: str, long: bool = False, n: int = LONG, steps: int = 10
) -> list[str]:
    """The matrix of POLICIES (default), or of ``policies``; ``long``: SLOW, ``n`` episodes."""
    size = ["-n", str(EPISODES), "--max-steps", str(STEPS)]
    if long:
        policies, size = (SLOW,), ["-n", str(n), "--max-steps", str(steps)]
    return [
        str(BIN / "vlabench"), "--registry", "placement.yaml", "matrix",
        *(a for p in policies or POLICIES for a in ("--policy", p)),
        "--suite", SUITE, *size, "--executor", "ray", "--address", address, "--no-leaderboard",
    ]  # fmt: skip


def complete(url: str) -> dict[str, list[int]]:
    """Each run's stored episode indices (a duplicate would show), after checking that each
    has its seed; one run per policy."""
    with open_store(url) as store:
        found = {}
        for run in store.runs():
            assert run["policy"] not in found, "a second run of the same policy"
            rows = store.episodes(run["id"])
            assert all(e["seed"] == 1000 + e["episode_index"] for e in rows)
            found[run["policy"]] = sorted(e["episode_index"] for e in rows)
        return found


def start(args: list[str], url: str, cwd: Path, cluster: RayCluster) -> subprocess.Popen:
    """The CLI in ``cwd`` (where it finds placement.yaml) on ``url``, in its own process
    group, with the cluster's environment (the test plugin)."""
    (cwd / "placement.yaml").write_text(PLACEMENT)
    env = ray_env({**os.environ, **cluster.env, "VLABENCH_DB": url})
    return subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # the driver and its children: one process group
    )  # fmt: skip


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"driver still running after {timeout} s:\n{out}\n{err}") from None
    return proc.returncode, out, err


def wait_for_episodes(url: str, proc: subprocess.Popen, at_least: int) -> int:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        stored = stored_count(url)
        if stored >= at_least:
            return stored
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    out, err = proc.communicate() if proc.poll() is not None else ("", "")
    raise AssertionError(f"fewer than {at_least} episodes stored (exit {proc.poll()}):\n{out}{err}")


def wait_for_running(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with open_store(url) as store:
                if store.runs(status="running"):
                    return
        except Exception:  # not created yet
            pass
        time.sleep(0.2)
    raise AssertionError(f"no run started (exit {proc.poll()})")


def test_cluster_matrix_into_postgres_equals_inline(
    cluster: RayCluster,
    postgres,  # noqa: F811
    inline_episodes: dict,
    tmp_path: Path,
) -> None:
    url = postgres.create_database("ray")
    code, out, err = finish(start(matrix_args(cluster.address), url, tmp_path, cluster))
    assert code == 0, out + err
    assert episodes_of(url) == inline_episodes
    with open_store(url) as store:
        assert {r["status"] for r in store.runs()} == {"finished"}


def test_presets_resources_place_jobs_and_an_unplaceable_job_fails_at_once(
    cluster: RayCluster,
    postgres,  # noqa: F811
    tmp_path: Path,
) -> None:
    url = postgres.create_database("placement")
    before = {name: worker_logs(node.temp_dir) for name, node in cluster.workers.items()}
    args = matrix_args(cluster.address, "noop_on_b", "noop_nowhere")
    started = time.monotonic()
    proc = start(args, url, tmp_path, cluster)
    code, out, err = finish(proc, timeout=120)
    took = time.monotonic() - started
    assert code == 0, out + err  # the matrix reports the failed run (and exits 0)
    assert "failed noop_nowhere" in out
    with open_store(url) as store:
        runs = {r["policy"]: r for r in store.runs()}
        assert runs["noop_on_b"]["status"] == "finished"
        assert len(store.finished_episode_indices(runs["noop_on_b"]["id"])) == EPISODES
        assert runs["noop_nowhere"]["status"] == "failed"
        assert runs["noop_nowhere"]["error"].startswith(
            "no node of the Ray cluster can place a worker needing {CPU: 1, node_gpu_x: 1} "
            "(alive nodes offer: "
        )
        assert store.finished_episode_indices(runs["noop_nowhere"]["id"]) == set()
    assert took < 90  # failed at once, not after a placement wait
    # the actor of noop_on_b started on node_b only
    after = {name: worker_logs(node.temp_dir) for name, node in cluster.workers.items()}
    assert after["node_b"] - before["node_b"] >= 1
    assert after["node_a"] - before["node_a"] == 0


def worker_logs(temp_dir: Path) -> int:
    """How many of the node's worker logs name a vlabench actor."""
    return sum(
        "RayWorker" in path.read_text(errors="replace")
        for path in temp_dir.glob("session_*/logs/worker-*.out")
    )


def test_a_killed_driver_is_completed_exactly_by_a_rerun(
    cluster: RayCluster,
    postgres,  # noqa: F811
    tmp_path: Path,
) -> None:
    url = postgres.create_database("driver")
    proc = start(matrix_args(cluster.address, long=True), url, tmp_path, cluster)
    wait_for_episodes(url, proc, 2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver, as a lost terminal or an OOM kill would
    proc.wait()
    before = episodes_of(url)
    assert 2 <= len(before[SLOW]) < LONG
    code, out, err = finish(start(matrix_args(cluster.address, long=True), url, tmp_path, cluster))
    assert code == 0, out + err
    assert complete(url) == {SLOW: list(range(LONG))}  # exact: none lost, none duplicated
    assert f"{LONG - len(before[SLOW])} new episode(s) stored" in out  # only what was missing
    assert set(before[SLOW]) <= set(episodes_of(url)[SLOW])


def test_a_killed_worker_node_moves_its_jobs_to_the_survivor(
    cluster: RayCluster,
    postgres,  # noqa: F811
    tmp_path: Path,
) -> None:
    url = postgres.create_database("nodeloss")
    proc = start(matrix_args(cluster.address, long=True), url, tmp_path, cluster)
    wait_for_episodes(url, proc, 2)
    before = episodes_of(url)
    cluster.workers["node_a"].kill()  # its raylet and workers, SIGKILL
    code, out, err = finish(proc)
    assert code == 0, out + err
    assert "retrying: Ray actor died" in out  # node_a's job, rescheduled
    assert complete(url) == {SLOW: list(range(LONG))}
    after = episodes_of(url)
    for policy, stored in before.items():  # what was stored before the loss is kept
        assert set(stored) <= set(after[policy])


def test_a_lost_head_stops_the_driver_in_one_line_and_a_new_head_resumes(
    cluster: RayCluster,
    postgres,  # noqa: F811
    tmp_path: Path,
) -> None:
    url = postgres.create_database("headloss")
    # runs well past the head's loss
    args = matrix_args(cluster.address, long=True, n=HEAD, steps=20)
    proc = start(args, url, tmp_path, cluster)
    wait_for_running(url, proc)  # its first jobs placed: the whole matrix is still ahead
    assert cluster.head is not None
    cluster.head.kill()
    lost_at = time.monotonic()
    code, out, err = finish(proc, timeout=90)
    assert code == 2, out + err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: lost the Ray cluster: its head at {cluster.address}")
    assert "rerun the same command" in lines[0]
    assert time.monotonic() - lost_at < 60  # before Ray's own 60 s GCS timeout ends it
    with open_store(url) as store:
        assert {r["status"] for r in store.runs()} == {"interrupted"}
    kept = episodes_of(url)[SLOW]
    assert len(kept) < HEAD
    fresh = RayCluster(workers=(), head_cpus=2, env=cluster.env)  # one node: quicker
    try:
        fresh.start()
        args = matrix_args(fresh.address, long=True, n=HEAD, steps=20)
        code, out, err = finish(start(args, url, tmp_path, fresh))
    finally:
        fresh.stop()
    assert code == 0, out + err
    assert complete(url) == {SLOW: list(range(HEAD))}
    assert f"{HEAD - len(kept)} new episode(s) stored" in out
    assert set(kept) <= set(episodes_of(url)[SLOW])


def test_a_presets_resources_become_its_actors_request(tmp_path: Path) -> None:
    """No cluster needed: what a job asks Ray for, and how a refusal names it."""
    from vlabench.execute.ray_cluster import describe_need, describe_offers, fits, job_need
    from vlabench.plan.jobs import Job

    (tmp_path / "r.yaml").write_text(
        "policies:\n  on_a100: {type: noop, resources: {num_gpus: 1, lab_a100: 2}}\n"
    )
    catalog, registry = load_catalog(), load_registry([tmp_path / "r.yaml"])
    config = plan(["on_a100", "noop"], [SUITE], registry, catalog, episodes=2)
    placed, plain = (Job(pair.runs[0], 1, (0, 1)) for pair in config)
    assert job_need(placed) == (("CPU", 1.0), ("GPU", 1.0), ("lab_a100", 2.0))
    assert job_need(plain) == (("CPU", 1.0),)
    # placement is not part of what the run is: same config hash as without resources
    assert placed.config.as_dict()["policy"].keys() == plain.config.as_dict()["policy"].keys()
    offers = [{"CPU": 8.0, "GPU": 1.0, "lab_a100": 1.0, "memory": 1e9, "node:10.0.0.2": 1.0}]
    assert not fits(job_need(placed), offers[0])
    assert fits(job_need(plain), offers[0])
    assert describe_need(job_need(placed)) == "{CPU: 1, GPU: 1, lab_a100: 2}"
    assert describe_offers(offers) == "{CPU: 8, GPU: 1, lab_a100: 1}"


def test_a_head_that_does_not_answer_is_one_error_not_minutes_of_retries() -> None:
    from ray_nodes import free_port

    from vlabench.execute.ray_cluster import ClusterLost, RayExecutor

    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ClusterLost, match=f"cannot reach the Ray cluster at {address}: "):
        RayExecutor._check_reachable(address, wait_s=0)
    RayExecutor._check_reachable("auto", wait_s=0)  # left to Ray
