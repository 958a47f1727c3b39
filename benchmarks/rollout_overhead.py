"""Framework overhead on PushT: `vlabench run` (noop policy) vs a raw gymnasium loop.

Both run the same episodes (seeds 1000.., the noop action = hold the agent position, 96x96
camera rendered each step, stop at success or max steps) in the same process, alternating,
``--repeats`` times; prints medians and the ratio. The vlabench side goes through the same
path as `vlabench run`: registry -> plan -> check -> Runner -> SQLite store (episodes written
as they finish). A second figure times the CLI in a subprocess, start-up included.

    .venv/bin/python benchmarks/rollout_overhead.py --episodes 10 --max-steps 100 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def raw_loop(episodes: int, max_steps: int, seed: int = 1000) -> int:
    """The reference: gym-pusht driven directly, the same observation type and noop action."""
    from gym_pusht.envs import PushTEnv

    env = PushTEnv(obs_type="pixels_agent_pos", observation_width=96, observation_height=96)
    steps = 0
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        for _ in range(max_steps):
            action = np.asarray(obs["agent_pos"], np.float32)
            obs, _, terminated, truncated, info = env.step(action)
            steps += 1
            if terminated or truncated or info["is_success"]:
                break
    env.close()
    return steps


def vlabench_run(episodes: int, max_steps: int, db: Path) -> int:
    """The same episodes through the vlabench runner into a fresh SQLite store."""
    from vlabench.matrix import Runner, plan
    from vlabench.plugins import load_catalog
    from vlabench.registry import load_registry
    from vlabench.store import open_store

    catalog, registry = load_catalog(), load_registry()
    pairs = plan(["noop"], ["pusht"], registry, catalog, episodes=episodes, max_steps=max_steps)
    with open_store(f"sqlite:///{db}") as store:
        Runner(store, catalog).run_pairs(pairs)
        [run] = store.runs()
        return sum(e["steps"] for e in store.episodes(run["id"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    raw_times, vla_times, cli_times = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        raw_loop(1, 5)  # warm imports for both sides
        vlabench_run(1, 5, Path(tmp) / "warm.db")
        for r in range(args.repeats):
            t = time.perf_counter()
            raw_steps = raw_loop(args.episodes, args.max_steps)
            raw_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            vla_steps = vlabench_run(args.episodes, args.max_steps, Path(tmp) / f"r{r}.db")
            vla_times.append(time.perf_counter() - t)
            assert raw_steps == vla_steps, (raw_steps, vla_steps)
            t = time.perf_counter()
            subprocess.run(
                [
                    str(Path(sys.executable).parent / "vlabench"),
                    "--db",
                    f"sqlite:///{tmp}/cli{r}.db",
                    "-q",
                    "run",
                    "--policy",
                    "noop",
                    "--suite",
                    "pusht",
                    "-n",
                    str(args.episodes),
                    "--max-steps",
                    str(args.max_steps),
                ],
                check=True,
                capture_output=True,
            )
            cli_times.append(time.perf_counter() - t)
    raw, vla, cli = (statistics.median(x) for x in (raw_times, vla_times, cli_times))
    print(
        f"PushT noop, {args.episodes} episodes x <= {args.max_steps} steps "
        f"({raw_steps} steps), median of {args.repeats}"
    )
    print(
        f"  raw gymnasium loop      {raw:7.2f} s  {args.episodes / raw:6.2f} episodes/s  "
        f"{raw_steps / raw:7.1f} steps/s"
    )
    print(
        f"  vlabench runner         {vla:7.2f} s  {args.episodes / vla:6.2f} episodes/s  "
        f"ratio vlabench/raw time = {vla / raw:.3f}"
    )
    print(
        f"  `vlabench run` (CLI)    {cli:7.2f} s  {args.episodes / cli:6.2f} episodes/s  "
        f"ratio = {cli / raw:.3f} (start-up included)"
    )


if __name__ == "__main__":
    main()
