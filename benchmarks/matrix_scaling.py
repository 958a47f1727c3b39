"""Matrix scaling: episodes/s with 1 and 2 worker processes and with Ray, in one run.

The same matrix (noop and random on PushT, episodes of ``--max-steps`` steps, the camera
rendered since ``--render`` asks for images) runs into a fresh SQLite store per executor; the
time is end to end (plan, worker start, episodes, store), Ray's own start-up is reported apart.

    .venv/bin/python benchmarks/matrix_scaling.py --episodes 30 --max-steps 300

Worker start-up (a fresh interpreter that loads the plugins, ~1 s of CPU) is part of the
processes and Ray times, so short matrices understate their scaling.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")


def run_once(kind: str, workers: int, episodes: int, max_steps: int, db: Path) -> float:
    """Seconds to run the matrix with one executor (nothing stored beforehand)."""
    from vlabench.catalog import load_catalog
    from vlabench.execute.choose import make_executor
    from vlabench.execute.runner import Runner
    from vlabench.plan.jobs import plan
    from vlabench.registry import load_registry
    from vlabench.store import open_store

    catalog, registry = load_catalog(), load_registry()
    pairs = plan(
        ["noop", "random"], ["pusht"], registry, catalog, episodes=episodes, max_steps=max_steps
    )
    with open_store(f"sqlite:///{db}") as store:
        executor = make_executor(kind, catalog, workers=workers)
        start = time.perf_counter()
        results = Runner(store, catalog, executor=executor).run_pairs(pairs)
        elapsed = time.perf_counter() - start
        assert all(r.status == "finished" for r in results), results
        assert sum(r.new_episodes for r in results) == 2 * episodes
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=30, help="per policy (2 policies)")
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2, help="best of, round robin")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    total = 2 * args.episodes
    rows: list[dict[str, Any]] = []
    setups = [("inline", 1), ("processes", 1), ("processes", 2)]
    best: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        run_once("inline", 1, 1, 5, Path(tmp) / "warm.db")  # warm imports and caches
        for r in range(args.repeats):  # round robin, best of: fair under shifting load
            for kind, workers in setups:
                db = Path(tmp) / f"{kind}{workers}-{r}.db"
                seconds = run_once(kind, workers, args.episodes, args.max_steps, db)
                best[kind, workers] = min(seconds, best.get((kind, workers), seconds))
        rows += [{"executor": k, "workers": w, "seconds": best[k, w]} for k, w in setups]
        if not args.no_ray:  # last: an idle Ray still costs CPU on a 2-core machine
            import ray

            start = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            ray_start = time.perf_counter() - start
            try:
                seconds = min(
                    run_once("ray", 2, args.episodes, args.max_steps, Path(tmp) / f"ray{r}.db")
                    for r in range(args.repeats)
                )
            finally:
                ray.shutdown()
            rows.append({"executor": "ray", "workers": 2, "seconds": seconds,
                         "ray_init_s": ray_start})  # fmt: skip
    base = next(r["seconds"] for r in rows if r["executor"] == "processes" and r["workers"] == 1)
    print(f"{total} episodes of {args.max_steps} steps (noop + random on PushT), "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'executor':<10} {'workers':>7} {'seconds':>8} {'episodes/s':>10} {'vs 1 proc':>9}")
    for row in rows:
        row["episodes_per_s"] = total / row["seconds"]
        row["ratio_vs_1_process"] = base / row["seconds"]
        print(f"{row['executor']:<10} {row['workers']:>7} {row['seconds']:>8.2f} "
              f"{row['episodes_per_s']:>10.2f} {row['ratio_vs_1_process']:>9.2f}")  # fmt: skip
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
