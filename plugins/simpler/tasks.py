"""SimplerEnv's Bridge (WidowX) tasks as ManiSkill3 env ids, and the protocol facts.

Facts (ManiSkill 3.0.1, ``mani_skill/envs/tasks/digital_twins/bridge_dataset_eval/`` and
SimplerEnv's ``tools/calc_metrics_evaluation_videos.py``):

* control at 5 Hz (``sim_freq=500, control_freq=5``); 60 steps per episode, 120 for the
  eggplant (the ``max_episode_steps`` ManiSkill registers); 24 episodes per task;
* success is judged **at the last step** (``info["success"]`` of the final step), not "ever";
* init states: ManiSkill's ``reset(options={"episode_id": k})`` picks object position ``k``
  (24 distinct configurations for carrot, spoon and cubes; the eggplant has more, SimplerEnv
  uses the first 24);
* the policy sees the ``3rd_view_camera`` (640x480, green-screened with a real Bridge photo:
  ``obs_mode="rgb+segmentation"`` is the only mode these envs support);
* action (controller ``arm_pd_ee_target_delta_pose_align2_gripper_pd_joint_pos``, 7-d):
  ``[dx, dy, dz]`` in metres in the robot base frame, a rotation delta in radians (ManiSkill
  3.0.1 reads it as XYZ Euler, base-aligned, clipped by norm to pi/2; SimplerEnv's
  ``real2sim_eval_maniskill3.py`` sends Octo/RT-1's axis-angle, the same to first order for
  small deltas), then the gripper as an **absolute** target in ``[-1, 1]``: **+1 = open,
  -1 = closed** (SimplerEnv maps Octo/RT-1's ``[0, 1]`` open-ness with
  ``2 * (g > 0.5) - 1``). Arm deltas are not normalised;
* seeds: SimplerEnv resets episode ``i`` with ``seed=i, episode_id=i``; the suites use
  ``seed: 0`` so that vlabench's ``seed + i`` and init state ``i`` match.

The ``offline`` task set holds ManiSkill tasks whose assets ship inside the pip package
(``PickCube-v1``): the same wrapper, camera, success and tensor handling, runnable without
downloads. It exists so that CI exercises everything but the asset packs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

BRIDGE = "bridge"
OFFLINE = "offline"
TASK_SETS = (BRIDGE, OFFLINE)

BRIDGE_ASSETS = ("bridge_v2_real2sim", "widowx250s")
"""ManiSkill data-source ids the Bridge tasks need (``mani_skill.utils.assets.data``)."""


@dataclass(frozen=True)
class ActionSpace:
    """What the 7 numbers of an action mean, with bounds and the "hold still" action."""

    space: str
    low: tuple[float, ...]
    high: tuple[float, ...]
    noop: tuple[float, ...]
    description: str


@dataclass(frozen=True)
class SimplerTask:
    """One task: the ManiSkill env id and how it is built and judged."""

    name: str
    env_id: str
    instruction: str
    max_steps: int
    camera: str
    robot: str
    control_mode: str
    obs_mode: str
    """Observation mode when the camera is rendered (``state_dict`` is used otherwise)."""
    fps: float
    n_init_states: int | None
    init_option: str | None
    """ManiSkill reset option that selects an init state (``episode_id``), if any."""
    assets: tuple[str, ...] = ()
    offline: bool = False
    """True when every asset ships with the mani-skill package (runs without downloads)."""
    camera_resizable: bool = False
    """True when the camera is defined by a field of view, so a smaller render is the same view."""
    make_kwargs: tuple[tuple[str, Any], ...] = ()


HALF_PI = math.pi / 2
WIDOWX_ACTION = ActionSpace(
    space="widowx_ee_delta",
    low=(-1.0, -1.0, -1.0, -HALF_PI, -HALF_PI, -HALF_PI, -1.0),
    high=(1.0, 1.0, 1.0, HALF_PI, HALF_PI, HALF_PI, 1.0),
    noop=(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),
    description=(
        "WidowX (Bridge): dx dy dz (m, base frame), rotation delta (rad, XYZ Euler ~ "
        "axis-angle, base-aligned), gripper absolute in [-1, 1] with +1 = open, -1 = closed"
    ),
)
PANDA_ACTION = ActionSpace(
    space="panda_ee_delta_normalized",
    low=(-1.0,) * 7,
    high=(1.0,) * 7,
    noop=(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),
    description=(
        "Panda (ManiSkill pd_ee_delta_pose): normalised ee delta xyz (x0.1 m) and rotation "
        "(x0.1 rad), gripper absolute in [-1, 1] with +1 = open, -1 = closed"
    ),
)
ACTIONS = {BRIDGE: WIDOWX_ACTION, OFFLINE: PANDA_ACTION}
STATE_SPACES = {BRIDGE: ("widowx_qpos", 8), OFFLINE: ("panda_qpos", 9)}
"""Space tag and size of ``observation.state``: the robot's joint positions (rad; fingers m)."""


def _bridge(name: str, env_id: str, instruction: str, max_steps: int) -> SimplerTask:
    return SimplerTask(
        name=name,
        env_id=env_id,
        instruction=instruction,
        max_steps=max_steps,
        camera="3rd_view_camera",
        robot="widowx250s",
        control_mode="arm_pd_ee_target_delta_pose_align2_gripper_pd_joint_pos",
        obs_mode="rgb+segmentation",
        fps=5.0,
        n_init_states=24,
        init_option="episode_id",
        assets=BRIDGE_ASSETS,
    )


TASKS: dict[str, dict[str, SimplerTask]] = {
    BRIDGE: {
        t.name: t
        for t in (
            _bridge(
                "put_spoon_on_tablecloth",
                "PutSpoonOnTableClothInScene-v1",
                "put the spoon on the towel",
                60,
            ),
            _bridge(
                "put_carrot_on_plate", "PutCarrotOnPlateInScene-v1", "put carrot on plate", 60
            ),
            _bridge(
                "stack_green_block_on_yellow_block",
                "StackGreenCubeOnYellowCubeBakedTexInScene-v1",
                "stack the green block on the yellow block",
                60,
            ),
            _bridge(
                "put_eggplant_in_basket",
                "PutEggplantInBasketScene-v1",
                "put eggplant into yellow basket",
                120,
            ),
        )
    },
    OFFLINE: {
        "pick_cube": SimplerTask(
            name="pick_cube",
            env_id="PickCube-v1",
            instruction="pick up the red cube and move it to the goal",
            max_steps=50,
            camera="base_camera",
            robot="panda",
            control_mode="pd_ee_delta_pose",
            obs_mode="rgb",
            fps=20.0,
            n_init_states=None,
            init_option=None,
            offline=True,
            camera_resizable=True,
        )
    },
}
MAX_EPISODE_STEPS = max(t.max_steps for ts in TASKS.values() for t in ts.values())


def task_set(options: Mapping[str, Any]) -> str:
    """The ``task_set`` env option: ``bridge`` (default) or ``offline``."""
    name = options.get("task_set", BRIDGE)
    if name not in TASK_SETS:
        raise ValueError(
            f"simpler option 'task_set' must be one of {', '.join(TASK_SETS)}, got {name!r}"
        )
    return name


def get_task(name: str, options: Mapping[str, Any]) -> SimplerTask:
    """The task ``name`` of the options' task set, or a ValueError listing the known ones."""
    tasks = TASKS[task_set(options)]
    if name not in tasks:
        raise ValueError(
            f"simpler task set {task_set(options)!r} has no task {name!r} "
            f"(tasks: {', '.join(tasks)})"
        )
    return tasks[name]
