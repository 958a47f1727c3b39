"""PAROL6 (Source Robotics, 6 axes) with an Intel RealSense D405, as the vlabench env ``parol6``.

Actions and ``observation.state`` are the 6 joint angles in degrees (absolute targets, space
``parol6_joint_pos_deg``); the camera is ``observation.images.<camera_name>`` (default
``wrist``), plus ``..._depth`` (uint16, raw z16) with ``depth: true``. Success is judged by the
operator (semantics ``human``). Options: :mod:`.options`. By default the env is a dry run
against the built-in fake arm and camera; the real arm needs ``fake: false`` and ``--armed``
(the runner's ``api.ARMED_OPTION``, checked by :func:`preflight` before a run's jobs start).

Modules: ``protocol`` (wire format of the pinned parol6-server release), ``driver`` (UDP
client, confirmed e-stop), ``safety`` (gate, caps, arming, per-arm e-stop latch, watchdog),
``signals`` (SIGTERM/SIGHUP/SIGINT e-stop), ``camera`` (D405), ``fake`` (fake server and
camera), ``operator`` (prompts), ``options``, ``env``. Nothing heavy is imported until ``make``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vlabench import api, hookimpl

from .options import Parol6EnvOptions

ENV_NAME = "parol6"
SPACE = "parol6_joint_pos_deg"
MAX_EPISODE_STEPS = 300


def preflight(task: str, options: Mapping[str, Any]) -> str | None:
    """Where an unarmed real-arm run stops: before its jobs run, so that no failed episodes
    are stored for a run that was never allowed to move. An armed one (the runner's
    ``api.ARMED_OPTION``) asks for the confirmation now, before the run starts."""
    from .options import armed, parse_options

    try:
        o = parse_options(options)
    except ValueError:
        return None  # bad options: the pair's check reports them
    if o.fake:
        return None
    if not armed(options):
        return (
            "the real PAROL6 moves only in an armed run: add --armed (you will be asked to "
            "confirm at the terminal), or --fake for a dry run"
        )
    if o.operator_kind == "console":
        from .env import make_operator
        from .safety import arming_key, confirm_once

        key = arming_key(o.host, o.port, o.safety, o.start_joints)
        if not confirm_once(key, make_operator(o).confirm_arming):
            return "arming was not confirmed at the terminal (type ARM)"
    return None


def interface(options: Mapping[str, Any]) -> api.EnvInterface:
    """Features of the env built with ``options`` (nothing is connected)."""
    from .options import parse_options
    from .safety import SafetyGate

    o = parse_options(options)
    gate = SafetyGate(o.safety)
    low, high = tuple(float(v) for v in gate.low), tuple(float(v) for v in gate.high)
    state = api.Feature(
        api.STATE_KEY, "state", (6,), "float32", SPACE, low, high, "joint angles J1..J6 (deg)"
    )
    task = api.Feature(api.TASK_KEY, "language", None, "str", description="instruction")
    observation: list[api.Feature] = [state]
    if o.camera_kind != "none":
        h, w = o.image_shape
        key = api.IMAGE_PREFIX + o.camera_name
        observation.append(
            api.Feature(key, "image", (h, w, 3), "uint8", "rgb", description="D405 colour")
        )
        if o.depth:
            observation.append(
                api.Feature(
                    key + "_depth", "image", (h, w, 1), "uint16", "depth_z16",
                    description="D405 depth (raw z16 units)",
                )
            )
    observation.append(task)
    action = api.Feature(
        api.ACTION_KEY, "action", (6,), "float32", SPACE, low, high,
        "joint targets J1..J6 (deg), clamped by the env's safety gate",
    )
    return api.EnvInterface(tuple(observation), action, fps=o.safety.control_hz, noop_action=None)


def tasks(options: Mapping[str, Any]) -> Sequence[api.TaskInfo]:
    """The suite's tasks (option ``tasks: {name: instruction}``)."""
    from .options import parse_options

    return [api.TaskInfo(name, text) for name, text in parse_options(options).tasks.items()]


def make(task: str, options: Mapping[str, Any]) -> Any:
    """Connect to the arm (or start the fake) and the camera."""
    from .env import Parol6Env
    from .options import armed, parse_options

    requested = options.get(api.REQUESTED_FEATURES_OPTION)
    return Parol6Env(
        task,
        parse_options(options),
        requested=None if requested is None else list(requested),
        armed=armed(options),
    )


SPEC = api.EnvSpec(
    name=ENV_NAME,
    description="PAROL6 arm + D405 (real, or the built-in fake); joint targets in degrees.",
    make=make,
    interface=interface,
    tasks=tasks,
    max_episode_steps=MAX_EPISODE_STEPS,
    success="human",
    requires=("msgpack",),
    install_hint="pip install 'vlabench[parol6]'",
    packages=("msgpack", "pyrealsense2"),
    preflight=preflight,
    options=Parol6EnvOptions,
)


@hookimpl
def vlabench_envs() -> list[api.EnvSpec]:
    """The PAROL6 env."""
    return [SPEC]
