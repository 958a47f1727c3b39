"""A Meta-World v3 task as a gymnasium env with vlabench observations (imported lazily).

Seeding follows LeRobot's Meta-World env: the task is set once as an MT1 task (goal observed,
``partially_observable=False``), then goal and object placement are re-drawn at every reset
from the env's seeded generator, so ``reset(seed=s)`` reproduces the same initial state for
every policy (and matches ``lerobot-eval`` for the same seed). Cameras are rendered with one
``mujoco.Renderer`` per env, only those asked for; the corner cameras, upside down in
Meta-World's model, are rotated by 180 degrees.
"""

from __future__ import annotations

import os
import pickle
import string
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from vlabench import api

from .features import ENV_STATE_KEY, SIM_STATE_KEY, TASK_NAME_KEY, headless_gl, image_key

_NUMBERS = (bool, int, float, np.number, np.bool_)
"""Info values passed on as floats (a tuple: ``isinstance`` with a union is 4x slower)."""

FLIPPED_CAMERAS = frozenset({"corner", "corner2", "corner3", "corner4"})
"""Cameras whose images come out of Meta-World's model rotated by 180 degrees."""


def _build_inner(task: str) -> Any:
    """The raw Meta-World env of ``task`` with its MT1 task set and seeded resets."""
    headless_gl()
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS, ML1_ARGS_KWARGS
    from metaworld.types import Task

    cls = ALL_V3_ENVIRONMENTS[task]
    inner = cls()
    kwargs = dict(ML1_ARGS_KWARGS[task]["kwargs"])
    kwargs.pop("task_id", None)
    space = inner._random_reset_space
    kwargs.update(
        rand_vec=(space.low + space.high) / 2,  # replaced at the first reset (unfrozen below)
        env_cls=cls,
        partially_observable=False,  # the MT1 setting: the goal is part of the observation
    )
    inner.set_task(Task(env_name=task, data=pickle.dumps(kwargs)))
    inner._freeze_rand_vec = False  # draw a new goal/object placement at every reset ...
    inner.seeded_rand_vec = True  # ... from the generator that ``seed()`` sets
    return inner


def _state_parts(inner: Any) -> list[np.ndarray]:
    model, data = inner.model, inner.data
    return [  # resets move bodies and sites in the model too (buttons, drawers, goals)
        data.qpos, data.qvel, data.mocap_pos, data.mocap_quat,
        model.body_pos, model.body_quat, model.site_pos,
    ]


def sim_state(inner: Any) -> np.ndarray:
    """What a copy of the task needs to continue exactly: the MuJoCo state (qpos, qvel,
    mocap pose), the body and site placements a reset chose, and the goal."""
    parts = [np.ravel(p) for p in _state_parts(inner)]
    return np.concatenate([*parts, inner._target_pos]).astype(np.float64)


def sim_state_size(inner: Any) -> int:
    """The length of :func:`sim_state` for ``inner``'s task."""
    return sum(np.size(p) for p in _state_parts(inner)) + 3


def set_sim_state(inner: Any, state: np.ndarray, previous: np.ndarray) -> None:
    """Put ``inner`` (same task) in :func:`sim_state` ``state``; ``previous`` is the 18-d
    current-frame part of the last observation (the next one reports it as its past)."""
    parts = _state_parts(inner)
    sizes = [np.size(p) for p in parts]
    if state.size != sum(sizes) + 3:
        raise ValueError(
            f"sim state of size {state.size} does not fit this task ({sum(sizes) + 3})"
        )
    values = np.split(state, np.cumsum(sizes))
    for target, value in zip(parts[2:], values[2:-1], strict=True):
        target[...] = value.reshape(target.shape)
    inner.set_state(values[0], values[1])  # mj_forward with the placements above
    inner._target_pos = values[-1].copy()
    inner._prev_obs = np.asarray(previous, dtype=np.float64).copy()
    inner.curr_path_length = 0


