"""``metaworld-expert``: Meta-World's own scripted policy for each task (``metaworld.policies``).

The policy reads two env features: ``observation.environment_state`` (the 39-d observation
the scripted policies are written for) and ``task_name``, which says which scripted policy
to run for each row of the batch. The task comes from the env, not from the policy's load
request: the runner loads one policy per (preset, env interface) and reuses it across the
tasks of a suite, and instructions are not unique (push-v3 and push-back-v3 share theirs).
The scripted policies are stateless, so one instance per task serves every episode.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from vlabench import api

from .features import (
    ACTION_SPACE,
    ENV_STATE_KEY,
    ENV_STATE_SPACE,
    TASK_NAME_KEY,
    TASK_NAME_SPACE,
    headless_gl,
)

NAME = "metaworld-expert"

INPUTS = (
    api.Feature(ENV_STATE_KEY, "state", (39,), "float32", ENV_STATE_SPACE),
    api.Feature(TASK_NAME_KEY, "state", None, "str", TASK_NAME_SPACE),
)
ACTION = api.Feature(
    api.ACTION_KEY, "action", (4,), "float32", ACTION_SPACE, (-1.0,) * 4, (1.0,) * 4
)


def describe(request: api.PolicyRequest) -> api.PolicyInterface:
    """Fixed features: the 39-d state and the task name in, a 4-d Meta-World action out."""
    return api.PolicyInterface(inputs=INPUTS, action=ACTION)


class MetaWorldExpert:
    """Dispatches each row of the batch to the scripted policy of its task."""

    def __init__(self) -> None:
        self.interface = describe(None)  # type: ignore[arg-type]
        self._policies: dict[str, Any] = {}

    def reset(self) -> None:
        """Stateless (Meta-World's scripted policies keep no state)."""

    def _policy(self, task: str) -> Any:
        if task not in self._policies:
            headless_gl()
            from metaworld.policies import ENV_POLICY_MAP

            if task not in ENV_POLICY_MAP:
                raise ValueError(
                    f"{NAME}: no scripted policy for task {task!r} in metaworld.policies"
                )
            self._policies[task] = ENV_POLICY_MAP[task]()
        return self._policies[task]

    def select_action(self, batch: api.Batch) -> np.ndarray:
        """``(B, 4)`` float32 actions, one scripted-policy call per row."""
        for key in (ENV_STATE_KEY, TASK_NAME_KEY):
            if key not in batch:
                raise ValueError(f"{NAME} needs batch key {key!r}; got {sorted(batch)}")
        states = np.asarray(batch[ENV_STATE_KEY], dtype=np.float64)
        names = np.asarray(batch[TASK_NAME_KEY])
        if states.ndim == 3:  # (B, T, 39) with n_obs_steps > 1: the latest step
            states, names = states[:, -1], names[:, -1]
        if states.ndim != 2 or states.shape[1] != 39 or names.shape != states.shape[:1]:
            raise ValueError(
                f"{NAME} expects {ENV_STATE_KEY} of shape (B, 39) and {TASK_NAME_KEY} of shape "
                f"(B,), got {states.shape} and {names.shape}"
            )
        actions = np.empty((len(states), 4), dtype=np.float32)
        with warnings.catch_warnings():  # "Constant(s) may be too high": expected, clipped
            warnings.simplefilter("ignore", UserWarning)
            for i, (state, task) in enumerate(zip(states, names, strict=True)):
                actions[i] = self._policy(str(task)).get_action(state)
        return np.clip(actions, -1.0, 1.0)


def load(request: api.PolicyRequest) -> MetaWorldExpert:
    """The expert (scripted policies are built on first use, per task)."""
    return MetaWorldExpert()


SPEC = api.PolicySpec(
    name=NAME,
    description="Meta-World's scripted expert for every v3 task (reads the 39-d state).",
    load=load,
    describe=describe,
    requires=("metaworld",),
    install_hint="pip install 'vlabench[metaworld]'",
    packages=("metaworld",),
)
