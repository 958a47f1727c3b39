"""PushT (gym-pusht) as a vlabench env: push the T-shaped block onto the T-shaped target.

Actions are absolute pixel targets for the agent in ``[0, 512]^2``; the observation state is
the agent position in the same space. Options (from the suite or the CLI):

* ``image_size`` (int, default 96): side of the square ``observation.images.top`` image;
* ``render`` (bool, default True): ``False`` gives a state-only env (no camera rendering);
* ``requested_features`` (set by the runner): the camera is rendered only when the policy
  reads it;
* ``reset_to_state`` (5 floats ``[agent_x, agent_y, block_x, block_y, block_angle]``): pins
  the start state of every episode (``reset(options={"reset_to_state": ...})`` overrides it).

gym-pusht is imported only in ``make``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vlabench import api, hookimpl

ENV_NAME = "pusht"
TASK_NAME = "push_t"
INSTRUCTION = "Push the T-shaped block onto the T-shaped target."
IMAGE_KEY = api.IMAGE_PREFIX + "top"
SPACE = "pixel_xy_512"
BOUNDS = ((0.0, 0.0), (512.0, 512.0))
FPS = 10.0
MAX_EPISODE_STEPS = 300
DEFAULT_IMAGE_SIZE = 96


class PushTOptions(BaseModel):
    """The env options, typed (the plan validates suites with it and fills in defaults)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    image_size: int = Field(DEFAULT_IMAGE_SIZE, gt=0)
    render: bool = True
    reset_to_state: list[float] | None = Field(None, min_length=5, max_length=5)


def image_size(options: Mapping[str, Any]) -> int:
    """The ``image_size`` option, validated (a positive int, default 96)."""
    size = options.get("image_size", DEFAULT_IMAGE_SIZE)
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"pusht option 'image_size' must be a positive int, got {size!r}")
    return size


def renders(options: Mapping[str, Any]) -> bool:
    """The ``render`` option: whether the env renders ``observation.images.top``."""
    render = options.get("render", True)
    if not isinstance(render, bool):
        raise ValueError(f"pusht option 'render' must be true or false, got {render!r}")
    return render


def interface(options: Mapping[str, Any]) -> api.EnvInterface:
    """Observation and action features of the env built with ``options`` (nothing is built)."""
    low, high = BOUNDS
    state = api.Feature(
        api.STATE_KEY, "state", (2,), "float32", SPACE, low, high, "agent position (x, y)"
    )
    task = api.Feature(api.TASK_KEY, "language", None, "str", description="instruction")
    observation: tuple[api.Feature, ...] = (state, task)
    if renders(options):
        size = image_size(options)
        image = api.Feature(
            IMAGE_KEY, "image", (size, size, 3), "uint8", "rgb", description="top-down camera"
        )
        observation = (state, image, task)
    action = api.Feature(
        api.ACTION_KEY, "action", (2,), "float32", SPACE, low, high, "agent target (x, y)"
    )
    return api.EnvInterface(observation=observation, action=action, fps=FPS, noop_action=None)


def tasks(options: Mapping[str, Any]) -> Sequence[api.TaskInfo]:
    """The single PushT task."""
    return [api.TaskInfo(TASK_NAME, INSTRUCTION)]


def make(task: str, options: Mapping[str, Any]) -> Any:
    """Build the gymnasium env for ``task`` (imports gym-pusht)."""
    if task != TASK_NAME:
        raise ValueError(f"pusht has one task {TASK_NAME!r}, got {task!r}")
    from .env import PushTEnv

    requested = options.get(api.REQUESTED_FEATURES_OPTION)
    render = renders(options) and (requested is None or IMAGE_KEY in requested)
    return PushTEnv(
        instruction=INSTRUCTION,
        image_size=image_size(options) if render else None,
        reset_to_state=options.get("reset_to_state"),
    )


SPEC = api.EnvSpec(
    name=ENV_NAME,
    description="PushT (gym-pusht): push a T-shaped block onto a target; 2-d pixel targets.",
    make=make,
    interface=interface,
    tasks=tasks,
    max_episode_steps=MAX_EPISODE_STEPS,
    success="ever",
    requires=("gym_pusht",),
    install_hint="pip install 'vlabench[pusht]'",
    packages=("gym-pusht", "pymunk", "gymnasium"),
    options=PushTOptions,
)


@hookimpl
def vlabench_envs() -> list[api.EnvSpec]:
    """PushT."""
    return [SPEC]
