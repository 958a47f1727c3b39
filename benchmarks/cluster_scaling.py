"""Beyond one machine: Ray nodes and a PostgreSQL store, measured on this machine.

  * store write rate on PostgreSQL (durable: fsync on) under two concurrent matrices: two
    processes writing episodes one by one, as two runners do, into separate runs and into the
    same run (overlapping cells: every episode offered twice, stored once), next to one writer
    and to batched writes (100 per transaction);
  * episodes/s of one matrix on 1 vs 2 local Ray nodes (``ray start`` processes, one CPU
    each; the driver's time in ``Runner.run_pairs``, actor start-up included);
  * Ray scheduling overhead per job: the same episodes as 1-episode jobs and as one job per
    run, on one node; (difference) / (extra jobs);
  * time to reschedule after a node loss: a worker node killed with SIGKILL mid-matrix (Ray's
    default health checks); seconds until the driver hears of the lost actor, and until the
    first episode of the moved job is stored on the surviving node.

Ray runs only in driver subprocesses (``--driver``); nodes come from tests/ray_nodes.py.

    .venv/bin/python benchmarks/cluster_scaling.py --episodes 2000 --matrix-episodes 20
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

SUITE = "pusht_quick"


# -- the store ------------------------------------------------------------------------------
def _team(url: str, run: str, n: int, offset: int, barrier: Any) -> None:
    from store_throughput import FIELDS, _record

    from vlabench.store import open_store

    with open_store(url) as store:
        run_id, _ = store.get_or_create_run(run, n_episodes=n, **FIELDS)
        barrier.wait()
        for i in range(n):
            store.add_episode(run_id, _record((i + offset) % n))


def two_writers(url: str, n: int, overlapping: bool) -> tuple[float, int]:
    """Two processes writing ``n`` episodes each, one per transaction (the runner's path);
    seconds, and episodes stored (``n`` when they overlap, else ``2n``)."""
    from vlabench.store import open_store

    open_store(url).close()
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(3)
    runs = ("shared", "shared") if overlapping else ("a", "b")
    procs = [
        ctx.Process(target=_team, args=(url, runs[k], n, k * n // 2, barrier)) for k in range(2)
    ]
    for proc in procs:
        proc.start()
    barrier.wait()
    start = time.perf_counter()
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - start
    assert [p.exitcode for p in procs] == [0, 0]
    with open_store(url) as store:
        stored = sum(len(store.finished_episode_indices(r["id"])) for r in store.runs())
    assert stored == (n if overlapping else 2 * n), stored
    return elapsed, stored


def store_rates(n: int) -> list[dict[str, Any]]:
    from pg import PostgresCluster, find_bin_dir
    from store_throughput import batched, one_by_one

    bin_dir = find_bin_dir()
    if bin_dir is None:
        print("PostgreSQL binaries not found: skipping the store", file=sys.stderr)
        return []
    rows = []
    with PostgresCluster(bin_dir, durable=True) as cluster:
        for name, fn in (("1 writer", one_by_one), ("1 writer, batched 100", batched)):
            seconds = fn(cluster.create_database("bench"), n)
            rows.append({"pattern": name, "seconds": seconds, "stored": n})
        for name, overlapping in (("2 matrices, separate runs", False),
                                  ("2 matrices, same runs", True)):  # fmt: skip
            seconds, stored = two_writers(cluster.create_database("bench"), n, overlapping)
            rows.append({"pattern": name, "seconds": seconds, "stored": stored})
    for row in rows:
        row["episodes_per_s"] = row["stored"] / row["seconds"]
        row["offered_per_s"] = (row["stored"] * (2 if "same" in row["pattern"] else 1)) / row[
            "seconds"
        ]
    return rows


# -- the driver (a subprocess: Ray lives only there) ----------------------------------------
def driver(address: str, url: str, policies: list[str], episodes: int, steps: int,
           block: int | None, registry_file: str = "") -> dict[str, Any]:  # fmt: skip
    """One matrix on the cluster at ``address`` into ``url``; times of its events."""
    from vlabench.catalog import load_catalog
    from vlabench.execute.choose import make_executor
    from vlabench.execute.runner import Runner
    from vlabench.plan.jobs import plan
    from vlabench.registry import load_registry
    from vlabench.store import open_store

    catalog, registry = load_catalog(), load_registry([registry_file] if registry_file else None)
    pairs = plan(policies, [SUITE], registry, catalog, episodes=episodes, max_steps=steps)
    events: dict[str, list] = {"retried": [], "stored": []}

    class Timed(Runner):
        def job_retried(self, job: Any, error: str) -> None:
            events["retried"].append((time.time(), job.key))
            super().job_retried(job, error)

        def episode_finished(self, job: Any, record: Any) -> None:
            super().episode_finished(job, record)
            events["stored"].append((time.time(), job.key))

    with open_store(url) as store:
        executor = make_executor("ray", catalog, address=address)
        runner = Timed(store, catalog, executor=executor, block=block)
        start = time.perf_counter()
        results = runner.run_pairs(pairs)
        elapsed = time.perf_counter() - start
    jobs = len({key for _, key in events["stored"]})
    new = sum(r.new_episodes for r in results)
    times = sorted(t for t, _ in events["stored"])
    steady = times[-1] - times[0] if len(times) > 1 else float("nan")
    return {"seconds": elapsed, "episodes": new, "jobs": jobs, "steady_s": steady,
            "steady_per_s": (len(times) - 1) / steady, **events}  # fmt: skip


def run_driver(address: str, url: str, policies: list[str], episodes: int, steps: int,
               block: int | None = None, env: dict | None = None,
               registry_file: str = "") -> subprocess.Popen:  # fmt: skip
    from ray_nodes import ray_env

    args = [sys.executable, __file__, "--driver", address, url, ",".join(policies),
            str(episodes), str(steps), str(block or 0), registry_file]  # fmt: skip
    return subprocess.Popen(args, env=ray_env(env), stdout=subprocess.PIPE, text=True)


def driver_result(proc: subprocess.Popen) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return json.loads(out.strip().splitlines()[-1])


def cluster_rates(n: int, steps: int, url_for: Any, slow: dict[str, Any] | None) -> dict:
    """Episodes/s on 1 and 2 nodes: PushT's noop and random (CPU-bound: both nodes share this
    machine's cores) and, with ``slow`` (the test plugin's env and registry), a policy that
    sleeps 50 ms a step (bound by waiting: what the executor itself scales); the per-job
    overhead on one node."""
    from ray_nodes import RayCluster

    out: dict[str, Any] = {"nodes": []}
    policies = ["noop", "random"]
    keys = ("nodes", "load", "seconds", "episodes", "jobs", "episodes_per_s", "steady_per_s")
    for nodes in (1, 2):
        env = slow["env"] if slow else None
        names = tuple(f"node_{i}" for i in range(nodes))
        cluster = RayCluster(workers=names, env={"PYTHONPATH": env["PYTHONPATH"]} if env else None)
        cluster.start()
        try:
            loads = [("PushT noop+random", policies, n, steps, env, "")]
            if slow:
                loads.append(
                    ("sleep 50 ms/step", ["slowpoke"], 2 * n // 4, 10, env, slow["registry"])
                )
            for load, names_, k, steps_, env_, registry in loads:
                proc = run_driver(
                    cluster.address, url_for(), names_, k, steps_, None, env_, registry
                )
                result = driver_result(proc)
                result.update(nodes=nodes, load=load)
                result["episodes_per_s"] = result["episodes"] / result["seconds"]
                out["nodes"].append({key: result[key] for key in keys})
            if nodes == 1:  # scheduling overhead per job: 1-episode jobs vs one job per run
                k = 5 * n  # episodes of one step each: the job is all there is to time
                small = driver_result(run_driver(cluster.address, url_for(), policies, k, 1, 1))
                big = driver_result(run_driver(cluster.address, url_for(), policies, k, 1, k))
                extra = small["jobs"] - big["jobs"]
                out["per_job"] = {  # first to last stored episode: actor start-up left out
                    "jobs": [small["jobs"], big["jobs"]],
                    "steady_s": [small["steady_s"], big["steady_s"]],
                    "overhead_ms": 1000 * (small["steady_s"] - big["steady_s"]) / max(1, extra),
                }
        finally:
            cluster.stop()
    return out


def reschedule_time(url: str, plugins_dir: Path | None, registry_file: Path) -> dict | None:
    """A slow matrix on 2 nodes; node_0 killed after 2 episodes; seconds to the driver's
    retry and to the moved job's first stored episode."""
    from ray_nodes import RayCluster

    from vlabench.store import open_store

    if plugins_dir is None:
        return None
    env = {**os.environ, "PYTHONPATH": str(plugins_dir)}
    cluster = RayCluster(workers=("node_0", "node_1"), env={"PYTHONPATH": str(plugins_dir)})
    cluster.start()
    try:
        proc = run_driver(cluster.address, url, ["slowpoke"], 12, 10, 3, env, str(registry_file))
        while True:
            with open_store(url) as store:
                runs = store.runs()
                if runs and len(store.finished_episode_indices(runs[0]["id"])) >= 2:
                    break
            time.sleep(0.1)
        killed = time.time()
        cluster.workers["node_0"].kill()
        result = driver_result(proc)
    finally:
        cluster.stop()
    if not result["retried"]:
        return {"note": "node_0 had no job in flight when killed"}
    noticed, key = result["retried"][0]
    resumed = min(t for t, k in result["stored"] if k == key and t > noticed)
    return {"noticed_s": noticed - killed, "resumed_s": resumed - killed}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--driver":
        address, url, policies, episodes, steps, block, registry_file = sys.argv[2:9]
        result = driver(address, url, policies.split(","), int(episodes), int(steps),
                        int(block) or None, registry_file)  # fmt: skip
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2000, help="store: episodes per writer")
    parser.add_argument("--matrix-episodes", type=int, default=20, help="per run, on Ray")
    parser.add_argument("--max-steps", type=int, default=100)
    args = parser.parse_args()
    from pg import PostgresCluster, find_bin_dir

    report: dict[str, Any] = {"store": store_rates(args.episodes)}
    bin_dir = find_bin_dir()
    with tempfile.TemporaryDirectory() as tmp, PostgresCluster(bin_dir) as pg:  # type: ignore[arg-type]
        plugins = _faulty_plugin(Path(tmp))
        registry = Path(tmp) / "slow.yaml"
        registry.write_text("policies:\n  slowpoke: {type: slow, options: {sleep_s: 0.05}}\n")
        slow = None
        if plugins is not None:
            env = {**os.environ, "PYTHONPATH": str(plugins)}
            slow = {"env": env, "registry": str(registry)}
        report["ray"] = cluster_rates(args.matrix_episodes, args.max_steps,
                                      lambda: pg.create_database("ray"), slow)  # fmt: skip
        report["reschedule"] = reschedule_time(pg.create_database("loss"), plugins, registry)
    for row in report["store"]:
        rates = f"{row['episodes_per_s']:>8.0f} stored/s {row['offered_per_s']:>8.0f} offered/s"
        print(f"store  {row['pattern']:<28} {row['seconds']:>7.2f} s {rates}")
    for row in report["ray"]["nodes"]:
        print(f"ray    {row['load']:<18} {row['nodes']} node(s): {row['episodes']} episodes in "
              f"{row['seconds']:.2f} s = {row['episodes_per_s']:.2f} episodes/s, steady "
              f"{row['steady_per_s']:.2f}/s")  # fmt: skip
    per_job = report["ray"].get("per_job")
    if per_job:
        print(f"ray    scheduling overhead: {per_job['overhead_ms']:.1f} ms per job "
              f"({per_job['jobs'][0]} vs {per_job['jobs'][1]} jobs)")  # fmt: skip
    print(f"ray    node loss: {report['reschedule']}")
    print(json.dumps(report))


def _faulty_plugin(target: Path) -> Path | None:
    """The test suite's faulty plugin (its ``slow`` policy), installed into ``target``."""
    from conftest import FIXTURES, install_plugin

    try:
        return install_plugin(FIXTURES / "faulty-plugin", target / "faulty")
    except subprocess.CalledProcessError as exc:
        print(f"cannot install the faulty plugin: {exc}", file=sys.stderr)
        return None


if __name__ == "__main__":
    main()
