"""An example third-party plugin: the `sweep` policy.

It sweeps every action dimension through its bounds on a sine, one period per
``options["period"]`` steps (default 40). It adopts the env's action feature, so it runs on
any env; on PushT it drags the pusher across the table.
"""

from __future__ import annotations

import numpy as np

from vlabench import api, hookimpl


class SweepPolicy:
    """Stateless: the action depends only on the episode step from the batch."""

    def __init__(self, request: api.PolicyRequest) -> None:
        self.interface = describe(request)
        action = request.env.action
        self.low = np.asarray(action.low if action.low is not None else -1.0, np.float32)
        self.high = np.asarray(action.high if action.high is not None else 1.0, np.float32)
        self.period = float(request.options.get("period", 40))
        self.dim = action.shape[-1] if action.shape else 1

    def reset(self) -> None:
        pass

    def select_action(self, batch: api.Batch) -> np.ndarray:
        steps = np.asarray(batch[api.EPISODE_STEP_KEY], np.float32)[:, None]
        phase = 2 * np.pi * steps / self.period + np.arange(self.dim) * np.pi / 2
        unit = 0.5 + 0.4 * np.sin(phase)  # stays inside the bounds
        return (self.low + unit * (self.high - self.low)).astype(np.float32)


def describe(request: api.PolicyRequest) -> api.PolicyInterface:
    return api.PolicyInterface(inputs=(), action=request.env.action)


@hookimpl
def vlabench_policies() -> list[api.PolicySpec]:
    return [
        api.PolicySpec(
            name="sweep",
            description="Sweeps each action dimension through its bounds (example plugin).",
            load=SweepPolicy,
            describe=describe,
        )
    ]