class MetaWorldEnv(gym.Env):
    """One Meta-World v3 task emitting ``observation.state`` (hand xyz + gripper opening),
    ``observation.environment_state`` (the full 39-d observation), one
    ``observation.images.<camera>`` per rendered camera, ``task`` (the instruction) and
    ``task_name`` (e.g. ``"reach-v3"``).

    ``info["is_success"]`` is Meta-World's ``info["success"]``; the other Meta-World info
    entries pass through as floats. Episodes are truncated at ``max_path_length`` (500).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}  # noqa: RUF012

    def __init__(
        self,
        task: str,
        instruction: str,
        cameras: Sequence[str] = (),
        image_size: tuple[int, int] = (480, 480),
        shadows: bool = True,
        reflections: bool = True,
        camera_pos: Mapping[str, Sequence[float]] | None = None,
        camera_fovy: Mapping[str, float] | None = None,
        light_scale: float | None = None,
        environment_state: bool = True,
        task_name: bool = True,
        sim_state: bool = False,
    ) -> None:
        super().__init__()
        self.task = task
        self.instruction = instruction
        self.cameras = tuple(cameras)
        self.image_size = image_size
        self.shadows = shadows
        self.reflections = reflections
        self.emit_environment_state = environment_state
        self.emit_task_name = task_name
        self.emit_sim_state = sim_state
        self.inner = _build_inner(task)
        self._renderer: Any = None
        self._camera_names = self._model_cameras()
        for camera in self.cameras:
            self._check_camera(camera)
        for camera, pos in (camera_pos or {}).items():
            self._check_camera(camera)
            self.inner.model.camera(camera).pos[:] = np.asarray(pos, dtype=np.float64)
        for camera, fovy in (camera_fovy or {}).items():
            self._check_camera(camera)
            self.inner.model.camera(camera).fovy[:] = float(fovy)
        if light_scale is not None:  # every light's diffuse and the headlight's
            model = self.inner.model
            model.light_diffuse[:] = model.light_diffuse * light_scale
            model.vis.headlight.diffuse[:] = model.vis.headlight.diffuse * light_scale
            model.vis.headlight.ambient[:] = model.vis.headlight.ambient * light_scale
        self.render_mode = "rgb_array"
        self.action_space = spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        observation: dict[str, spaces.Space[Any]] = {
            api.STATE_KEY: spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32),
            api.TASK_KEY: spaces.Text(max_length=256, charset=string.printable),
        }
        if environment_state:
            observation[ENV_STATE_KEY] = spaces.Box(-np.inf, np.inf, (39,), np.float32)
        if task_name:
            observation[TASK_NAME_KEY] = spaces.Text(max_length=64, charset=string.printable)
        if sim_state:
            size = sim_state_size(self.inner)
            observation[SIM_STATE_KEY] = spaces.Box(-np.inf, np.inf, (size,), np.float64)
        h, w = image_size
        for camera in self.cameras:
            observation[image_key(camera)] = spaces.Box(0, 255, (h, w, 3), np.uint8)
        self.observation_space = spaces.Dict(observation)

    # -- cameras -----------------------------------------------------------------------
    def _model_cameras(self) -> tuple[str, ...]:
        import mujoco

        model = self.inner.model
        return tuple(
            mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)
        )

    def _check_camera(self, camera: str) -> None:
        if camera not in self._camera_names:
            raise ValueError(
                f"metaworld task {self.task!r} has no camera {camera!r} "
                f"(cameras: {', '.join(self._camera_names)})"
            )

    def _ensure_renderer(self) -> Any:
        if self._renderer is None:
            import mujoco

            h, w = self.image_size
            visual = self.inner.model.vis.global_
            visual.offwidth, visual.offheight = max(visual.offwidth, w), max(visual.offheight, h)
            try:
                self._renderer = mujoco.Renderer(self.inner.model, height=h, width=w)
            except Exception as exc:
                raise RuntimeError(
                    f"metaworld: cannot render camera images ({type(exc).__name__}: {exc}); "
                    f"MuJoCo's GL backend is fixed when mujoco is first imported "
                    f"(MUJOCO_GL={os.environ.get('MUJOCO_GL', '<unset>')}): set MUJOCO_GL=egl "
                    "(headless) before starting, or use cameras: [] for a state-only env"
                ) from exc
            flags = self._renderer.scene.flags
            flags[mujoco.mjtRndFlag.mjRND_SHADOW] = int(self.shadows)
            flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = int(self.reflections)
        return self._renderer

    def render_camera(self, camera: str) -> np.ndarray:
        """An ``H x W x 3`` uint8 image of ``camera``, upright."""
        renderer = self._ensure_renderer()
        renderer.update_scene(self.inner.data, camera=camera)
        image = renderer.render()
        if camera in FLIPPED_CAMERAS:
            image = image[::-1, ::-1]
        return np.ascontiguousarray(image)

    # -- gymnasium API -----------------------------------------------------------------
    def _convert(self, raw: np.ndarray) -> api.Observation:
        obs: api.Observation = {
            api.STATE_KEY: np.asarray(raw[:4], dtype=np.float32),
            api.TASK_KEY: self.instruction,
        }
        if self.emit_environment_state:
            obs[ENV_STATE_KEY] = np.asarray(raw, dtype=np.float32)
        if self.emit_task_name:
            obs[TASK_NAME_KEY] = self.task
        if self.emit_sim_state:
            obs[SIM_STATE_KEY] = sim_state(self.inner)
        for camera in self.cameras:
            obs[image_key(camera)] = self.render_camera(camera)
        return obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[api.Observation, dict[str, Any]]:
        """Reset; ``seed`` fixes the goal and object placement (``None`` continues the stream)."""
        super().reset(seed=seed)
        if seed is not None:
            self.inner.seed(seed)
        raw, _ = self.inner.reset()
        return self._convert(raw), {"is_success": False}

    def step(self, action: Any) -> tuple[api.Observation, float, bool, bool, dict[str, Any]]:
        """Move the hand by ``action[:3]`` (x 1 cm); ``action[3]`` drives the gripper."""
        act = np.asarray(action, dtype=np.float32)
        if act.shape != (4,):
            raise ValueError(f"metaworld action must have shape (4,), got {act.shape}")
        raw, reward, terminated, truncated, raw_info = self.inner.step(act)
        info: dict[str, Any] = {k: float(v) for k, v in raw_info.items() if isinstance(v, _NUMBERS)}
        info["is_success"] = bool(raw_info.get("success", False))
        return self._convert(raw), float(reward), bool(terminated), bool(truncated), info

    def render(self) -> np.ndarray:
        """The first configured camera (``corner2`` when none), for videos."""
        return self.render_camera(self.cameras[0] if self.cameras else "corner2")

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.inner.close()
        super().close()
