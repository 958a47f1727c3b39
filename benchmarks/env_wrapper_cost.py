"""What the PushT env plugin adds per step over gym-pusht itself (no rendering, no runner).

Both envs reset with the same seed and hold the agent's position; they are stepped in
lockstep, each step of one timed next to the same step of the other (which goes first
alternates), so both see the same state of a machine whose speed drifts (on the 2-core VM
used for BENCHMARKS.md a fixed Python loop runs at two speeds, 2x apart). Together with
``loop_cost.py`` (the runner's loop on a null env) this splits vlabench's per-step cost on a
state-only PushT step into loop and env wrapper, which ``rollout_overhead.py``'s end-to-end
ratio cannot resolve below the machine's noise.

    .venv/bin/python benchmarks/env_wrapper_cost.py --steps 300 --repeats 20
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")

SEED = 1000


def lockstep(steps: int, repeats: int) -> dict[str, float]:
    """Seconds spent in ``step`` by gym-pusht and by the plugin, over the same steps."""
    from gym_pusht.envs import PushTEnv as Raw
    from vlabench_plugins.pusht.env import PushTEnv

    from vlabench import api

    raw = Raw(obs_type="state")
    plugin = PushTEnv("Push the T-shaped block onto the T-shaped target.", image_size=None)
    spent = {"gym-pusht": 0.0, "vlabench env": 0.0}
    clock = time.perf_counter
    for r in range(repeats + 1):  # the first repeat warms up
        raw_obs, _ = raw.reset(seed=SEED)
        obs, _ = plugin.reset(seed=SEED)
        raw_s = plugin_s = 0.0
        for i in range(steps):
            action = np.asarray(raw_obs[:2], np.float32)
            for which in ((0, 1) if i % 2 else (1, 0)):
                start = clock()
                if which == 0:
                    raw_obs, *_ = raw.step(action)
                    raw_s += clock() - start
                else:
                    obs, *_ = plugin.step(obs[api.STATE_KEY])
                    plugin_s += clock() - start
        if not np.allclose(obs[api.STATE_KEY], raw_obs[:2]):
            raise AssertionError("the two envs left the same trajectory: not the same work")
        if r:
            spent["gym-pusht"] += raw_s
            spent["vlabench env"] += plugin_s
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    spent = lockstep(args.steps, args.repeats)
    us = {k: 1e6 * v / (args.steps * args.repeats) for k, v in spent.items()}
    row = {
        "steps": args.steps,
        "repeats": args.repeats,
        "us_per_step": us,
        "added_us_per_step": us["vlabench env"] - us["gym-pusht"],
        "ratio": us["vlabench env"] / us["gym-pusht"],
    }
    print(
        f"PushT state step, {args.repeats} x {args.steps} steps in lockstep: gym-pusht "
        f"{us['gym-pusht']:.0f} us, vlabench env {us['vlabench env']:.0f} us "
        f"({row['added_us_per_step']:+.1f} us, ratio {row['ratio']:.3f})"
    )
    print(json.dumps(row))


if __name__ == "__main__":
    main()
