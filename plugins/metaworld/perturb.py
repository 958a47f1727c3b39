"""Simulator-side robustness axes of Meta-World: camera pose, field of view, lighting.

Each sets env options over the suite's (the env applies them when it is built), so a
perturbed run differs from its control in those options only. None draws at random: the
same change for every episode, the episode's own seed still placing goal and objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vlabench import api

OPTIONS = ("camera_fovy", "light_scale")
"""Env options of these axes (absent by default: the control's options are unchanged)."""


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"metaworld {name} must be a number, got {value!r}")
    return float(value)


def camera_fovy(options: Mapping[str, Any]) -> dict[str, float] | None:
    """The ``camera_fovy`` option: camera -> vertical field of view in degrees (0-180)."""
    value = options.get("camera_fovy")
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(
            f"metaworld env option 'camera_fovy' must map cameras to degrees, got {value!r}"
        )
    out = {str(k): _number("camera_fovy", v) for k, v in value.items()}
    if not all(0 < v < 180 for v in out.values()):
        raise ValueError(f"metaworld env option 'camera_fovy' must be in (0, 180), got {value!r}")
    return out


def light_scale(options: Mapping[str, Any]) -> float | None:
    """The ``light_scale`` option: a factor >= 0 on the scene's lights."""
    value = options.get("light_scale")
    if value is None:
        return None
    scale = _number("light_scale", value)
    if scale < 0:
        raise ValueError(f"metaworld env option 'light_scale' must be >= 0, got {value!r}")
    return scale


def _cameras(options: Mapping[str, Any]) -> list[str]:
    cameras = list(options.get("cameras") or [])
    if not cameras:
        raise ValueError("the suite renders no camera (cameras: []) to perturb")
    return cameras


def camera_shift(params: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """``camera_pos`` of every rendered camera moved by ``offset`` [dx, dy, dz] metres."""
    offset = params.get("offset")
    if not isinstance(offset, list | tuple) or len(offset) != 3:
        raise ValueError(f"camera_shift needs offset: [dx, dy, dz], got {offset!r}")
    delta = [_number("offset", v) for v in offset]
    positions = dict(options.get("camera_pos") or {})
    for camera in _cameras(options):
        if camera not in positions:
            raise ValueError(f"camera {camera!r} has no camera_pos in the suite to shift from")
        positions[camera] = [p + d for p, d in zip(positions[camera], delta, strict=True)]
    return {"camera_pos": positions}


def camera_fov(params: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Every rendered camera's vertical field of view set to ``fovy`` degrees."""
    fovy = _number("fovy", params.get("fovy"))
    return {"camera_fovy": {camera: fovy for camera in _cameras(options)}}


def lighting(params: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The scene's lights scaled by ``scale`` (1 = unchanged)."""
    _cameras(options)
    return {"light_scale": _number("scale", params.get("scale"))}


SPECS = [
    api.PerturbationSpec(
        "metaworld.camera_shift", "Move every rendered camera by offset [dx, dy, dz] m.",
        "env", env_options=camera_shift, envs=("metaworld",),
    ),
    api.PerturbationSpec(
        "metaworld.camera_fov", "Set every rendered camera's vertical field of view (fovy, deg).",
        "env", env_options=camera_fov, envs=("metaworld",),
    ),
    api.PerturbationSpec(
        "metaworld.lighting", "Scale every light of the scene (scale; 1 = unchanged).",
        "env", env_options=lighting, envs=("metaworld",),
    ),
]
