"""What each robustness perturbation costs per step (no runner, no policy).

Generic perturbations (adapter steps of the ``perturb`` plugin): the median time of one
``observation()`` (and ``action()`` for action noise) on a batch of one real Meta-World
observation (39-d state and one ``corner2`` image of ``--size`` px), at each axis's highest
severity in registry.yaml. Simulator-side axes (Meta-World camera pose, field of view,
lighting; LIBERO camera, lighting, object noise): the median env step (with its render) and
the first reset of the perturbed env next to the control's.

    MUJOCO_GL=egl .venv/bin/python benchmarks/perturbation_cost.py --size 224 --repeats 200
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from typing import Any

import numpy as np

warnings.filterwarnings("ignore")
os.environ.setdefault("MUJOCO_GL", "egl")

ENV_STATE = "observation.environment_state"


def _median_us(fn: Any, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def generic(size: int, repeats: int) -> dict[str, float]:
    """µs per step of every generic perturbation at its highest registry severity."""
    from vlabench_plugins import metaworld, perturb

    from vlabench import api
    from vlabench.registry import load_registry

    (spec,) = metaworld.vlabench_envs()
    env = spec.make("reach-v3", {"cameras": ["corner2"], "image_size": size})
    obs, _ = env.reset(seed=1000)
    env.close()
    builds = {s.name: s.build for s in perturb.vlabench_adapters()}
    reg = load_registry()
    out = {}
    for axis, cfg in reg.perturbations.items():
        name = f"perturb.{cfg.perturbation}"
        if name not in builds:
            continue
        step = builds[name]({**cfg.levels[-1], "seed": 1000, "axis": axis})
        counter = iter(range(10**9))

        def once(step: Any = step, counter: Any = counter) -> None:
            t = next(counter)
            batch = {k: (np.asarray(v)[None] if k != api.TASK_KEY else [v]) for k, v in obs.items()
                     if k in (api.STATE_KEY, ENV_STATE, api.TASK_KEY, "observation.images.corner2")}
            batch[api.EPISODE_INDEX_KEY] = np.array([0])
            batch[api.EPISODE_STEP_KEY] = np.array([t])
            step.observation(batch)
            step.action(np.zeros((1, 4), np.float32))

        out[axis] = _median_us(once, repeats)
    return out


def _env_costs(make: Any, reset: Any, noop: np.ndarray, steps: int) -> tuple[float, float]:
    env = make()
    try:
        start = time.perf_counter()
        reset(env)
        reset_ms = 1e3 * (time.perf_counter() - start)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            env.step(noop)
            times.append(time.perf_counter() - start)
        return reset_ms, 1e3 * statistics.median(times)
    finally:
        env.close()


def simulator(size: int, steps: int, rounds: int, libero_too: bool) -> dict[str, Any]:
    """Median ms per env step and per reset: each sim-side axis against its control."""
    from vlabench_plugins import metaworld

    out: dict[str, Any] = {}
    (mw,) = metaworld.vlabench_envs()
    base = {"cameras": ["corner2"], "image_size": size,
            "camera_pos": {"corner2": [0.75, 0.075, 0.7]}}
    specs = {s.name: s for s in metaworld.vlabench_perturbations()}
    arms = {"control": {}, **{
        name: spec.env_options(params, base) for name, (spec, params) in {
            "metaworld.camera_shift": (specs["metaworld.camera_shift"], {"offset": [0.1, 0, 0.06]}),
            "metaworld.camera_fov": (specs["metaworld.camera_fov"], {"fovy": 40}),
            "metaworld.lighting": (specs["metaworld.lighting"], {"scale": 0.25}),
        }.items()}}
    noop = np.zeros(4, np.float32)
    for _ in range(rounds):
        for name, extra in arms.items():
            costs = _env_costs(lambda extra=extra: mw.make("reach-v3", {**base, **extra}),
                               lambda env: env.reset(seed=1000), noop, steps)
            out.setdefault(f"metaworld {name}", []).append(costs)
    if libero_too:
        from vlabench_plugins import libero

        (lb,) = libero.vlabench_envs()
        lbase = {"suite": "libero_goal", "image_size": size}
        lspecs = {s.name: s for s in libero.vlabench_perturbations()}
        larms = {"control": {},
                 "libero.camera_shift": lspecs["libero.camera_shift"].env_options(
                     {"offset": [0, 0.15, 0.06]}, lbase),
                 "libero.lighting": lspecs["libero.lighting"].env_options({"scale": 0.25}, lbase),
                 "libero.object_noise": lspecs["libero.object_noise"].env_options(
                     {"std": 0.06}, lbase)}
        lnoop = np.asarray(libero.NOOP_ACTION, np.float32)
        task = "libero_goal/open_the_middle_drawer_of_the_cabinet"
        for name, extra in larms.items():
            costs = _env_costs(lambda extra=extra: lb.make(task, {**lbase, **extra}),
                               lambda env: env.reset(seed=1000, options={"init_state_id": 0}),
                               lnoop, steps)
            out.setdefault(f"libero {name}", []).append(costs)
    return {k: {"reset_ms": statistics.median(c[0] for c in v),
                "step_ms": statistics.median(c[1] for c in v)} for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224, help="camera side in px")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--steps", type=int, default=60, help="env steps per simulator arm")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the Meta-World arms")
    parser.add_argument("--no-libero", action="store_true")
    args = parser.parse_args()
    result = {"size": args.size, "generic_us_per_step": generic(args.size, args.repeats),
              "simulator": simulator(args.size, args.steps, args.rounds, not args.no_libero)}
    for axis, us in result["generic_us_per_step"].items():
        print(f"{axis:<22} {us:>9.1f} us/step")
    for arm, cost in result["simulator"].items():
        print(f"{arm:<32} step {cost['step_ms']:>7.2f} ms  reset {cost['reset_ms']:>8.1f} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
