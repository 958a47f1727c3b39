"""Image steps: ``resize_image``, ``rotate_image``, ``flip_image`` (pure numpy).

Each takes ``keys``: a list of image keys (``observation.images.top``, or just ``top``) or
``"all"`` (the env's image features; in a batch, the ``observation.images.*`` keys and
LeRobot's single-camera ``observation.image``). Images are channels-last; the steps act on
the last three axes ``(H, W, C)``, so batches ``(B, H, W, C)`` and histories
``(B, T, H, W, C)`` both work.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from vlabench import api

from ._base import Step, check_params

SINGLE_CAMERA_KEY = "observation.image"


def _keys(step: str, value: Any) -> tuple[str, ...] | None:
    """``None`` for ``"all"``, else the full image keys."""
    if value == "all":
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"adapter {step}: 'keys' must be \"all\" or a list of image keys")
    if not all(isinstance(k, str) and k for k in value):
        raise ValueError(f"adapter {step}: 'keys' must be strings, got {value!r}")
    return tuple(k if "." in k else api.IMAGE_PREFIX + k for k in value)


def is_image_key(key: str) -> bool:
    """Whether a batch key holds images by naming convention."""
    return key.startswith(api.IMAGE_PREFIX) or key == SINGLE_CAMERA_KEY


class ImageStep(Step):
    """Applies :meth:`transform` to the selected images and :meth:`shape` to their features."""

    def __init__(
        self, params: Mapping[str, Any], required: set[str], optional: frozenset[str] = frozenset()
    ) -> None:
        params = check_params(self.name, params, {"keys", *required}, optional)
        self.keys = _keys(self.name, params["keys"])
        self.params = params

    def _selected(self, names: list[str], images: list[str], what: str) -> list[str]:
        if self.keys is None:
            return images
        wrong = [k for k in self.keys if k not in images]
        if wrong:
            raise ValueError(f"adapter {self.name}: {what} has no image {wrong}; it has {names}")
        return list(self.keys)

    def observation_features(self, features: tuple[api.Feature, ...]) -> tuple[api.Feature, ...]:
        names = [f.name for f in features]
        chosen = self._selected(names, [f.name for f in features if f.is_image], "the env")
        out = []
        for f in features:
            if f.name in chosen:
                if f.shape is None or len(f.shape) != 3:
                    raise ValueError(f"adapter {self.name}: needs (H, W, C), got {f.describe()}")
                f = dataclasses.replace(f, shape=self.shape(f.shape))
            out.append(f)
        return tuple(out)

    def observation(self, batch: api.Batch) -> api.Batch:
        images = [k for k in batch if is_image_key(k)]
        out = dict(batch)
        for key in self._selected(list(batch), images, "the batch"):
            array = np.asarray(batch[key])
            if array.ndim < 3:
                raise ValueError(f"adapter {self.name}: {key} must be (..., H, W, C)")
            out[key] = np.ascontiguousarray(self.transform(array))
        return out

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape

    def transform(self, images: np.ndarray) -> np.ndarray:
        return images


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` weights: each output pixel averages the input pixels it covers."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    pixels = np.arange(n_in)[None, :]
    overlap = np.minimum(edges[1:, None], pixels + 1) - np.maximum(edges[:-1, None], pixels)
    overlap = np.clip(overlap, 0.0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    return np.minimum(((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.int64), n_in - 1)


def resize(images: np.ndarray, height: int, width: int, method: str = "area") -> np.ndarray:
    """Resize the last three axes ``(H, W, C)`` to ``(height, width, C)``."""
    h_in, w_in = images.shape[-3], images.shape[-2]
    if (h_in, w_in) == (height, width):
        return images
    if method == "nearest":
        rows, cols = _nearest_index(h_in, height), _nearest_index(w_in, width)
        return images[..., rows, :, :][..., :, cols, :]
    flat = images.reshape(-1, h_in, w_in, images.shape[-1]).astype(np.float32)  # (N, H, W, C)
    cols = np.tensordot(flat, _area_weights(w_in, width), axes=([2], [1]))  # (N, H, C, w)
    rows = np.tensordot(_area_weights(h_in, height), cols, axes=([1], [1]))  # (h, N, C, w)
    out = rows.transpose(1, 0, 3, 2).reshape(*images.shape[:-3], height, width, -1)
    if np.issubdtype(images.dtype, np.integer):
        info = np.iinfo(images.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(images.dtype)


class ResizeImage(ImageStep):
    """Resize images to ``size: [H, W]``; ``method``: ``area`` (default) or ``nearest``."""

    name = "resize_image"

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params, {"size"}, frozenset({"method"}))
        self.method = self.params.get("method", "area")
        size = self.params["size"]
        if (
            not isinstance(size, list | tuple)
            or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
        ):
            raise ValueError(f"adapter {self.name}: 'size' must be [H, W] positive ints")
        if self.method not in ("area", "nearest"):
            raise ValueError(f"adapter {self.name}: 'method' must be area or nearest")
        self.size = (int(size[0]), int(size[1]))

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*self.size, shape[2])

    def transform(self, images: np.ndarray) -> np.ndarray:
        return resize(images, *self.size, method=self.method)


class RotateImage(ImageStep):
    """Rotate images counter-clockwise by ``degrees``: 90, 180 or 270."""

    name = "rotate_image"

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params, {"degrees"})
        degrees = self.params["degrees"]
        if isinstance(degrees, bool) or degrees not in (90, 180, 270):
            raise ValueError(f"adapter {self.name}: 'degrees' must be 90, 180 or 270")
        self.turns = int(degrees) // 90

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape if self.turns == 2 else (shape[1], shape[0], shape[2])

    def transform(self, images: np.ndarray) -> np.ndarray:
        return np.rot90(images, self.turns, axes=(-3, -2))


class FlipImage(ImageStep):
    """Flip images: ``axis: vertical`` turns them upside down, ``horizontal`` mirrors them."""

    name = "flip_image"

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params, {"axis"})
        axis = self.params["axis"]
        if axis not in ("vertical", "horizontal"):
            raise ValueError(f"adapter {self.name}: 'axis' must be vertical or horizontal")
        self.axis = -3 if axis == "vertical" else -2

    def transform(self, images: np.ndarray) -> np.ndarray:
        return np.flip(images, axis=self.axis)
