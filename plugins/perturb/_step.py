"""What every perturbation step shares: params checks, per-episode seeding, batch rows.

A step is an adapter (identity on features) whose randomness is drawn from the episode's own
seed (``seed + episode.index``), the axis name and the step, never from a stream shared
between episodes: an episode's perturbation does not depend on batching, on other episodes
or on how many times the policy was asked before.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from vlabench import api

SINGLE_CAMERA_KEY = "observation.image"
COMMON = frozenset({"seed", "axis"})
"""Params the planner adds to every perturbation step."""


def number(step: str, params: Mapping[str, Any], key: str, default: float, low: float = 0.0,
           high: float = float("inf")) -> float:
    """``params[key]`` as a float in ``[low, high]``."""
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"perturbation {step}: {key!r} must be a number, got {value!r}")
    if not low <= float(value) <= high:
        raise ValueError(f"perturbation {step}: {key!r} must be in [{low}, {high}], got {value}")
    return float(value)


def is_image_key(key: str) -> bool:
    return key.startswith(api.IMAGE_PREFIX) or key == SINGLE_CAMERA_KEY


def is_data_key(key: str) -> bool:
    """Observation keys (not the runner's ``episode.*`` bookkeeping)."""
    return key not in (api.EPISODE_INDEX_KEY, api.EPISODE_STEP_KEY)


class PerturbStep:
    """An identity adapter with the episode-seeding every perturbation uses."""

    name = "perturb"
    allowed: frozenset[str] = frozenset()

    def __init__(self, params: Mapping[str, Any] | None) -> None:
        params = dict(params or {})
        unknown = sorted(set(params) - self.allowed - COMMON)
        if unknown:
            known = sorted(self.allowed)
            raise ValueError(f"perturbation {self.name}: unknown param(s) {unknown}; known {known}")
        seed = params.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"perturbation {self.name}: 'seed' must be an int, got {seed!r}")
        self.params = params
        self.seed = seed
        self.axis = str(params.get("axis", self.name))
        self._axis_code = zlib.crc32(self.axis.encode())

    def rng(self, episode: int, step: int, salt: int = 0) -> np.random.Generator:
        """The generator of ``(episode, step)``: episode seed ``seed + episode``, this axis."""
        entropy = [(self.seed + int(episode)) & 0xFFFFFFFF, self._axis_code, int(step), salt]
        return np.random.default_rng(entropy)

    @staticmethod
    def rows(batch: api.Batch) -> tuple[np.ndarray, np.ndarray]:
        """``(episode indices, steps)`` of the batch's rows."""
        return (np.asarray(batch[api.EPISODE_INDEX_KEY]), np.asarray(batch[api.EPISODE_STEP_KEY]))

    def observation_features(self, features: tuple[api.Feature, ...]) -> tuple[api.Feature, ...]:
        return features

    def action_feature(self, feature: api.Feature) -> api.Feature:
        return feature

    def observation(self, batch: api.Batch) -> api.Batch:
        return batch

    def action(self, actions: np.ndarray) -> np.ndarray:
        return actions

    def __repr__(self) -> str:
        return f"<perturbation {self.name} {self.params}>"
