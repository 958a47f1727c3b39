"""The ``parol6`` env options (suite ``env_options``, ``vlabench run -E KEY=VALUE``), validated.

Everything in the options is part of the run's config hash: the labeller, the camera serial
and settings, the control rate and the safety limits are therefore stored with every run.
Arming is deliberately *not* an option (a registry file cannot carry it): it comes from
``--armed`` (environment variable ``VLABENCH_ARMED=1``) and is always confirmed by a human at
the terminal; the real arm accepts only the console operator.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from vlabench import api

from .safety import STANDBY_DEG, SafetyConfig

ARMED_ENV_VAR = "VLABENCH_ARMED"
DEFAULT_TASKS = {"pick_place": "Pick up the cube and put it in the bowl."}
DEFAULT_EPISODE_STEPS = 300


@dataclass(frozen=True)
class Parol6Options:
    fake: bool = True
    """Dry run against the built-in fake arm and camera (the default: nothing real moves)."""
    host: str = "127.0.0.1"
    port: int = 5001
    operator: str = ""
    """console | scripted | auto; default: auto for fake runs, console for the real arm."""
    operator_script: tuple[str, ...] = ()
    labeller: str = ""
    camera: str = ""
    """realsense | fake | none; default: fake for fake runs, realsense for the real arm."""
    camera_name: str = "wrist"
    camera_serial: str | None = None
    camera_width: int = 640
    camera_height: int = 480
    camera_fps: int = 60
    depth: bool = False
    image_size: tuple[int, int] | None = None
    """(height, width) the colour image is resized to; default: the capture size."""
    episode_steps: int = DEFAULT_EPISODE_STEPS
    start_joints: tuple[float, ...] = STANDBY_DEG
    tasks: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TASKS))
    failure_tags: tuple[str, ...] = ()
    labels_log: str | None = None
    server_version: str | None = None
    """When set, the server must report exactly this version (pins it in the config)."""
    reply_timeout_ms: float = 300.0
    home_timeout_s: float = 60.0
    move_timeout_s: float = 30.0
    fake_latency_ms: float = 0.0
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    """Limits and deadlines: given as flat options named like SafetyConfig's fields."""

    @property
    def operator_kind(self) -> str:
        return self.operator or ("auto" if self.fake else "console")

    @property
    def camera_kind(self) -> str:
        return self.camera or ("fake" if self.fake else "realsense")

    @property
    def arming_requested(self) -> bool:
        """Whether the run was started with ``--armed``."""
        return os.environ.get(ARMED_ENV_VAR) == "1"

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.image_size or (self.camera_height, self.camera_width)


_TYPES: dict[str, type | tuple[type, ...]] = {
    "fake": bool,
    "depth": bool,
    "host": str,
    "operator": str,
    "labeller": str,
    "camera": str,
    "camera_name": str,
    "camera_serial": (str, int),
    "labels_log": str,
    "server_version": str,
    "port": int,
    "camera_width": int,
    "camera_height": int,
    "camera_fps": int,
    "episode_steps": int,
}
_CHOICES = {
    "operator": ("", "console", "scripted", "auto"),
    "camera": ("", "realsense", "fake", "none"),
}


def parse_options(options: Mapping[str, Any]) -> Parol6Options:
    """Validate ``options``; ValueError naming the option, what was expected and found."""
    safety_keys = {f.name for f in fields(SafetyConfig)}
    known = ({f.name for f in fields(Parol6Options)} - {"safety"}) | safety_keys
    values: dict[str, Any] = {}
    safety: dict[str, Any] = {}
    for key, value in options.items():
        if key == api.REQUESTED_FEATURES_OPTION:
            continue
        if key not in known:
            raise ValueError(
                f"parol6: unknown option {key!r} (options: {', '.join(sorted(known))})"
            )
        (safety if key in safety_keys else values)[key] = _convert(key, value)
    parsed = Parol6Options(**values, safety=SafetyConfig(**safety))
    _check(parsed)
    return parsed


def _convert(key: str, value: Any) -> Any:
    def bad(expected: str) -> ValueError:
        return ValueError(f"parol6 option {key!r}: expected {expected}, got {value!r}")

    if key in _TYPES:
        expected = _TYPES[key]
        if value is None and key in ("camera_serial", "labels_log", "server_version"):
            return None
        if isinstance(value, bool) and expected is not bool:
            raise bad(str(expected))
        if not isinstance(value, expected):
            raise bad(getattr(expected, "__name__", str(expected)))
        if key in _CHOICES and value not in _CHOICES[key]:
            raise bad(f"one of {[c for c in _CHOICES[key] if c]}")
        return str(value) if key == "camera_serial" else value
    if key in ("operator_script", "failure_tags"):
        if not isinstance(value, list | tuple):
            raise bad("a list")
        return tuple("" if v is None else str(v) for v in value)
    if key == "tasks":
        if not isinstance(value, Mapping) or not value:
            raise bad("a non-empty mapping {task: instruction}")
        return {str(k): str(v) for k, v in value.items()}
    if key == "start_joints":
        if not isinstance(value, list | tuple) or len(value) != 6:
            raise bad("6 joint angles in degrees")
        return tuple(float(v) for v in value)
    if key == "image_size":
        if value is None:
            return None
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise bad("[height, width]")
        return (int(value[0]), int(value[1]))
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad("a number")
    return float(value)


def _check(o: Parol6Options) -> None:
    if o.episode_steps <= 0:
        raise ValueError(f"parol6 option 'episode_steps' must be > 0, got {o.episode_steps}")
    if not o.fake and o.operator_kind != "console":
        raise ValueError(
            f"parol6: the real arm needs a human at the console (operator: console), "
            f"got operator {o.operator_kind!r}"
        )
    if o.image_size is not None and min(o.image_size) <= 0:
        raise ValueError(f"parol6 option 'image_size' must be positive, got {o.image_size}")
    if o.camera_kind == "realsense":
        from .camera import check_profile

        check_profile(o.camera_width, o.camera_height, o.camera_fps)
