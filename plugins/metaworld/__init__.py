"""Meta-World (v3, MuJoCo) as a vlabench env, and its scripted experts as a policy.

Env ``metaworld``: every v3 task; 4-d end-effector delta + gripper actions in [-1, 1]
(``metaworld_ee_delta``); 500 steps; success = ever (Meta-World's ``info["success"]``).
Observations: ``observation.state`` (LeRobot's agent state: hand xyz + gripper opening),
``observation.environment_state`` (the full 39-d Meta-World observation),
``observation.images.<camera>``, ``task`` (LeRobot's instruction) and ``task_name``.

Env options (suites' ``env_options``, recorded with every run):

* ``cameras`` (list, default ``[corner2]``, LeRobot's camera): any of :data:`CAMERAS`;
  ``[]`` gives a state-only env;
* ``image_size`` (int or ``[height, width]``, default 480 as in LeRobot);
* ``shadows`` / ``reflections`` (bool, default true): the renderer's costliest effects;
* ``camera_pos`` (``{camera: [x, y, z]}``, default LeRobot's corner2 position
  ``{corner2: [0.75, 0.075, 0.7]}``; ``{}`` keeps Meta-World's own);
* ``camera_fovy`` (``{camera: degrees}``, default absent: the model's) and ``light_scale``
  (a factor on every light's diffuse and the headlight, default absent: 1): set by the
  robustness axes of :mod:`.perturb` (camera pose, field of view, lighting);
* ``requested_features`` (set by the runner): only the cameras (and the extra state
  features) the policy reads are produced; a state-only policy renders nothing.

metaworld and mujoco are imported only when an env is built or its tasks are listed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vlabench import api, hookimpl

from . import chunked_expert, expert, perturb, tasks
from .features import (
    ACTION_SPACE,
    ENV_STATE_KEY,
    ENV_STATE_SPACE,
    SIM_STATE_KEY,
    SIM_STATE_SPACE,
    STATE_SPACE,
    TASK_NAME_KEY,
    TASK_NAME_SPACE,
    image_key,
)

ENV_NAME = "metaworld"
FPS = 80.0
MAX_EPISODE_STEPS = 500
CAMERAS = ("topview", "corner", "corner2", "corner3", "corner4", "behindGripper", "gripperPOV")
DEFAULTS: dict[str, Any] = {
    "cameras": ["corner2"],
    "image_size": 480,
    "shadows": True,
    "reflections": True,
    "camera_pos": {"corner2": [0.75, 0.075, 0.7]},
}


class MetaWorldOptions(BaseModel):
    """The env options, typed (the plan validates suites with it and fills in defaults);
    :func:`check_options` still checks camera names and sizes."""

    model_config = ConfigDict(extra="forbid", strict=True)
    cameras: list[str] = Field(default_factory=lambda: list(DEFAULTS["cameras"]))
    image_size: int | list[int] = DEFAULTS["image_size"]
    shadows: bool = DEFAULTS["shadows"]
    reflections: bool = DEFAULTS["reflections"]
    camera_pos: dict[str, list[float]] = Field(
        default_factory=lambda: copy.deepcopy(DEFAULTS["camera_pos"])
    )
    camera_fovy: dict[str, float] | None = None
    light_scale: float | None = Field(None, ge=0)

    @field_validator("cameras", mode="before")
    @classmethod
    def _one_camera(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value  # `cameras: corner2` is [corner2]


# Meta-World's hand space and gripper opening: the bounds of ``observation.state``.
STATE_LOW = (-0.525, 0.348, -0.0525, -1.0)
STATE_HIGH = (0.525, 1.025, 0.7, 1.0)


def _where(key: str) -> str:
    return f"metaworld env option {key!r}"


def cameras(options: Mapping[str, Any]) -> list[str]:
    """The ``cameras`` option, validated."""
    value = options.get("cameras", DEFAULTS["cameras"])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(c, str) for c in value):
        raise ValueError(f"{_where('cameras')} must be a list of camera names, got {value!r}")
    unknown = [c for c in value if c not in CAMERAS]
    if unknown:
        raise ValueError(f"{_where('cameras')}: unknown {unknown} (cameras: {', '.join(CAMERAS)})")
    if len(set(value)) != len(value):
        raise ValueError(f"{_where('cameras')} lists a camera twice: {value!r}")
    return list(value)


def image_size(options: Mapping[str, Any]) -> tuple[int, int]:
    """``(height, width)`` from the ``image_size`` option (an int or two ints)."""
    value = options.get("image_size", DEFAULTS["image_size"])
    size = [value, value] if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(size, list | tuple)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise ValueError(
            f"{_where('image_size')} must be a positive int or [height, width], got {value!r}"
        )
    return int(size[0]), int(size[1])


def _flag(options: Mapping[str, Any], key: str) -> bool:
    value = options.get(key, DEFAULTS[key])
    if not isinstance(value, bool):
        raise ValueError(f"{_where(key)} must be true or false, got {value!r}")
    return value


def camera_pos(options: Mapping[str, Any]) -> dict[str, list[float]]:
    """The ``camera_pos`` option: camera -> ``[x, y, z]``."""
    value = options.get("camera_pos", DEFAULTS["camera_pos"])
    if not isinstance(value, Mapping):
        raise ValueError(f"{_where('camera_pos')} must map cameras to [x, y, z], got {value!r}")
    out = {}
    for camera, pos in value.items():
        if camera not in CAMERAS:
            raise ValueError(f"{_where('camera_pos')}: unknown camera {camera!r}")
        if (
            not isinstance(pos, list | tuple)
            or len(pos) != 3
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pos)
        ):
            raise ValueError(f"{_where('camera_pos')}[{camera}] must be [x, y, z], got {pos!r}")
        out[camera] = [float(v) for v in pos]
    return out


def check_options(options: Mapping[str, Any]) -> None:
    """Validate every option; unknown keys are errors (a typo must not give the default)."""
    allowed = {*DEFAULTS, *perturb.OPTIONS, api.REQUESTED_FEATURES_OPTION, api.ARMED_OPTION}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(
            f"metaworld env: unknown option(s) {unknown} (options: {', '.join(sorted(allowed))})"
        )
    cameras(options)
    image_size(options)
    _flag(options, "shadows")
    _flag(options, "reflections")
    camera_pos(options)


def interface(options: Mapping[str, Any]) -> api.EnvInterface:
    """Observation and action features of the env built with ``options`` (nothing is built)."""
    check_options(options)
    observation = [
        api.Feature(
            api.STATE_KEY,
            "state",
            (4,),
            "float32",
            STATE_SPACE,
            STATE_LOW,
            STATE_HIGH,
            "hand position xyz and gripper opening (LeRobot's agent_pos)",
        ),
        api.Feature(
            ENV_STATE_KEY,
            "state",
            (39,),
            "float32",
            ENV_STATE_SPACE,
            description="Meta-World observation: hand, gripper, objects (now and previous), goal",
        ),
    ]
    h, w = image_size(options)
    for camera in cameras(options):
        observation.append(
            api.Feature(
                image_key(camera), "image", (h, w, 3), "uint8", "rgb", description=camera
            )
        )
    observation += [
        api.Feature(api.TASK_KEY, "language", None, "str", description="LeRobot's instruction"),
        api.Feature(
            TASK_NAME_KEY, "state", None, "str", TASK_NAME_SPACE, description="Meta-World task"
        ),
        api.Feature(
            SIM_STATE_KEY,
            "state",
            None,
            "float64",
            SIM_STATE_SPACE,
            description="MuJoCo qpos, qvel, mocap pose and goal (only for model-based experts)",
        ),
    ]
    action = api.Feature(
        api.ACTION_KEY,
        "action",
        (4,),
        "float32",
        ACTION_SPACE,
        (-1.0,) * 4,
        (1.0,) * 4,
        "end-effector delta xyz (x 1 cm) and gripper effort (+1 closes)",
    )
    return api.EnvInterface(
        observation=tuple(observation), action=action, fps=FPS, noop_action=(0.0,) * 4
    )


def task_infos(options: Mapping[str, Any]) -> Sequence[api.TaskInfo]:
    """Every v3 task with LeRobot's instruction (imports metaworld)."""
    return [api.TaskInfo(name, tasks.instruction(name)) for name in tasks.task_names()]


