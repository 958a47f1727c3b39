"""The identity step that every adapter step refines, and parameter checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vlabench import api


class Step:
    """An adapter step that changes nothing; subclasses override what they change."""

    name = "identity"

    def observation_features(self, features: tuple[api.Feature, ...]) -> tuple[api.Feature, ...]:
        return features

    def action_feature(self, feature: api.Feature) -> api.Feature:
        return feature

    def observation(self, batch: api.Batch) -> api.Batch:
        return batch

    def action(self, actions: np.ndarray) -> np.ndarray:
        return actions

    def __repr__(self) -> str:
        return f"<adapter {self.name}>"


def check_params(
    step: str,
    params: Mapping[str, Any] | None,
    required: frozenset[str] | set[str],
    optional: frozenset[str] | set[str] = frozenset(),
) -> Mapping[str, Any]:
    """``params`` as a mapping with every required key and no unknown one."""
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise ValueError(f"adapter {step}: params must be a mapping, got {params!r}")
    missing = sorted(required - set(params))
    unknown = sorted(set(params) - required - optional)
    if missing:
        raise ValueError(f"adapter {step}: missing param(s) {missing}")
    if unknown:
        known = sorted(required | optional)
        raise ValueError(f"adapter {step}: unknown param(s) {unknown}; expected {known}")
    return params


def feature_names(features: Sequence[api.Feature]) -> list[str]:
    return [f.name for f in features]
