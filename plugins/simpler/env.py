"""A ManiSkill3 task as a single-episode gymnasium env in vlabench convention (lazy import).

ManiSkill returns batched torch tensors (leading ``num_envs`` axis, here 1) for observations,
rewards and infos; this wrapper hands numpy out: ``observation.state`` (the robot's joint
positions, float32), ``observation.images.<camera>`` (uint8 HxWx3, exactly what SimplerEnv
feeds its policies: for the Bridge tasks the green-screened ``3rd_view_camera``) and ``task``.

Every step reports ``info["is_success"]`` (ManiSkill's ``info["success"]`` of that step), so
the core can judge success at the last step; ``terminated`` is always False (SimplerEnv runs
a fixed horizon; ManiSkill would otherwise end an episode the moment it succeeds), and
``truncated`` becomes True at the task's step limit.
"""

from __future__ import annotations

import os
import string
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from vlabench import api

from .tasks import ActionSpace, SimplerTask

EPISODE_STATS = ("is_src_obj_grasped", "consecutive_grasp", "src_on_target", "is_grasped")
"""Per-step booleans passed through in ``info`` when the task reports them (for metrics)."""


def image_key(task: SimplerTask) -> str:
    return api.IMAGE_PREFIX + task.camera


def _first(value: Any) -> Any:
    """Element 0 of a batched tensor/array as numpy (or the value itself)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    value = np.asarray(value)
    return value[0] if value.ndim > 0 else value


def default_render_backend() -> str:
    """``gpu`` when CUDA is visible (SAPIEN renders there), else ``cpu`` (Vulkan lavapipe)."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


class SimplerEnv(gym.Env):
    """One ManiSkill3 env (``num_envs=1``) emitting vlabench observations.

    ``render_image=False`` builds it without cameras where the task allows it (``state_dict``);
    ``image_size`` (H, W) renders the camera smaller, only for field-of-view cameras.
    """

    metadata = {"render_modes": ["rgb_array"]}  # noqa: RUF012

    def __init__(
        self,
        task: SimplerTask,
        action: ActionSpace,
        render_image: bool = True,
        image_size: tuple[int, int] | None = None,
        render_backend: str | None = None,
    ) -> None:
        super().__init__()
        self.task = task
        self.action_spec = action
        self.render_image = render_image or task.obs_mode == "rgb+segmentation"
        self.emit_image = render_image
        os.environ.setdefault("MS_SKIP_ASSET_DOWNLOAD_PROMPT", "1")
        import mani_skill.envs  # noqa: F401  (registers the ManiSkill env ids)

        kwargs: dict[str, Any] = dict(task.make_kwargs)
        if image_size is not None:
            if not task.camera_resizable:
                raise ValueError(
                    f"simpler task {task.name!r}: camera {task.camera!r} has fixed intrinsics, "
                    "so option 'image_size' cannot shrink it; resize on the policy side "
                    "(adapter resize_image)"
                )
            kwargs["sensor_configs"] = {"width": image_size[1], "height": image_size[0]}
        self.inner = gym.make(
            task.env_id,
            obs_mode=task.obs_mode if self.render_image else "state_dict",
            control_mode=task.control_mode,
            num_envs=1,
            sim_backend="physx_cpu",
            render_backend=render_backend or default_render_backend(),
            **kwargs,
        )
        self.instruction = self._instruction()
        self._t, self._grasped = 0, False
        self._last_image: np.ndarray | None = None
        low, high = np.asarray(action.low, np.float32), np.asarray(action.high, np.float32)
        self.action_space = spaces.Box(low, high, dtype=np.float32)
        self.render_mode = "rgb_array"
        self.observation_space = spaces.Dict(self._observation_spaces())

    def _instruction(self) -> str:
        """The env's own instruction when it has one (Bridge tasks), else the table's."""
        getter = getattr(self.inner.unwrapped, "get_language_instruction", None)
        if callable(getter):
            try:
                return str(getter()[0])
            except Exception:
                pass
        return self.task.instruction

    def _observation_spaces(self) -> dict[str, spaces.Space[Any]]:
        qpos = self.inner.unwrapped.agent.robot.get_qpos()
        out: dict[str, spaces.Space[Any]] = {
            api.STATE_KEY: spaces.Box(-np.inf, np.inf, shape=(qpos.shape[-1],), dtype=np.float32),
            api.TASK_KEY: spaces.Text(
                max_length=max(len(self.instruction), 1), charset=string.printable
            ),
        }
        if self.emit_image:
            cam = self.inner.unwrapped._sensor_configs[self.task.camera]
            out[image_key(self.task)] = spaces.Box(
                0, 255, shape=(cam.height, cam.width, 3), dtype=np.uint8
            )
        return out

    def _convert(self, raw: dict[str, Any]) -> api.Observation:
        obs: api.Observation = {
            api.STATE_KEY: np.asarray(_first(raw["agent"]["qpos"]), dtype=np.float32),
            api.TASK_KEY: self.instruction,
        }
        if self.emit_image:
            rgb = _first(raw["sensor_data"][self.task.camera]["rgb"])
            self._last_image = np.ascontiguousarray(rgb, dtype=np.uint8)
            obs[image_key(self.task)] = self._last_image
        return obs

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"is_success": bool(_first(info.get("success", False)))}
        for key in EPISODE_STATS:
            if key in info:
                out[key] = bool(_first(info[key]))
        if "is_src_obj_grasped" in out:  # SimplerEnv's partial success: ever grasped
            self._grasped |= out["is_src_obj_grasped"]
            out[api.EPISODE_METRICS_KEY] = {"grasped": float(self._grasped)}
        return out

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[api.Observation, dict[str, Any]]:
        """Reset; ``options["init_state_id"]`` picks the task's init state (``episode_id``)."""
        super().reset(seed=seed)
        inner_options: dict[str, Any] = {}
        init_state = (options or {}).get("init_state_id")
        if init_state is not None:
            if self.task.init_option is None:
                raise ValueError(f"simpler task {self.task.name!r} has no init states")
            inner_options[self.task.init_option] = int(init_state)
        raw, info = self.inner.reset(seed=seed, options=inner_options)
        self._t, self._grasped = 0, False
        return self._convert(raw), self._info(info)

    def step(self, action: Any) -> tuple[api.Observation, float, bool, bool, dict[str, Any]]:
        """Apply one 7-d action; success is reported for this step, never as termination."""
        import torch

        act = np.asarray(action, dtype=np.float32)
        if act.shape != self.action_space.shape:
            raise ValueError(
                f"simpler action must have shape {self.action_space.shape} "
                f"({self.action_spec.space}), got {act.shape}"
            )
        raw, reward, _terminated, _truncated, info = self.inner.step(torch.from_numpy(act)[None])
        self._t += 1
        truncated = self._t >= self.task.max_steps
        return self._convert(raw), float(_first(reward)), False, truncated, self._info(info)

    def render(self) -> np.ndarray:
        """A frame for videos: the policy's latest camera image (what SimplerEnv records),
        else ManiSkill's human-render camera (rendered on demand)."""
        if self._last_image is not None:
            return self._last_image
        return np.asarray(_first(self.inner.unwrapped.render_rgb_array()), dtype=np.uint8)

    def close(self) -> None:
        self.inner.close()
        super().close()
