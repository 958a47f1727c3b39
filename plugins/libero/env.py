"""One LIBERO task as a gymnasium env with vlabench observations (imports libero lazily).

Conventions (those of the standard evaluators and of LeRobot's LIBERO checkpoints):

* cameras ``agentview`` -> ``observation.images.image`` and ``robot0_eye_in_hand`` ->
  ``observation.images.image2`` (LeRobot's names), rotated 180 degrees (``raw[::-1, ::-1]``)
  as OpenVLA, openpi and LeRobot's ``LiberoProcessorStep`` do — so a LeRobot policy must
  *not* apply that env processor again;
* ``observation.state``: LeRobot's 8-d state ``[eef_pos (3), eef axis-angle (3),
  gripper qpos (2)]`` float32; ``observation.proprio``: robosuite's 39-d
  ``robot0_proprio-state`` (see :data:`PROPRIO_LAYOUT`);
* action: 7-d OSC_POSE delta ``[dx, dy, dz, dax, day, daz, gripper]`` in [-1, 1]; gripper
  -1 opens, +1 closes;
* ``reset(seed, options={"init_state_id": k})`` puts the scene in fixed init state ``k``;
* ``info["is_success"]`` is LIBERO's ``check_success()`` after each step, and the episode
  terminates on success.
"""

from __future__ import annotations

import logging
import os
import string
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from vlabench import api

from . import CAMERA_KEYS, PROPRIO_DIM, PROPRIO_KEY, suites

CAMERAS = CAMERA_KEYS
"""robosuite camera -> vlabench (LeRobot) observation key."""

PROPRIO_LAYOUT: tuple[tuple[str, int], ...] = (
    ("joint_pos", 7),
    ("joint_pos_cos", 7),
    ("joint_pos_sin", 7),
    ("joint_vel", 7),
    ("eef_pos", 3),
    ("eef_quat_xyzw", 4),
    ("gripper_qpos", 2),
    ("gripper_qvel", 2),
)
"""Layout of ``observation.proprio`` (robosuite's ``robot0_proprio-state``), 39 values."""
assert sum(n for _, n in PROPRIO_LAYOUT) == PROPRIO_DIM

RENDER_QUALITIES = ("standard", "fast")
CONTROL_FREQ = 20
HORIZON = 10_000
"""robosuite's own episode limit, far above any protocol (the runner enforces max steps)."""


def quat_to_axis_angle(quat_xyzw: np.ndarray) -> np.ndarray:
    """Axis-angle (3,) of a unit quaternion in robosuite's (x, y, z, w) order.

    Same formula as robosuite's ``quat2axisangle`` and LeRobot's ``LiberoProcessorStep``:
    angle ``2 acos(w)`` (w clipped to [-1, 1]), zero vector for a null rotation.
    """
    q = np.asarray(quat_xyzw, dtype=np.float64)
    w = float(np.clip(q[3], -1.0, 1.0))
    den = np.sqrt(max(1.0 - w * w, 0.0))
    if den <= 1e-10:
        return np.zeros(3)
    return q[:3] / den * (2.0 * np.arccos(w))


def quat_to_axis_angle_f32(quat_xyzw: np.ndarray) -> np.ndarray:
    """Axis-angle (3,) float32 as ``lerobot-eval`` computes it (``LiberoProcessorStep``):
    the quaternion cast to float32, then the same torch operations in the same order."""
    import torch

    quat = torch.as_tensor(np.asarray(quat_xyzw)).reshape(1, 4).to(torch.float32)
    w = quat[:, 3].clamp(-1.0, 1.0)
    den = torch.sqrt(torch.clamp(1.0 - w * w, min=0.0))
    result = torch.zeros((1, 3))
    mask = den > 1e-10
    if mask.any():
        angle = 2.0 * torch.acos(w[mask])
        axis = quat[mask, :3] / den[mask].unsqueeze(1)
        result[mask] = axis * angle.unsqueeze(1)
    return result[0].numpy()


def lerobot_state(raw: dict[str, Any], arithmetic: str = "float64") -> np.ndarray:
    """LeRobot's 8-d LIBERO state from a robosuite observation dict.

    ``arithmetic="lerobot"``: the axis-angle from the float32 quaternion, exactly as
    ``lerobot-eval`` (:func:`quat_to_axis_angle_f32`); else from the float64 one.
    """
    quat = raw["robot0_eef_quat"]
    axis_angle = quat_to_axis_angle_f32(quat) if arithmetic == "lerobot" else (
        quat_to_axis_angle(quat)
    )
    return np.concatenate(
        [raw["robot0_eef_pos"], axis_angle, raw["robot0_gripper_qpos"]]
    ).astype(np.float32)


