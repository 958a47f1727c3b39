"""Feature names and space tags shared by the Meta-World env and its expert policy."""

from __future__ import annotations

import os
import sys

from vlabench import api

ENV_STATE_KEY = "observation.environment_state"
"""The full 39-d Meta-World observation."""
SIM_STATE_KEY = "observation.sim_state"
"""The simulator state (qpos, qvel, mocap pose, goal): for model-based reference policies."""
TASK_NAME_KEY = "task_name"
"""The Meta-World task name (e.g. ``reach-v3``); ``task`` holds the instruction."""

STATE_SPACE = "metaworld_hand_xyz_gripper"
ENV_STATE_SPACE = "metaworld_obs39"
TASK_NAME_SPACE = "metaworld_task_name"
SIM_STATE_SPACE = "metaworld_sim_state"
ACTION_SPACE = "metaworld_ee_delta"
"""4-d: end-effector delta xyz (1.0 = 1 cm, clipped) and gripper effort, each in [-1, 1]."""


def image_key(camera: str) -> str:
    """``observation.images.<camera>``."""
    return api.IMAGE_PREFIX + camera


def headless_gl() -> None:
    """Default MuJoCo to EGL on Linux (headless); call before metaworld/mujoco is imported.

    MuJoCo picks its GL backend once, when it is first imported; an explicit ``MUJOCO_GL``
    is kept.
    """
    if sys.platform.startswith("linux"):
        os.environ.setdefault("MUJOCO_GL", "egl")
