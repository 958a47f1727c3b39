"""``random``: uniform actions in the env bounds, deterministic per (seed, episode, step)."""

from __future__ import annotations

import numpy as np

from vlabench import api

from ._common import action_dim, action_feature, episode_keys, option_int


def bounds(action: api.Feature) -> tuple[np.ndarray, np.ndarray]:
    """``(A,)`` low and high of ``action``; entries not bounded on both sides get [-1, 1]."""
    dim = action_dim(action)
    nan = np.full(dim, np.nan)
    low = nan if action.low is None else np.broadcast_to(np.asarray(action.low, float), dim)
    high = nan if action.high is None else np.broadcast_to(np.asarray(action.high, float), dim)
    bounded = np.isfinite(low) & np.isfinite(high)
    if np.any(bounded & (low > high)):
        raise ValueError(f"random policy: env action {action.describe()} has low > high")
    return np.where(bounded, low, -1.0), np.where(bounded, high, 1.0)


def describe(request: api.PolicyRequest) -> api.PolicyInterface:
    """Reads no observation; acts in the env's action feature."""
    option_int(request.options, "seed", 0, "random")
    action = action_feature(request.env, "random")
    bounds(action)
    return api.PolicyInterface(inputs=(), action=action)


class RandomPolicy:
    """``np.random.default_rng([seed, episode_index, step])`` per row: batch-independent."""

    def __init__(self, interface: api.PolicyInterface, seed: int) -> None:
        self.interface = interface
        self.seed = seed
        self.low, self.high = bounds(interface.action)

    def reset(self) -> None:
        """Stateless."""

    def select_action(self, batch: api.Batch) -> np.ndarray:
        """``(B, A)`` float32 uniform in ``[low, high]``."""
        index, step = episode_keys(batch, "random")
        rows = [
            np.random.default_rng([self.seed, int(i), int(t)]).uniform(self.low, self.high)
            for i, t in zip(index, step, strict=True)
        ]
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), self.low.size)


def load(request: api.PolicyRequest) -> RandomPolicy:
    """Build the policy; option ``seed`` (int >= 0, default 0)."""
    return RandomPolicy(describe(request), option_int(request.options, "seed", 0, "random"))


SPEC = api.PolicySpec(
    name="random",
    description="Uniform random actions in the env's action bounds (option: seed).",
    load=load,
    describe=describe,
)
