"""SimplerEnv's Bridge (WidowX) tasks on ManiSkill3 as the vlabench env ``simpler``.

Options (suite ``env_options``):

* ``task_set``: ``bridge`` (default; the four Bridge tasks, need the asset packs fetched by
  ``vlabench assets simpler``) or ``offline`` (ManiSkill tasks whose assets ship with the
  package, wired the same way: CI runs these);
* ``image_size`` (int or ``[H, W]``): render the camera smaller (field-of-view cameras only;
  the Bridge camera has fixed real intrinsics, resize with the ``resize_image`` adapter);
* ``render_backend``: ``cpu`` or ``gpu`` (default: ``gpu`` when CUDA is visible);
* ``requested_features`` (set by the runner): the camera image is emitted only when the policy
  reads it (the Bridge envs still render it: green-screening is their only observation mode).

Protocol facts and the action space (gripper +1 = open) are in :mod:`.tasks`. mani_skill is
imported only in ``make`` and in ``vlabench assets simpler``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from vlabench import api, hookimpl

from . import assets
from .tasks import ACTIONS, MAX_EPISODE_STEPS, STATE_SPACES, TASKS, get_task, task_set

ENV_NAME = "simpler"
OPTIONS = (
    "task_set", "image_size", "render_backend", api.REQUESTED_FEATURES_OPTION, api.ARMED_OPTION
)
RENDER_BACKENDS = ("cpu", "gpu")


class SimplerOptions(BaseModel):
    """The env options, typed (the plan validates suites with it and fills in defaults); no
    ``render_backend`` means "gpu when CUDA is visible", decided where the env is built."""

    model_config = ConfigDict(extra="forbid", strict=True)
    task_set: Literal["bridge", "offline"] = "bridge"
    image_size: int | list[int] | None = None
    render_backend: Literal["cpu", "gpu"] | None = None


def check_options(options: Mapping[str, Any]) -> None:
    """Reject unknown option keys and bad ``render_backend`` values (with the known ones)."""
    unknown = sorted(k for k in options if k not in OPTIONS)
    if unknown:
        raise ValueError(
            f"simpler: unknown option(s) {', '.join(unknown)} (options: {', '.join(OPTIONS)})"
        )
    backend = options.get("render_backend")
    if backend is not None and backend not in RENDER_BACKENDS:
        raise ValueError(
            f"simpler option 'render_backend' must be one of {', '.join(RENDER_BACKENDS)}, "
            f"got {backend!r}"
        )


def image_size(options: Mapping[str, Any]) -> tuple[int, int] | None:
    """The ``image_size`` option as (H, W), validated; None when absent."""
    size = options.get("image_size")
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool):
        size = [size, size]
    if (
        not isinstance(size, list | tuple)
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
    ):
        raise ValueError(f"simpler option 'image_size' must be an int or [H, W], got {size!r}")
    return int(size[0]), int(size[1])


def _camera_shape(options: Mapping[str, Any]) -> tuple[str, tuple[int, int, int]]:
    name = task_set(options)
    task = next(iter(TASKS[name].values()))
    size = image_size(options)
    if size is not None and not task.camera_resizable:
        raise ValueError(
            f"simpler option 'image_size' does not apply to task set {name!r}: its camera "
            f"{task.camera!r} has fixed real intrinsics (resize with the resize_image adapter)"
        )
    if size is None:
        size = (480, 640) if name == "bridge" else (128, 128)
    return task.camera, (size[0], size[1], 3)


def interface(options: Mapping[str, Any]) -> api.EnvInterface:
    """Features of the task set chosen by ``options`` (every task of a set shares them)."""
    check_options(options)
    name = task_set(options)
    action = ACTIONS[name]
    state_space, state_dim = STATE_SPACES[name]
    camera, shape = _camera_shape(options)
    fps = next(iter(TASKS[name].values())).fps
    observation = (
        api.Feature(
            api.STATE_KEY,
            "state",
            (state_dim,),
            "float32",
            state_space,
            description="robot joint positions (rad; finger joints in m)",
        ),
        api.Feature(
            api.IMAGE_PREFIX + camera,
            "image",
            shape,
            "uint8",
            "rgb",
            description="3rd-person camera as SimplerEnv feeds it to the policy",
        ),
        api.Feature(api.TASK_KEY, "language", None, "str", description="instruction"),
    )
    return api.EnvInterface(
        observation=observation,
        action=api.Feature(
            api.ACTION_KEY,
            "action",
            (7,),
            "float32",
            action.space,
            action.low,
            action.high,
            action.description,
        ),
        fps=fps,
        noop_action=action.noop,
    )


def list_tasks(options: Mapping[str, Any]) -> Sequence[api.TaskInfo]:
    """The tasks of the option's task set, with their instructions and init-state counts."""
    return [
        api.TaskInfo(t.name, t.instruction, t.n_init_states)
        for t in TASKS[task_set(options)].values()
    ]


def preflight(task: str, options: Mapping[str, Any]) -> str | None:
    """The one-line missing-asset reason for ``task``, else None (nothing is imported)."""
    spec = get_task(task, options)
    missing = assets.missing_packs(spec.assets) if spec.assets else []
    return assets.missing_message(spec.name, missing) if missing else None


def make(task: str, options: Mapping[str, Any]) -> Any:
    """Build the env for ``task``; missing asset packs raise one line naming the fetch command."""
    spec = get_task(task, options)
    interface(options)  # validates the options before anything is built
    assets.require(spec.name, spec.assets)
    from .env import SimplerEnv, image_key

    requested = options.get(api.REQUESTED_FEATURES_OPTION)
    render = requested is None or image_key(spec) in requested
    return SimplerEnv(
        spec,
        ACTIONS[task_set(options)],
        render_image=render,
        image_size=image_size(options),
        render_backend=options.get("render_backend"),
    )


SPEC = api.EnvSpec(
    name=ENV_NAME,
    description=(
        "SimplerEnv Bridge/WidowX tasks on ManiSkill3 (5 Hz, success at the last step); "
        "task_set: offline runs bundled ManiSkill tasks"
    ),
    make=make,
    interface=interface,
    tasks=list_tasks,
    max_episode_steps=MAX_EPISODE_STEPS,
    success="at_end",
    requires=("mani_skill", "sapien"),
    install_hint="pip install 'vlabench[simpler]' (mani-skill 3); Vulkan is required",
    packages=("mani-skill", "sapien", "torch", "gymnasium"),
    preflight=preflight,
    options=SimplerOptions,
)


@hookimpl
def vlabench_envs() -> list[api.EnvSpec]:
    """The ``simpler`` env."""
    return [SPEC]


@hookimpl
def vlabench_assets() -> list[api.AssetSpec]:
    """The Bridge asset packs (``vlabench assets simpler``)."""
    return [assets.SPEC]
