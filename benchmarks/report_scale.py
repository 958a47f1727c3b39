"""How long leaderboards take on a big store: board (with and without episodes), exports.

Usage: python benchmarks/report_scale.py [policies] [tasks] [episodes]
(default 10 policies x 40 tasks x 50 episodes = 20,000 episodes in 4 suites).
Episodes are inserted with one bulk INSERT (the store's per-episode writes are not measured).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import insert

from vlabench.report import board_from_store
from vlabench.report.compare import compare
from vlabench.report.exporters import exporters
from vlabench.store import open_store
from vlabench.store.models import Episode


def main() -> None:
    args = sys.argv[1:] + ["10", "40", "50"][len(sys.argv) - 1 :]
    policies, tasks, episodes = (int(a) for a in args)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp, open_store(f"sqlite:///{Path(tmp) / 's.db'}") as s:
        rows = []
        for p in range(policies):
            skill = rng.uniform(0.1, 0.9)
            for t in range(tasks):
                suite = f"suite{t % 4}"
                run_id, _ = s.get_or_create_run(
                    f"p{p}t{t}", policy=f"policy{p}", policy_type="x", policy_plugin="x",
                    env="e", env_plugin="x", suite=suite, task=f"task{t}",
                    protocol={"name": "std"}, protocol_hash=f"h{suite}", n_episodes=episodes,
                )
                for i in range(episodes):
                    rows.append(dict(run_id=run_id, episode_index=i, task=f"task{t}", seed=i,
                                     init_state_id=i, success=bool(rng.random() < skill),
                                     steps=100, reward_sum=0.0, wall_time_s=1.0,
                                     clipped_actions=0, metrics={}))
        with s.engine.begin() as conn:
            conn.execute(insert(Episode), rows)
        n = len(rows)
        for label, kwargs in (("board", {}), ("board+episodes", {"episodes": True})):
            start = time.perf_counter()
            board = board_from_store(s, **kwargs)
            print(f"{label}: {1000 * (time.perf_counter() - start):.0f} ms for {n} episodes")
        for name, spec in exporters().items():
            start = time.perf_counter()
            out = spec.export(board)
            print(f"export {name}: {1000 * (time.perf_counter() - start):.0f} ms, "
                  f"{len(out) / 1024:.0f} KiB")
        start = time.perf_counter()
        compare(s, "policy0", "policy1")
        print(f"compare: {1000 * (time.perf_counter() - start):.0f} ms")


if __name__ == "__main__":
    main()