class LiberoEnv(gym.Env):
    """One LIBERO task, reused across episodes: each ``reset`` loads the next init state.

    ``cameras`` are the robosuite cameras to render (others are never rendered);
    ``image_size`` their square side; ``render_quality`` ``"standard"`` (LIBERO's renderer
    settings: 4x MSAA, shadows, reflections, skybox) or ``"fast"`` (none of these; images
    differ, so it is part of the protocol); ``hard_reset`` rebuilds the MuJoCo model at
    every reset as robosuite's default does (seconds), else the sim is reset in place and
    the gripper's speed-limited command state cleared, which reproduces the hard reset's
    trajectories (bit-identical on the libero_goal and libero_10 tasks checked, within
    1e-14 on libero_object and libero_90) at a fraction of the cost.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_FREQ}  # noqa: RUF012

    def __init__(
        self,
        task: str,
        cameras: tuple[str, ...] = tuple(CAMERAS),
        image_size: int = 256,
        render_quality: str = "standard",
        hard_reset: bool = False,
        camera_offset: tuple[float, float, float] | list[float] | None = None,
        light_scale: float | None = None,
        pro: str | None = None,
        object_noise: float | None = None,
        state_arithmetic: str = "float64",
    ) -> None:
        super().__init__()
        self.state_arithmetic = state_arithmetic
        self.object_noise = object_noise
        self.camera_offset = None if camera_offset is None else np.asarray(camera_offset, float)
        self.light_scale = light_scale
        self._scene_base: tuple[Any, np.ndarray, np.ndarray, np.ndarray] | None = None
        unknown = [c for c in cameras if c not in CAMERAS]
        if unknown:
            raise ValueError(f"libero cameras must be among {list(CAMERAS)}, got {unknown}")
        if render_quality not in RENDER_QUALITIES:
            raise ValueError(
                f"libero render_quality must be one of {RENDER_QUALITIES}, got {render_quality!r}"
            )
        self.libero_task = suites.find_task(task)
        self.init_states = suites.init_states(task)
        if pro is not None:  # a LIBERO-PRO variant of the task (scene, states, instruction)
            self.libero_task, self.init_states = suites.pro_task(task, pro)
        self.task_name = task
        self.instruction = self.libero_task.instruction
        self.cameras = tuple(cameras)
        self.image_size = image_size
        self.render_quality = render_quality
        self.hard_reset = hard_reset
        self.init_state_id: int | None = None
        self.render_mode = "rgb_array"
        self.inner = self._build()
        self._raw: dict[str, Any] | None = None

        self.action_space = spaces.Box(-1.0, 1.0, shape=(7,), dtype=np.float32)
        obs_spaces: dict[str, spaces.Space[Any]] = {
            api.STATE_KEY: spaces.Box(-np.inf, np.inf, shape=(8,), dtype=np.float32),
            PROPRIO_KEY: spaces.Box(-np.inf, np.inf, shape=(PROPRIO_DIM,), dtype=np.float32),
            api.TASK_KEY: spaces.Text(
                max_length=max(len(self.instruction), 1), charset=string.printable
            ),
        }
        for cam in self.cameras:
            obs_spaces[CAMERAS[cam]] = spaces.Box(
                0, 255, shape=(image_size, image_size, 3), dtype=np.uint8
            )
        self.observation_space = spaces.Dict(obs_spaces)

    # -- construction ------------------------------------------------------------------
    def _build(self) -> Any:
        os.environ.setdefault("MUJOCO_GL", "egl")
        robosuite_log = logging.getLogger("robosuite_logs")
        level = robosuite_log.level
        robosuite_log.setLevel(logging.ERROR)  # its import warns about a missing macro file
        try:
            with warnings.catch_warnings():  # ... through the deprecated Logger.warn
                warnings.simplefilter("ignore", DeprecationWarning)
                from libero.libero.envs import OffScreenRenderEnv
        finally:
            robosuite_log.setLevel(level)

        return OffScreenRenderEnv(
            bddl_file_name=str(self.libero_task.bddl_file),
            camera_names=list(self.cameras),
            use_camera_obs=bool(self.cameras),
            camera_heights=self.image_size,
            camera_widths=self.image_size,
            control_freq=CONTROL_FREQ,
            horizon=HORIZON,
            hard_reset=self.hard_reset,
        )

    def _apply_render_quality(self) -> None:
        """Turn off MSAA, shadows, reflections and skybox in ``fast`` quality."""
        if self.render_quality == "standard" or not self.cameras:
            return
        import mujoco

        sim = self.inner.sim
        context = sim._render_context_offscreen
        if context is None:
            return
        flags = context.scn.flags
        for flag in ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_SKYBOX"):
            flags[getattr(mujoco.mjtRndFlag, flag)] = 0
        if sim.model.vis.quality.offsamples != 0:
            sim.model.vis.quality.offsamples = 0
            context.con.free()
            context._set_mujoco_context_and_buffers()  # what robosuite does on a resize

    def _displace_objects(self, state: np.ndarray, seed: int, init_state_id: int) -> np.ndarray:
        """``state`` (time, qpos, qvel) with every free object moved on the table by
        N(0, ``object_noise``^2) metres in x and y, drawn from the episode's seed."""
        model = self.inner.sim.model
        rng = np.random.default_rng([seed & 0xFFFFFFFF, init_state_id, 0x0B1EC7])
        out = np.array(state, dtype=np.float64)
        for joint in np.flatnonzero(np.asarray(model.jnt_type) == 0):  # free joints: objects
            start = 1 + int(model.jnt_qposadr[joint])  # after the time entry
            out[start : start + 2] += rng.normal(0.0, self.object_noise, 2)
        return out

    def _apply_scene_changes(self) -> None:
        """The robustness options: agentview moved by ``camera_offset``, lights scaled by
        ``light_scale``; set from the model's own values (kept per model: a hard reset
        rebuilds it), so every reset applies the same change once."""
        if self.camera_offset is None and self.light_scale is None:
            return
        model = self.inner.sim.model
        if self._scene_base is None or self._scene_base[0] is not model:
            cam = model.camera_name2id("agentview")
            self._scene_base = (
                model, model.cam_pos[cam].copy(), model.light_diffuse.copy(),
                np.asarray(model._model.vis.headlight.diffuse).copy(),
            )
        _, cam_pos, diffuse, headlight = self._scene_base
        if self.camera_offset is not None:
            model.cam_pos[model.camera_name2id("agentview")] = cam_pos + self.camera_offset
        if self.light_scale is not None:
            model.light_diffuse[:] = diffuse * self.light_scale
            model._model.vis.headlight.diffuse[:] = headlight * self.light_scale

    # -- observations ------------------------------------------------------------------
    def _convert(self, raw: dict[str, Any]) -> api.Observation:
        self._raw = raw
        obs: api.Observation = {
            api.STATE_KEY: lerobot_state(raw, self.state_arithmetic),
            PROPRIO_KEY: np.asarray(raw["robot0_proprio-state"], dtype=np.float32),
        }
        for cam in self.cameras:
            obs[CAMERAS[cam]] = np.ascontiguousarray(raw[f"{cam}_image"][::-1, ::-1])
        obs[api.TASK_KEY] = self.instruction
        return obs

    # -- gymnasium API -----------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[api.Observation, dict[str, Any]]:
        """Reset to init state ``options["init_state_id"]`` (default 0) of the task."""
        super().reset(seed=seed)
        k = (options or {}).get("init_state_id", 0)
        n = len(self.init_states)
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= k < n:
            raise ValueError(
                f"libero task {self.task_name!r} has init states 0..{n - 1}, "
                f"got init_state_id={k!r}"
            )
        inner = self.inner
        if seed is not None:
            inner.seed(seed)  # LIBERO seeds numpy's global RNG, as the reference evaluators
        inner.reset()
        if not self.hard_reset:
            for robot in inner.robots:  # a hard reset rebuilds the gripper model: state 0
                robot.gripper.current_action = np.zeros(robot.gripper.dof)
        self._apply_render_quality()
        self._apply_scene_changes()
        state = self.init_states[int(k)]
        if self.object_noise:
            state = self._displace_objects(state, 0 if seed is None else seed, int(k))
        raw = inner.set_init_state(state)
        self.init_state_id = int(k)
        info = {"is_success": bool(inner.check_success()), "init_state_id": int(k)}
        return self._convert(raw), info

    def step(self, action: Any) -> tuple[api.Observation, float, bool, bool, dict[str, Any]]:
        """Apply one 7-d action (ee delta + gripper, -1 open / +1 close) for 1/20 s."""
        act = np.asarray(action, dtype=np.float64)
        if act.shape != (7,):
            raise ValueError(f"libero action must have shape (7,), got {act.shape}")
        raw, reward, _, info = self.inner.step(act)
        success = bool(self.inner.check_success())
        info = {"is_success": success}
        return self._convert(raw), float(reward), success, False, info

    def render(self) -> np.ndarray:
        """The first camera's last image (rotated like the observations)."""
        if not self.cameras or self._raw is None:
            raise RuntimeError("libero env renders only when built with a camera and reset")
        return np.ascontiguousarray(self._raw[f"{self.cameras[0]}_image"][::-1, ::-1])

    def sim_state(self) -> np.ndarray:
        """The flattened MuJoCo state (time, qpos, qvel), as the init states store it."""
        return np.asarray(self.inner.get_sim_state(), dtype=np.float64).copy()

    def close(self) -> None:
        inner, self.inner = getattr(self, "inner", None), None
        if inner is not None:
            inner.close()
        super().close()
