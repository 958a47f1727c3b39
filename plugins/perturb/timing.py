"""Stale sensing: ``observation_delay`` (k steps late) and ``dropped_frames`` (stale at random).

Both keep, per episode, the observations the policy was shown; they see the env only when
the policy is asked (every step for a policy without chunks; at each new chunk otherwise, so a
chunked policy gets the newest observation it was shown that is at least ``frames`` steps old).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vlabench import api

from ._step import PerturbStep, is_data_key, number

KEPT_EPISODES = 64
"""Episodes whose frames are kept (batches hold far fewer; finished ones are dropped)."""


def _forget_old(memory: dict[int, Any]) -> None:
    while len(memory) > KEPT_EPISODES:
        memory.pop(next(iter(memory)))


def _row(batch: api.Batch, b: int) -> dict[str, Any]:
    return {k: (v[b] if k == api.TASK_KEY else np.array(v[b])) for k, v in batch.items()
            if is_data_key(k)}


def _replace_rows(batch: api.Batch, rows: dict[int, dict[str, Any]]) -> api.Batch:
    """``batch`` with row ``b`` of every observation key taken from ``rows[b]``."""
    if not rows:
        return batch
    out = dict(batch)
    for key, value in batch.items():
        if not is_data_key(key):
            continue
        if key == api.TASK_KEY:
            out[key] = [rows[b][key] if b in rows else v for b, v in enumerate(value)]
            continue
        array = np.array(value)
        for b, row in rows.items():
            array[b] = row[key]
        out[key] = array
    return out


class ObservationDelay(PerturbStep):
    """The policy sees the observation of ``frames`` steps ago (the first one until then)."""

    name = "observation_delay"
    allowed = frozenset({"frames"})

    def __init__(self, params: Mapping[str, Any] | None) -> None:
        super().__init__(params)
        frames = self.params.get("frames", 0)
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 0:
            raise ValueError(f"perturbation {self.name}: 'frames' must be an int >= 0")
        self.frames = frames
        self._seen: dict[int, list[tuple[int, dict[str, Any]]]] = {}

    def observation(self, batch: api.Batch) -> api.Batch:
        if self.frames == 0:
            return batch
        delayed: dict[int, dict[str, Any]] = {}
        for b, (episode, step) in enumerate(zip(*self.rows(batch), strict=True)):
            episode, step = int(episode), int(step)
            seen = self._seen.get(episode)
            if seen is None or step == 0 or seen[-1][0] >= step:
                self._seen.pop(episode, None)  # a new episode (or the same index again)
                seen = self._seen[episode] = []
                _forget_old(self._seen)
            seen.append((step, _row(batch, b)))
            old = [i for i, (t, _) in enumerate(seen) if t <= step - self.frames]
            if old:
                del seen[: old[-1]]  # keep the newest old-enough one and what follows
            if seen[0][0] != step:
                delayed[b] = seen[0][1]
        return _replace_rows(batch, delayed)


class DroppedFrames(PerturbStep):
    """Each step's frame is lost with probability ``p``: the policy sees the last one it got."""

    name = "dropped_frames"
    allowed = frozenset({"p"})

    def __init__(self, params: Mapping[str, Any] | None) -> None:
        super().__init__(params)
        self.p = number(self.name, self.params, "p", 0.0, high=1.0)
        self._last: dict[int, tuple[int, dict[str, Any]]] = {}

    def observation(self, batch: api.Batch) -> api.Batch:
        if self.p == 0.0:
            return batch
        stale: dict[int, dict[str, Any]] = {}
        for b, (episode, step) in enumerate(zip(*self.rows(batch), strict=True)):
            episode, step = int(episode), int(step)
            last = self._last.get(episode)
            if last is not None and last[0] < step and self.rng(episode, step).random() < self.p:
                stale[b] = last[1]
                self._last[episode] = (step, last[1])
            else:
                self._last.pop(episode, None)
                self._last[episode] = (step, _row(batch, b))
                _forget_old(self._last)
        return _replace_rows(batch, stale)
