"""Helpers shared by the reference policies: batch size and the env's action feature."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from vlabench import api


def action_dim(feature: api.Feature) -> int:
    """``A`` of an action feature of shape ``(A,)``."""
    if feature.shape is None or len(feature.shape) != 1:
        raise ValueError(f"expected an action of shape (A,), got {feature.describe()}")
    return int(feature.shape[0])


def action_feature(env: api.EnvInterface, policy: str) -> api.Feature:
    """A copy of the env's action feature, which must have a known flat shape ``(A,)``."""
    try:
        action_dim(env.action)
    except ValueError as exc:
        raise ValueError(f"{policy} policy: env {exc}") from None
    return dataclasses.replace(env.action)


def batch_size(batch: api.Batch) -> int:
    """Number of episodes in ``batch`` (from ``episode.index``, else the first array)."""
    if api.EPISODE_INDEX_KEY in batch:
        return len(batch[api.EPISODE_INDEX_KEY])
    for value in batch.values():
        if isinstance(value, np.ndarray | list | tuple):
            return len(value)
    raise ValueError("cannot tell the batch size: the batch has no arrays")


def episode_keys(batch: api.Batch, policy: str) -> tuple[np.ndarray, np.ndarray]:
    """``episode.index`` and ``episode.step`` of ``batch`` as int64 arrays ``(B,)``."""
    missing = [k for k in (api.EPISODE_INDEX_KEY, api.EPISODE_STEP_KEY) if k not in batch]
    if missing:
        raise ValueError(f"{policy} policy needs batch keys {missing}; got {sorted(batch)}")
    index = np.asarray(batch[api.EPISODE_INDEX_KEY], dtype=np.int64).reshape(-1)
    step = np.asarray(batch[api.EPISODE_STEP_KEY], dtype=np.int64).reshape(-1)
    return index, step


def option_int(options: Any, key: str, default: int, policy: str) -> int:
    """A non-negative int option."""
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{policy} policy option {key!r} must be an int >= 0, got {value!r}")
    return int(value)
