"""Store throughput: episodes/s written to SQLite and to PostgreSQL.

Three write patterns per backend, each into a fresh store:
  * ``one-by-one``: one transaction per episode, the runner's path (episodes are stored as
    they finish, so an interrupted matrix loses nothing finished);
  * ``batched``: ``add_episodes`` with 100 episodes per transaction;
  * ``8 writers``: 8 processes writing one-by-one at once (separate runs), the contended case.
PostgreSQL is a throw-away durable cluster (fsync on) started from Debian's server binaries
(tests/pg.py); SQLite is WAL with synchronous=NORMAL, as the store configures it.

    .venv/bin/python benchmarks/store_throughput.py --episodes 2000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

FIELDS: dict[str, Any] = {
    "policy": "noop",
    "policy_type": "noop",
    "policy_plugin": "scripted",
    "env": "pusht",
    "env_plugin": "pusht",
    "suite": "pusht",
    "task": "push_t",
    "protocol": {"max_steps": 300},
    "protocol_hash": "p",
}


def _record(i: int) -> Any:
    from vlabench.api import EpisodeRecord

    return EpisodeRecord("push_t", i, 1000 + i, None, i % 3 == 0, 120, 0.5, 1.0, 3.0, 5.0, 0.4)


def one_by_one(url: str, n: int, run: str = "r") -> float:
    from vlabench.store import open_store

    with open_store(url) as store:
        run_id, _ = store.get_or_create_run(run, n_episodes=n, **FIELDS)
        start = time.perf_counter()
        for i in range(n):
            store.add_episode(run_id, _record(i))
        return time.perf_counter() - start


def batched(url: str, n: int, size: int = 100) -> float:
    from vlabench.store import open_store

    with open_store(url) as store:
        run_id, _ = store.get_or_create_run("b", n_episodes=n, **FIELDS)
        start = time.perf_counter()
        for first in range(0, n, size):
            store.add_episodes(run_id, [_record(i) for i in range(first, min(n, first + size))])
        return time.perf_counter() - start


def _writer(url: str, n: int, k: int, barrier: Any) -> None:
    from vlabench.store import open_store

    with open_store(url) as store:  # schema ready: the parent migrated it
        run_id, _ = store.get_or_create_run(f"w{k}", n_episodes=n, **FIELDS)
        barrier.wait()
        for i in range(n):
            store.add_episode(run_id, _record(i))


def concurrent(url: str, n: int, writers: int = 8) -> float:
    from vlabench.store import open_store

    open_store(url).close()
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(writers + 1)
    procs = [
        ctx.Process(target=_writer, args=(url, n // writers, k, barrier)) for k in range(writers)
    ]
    for p in procs:
        p.start()
    barrier.wait()
    start = time.perf_counter()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - start
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    with open_store(url) as store:
        stored = sum(store.summary(r["id"])["n"] for r in store.runs())
    assert stored == writers * (n // writers), stored
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    n = args.episodes
    patterns: dict[str, Callable[[str, int], float]] = {
        "one-by-one": one_by_one,
        "batched": batched,
        "8 writers": concurrent,
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in patterns.items():
            url = f"sqlite:///{tmp}/{name.replace(' ', '_')}.db"
            rows.append({"backend": "sqlite", "pattern": name, "seconds": fn(url, n)})
        if not args.no_postgres:
            from pg import PostgresCluster, find_bin_dir

            bin_dir = find_bin_dir()
            if bin_dir is None:
                print("PostgreSQL binaries not found: skipping PostgreSQL", file=sys.stderr)
            else:
                with PostgresCluster(bin_dir, durable=True) as cluster:
                    for name, fn in patterns.items():
                        url = cluster.create_database("bench")
                        rows.append(
                            {"backend": "postgresql", "pattern": name, "seconds": fn(url, n)}
                        )
    print(f"{n} episodes per pattern")
    print(f"{'backend':<11} {'pattern':<11} {'seconds':>8} {'episodes/s':>11}")
    for row in rows:
        row["episodes_per_s"] = n / row["seconds"]
        print(f"{row['backend']:<11} {row['pattern']:<11} {row['seconds']:>8.2f} "
              f"{row['episodes_per_s']:>11.0f}")  # fmt: skip
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
