"""Meta-World env throughput: vlabench's env vs a raw metaworld gymnasium loop, same seeds.

Every variant runs the same episodes (seeds 1000.., Meta-World's scripted expert acting on
the 39-d observation, stop at success or ``--max-steps``) and prints steps/second:

* ``raw state``: metaworld's env driven directly, seeded as LeRobot does (MT1 task 0,
  goal/object placement drawn from ``seed()`` at every reset), no rendering;
* ``vlabench state``: the plugin's env as the runner builds it for a state-only policy;
* ``raw render``: the raw env rendering ``corner2`` through gymnasium's renderer each step
  and flipping it, as LeRobot's Meta-World env does;
* ``vlabench render``: the plugin's env rendering ``corner2`` (shadows/reflections on, then
  off) at ``--image-size``;
* ``vlabench run``: the whole runner (plan -> rollout -> SQLite store) with the expert.

The ratio column is steps/s relative to the matching raw loop. Both sides take the same
number of steps, since they start from the same states (a note is printed otherwise).

    MUJOCO_GL=egl .venv/bin/python benchmarks/metaworld_throughput.py --episodes 3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")
Episodes = Callable[[], int]
"""Runs the episodes of one variant, returns the number of steps taken."""
warnings.filterwarnings("ignore", message="Constant")


def _raw_env(task: str, render_size: int | None) -> Any:
    import metaworld

    mt1 = metaworld.MT1(task, seed=42)
    kwargs: dict[str, Any] = {}
    if render_size:
        kwargs = dict(
            render_mode="rgb_array", camera_name="corner2", width=render_size, height=render_size
        )
    env = mt1.train_classes[task](**kwargs)
    env.set_task(mt1.train_tasks[0])
    env.model.cam_pos[2] = [0.75, 0.075, 0.7]  # LeRobot's corner2 position
    env._freeze_rand_vec, env.seeded_rand_vec = False, True
    return env


def raw_loop(task: str, seeds: list[int], max_steps: int, render_size: int | None) -> Episodes:
    """metaworld directly: ``seed(s)``, ``reset()``, expert actions, optional render."""
    from metaworld.policies import ENV_POLICY_MAP

    env, policy = _raw_env(task, render_size), ENV_POLICY_MAP[task]()

    def run() -> int:
        steps = 0
        for seed in seeds:
            env.seed(seed)
            obs, _ = env.reset()
            if render_size:
                np.flip(env.render(), (0, 1)).copy()
            for _ in range(max_steps):
                obs, _, _, truncated, info = env.step(policy.get_action(obs))
                if render_size:
                    np.flip(env.render(), (0, 1)).copy()
                steps += 1
                if info["success"] or truncated:
                    break
        env.close()
        return steps

    return run


def vlabench_loop(
    task: str, seeds: list[int], max_steps: int, options: dict[str, Any]
) -> Episodes:
    """The plugin's env with the same expert, reading ``observation.environment_state``."""
    from metaworld.policies import ENV_POLICY_MAP
    from vlabench_plugins import metaworld as mw
    from vlabench_plugins.metaworld.features import ENV_STATE_KEY

    env, policy = mw.SPEC.make(task, options), ENV_POLICY_MAP[task]()

    def run() -> int:
        steps = 0
        for seed in seeds:
            obs, _ = env.reset(seed=seed)
            for _ in range(max_steps):
                state = obs[ENV_STATE_KEY].astype(np.float64)
                obs, _, _, truncated, info = env.step(policy.get_action(state))
                steps += 1
                if info["is_success"] or truncated:
                    break
        env.close()
        return steps

    return run


def runner_loop(task: str, seeds: list[int], max_steps: int) -> Episodes:
    """`vlabench run --policy metaworld-expert` in-process, into a fresh SQLite store.

    Timed from planning on, so it includes loading plugins, building the env (once) and
    writing episodes; the in-loop rate (episode wall times only) is printed too."""
    from vlabench.catalog import load_catalog
    from vlabench.execute.runner import Runner
    from vlabench.plan.jobs import plan
    from vlabench.registry import load_registry
    from vlabench.store import open_store

    def run() -> int:
        catalog, registry = load_catalog(), load_registry()
        pairs = plan(
            ["metaworld-expert"],
            ["metaworld_mt50"],
            registry,
            catalog,
            episodes=len(seeds),
            max_steps=max_steps,
            tasks=[task],
        )
        with tempfile.TemporaryDirectory() as tmp, open_store(f"sqlite:///{tmp}/b.db") as store:
            Runner(store, catalog).run_pairs(pairs)
            [run] = store.runs()
            episodes = store.episodes(run["id"])
            in_loop = sum(e["wall_time_s"] for e in episodes)
            steps = sum(e["steps"] for e in episodes)
            print(f"  (runner in-loop: {steps / in_loop:.1f} steps/s from episode wall times)")
            return steps

    return run


def timed(build: Callable[[], Episodes]) -> tuple[int, float]:
    """Build (not timed), then time the episodes."""
    run = build()
    start = time.perf_counter()
    steps = run()
    return steps, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="pick-place-v3")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=500)
    parser.add_argument("--image-size", type=int, default=480)
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args()
    seeds = [args.seed + i for i in range(args.episodes)]
    size, task, n = args.image_size, args.task, args.max_steps
    from vlabench_plugins.metaworld.features import ENV_STATE_KEY, TASK_NAME_KEY

    from vlabench import api

    state_only = {api.REQUESTED_FEATURES_OPTION: [ENV_STATE_KEY, TASK_NAME_KEY]}
    render = {"cameras": ["corner2"], "image_size": size}
    quiet = {**render, "shadows": False, "reflections": False}
    variants: list[tuple[str, Callable[[], Episodes], str | None]] = [
        ("raw state", lambda: raw_loop(task, seeds, n, None), None),
        ("vlabench state", lambda: vlabench_loop(task, seeds, n, state_only), "raw state"),
        ("vlabench run (expert)", lambda: runner_loop(task, seeds, n), "raw state"),
        (f"raw render {size}", lambda: raw_loop(task, seeds, n, size), None),
        (
            f"vlabench render {size}",
            lambda: vlabench_loop(task, seeds, n, render),
            f"raw render {size}",
        ),
        (
            f"vlabench render {size} no shadows/refl.",
            lambda: vlabench_loop(task, seeds, n, quiet),
            f"raw render {size}",
        ),
    ]
    rates: dict[str, float] = {}
    steps_seen: set[int] = set()
    print(f"task {task}, seeds {seeds[0]}..{seeds[-1]}, max {n} steps, {os.cpu_count()} CPUs")
    print(f"{'variant':40s} {'steps':>6s} {'seconds':>8s} {'steps/s':>8s} {'vs raw':>7s}")
    for name, fn, reference in variants:
        steps, seconds = timed(fn)
        steps_seen.add(steps)
        rates[name] = steps / seconds
        ratio = f"{rates[name] / rates[reference]:.2f}" if reference else ""
        print(f"{name:40s} {steps:6d} {seconds:8.2f} {rates[name]:8.1f} {ratio:>7s}")
    if len(steps_seen) != 1:  # float32 observations may shift an expert step or two
        print(f"note: variants took different numbers of steps: {sorted(steps_seen)}")


if __name__ == "__main__":
    main()
