"""gym-pusht's ``PushTEnv`` with observations in vlabench convention (imported lazily)."""

from __future__ import annotations

import os
import string
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from vlabench import api

IMAGE_KEY = api.IMAGE_PREFIX + "top"


def validate_state(state: Any, where: str) -> np.ndarray:
    """``state`` as 5 finite floats ``[agent_x, agent_y, block_x, block_y, block_angle]``."""
    try:
        array = np.asarray(state, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"pusht {where} 'reset_to_state' must be 5 numbers: {exc}") from None
    if array.shape != (5,) or not np.all(np.isfinite(array)):
        raise ValueError(
            f"pusht {where} 'reset_to_state' must be 5 finite numbers "
            f"[agent_x, agent_y, block_x, block_y, block_angle], got {state!r}"
        )
    return array


def _load_inner() -> type:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    with warnings.catch_warnings():  # pygame imports the deprecated pkg_resources
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        from gym_pusht.envs import PushTEnv as Inner
    return Inner


class PushTEnv(gym.Env):
    """PushT emitting ``observation.state`` (agent xy, float32), the top image and ``task``.

    ``image_size=None`` builds the state-only variant (gym-pusht's ``state`` observation, no
    rendering). ``reset_to_state`` pins the start state unless ``reset`` options give one.
    Reward, ``terminated``, ``info["is_success"]`` and ``info["coverage"]`` pass through.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012

    def __init__(
        self,
        instruction: str,
        image_size: int | None = 96,
        reset_to_state: Any = None,
    ) -> None:
        super().__init__()
        self.instruction = instruction
        self.image_size = image_size
        self._max_coverage = 0.0
        self.reset_to_state = (
            None if reset_to_state is None else validate_state(reset_to_state, "env option")
        )
        inner_cls = _load_inner()
        if image_size is None:
            self.inner = inner_cls(obs_type="state")
        else:
            self.inner = inner_cls(
                obs_type="pixels_agent_pos",
                observation_width=image_size,
                observation_height=image_size,
            )
        self.render_mode = "rgb_array"
        self.action_space = spaces.Box(0.0, 512.0, shape=(2,), dtype=np.float32)
        observation: dict[str, spaces.Space[Any]] = {
            api.STATE_KEY: spaces.Box(0.0, 512.0, shape=(2,), dtype=np.float32),
            api.TASK_KEY: spaces.Text(
                max_length=max(len(instruction), 1), charset=string.printable
            ),
        }
        if image_size is not None:
            observation[IMAGE_KEY] = spaces.Box(
                0, 255, shape=(image_size, image_size, 3), dtype=np.uint8
            )
        self.observation_space = spaces.Dict(observation)

    def _convert(self, raw: Any) -> api.Observation:
        if self.image_size is None:
            agent = np.asarray(raw, dtype=np.float32)[:2]
            return {api.STATE_KEY: agent, api.TASK_KEY: self.instruction}
        return {
            api.STATE_KEY: np.asarray(raw["agent_pos"], dtype=np.float32),
            IMAGE_KEY: np.ascontiguousarray(raw["pixels"], dtype=np.uint8),
            api.TASK_KEY: self.instruction,
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[api.Observation, dict[str, Any]]:
        """Reset; ``options["reset_to_state"]`` (5 floats) overrides a random start."""
        super().reset(seed=seed)
        state = self.reset_to_state
        if options and options.get("reset_to_state") is not None:
            state = validate_state(options["reset_to_state"], "reset option")
        inner_options = None if state is None else {"reset_to_state": state.copy()}
        raw, info = self.inner.reset(seed=seed, options=inner_options)
        info["is_success"] = False
        info["coverage"] = float(self.inner._get_coverage())
        self._max_coverage = 0.0
        return self._convert(raw), info

    def step(self, action: Any) -> tuple[api.Observation, float, bool, bool, dict[str, Any]]:
        """Move the agent towards the pixel target ``action`` (2 floats in [0, 512])."""
        target = np.asarray(action, dtype=np.float64)
        if target.shape != (2,):
            raise ValueError(f"pusht action must have shape (2,), got {target.shape}")
        raw, reward, terminated, truncated, info = self.inner.step(target)
        info["is_success"] = bool(info["is_success"])
        coverage = info["coverage"] = float(info["coverage"])
        self._max_coverage = max(self._max_coverage, coverage)
        info[api.EPISODE_METRICS_KEY] = {  # the episode's numbers so far; the last step's stay
            "max_coverage": self._max_coverage,
            "final_coverage": coverage,
        }
        return self._convert(raw), float(reward), bool(terminated), bool(truncated), info

    def render(self) -> np.ndarray:
        """A 680x680 RGB frame with the last action marked (for videos)."""
        return self.inner.render()

    def close(self) -> None:
        self.inner.close()
        super().close()