def make(task: str, options: Mapping[str, Any]) -> Any:
    """Build the env for ``task``, rendering only the cameras the policy reads."""
    check_options(options)
    tasks.check_task(task)
    from .env import MetaWorldEnv

    requested = options.get(api.REQUESTED_FEATURES_OPTION)

    def wanted(name: str) -> bool:
        return requested is None or name in requested

    return MetaWorldEnv(
        task,
        tasks.instruction(task),
        cameras=[c for c in cameras(options) if wanted(image_key(c))],
        image_size=image_size(options),
        shadows=_flag(options, "shadows"),
        reflections=_flag(options, "reflections"),
        camera_pos=camera_pos(options),
        camera_fovy=perturb.camera_fovy(options),
        light_scale=perturb.light_scale(options),
        environment_state=wanted(ENV_STATE_KEY),
        task_name=wanted(TASK_NAME_KEY),
        sim_state=requested is not None and SIM_STATE_KEY in requested,
    )


SPEC = api.EnvSpec(
    name=ENV_NAME,
    description="Meta-World v3 (MuJoCo): 50 Sawyer tasks, 4-d ee delta + gripper, 500 steps.",
    make=make,
    interface=interface,
    tasks=task_infos,
    max_episode_steps=MAX_EPISODE_STEPS,
    success="ever",
    requires=("metaworld", "mujoco"),
    install_hint="pip install 'vlabench[metaworld]'",
    packages=("metaworld", "mujoco", "gymnasium", "lerobot"),
    options=MetaWorldOptions,
)


@hookimpl
def vlabench_envs() -> list[api.EnvSpec]:
    """Meta-World."""
    return [SPEC]


@hookimpl
def vlabench_perturbations() -> list[api.PerturbationSpec]:
    """Camera pose, field of view and lighting of the simulator."""
    return list(perturb.SPECS)


@hookimpl
def vlabench_policies() -> list[api.PolicySpec]:
    """Meta-World's scripted expert for every task, and its chunk-planning variant."""
    return [expert.SPEC, chunked_expert.SPEC]
