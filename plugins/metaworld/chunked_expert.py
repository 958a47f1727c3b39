"""``metaworld-expert-chunked``: Meta-World's scripted expert as an action-chunking policy.

The scripted policies are closed-loop controllers: one action per observation. To study
chunked inference (sync vs async, latency) with a policy whose chunks are known to be good,
this type plans ``chunk_size`` actions from one observation by running the expert forward in
a private copy of the task, put in the env's simulator state (the env emits it as
``observation.sim_state`` when a policy asks for it). Its chunk is what the closed-loop
expert would do over the next ``chunk_size`` steps if nothing disturbed it: a perfect world
model, so any loss under latency comes from the inference schedule, not from prediction.

Options: ``chunk_size`` (default 20) and ``n_action_steps`` (actions executed per chunk in
the sync modes, default ``chunk_size``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from vlabench import api

from .expert import ACTION as EXPERT_ACTION
from .expert import NAME as EXPERT_NAME
from .expert import MetaWorldExpert
from .features import (
    ENV_STATE_KEY,
    ENV_STATE_SPACE,
    SIM_STATE_KEY,
    SIM_STATE_SPACE,
    TASK_NAME_KEY,
    TASK_NAME_SPACE,
    headless_gl,
)

NAME = "metaworld-expert-chunked"
INPUTS = (
    api.Feature(ENV_STATE_KEY, "state", (39,), "float32", ENV_STATE_SPACE),
    api.Feature(SIM_STATE_KEY, "state", None, "float64", SIM_STATE_SPACE),
    api.Feature(TASK_NAME_KEY, "state", None, "str", TASK_NAME_SPACE),
)
CURRENT = slice(0, 18)
"""The current-frame part of the 39-d observation (hand, gripper, objects)."""


def _sizes(options: dict[str, Any]) -> tuple[int, int]:
    chunk = int(options.get("chunk_size", 20))
    steps = int(options.get("n_action_steps", chunk))
    if chunk < 1 or not 1 <= steps <= chunk:
        raise ValueError(
            f"{NAME}: need chunk_size >= 1 and 1 <= n_action_steps <= chunk_size, "
            f"got chunk_size={chunk}, n_action_steps={steps}"
        )
    return chunk, steps


def describe(request: api.PolicyRequest) -> api.PolicyInterface:
    """The expert's action, in chunks; reads the 39-d state, the sim state and the task."""
    chunk, steps = _sizes(dict(request.options))
    return api.PolicyInterface(
        inputs=INPUTS, action=EXPERT_ACTION, chunk_size=chunk, n_action_steps=steps
    )


class ChunkedExpert:
    """Plans each row's chunk by rolling the expert forward in a private copy of its task."""

    def __init__(self, chunk_size: int, n_action_steps: int) -> None:
        self.interface = api.PolicyInterface(
            inputs=INPUTS,
            action=EXPERT_ACTION,
            chunk_size=chunk_size,
            n_action_steps=n_action_steps,
        )
        self.expert = MetaWorldExpert()
        self._models: dict[str, Any] = {}

    def reset(self) -> None:
        """Stateless (the private copies are overwritten at every call)."""

    def _model(self, task: str) -> Any:
        if task not in self._models:
            headless_gl()
            from .env import _build_inner

            inner = _build_inner(task)
            inner.reset()
            self._models[task] = inner
        return self._models[task]

    def _plan(self, obs: np.ndarray, state: np.ndarray, task: str) -> np.ndarray:
        from .env import set_sim_state

        model = self._model(task)
        set_sim_state(model, state, obs[CURRENT])
        policy = self.expert._policy(task)
        chunk = np.empty((self.interface.chunk_size, 4), dtype=np.float32)
        with warnings.catch_warnings():  # "Constant(s) may be too high": expected, clipped
            warnings.simplefilter("ignore", UserWarning)
            for k in range(self.interface.chunk_size):
                chunk[k] = np.clip(policy.get_action(obs), -1.0, 1.0)
                if k + 1 < self.interface.chunk_size:
                    obs, *_ = model.step(chunk[k])
        return chunk

    def predict_action_chunk(self, batch: api.Batch) -> np.ndarray:
        """``(B, chunk_size, 4)`` float32."""
        for key in (ENV_STATE_KEY, SIM_STATE_KEY, TASK_NAME_KEY):
            if key not in batch:
                raise ValueError(f"{NAME} needs batch key {key!r}; got {sorted(batch)}")
        observations = np.asarray(batch[ENV_STATE_KEY], dtype=np.float64)
        states = np.asarray(batch[SIM_STATE_KEY], dtype=np.float64)
        names = np.asarray(batch[TASK_NAME_KEY])
        if observations.ndim == 3:  # n_obs_steps > 1: the latest step
            observations, states, names = observations[:, -1], states[:, -1], names[:, -1]
        return np.stack(
            [
                self._plan(obs, state, str(task))
                for obs, state, task in zip(observations, states, names, strict=True)
            ]
        )

    def select_action(self, batch: api.Batch) -> np.ndarray:
        """The first action of the chunk (the runner uses :meth:`predict_action_chunk`)."""
        return self.predict_action_chunk(batch)[:, 0]


def load(request: api.PolicyRequest) -> ChunkedExpert:
    return ChunkedExpert(*_sizes(dict(request.options)))


SPEC = api.PolicySpec(
    name=NAME,
    description=f"{EXPERT_NAME} planning chunks in a private copy of the simulator "
    "(a perfect-model chunking policy, for latency / async-inference studies).",
    load=load,
    describe=describe,
    requires=("metaworld",),
    install_hint="pip install 'vlabench[metaworld]'",
    packages=("metaworld",),
)
