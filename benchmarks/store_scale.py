"""Leaderboard query time on a big SQLite store (default 1,000,000 episode rows).

The store is created by vlabench's own migrations; the rows are then bulk-loaded with
``sqlite3.executemany`` (the runner's per-episode writes are measured by store_throughput.py).
Shape: ``--policies`` x ``--tasks`` runs (5 suites) of ``--episodes`` episodes each, default
20 x 50 x 1000. Timed, medians of ``--repeats`` (a fresh connection pool each time):

  * ``Store.run_counts``: the main leaderboard query (runs joined to per-run episode counts),
    and the same with the query and indexes before migration 0003 (on a copy);
  * ``board_from_store``: the whole leaderboard (query + intervals + ranks);
  * ``board_from_store`` for one suite (a filtered leaderboard).

    .venv/bin/python benchmarks/store_scale.py --policies 20 --tasks 50 --episodes 1000
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_seconds


def build_store(path: Path, policies: int, tasks: int, episodes: int, seed: int = 0) -> int:
    """Create a migrated store at ``path`` and fill it; returns the number of episode rows."""
    from vlabench.store import open_store

    rng = np.random.default_rng(seed)
    with open_store(f"sqlite:///{path}") as store:
        for p in range(policies):
            for t in range(tasks):
                suite = f"suite{t % 5}"
                store.get_or_create_run(
                    f"p{p}t{t}", policy=f"policy{p}", policy_type="x", policy_plugin="x",
                    env="e", env_plugin="x", suite=suite, task=f"task{t}",
                    protocol={"name": "std"}, protocol_hash=f"h{suite}", n_episodes=episodes,
                )  # fmt: skip
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    run_ids = [r for (r,) in con.execute("SELECT id FROM runs ORDER BY id")]
    now = "2026-11-21 00:00:00.000000"
    sql = (
        "INSERT INTO episodes (run_id, episode_index, task, seed, init_state_id, success, steps,"
        " reward_sum, wall_time_s, latency_p50_ms, latency_p95_ms, env_step_ms, clipped_actions,"
        " failure_reason, metrics, video_path, created_at, labels)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '{}', NULL, ?, NULL)"
    )
    total = 0
    for k, run_id in enumerate(run_ids):
        skill = rng.uniform(0.1, 0.9)
        success = rng.random(episodes) < skill
        failed = rng.random(episodes) < 0.01  # a few episodes with a failure reason
        task = f"task{k % tasks}"
        rows = [
            (run_id, i, task, 1000 + i, i, int(success[i]), 120, 0.5, 1.0, 3.0, 5.0, 0.4, 0,
             "env error" if failed[i] else None, now)
            for i in range(episodes)
        ]  # fmt: skip
        con.executemany(sql, rows)
        total += episodes
    con.commit()
    con.execute("ANALYZE")
    con.close()
    return total


def query_plan(path: Path) -> list[str]:
    """SQLite's plan for the store's main leaderboard query."""
    from sqlalchemy.dialects import sqlite

    from vlabench.store.store import runs_with_counts

    sql = str(
        runs_with_counts().compile(
            dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}
        )
    )
    con = sqlite3.connect(path)
    try:
        return [row[-1] for row in con.execute(f"EXPLAIN QUERY PLAN {sql}")]
    finally:
        con.close()


def old_runs_with_counts() -> Any:
    """The leaderboard query before migration 0003: one GROUP BY over every episode."""
    from sqlalchemy import case, func, select

    from vlabench.store.models import Episode, Run

    counts = (
        select(
            Episode.run_id,
            func.count(Episode.id).label("n"),
            func.sum(case((Episode.success, 1), else_=0)).label("successes"),
            func.sum(case((Episode.failure_reason.is_not(None), 1), else_=0)).label("errors"),
        )
        .group_by(Episode.run_id)
        .subquery()
    )
    return (
        select(Run, counts.c.n, counts.c.successes, counts.c.errors)
        .outerjoin(counts, counts.c.run_id == Run.id)
        .order_by(Run.id)
    )


def measure_before(path: Path, repeats: int) -> float:
    """``Store.run_counts`` with the old query on a copy with the old indexes (schema 0002)."""
    import shutil

    from vlabench.store import open_store
    from vlabench.store import store as queries

    old = path.with_name("before.db")
    shutil.copy(path, old)
    con = sqlite3.connect(old)
    con.executescript(
        "DROP INDEX ix_episodes_run_id_success; DROP INDEX ix_episodes_run_id_failed;"
        "CREATE INDEX ix_episodes_run_id ON episodes (run_id); ANALYZE;"
    )
    con.close()
    new = queries.runs_with_counts
    queries.runs_with_counts = old_runs_with_counts
    try:
        with open_store(f"sqlite:///{old}", upgrade=False) as store:
            after = open_store(f"sqlite:///{path}")
            try:
                assert store.run_counts() == after.run_counts(), "old and new queries differ"
            finally:
                after.close()
            return median_seconds(store.run_counts, repeats)
    finally:
        queries.runs_with_counts = new
        old.unlink()


def measure(path: Path, repeats: int) -> dict[str, float]:
    """Median seconds of the leaderboard queries on the store at ``path``."""
    from vlabench.report import board_from_store
    from vlabench.store import open_store

    out = {}
    with open_store(f"sqlite:///{path}") as store:
        out["run_counts_s"] = median_seconds(store.run_counts, repeats)
        out["board_s"] = median_seconds(lambda: board_from_store(store), repeats)
        out["board_one_suite_s"] = median_seconds(
            lambda: board_from_store(store, suite="suite0"), repeats
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--episodes", type=int, default=1000, help="per run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="write the store here instead of a temp dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "scale.db"
        start = time.perf_counter()
        n = build_store(path, args.policies, args.tasks, args.episodes)
        build_s = time.perf_counter() - start
        result: dict[str, Any] = {
            "episodes": n,
            "runs": args.policies * args.tasks,
            "build_s": build_s,
            **measure(path, args.repeats),
            "run_counts_before_s": measure_before(path, args.repeats),
            "plan": query_plan(path),
        }
    print(f"{n:,} episodes in {result['runs']} runs (built in {build_s:.1f} s), "
          f"median of {args.repeats}")  # fmt: skip
    for key in ("run_counts_before_s", "run_counts_s", "board_s", "board_one_suite_s"):
        print(f"  {key[:-2]:<18} {1000 * result[key]:8.1f} ms")
    print("  plan: " + " | ".join(result["plan"]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
