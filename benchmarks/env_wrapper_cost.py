"""What vlabench's env plugins add per step over the simulators themselves (no runner).

PushT (state only) against gym-pusht's ``PushTEnv(obs_type="state")``, Meta-World (state
only, ``reach-v3``) against the raw Meta-World env built as LeRobot builds it. Each pair resets
with the same seed and holds still; the two are stepped in lockstep, each step of one timed
next to the same step of the other (which goes first alternates), so both see the same state
of a machine whose speed drifts (on the 2-core VM of BENCHMARKS.md a fixed Python loop runs
at speeds up to 2x apart). With ``loop_cost.py`` (the runner's loop on a null env) this
splits vlabench's per-step cost into loop and env plugin, which ``rollout_overhead.py``'s
end-to-end ratios cannot resolve below the machine's noise.

    .venv/bin/python benchmarks/env_wrapper_cost.py --steps 300 --repeats 20
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

warnings.filterwarnings("ignore")

SEED = 1000
Stepper = tuple[Callable[[], Any], Callable[[Any], Any], Callable[[Any], np.ndarray]]
"""``(reset() -> obs, step(obs) -> obs, state(obs) -> array)`` of one env."""


def pusht_pair() -> tuple[Stepper, Stepper]:
    from gym_pusht.envs import PushTEnv as Raw
    from vlabench_plugins.pusht.env import PushTEnv

    from vlabench import api

    raw = Raw(obs_type="state")
    plugin = PushTEnv("Push the T-shaped block onto the T-shaped target.", image_size=None)
    return (
        (lambda: raw.reset(seed=SEED)[0],
         lambda obs: raw.step(np.asarray(obs[:2], np.float32))[0],
         lambda obs: obs[:2]),
        (lambda: plugin.reset(seed=SEED)[0],
         lambda obs: plugin.step(obs[api.STATE_KEY])[0],
         lambda obs: obs[api.STATE_KEY]),
    )  # fmt: skip


def metaworld_pair(task: str = "reach-v3") -> tuple[Stepper, Stepper]:
    from vlabench_plugins.metaworld.env import MetaWorldEnv, _build_inner

    from vlabench import api

    raw = _build_inner(task)
    plugin = MetaWorldEnv(task, "Reach the goal.", cameras=())
    hold = np.zeros(4, np.float32)

    def raw_reset() -> Any:
        raw.seed(SEED)
        return raw.reset()[0]

    return (
        (raw_reset, lambda obs: raw.step(hold)[0], lambda obs: obs[:4]),
        (lambda: plugin.reset(seed=SEED)[0], lambda obs: plugin.step(hold)[0],
         lambda obs: obs[api.STATE_KEY]),
    )  # fmt: skip


def lockstep(raw: Stepper, plugin: Stepper, steps: int, repeats: int) -> tuple[float, float]:
    """Seconds spent stepping the raw env and the plugin env, over the same steps."""
    clock = time.perf_counter
    spent = [0.0, 0.0]
    for r in range(repeats + 1):  # the first repeat warms up
        obs = [raw[0](), plugin[0]()]
        this = [0.0, 0.0]
        for i in range(steps):
            for side in (0, 1) if i % 2 else (1, 0):
                start = clock()
                obs[side] = (raw, plugin)[side][1](obs[side])
                this[side] += clock() - start
        if not np.allclose(raw[2](obs[0]), plugin[2](obs[1]), atol=1e-5):
            raise AssertionError("the two envs left the same trajectory: not the same work")
        if r:
            spent = [spent[0] + this[0], spent[1] + this[1]]
    return spent[0], spent[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    rows = []
    for env, pair in (("pusht", pusht_pair), ("metaworld reach-v3", metaworld_pair)):
        raw_s, plugin_s = lockstep(*pair(), args.steps, args.repeats)
        n = args.steps * args.repeats
        rows.append({
            "env": env, "steps": args.steps, "repeats": args.repeats,
            "raw_us": 1e6 * raw_s / n, "plugin_us": 1e6 * plugin_s / n,
            "added_us": 1e6 * (plugin_s - raw_s) / n, "ratio": plugin_s / raw_s,
        })  # fmt: skip
        row = rows[-1]
        print(f"{env}: {args.repeats} x {args.steps} steps in lockstep, raw "
              f"{row['raw_us']:.0f} us, plugin {row['plugin_us']:.0f} us per step "
              f"({row['added_us']:+.1f} us, ratio {row['ratio']:.3f})")  # fmt: skip
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
