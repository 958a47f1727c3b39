"""Generic adapter steps that bridge a policy and an env (declared per pair in registry.yaml).

``rename_observation``, ``set_space``, ``rescale_action``, ``resize_image``, ``rotate_image``
and ``flip_image``: each a small step, composed in order, numpy only.
"""

from __future__ import annotations

from vlabench import api, hookimpl

from .action import RescaleAction
from .image import FlipImage, ResizeImage, RotateImage
from .observation import RenameObservation, SetSpace

SPECS = [
    api.AdapterSpec(
        "rename_observation",
        "Rename observation keys (params: map {env_key: policy_key}).",
        RenameObservation,
    ),
    api.AdapterSpec(
        "set_space",
        "Declare a feature's space tag without changing data (params: feature, space).",
        SetSpace,
    ),
    api.AdapterSpec(
        "rescale_action",
        "Map the policy's action range onto the env's (params: from, to, optional space).",
        RescaleAction,
    ),
    api.AdapterSpec(
        "resize_image",
        "Resize images (params: keys list or all, size [H, W], optional method area|nearest).",
        ResizeImage,
    ),
    api.AdapterSpec(
        "rotate_image",
        "Rotate images counter-clockwise (params: keys, degrees 90|180|270).",
        RotateImage,
    ),
    api.AdapterSpec(
        "flip_image",
        "Flip images (params: keys, axis vertical (upside down) | horizontal (mirror)).",
        FlipImage,
    ),
]


@hookimpl
def vlabench_adapters() -> list[api.AdapterSpec]:
    """The generic adapter steps."""
    return list(SPECS)
