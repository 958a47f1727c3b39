"""``noop``: do nothing — the env's no-op action, else hold the current state, else zeros."""

from __future__ import annotations

from typing import Literal

import numpy as np

from vlabench import api

from ._common import action_dim, action_feature, batch_size

Mode = Literal["noop_action", "hold", "zeros"]


def _mode(env: api.EnvInterface) -> Mode:
    if env.noop_action is not None:
        return "noop_action"
    state = env.feature(api.STATE_KEY)
    if (
        state is not None
        and env.action.space
        and env.action.space != api.ANY_SPACE
        and state.space == env.action.space
        and state.shape == env.action.shape
    ):
        return "hold"  # absolute control: targeting the current state is standing still
    return "zeros"


def describe(request: api.PolicyRequest) -> api.PolicyInterface:
    """Reads ``observation.state`` only when it holds position (absolute-control envs)."""
    env = request.env
    action = action_feature(env, "noop")
    inputs: tuple[api.Feature, ...] = ()
    mode, state = _mode(env), env.feature(api.STATE_KEY)
    if mode == "hold" and state is not None:
        inputs = (state,)
    elif mode == "noop_action" and len(env.noop_action or ()) != action_dim(action):
        raise ValueError(
            f"env noop_action {env.noop_action} does not match its action {action.describe()}"
        )
    return api.PolicyInterface(inputs=inputs, action=action)


class NoopPolicy:
    """Emits the same "do nothing" action for every episode and step."""

    def __init__(self, interface: api.PolicyInterface, mode: Mode, noop: np.ndarray) -> None:
        self.interface = interface
        self.mode = mode
        self._noop = noop

    def reset(self) -> None:
        """Stateless."""

    def select_action(self, batch: api.Batch) -> np.ndarray:
        """``(B, A)`` float32: the no-op action, the current state, or zeros."""
        size = batch_size(batch)
        if self.mode == "hold":
            state = np.asarray(batch[api.STATE_KEY], dtype=np.float32)
            if state.ndim == 3:  # (B, T, D): the latest observation
                state = state[:, -1]
            return state.reshape(size, -1).copy()
        return np.tile(self._noop, (size, 1))


def load(request: api.PolicyRequest) -> NoopPolicy:
    """Build the policy for ``request.env``."""
    interface = describe(request)
    noop = request.env.noop_action or (0.0,) * action_dim(interface.action)
    return NoopPolicy(interface, _mode(request.env), np.asarray(noop, dtype=np.float32))


SPEC = api.PolicySpec(
    name="noop",
    description="Do nothing: the env's no-op action, else hold position, else zeros.",
    load=load,
    describe=describe,
)
