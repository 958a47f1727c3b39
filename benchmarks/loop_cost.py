"""The rollout loop's own cost per step: ``vlabench.rollout.Rollout`` on an env that does nothing.

The null env returns a prebuilt observation (a 2-d state, optionally a 96x96 image) and
never ends an episode, so every microsecond measured is the loop's: batching the
observation, the policy call of a hold-position policy, chunk bookkeeping, clipping, the
step accounting. Medians of ``--repeats``; compare with a simulator's step time (PushT
~0.8 ms, Meta-World ~1 ms without rendering on this machine) to see the overhead share.

    .venv/bin/python benchmarks/loop_cost.py --steps 5000 --batch-size 1 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np


class NullEnv:
    """Returns the same observation forever; actions are ignored."""

    def __init__(self, image: bool) -> None:
        self.obs: dict[str, Any] = {"observation.state": np.zeros(2, np.float32), "task": "t"}
        if image:
            self.obs["observation.images.top"] = np.zeros((96, 96, 3), np.uint8)

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[dict, dict]:
        return self.obs, {}

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        return self.obs, 0.0, False, False, {"is_success": False}

    def close(self) -> None:
        pass


class HoldPolicy:
    """Emits the observed state (PushT's noop), ``(B, A)``."""

    def __init__(self) -> None:
        from vlabench import api

        state = api.Feature("observation.state", "state", (2,), "float32", "pixel_xy_512")
        action = api.Feature("action", "action", (2,), "float32", "pixel_xy_512")
        self.interface = api.PolicyInterface(inputs=(state,), action=action)

    def reset(self) -> None:
        pass

    def select_action(self, batch: dict[str, Any]) -> np.ndarray:
        return np.asarray(batch["observation.state"], np.float32).copy()


def per_step_us(steps: int, batch_size: int, image: bool, repeats: int) -> float:
    """Median microseconds per env step of the loop (episodes of ``steps`` steps)."""
    from vlabench.runtime.rollout import EpisodeSpec, Rollout, RolloutSettings

    settings = RolloutSettings(
        max_steps=steps, action_low=np.zeros(2, np.float32),
        action_high=np.full(2, 512.0, np.float32), action_dim=2, batch_size=batch_size,
    )  # fmt: skip
    episodes = [EpisodeSpec("t", i, 1000 + i) for i in range(batch_size)]
    times = []
    for _ in range(repeats + 1):
        rollout = Rollout(lambda: NullEnv(image), HoldPolicy(), settings, lambda record: None)
        start = time.perf_counter()
        rollout.run(episodes)
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times[1:]) / (steps * batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for b in args.batch_size:
        for image in (False, True):
            us = per_step_us(args.steps, b, image, args.repeats)
            rows.append({"batch_size": b, "image": image, "us_per_step": us})
            print(f"batch {b}, {'state + 96x96 image' if image else 'state only':<19} "
                  f"{us:7.1f} us per env step")  # fmt: skip
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
