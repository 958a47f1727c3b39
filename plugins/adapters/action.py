"""``rescale_action``: map the policy's action range linearly onto the env's."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vlabench import api

from ._base import Step, check_params


def _range(step: str, key: str, value: Any) -> tuple[np.ndarray, np.ndarray]:
    """``[low, high]`` (each a number or a list of numbers) as two 1-d float64 arrays."""
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise ValueError(f"adapter {step}: {key!r} must be [low, high], got {value!r}")
    try:
        low, high = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"adapter {step}: {key!r} must hold numbers, got {value!r}") from None
    if low.ndim != 1 or high.ndim != 1:
        raise ValueError(f"adapter {step}: {key!r} bounds must be numbers or flat lists")
    if low.size != high.size and 1 not in (low.size, high.size):
        raise ValueError(f"adapter {step}: {key!r} low and high have different lengths")
    low, high = np.broadcast_arrays(low, high)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ValueError(f"adapter {step}: {key!r} bounds must be finite, got {value!r}")
    return low.copy(), high.copy()


class RescaleAction(Step):
    """``to_low + (a - from_low) / (from_high - from_low) * (to_high - to_low)`` per entry.

    Params: ``from`` (the policy's range) and ``to`` (the env's), each ``[low, high]`` with
    scalars or per-entry lists; optional ``space``, the env-side space tag of the result.
    """

    name = "rescale_action"

    def __init__(self, params: Mapping[str, Any]) -> None:
        params = check_params(self.name, params, {"from", "to"}, {"space"})
        self.from_low, self.from_high = _range(self.name, "from", params["from"])
        self.to_low, self.to_high = _range(self.name, "to", params["to"])
        if np.any(self.from_low == self.from_high):
            raise ValueError(f"adapter {self.name}: 'from' has an empty range (low == high)")
        sizes = {self.from_low.size, self.to_low.size} - {1}
        if len(sizes) > 1:
            raise ValueError(f"adapter {self.name}: 'from' and 'to' have different lengths")
        space = params.get("space")
        if space is not None and (not isinstance(space, str) or not space):
            raise ValueError(f"adapter {self.name}: 'space' must be a non-empty string")
        self.space: str | None = space
        self.size = sizes.pop() if sizes else 1

    def _dim(self, dim: int, where: str) -> None:
        if self.size not in (1, dim):
            raise ValueError(
                f"adapter {self.name}: 'from'/'to' have {self.size} entries, {where} has {dim}"
            )

    def action_feature(self, feature: api.Feature) -> api.Feature:
        if feature.shape is None or len(feature.shape) != 1:
            raise ValueError(f"adapter {self.name}: needs an action (A,), got {feature.describe()}")
        dim = feature.shape[0]
        self._dim(dim, f"the policy action {feature.describe()}")
        declared = (feature.low, feature.high)
        if all(b is not None and np.all(np.isfinite(b)) for b in declared):
            low, high = (np.broadcast_to(np.asarray(b, np.float64), dim) for b in declared)
            expected = (np.broadcast_to(self.from_low, dim), np.broadcast_to(self.from_high, dim))
            if not (np.allclose(low, expected[0]) and np.allclose(high, expected[1])):
                raise ValueError(
                    f"adapter {self.name}: 'from' {[expected[0].tolist(), expected[1].tolist()]}"
                    f" differs from the policy action bounds {[low.tolist(), high.tolist()]}"
                )
        to_low, to_high = np.broadcast_to(self.to_low, dim), np.broadcast_to(self.to_high, dim)
        return dataclasses.replace(
            feature,
            low=tuple(float(x) for x in to_low),
            high=tuple(float(x) for x in to_high),
            space=self.space if self.space is not None else feature.space,
        )

    def action(self, actions: np.ndarray) -> np.ndarray:
        actions = np.asarray(actions)
        self._dim(actions.shape[-1], f"the action array {actions.shape}")
        scale = (self.to_high - self.to_low) / (self.from_high - self.from_low)
        out = self.to_low + (actions.astype(np.float64) - self.from_low) * scale
        return out.astype(np.float32)
