"""Sensor and actuator noise: ``state_noise`` and ``action_noise`` (Gaussian, per step)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vlabench import api

from ._step import PerturbStep, number


class StateNoise(PerturbStep):
    """Adds N(0, ``std``^2) to state vectors: params ``std`` and ``keys`` (default
    ``[observation.state]``; keys the batch lacks are skipped), a new draw every step."""

    name = "state_noise"
    allowed = frozenset({"std", "keys"})

    def __init__(self, params: Mapping[str, Any] | None) -> None:
        super().__init__(params)
        self.std = number(self.name, self.params, "std", 0.0)
        keys = self.params.get("keys", [api.STATE_KEY])
        keys = [keys] if isinstance(keys, str) else keys
        if not isinstance(keys, list | tuple) or not all(isinstance(k, str) for k in keys):
            raise ValueError(f"perturbation {self.name}: 'keys' must be a list of keys")
        self.keys = tuple(keys)

    def observation(self, batch: api.Batch) -> api.Batch:
        present = [k for k in self.keys if k in batch]
        if self.std == 0.0 or not present:
            return batch
        out = dict(batch)
        rows = list(zip(*self.rows(batch), strict=True))
        for salt, key in enumerate(present):
            values = np.asarray(batch[key])
            noisy = values.astype(np.float64, copy=True)
            for b, (episode, step) in enumerate(rows):
                noisy[b] += self.rng(episode, step, salt).normal(0.0, self.std, values.shape[1:])
            out[key] = noisy.astype(values.dtype)
        return out


class ActionNoise(PerturbStep):
    """Adds N(0, ``std``^2) to every action the env receives (before clipping to its bounds).

    The rows of a chunk ``(B*H, A)`` belong to the episodes of the batch the policy was just
    shown (row ``b*H + j`` is step ``t + j`` of episode ``b``), so each executed action has
    its own seeded draw whatever the chunking.
    """

    name = "action_noise"
    allowed = frozenset({"std"})

    def __init__(self, params: Mapping[str, Any] | None) -> None:
        super().__init__(params)
        self.std = number(self.name, self.params, "std", 0.0)
        self._rows: tuple[np.ndarray, np.ndarray] | None = None

    def observation(self, batch: api.Batch) -> api.Batch:
        self._rows = self.rows(batch)
        return batch

    def action(self, actions: np.ndarray) -> np.ndarray:
        if self.std == 0.0:
            return actions
        if self._rows is None:
            raise ValueError("perturbation action_noise: an action before any observation")
        episodes, steps = self._rows
        actions = np.asarray(actions)
        if actions.shape[0] % len(episodes):
            raise ValueError(
                f"perturbation action_noise: {actions.shape[0]} actions for {len(episodes)} "
                "episodes"
            )
        horizon = actions.shape[0] // len(episodes)
        noisy = actions.astype(np.float64, copy=True)
        for b, (episode, step) in enumerate(zip(episodes, steps, strict=True)):
            for j in range(horizon):
                noisy[b * horizon + j] += self.rng(episode, step + j, salt=1).normal(
                    0.0, self.std, actions.shape[1:]
                )
        return noisy.astype(actions.dtype)
