"""LIBERO env throughput through the vlabench plugin: build time, reset time, steps/second.

For one task: env build time (first build, imports included, then a second build), reset
time (in-place and hard), and env steps per second without cameras (state-only policy) and
with both cameras at each ``--sizes`` side, in ``standard`` and ``fast`` render quality.
Steps use small random ee-delta actions so the arm moves (the rendering cost is the same).

    MUJOCO_GL=egl .venv/bin/python benchmarks/libero_throughput.py --steps 50 --sizes 128 256
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")

STATE_ONLY = {"requested_features": ["observation.state"]}


def _make(task: str, options: dict) -> tuple[object, float]:
    from vlabench_plugins import libero

    start = time.perf_counter()
    env = libero.make(task, options)
    return env, time.perf_counter() - start


def _resets(env, n: int) -> float:
    times = []
    for k in range(n):
        start = time.perf_counter()
        env.reset(seed=1000 + k, options={"init_state_id": k})
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _steps_per_second(env, steps: int) -> float:
    rng = np.random.default_rng(0)
    env.reset(seed=1000, options={"init_state_id": 0})
    env.step(np.array([0, 0, 0, 0, 0, 0, -1], np.float32))  # warm-up (numba, first render)
    start = time.perf_counter()
    for _ in range(steps):
        action = np.append(rng.uniform(-0.3, 0.3, 6), rng.choice([-1.0, 1.0])).astype(np.float32)
        env.step(action)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="libero_goal/open_the_middle_drawer_of_the_cabinet")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--resets", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results: dict[str, float] = {}

    env, results["build_first_s"] = _make(args.task, STATE_ONLY)
    results["reset_in_place_s"] = _resets(env, args.resets)
    results["steps_per_s_no_render"] = _steps_per_second(env, args.steps)
    env.close()
    env, results["build_again_s"] = _make(args.task, {**STATE_ONLY, "hard_reset": True})
    results["reset_hard_s"] = _resets(env, args.resets)
    env.close()
    for size in args.sizes:
        for quality in ("standard", "fast"):
            env, built = _make(args.task, {"image_size": size, "render_quality": quality})
            results[f"build_{size}_{quality}_s"] = built
            results[f"reset_{size}_{quality}_s"] = _resets(env, args.resets)
            results[f"steps_per_s_{size}_{quality}"] = _steps_per_second(env, args.steps)
            env.close()

    if args.json:
        print(json.dumps({k: round(v, 3) for k, v in results.items()}))
        return
    print(f"LIBERO throughput, task {args.task}, {args.steps} steps per figure")
    for key, value in results.items():
        print(f"  {key:32s} {value:8.3f}")


if __name__ == "__main__":
    main()
