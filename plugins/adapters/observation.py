"""Observation-key steps: ``rename_observation`` and ``set_space``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from vlabench import api

from ._base import Step, check_params, feature_names


class RenameObservation(Step):
    """Rename observation keys: ``map: {env_key: policy_key}``."""

    name = "rename_observation"

    def __init__(self, params: Mapping[str, Any]) -> None:
        mapping = check_params(self.name, params, {"map"})["map"]
        if not isinstance(mapping, Mapping) or not mapping:
            raise ValueError(f"adapter {self.name}: 'map' must be a non-empty mapping")
        for key, value in mapping.items():
            if not (isinstance(key, str) and key and isinstance(value, str) and value):
                raise ValueError(
                    f"adapter {self.name}: 'map' entries must be non-empty strings, "
                    f"got {key!r}: {value!r}"
                )
        if len(set(mapping.values())) != len(mapping):
            raise ValueError(f"adapter {self.name}: 'map' renames two keys to the same name")
        self.map: dict[str, str] = dict(mapping)

    def _check(self, names: list[str], what: str) -> None:
        missing = [key for key in self.map if key not in names]
        if missing:
            raise ValueError(f"adapter {self.name}: {what} has no {missing}; it has {names}")
        kept = set(names) - set(self.map)
        clash = sorted(kept & set(self.map.values()))
        if clash:
            raise ValueError(f"adapter {self.name}: renaming onto existing key(s) {clash}")

    def observation_features(self, features: tuple[api.Feature, ...]) -> tuple[api.Feature, ...]:
        self._check(feature_names(features), "the env")
        return tuple(
            dataclasses.replace(f, name=self.map[f.name]) if f.name in self.map else f
            for f in features
        )

    def observation(self, batch: api.Batch) -> api.Batch:
        self._check(list(batch), "the batch")
        return {self.map.get(key, key): value for key, value in batch.items()}


class SetSpace(Step):
    """Declare what a feature's numbers mean: params ``feature`` and ``space``.

    For an observation feature, ``space`` is the policy's tag that the env's numbers already
    follow. For ``feature: action``, ``space`` is the env's tag that the policy's actions
    already follow. The data pass through unchanged.
    """

    name = "set_space"

    def __init__(self, params: Mapping[str, Any]) -> None:
        params = check_params(self.name, params, {"feature", "space"})
        for key in ("feature", "space"):
            if not isinstance(params[key], str) or not params[key]:
                raise ValueError(f"adapter {self.name}: {key!r} must be a non-empty string")
        self.feature: str = params["feature"]
        self.space: str = params["space"]

    def observation_features(self, features: tuple[api.Feature, ...]) -> tuple[api.Feature, ...]:
        if self.feature == api.ACTION_KEY:
            return features
        names = feature_names(features)
        if self.feature not in names:
            raise ValueError(
                f"adapter {self.name}: the env has no {self.feature!r}; it has {names}"
            )
        return tuple(
            dataclasses.replace(f, space=self.space) if f.name == self.feature else f
            for f in features
        )

    def action_feature(self, feature: api.Feature) -> api.Feature:
        if self.feature != api.ACTION_KEY:
            return feature
        return dataclasses.replace(feature, space=self.space)
