"""``select_action_dims``: send only some of the policy's action dimensions to the env."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from vlabench import api

from ._base import Step, check_params


class SelectActionDims(Step):
    """Keep the policy action entries at ``indices`` (in that order), e.g. ``[0, 1]``.

    Optional ``space``: the env-side space tag of the selected entries (what they mean once
    selected); without it the policy's tag is kept.
    """

    name = "select_action_dims"

    def __init__(self, params: Mapping[str, Any]) -> None:
        params = check_params(self.name, params, {"indices"}, {"space"})
        indices = params["indices"]
        if (
            not isinstance(indices, list | tuple)
            or not indices
            or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in indices)
        ):
            raise ValueError(f"adapter {self.name}: 'indices' must be a list of ints >= 0")
        space = params.get("space")
        if space is not None and (not isinstance(space, str) or not space):
            raise ValueError(f"adapter {self.name}: 'space' must be a non-empty string")
        self.indices = np.asarray(indices, dtype=np.int64)
        self.space: str | None = space

    def _check(self, dim: int, where: str) -> None:
        if int(self.indices.max()) >= dim:
            raise ValueError(
                f"adapter {self.name}: index {int(self.indices.max())} out of range for {where} "
                f"with {dim} entries"
            )

    def action_feature(self, feature: api.Feature) -> api.Feature:
        if feature.shape is None or len(feature.shape) != 1:
            raise ValueError(f"adapter {self.name}: needs an action (A,), got {feature.describe()}")
        self._check(feature.shape[0], f"the policy action {feature.describe()}")

        def pick(bounds: tuple[float, ...] | None) -> tuple[float, ...] | None:
            if bounds is None:
                return None
            values = np.broadcast_to(np.asarray(bounds, float), feature.shape)
            return tuple(float(values[i]) for i in self.indices)

        return dataclasses.replace(
            feature,
            shape=(len(self.indices),),
            low=pick(feature.low),
            high=pick(feature.high),
            space=self.space if self.space is not None else feature.space,
        )

    def action(self, actions: np.ndarray) -> np.ndarray:
        actions = np.asarray(actions)
        self._check(actions.shape[-1], f"the action array {actions.shape}")
        return actions[..., self.indices]
