"""The ``parol6`` env options (suite ``env_options``, ``vlabench run -E KEY=VALUE``), validated.

Everything in the options is part of the run's config hash: the labeller, the camera serial
and settings, the control rate and the safety limits are therefore stored with every run.
Arming is deliberately *not* a suite option (a registry file cannot carry it: the planner
refuses ``armed`` in a suite's env options): ``--armed`` reaches the env as the runner-set
option ``api.ARMED_OPTION`` (read by :func:`armed`, never part of :class:`Parol6Options` or the
config hash) and is always confirmed by a human at the terminal; the real arm accepts only the
console operator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vlabench import api

from .safety import STANDBY_DEG, SafetyConfig

RUNNER_OPTIONS = (api.REQUESTED_FEATURES_OPTION, api.ARMED_OPTION)
"""Set by the runner, not by suites: not parsed into :class:`Parol6Options`."""
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
    """The parol6-server release (required for the real arm: the pinned one, see
    ``protocol.SERVER_RELEASE``; it pins the protocol in the stored config)."""
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
        if key in RUNNER_OPTIONS:
            continue
        if key not in known:
            raise ValueError(
                f"parol6: unknown option {key!r} (options: {', '.join(sorted(known))})"
            )
        (safety if key in safety_keys else values)[key] = _convert(key, value)
    parsed = Parol6Options(**values, safety=SafetyConfig(**safety))
    _check(parsed)
    return parsed


def armed(options: Mapping[str, Any]) -> bool:
    """Whether the run was started with ``--armed`` (the runner's ``api.ARMED_OPTION``)."""
    return options.get(api.ARMED_OPTION) is True


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


REPLY_TIMEOUT_MS = (20.0, 1000.0)
"""Hard cap of ``reply_timeout_ms`` (a silent arm is noticed within it)."""


def _check(o: Parol6Options) -> None:
    from .protocol import SERVER_RELEASE
    from .safety import SafetyGate, UnsafeActionError

    low, high = REPLY_TIMEOUT_MS
    if not low <= o.reply_timeout_ms <= high:
        raise ValueError(
            f"parol6 option 'reply_timeout_ms' must be in [{low:g}, {high:g}] (hard cap), "
            f"got {o.reply_timeout_ms:g}"
        )
    try:
        SafetyGate(o.safety).checked_pose(o.start_joints)
    except UnsafeActionError as exc:
        raise ValueError(f"parol6 option 'start_joints': {exc}") from None
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
    if not o.fake and o.server_version != SERVER_RELEASE:
        raise ValueError(
            f"parol6: the real arm needs option server_version: {SERVER_RELEASE!r} (the "
            f"parol6-server release this plugin's protocol follows), got {o.server_version!r}"
        )


_D, _S = Parol6Options(), SafetyConfig()
_Answer = str | int | float | bool | None  # YAML scalars; the env reads them as text


class Parol6EnvOptions(BaseModel):
    """The options, typed, with :class:`Parol6Options`' defaults (safety limits flat): the
    plan validates suites with it and fills in defaults; :func:`parse_options` still checks
    what types cannot (limits, the real arm's operator, camera profiles)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    fake: bool = _D.fake
    host: str = _D.host
    port: int = _D.port
    operator: Literal["", "console", "scripted", "auto"] = ""
    operator_script: list[_Answer] = Field(default_factory=list)
    labeller: str = _D.labeller
    camera: Literal["", "realsense", "fake", "none"] = ""
    camera_name: str = _D.camera_name
    camera_serial: str | int | None = None
    camera_width: int = _D.camera_width
    camera_height: int = _D.camera_height
    camera_fps: int = _D.camera_fps
    depth: bool = _D.depth
    image_size: list[int] | None = Field(None, min_length=2, max_length=2)
    episode_steps: int = _D.episode_steps
    start_joints: list[float] = Field(
        default_factory=lambda: list(_D.start_joints), min_length=6, max_length=6
    )
    tasks: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_TASKS), min_length=1)
    failure_tags: list[_Answer] = Field(default_factory=list)
    labels_log: str | None = None
    server_version: str | None = None
    reply_timeout_ms: float = _D.reply_timeout_ms
    home_timeout_s: float = _D.home_timeout_s
    move_timeout_s: float = _D.move_timeout_s
    fake_latency_ms: float = _D.fake_latency_ms
    margin_deg: float = _S.margin_deg
    max_step_deg: float = _S.max_step_deg
    max_speed_dps: float = _S.max_speed_dps
    speed_pct: float = _S.speed_pct
    control_hz: float = _S.control_hz
    status_timeout_ms: float = _S.status_timeout_ms
    policy_timeout_ms: float = _S.policy_timeout_ms
    max_limit_clamps: int = _S.max_limit_clamps
    confirm_move_deg: float = _S.confirm_move_deg
