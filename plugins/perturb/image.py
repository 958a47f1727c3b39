"""Image corruptions on every camera the policy sees: ``image_noise``, ``brightness``,
``blur`` and ``occlusion`` (numpy only; images channels-last uint8, any leading axes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vlabench import api

from ._step import PerturbStep, is_image_key, number


class ImageStep(PerturbStep):
    """Applies :meth:`corrupt` to each image of each row; identity when :attr:`active` is off."""

    active = True

    def corrupt(self, image: np.ndarray, episode: int, step: int, camera: int) -> np.ndarray:
        raise NotImplementedError

    def observation(self, batch: api.Batch) -> api.Batch:
        if not self.active:
            return batch
        episodes, steps = self.rows(batch)
        out = dict(batch)
        cameras = sorted(k for k in batch if is_image_key(k))
        for c, key in enumerate(cameras):
            images = np.asarray(batch[key])
            corrupted = np.empty_like(images)
            for b, (episode, step) in enumerate(zip(episodes, steps, strict=True)):
                corrupted[b] = self.corrupt(images[b], int(episode), int(step), c)
            out[key] = corrupted
        return out


def _to_uint8(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(like.dtype)


class ImageNoise(ImageStep):
    """Gaussian pixel noise, ``std`` in 0-255 units, a new draw every step and camera."""

    name = "image_noise"
    allowed = frozenset({"std"})

    def __init__(self, params: Mapping[str, Any] | None) -> None:
        super().__init__(params)
        self.std = number(self.name, self.params, "std", 0.0, high=255.0)
        self.active = self.std > 0

    def corrupt(self, image: np.ndarray, episode: int, step: int, camera: int) -> np.ndarray:
        noise = self.rng(episode, step, salt=10 + camera).normal(0.0, self.std, image.shape)
        return _to_uint8(image + noise, image)


class Brightness(ImageStep):
    """``(x * brightness - 128) * contrast + 128``: lighter/darker and flatter/harsher."""

    name = "brightness"
    allowed = frozenset({"brightness", "contrast"})

    def __init__(self, params: Mapping[str, Any] | None) -> None:
        super().__init__(params)
        self.brightness = number(self.name, self.params, "brightness", 1.0)
        self.contrast = number(self.name, self.params, "contrast", 1.0)
        self.active = (self.brightness, self.contrast) != (1.0, 1.0)

    def corrupt(self, image: np.ndarray, episode: int, step: int, camera: int) -> np.ndarray:
        values = (image.astype(np.float32) * self.brightness - 128.0) * self.contrast + 128.0
        return _to_uint8(values, image)


class Blur(ImageStep):
    """A box blur of ``radius`` pixels (a (2r+1)^2 mean, edges repeated)."""

    name = "blur"
    allowed = frozenset({"radius"})

    def __init__(self, params: Mapping[str, Any] | None) -> None:
        super().__init__(params)
        radius = self.params.get("radius", 0)
        if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
            raise ValueError(f"perturbation {self.name}: 'radius' must be an int >= 0")
        self.radius = radius
        self.active = radius > 0

    def corrupt(self, image: np.ndarray, episode: int, step: int, camera: int) -> np.ndarray:
        r, h_axis, w_axis = self.radius, image.ndim - 3, image.ndim - 2
        pad = [(0, 0)] * image.ndim
        pad[h_axis] = pad[w_axis] = (r + 1, r)
        sums = np.pad(image.astype(np.float64), pad, mode="edge")
        sums = sums.cumsum(h_axis).cumsum(w_axis)
        k, h, w = 2 * r + 1, image.shape[h_axis], image.shape[w_axis]

        def cut(a: np.ndarray, ys: slice, xs: slice) -> np.ndarray:
            index = [slice(None)] * a.ndim
            index[h_axis], index[w_axis] = ys, xs
            return a[tuple(index)]

        box = (
            cut(sums, slice(k, k + h), slice(k, k + w)) - cut(sums, slice(0, h), slice(k, k + w))
            - cut(sums, slice(k, k + h), slice(0, w)) + cut(sums, slice(0, h), slice(0, w))
        )
        return _to_uint8(box / (k * k), image)


class Occlusion(ImageStep):
    """A black square of side ``size`` (fraction of the shorter side) per camera, placed at
    random once per episode (it stays put for the whole episode)."""

    name = "occlusion"
    allowed = frozenset({"size"})

    def __init__(self, params: Mapping[str, Any] | None) -> None:
        super().__init__(params)
        self.size = number(self.name, self.params, "size", 0.0, high=1.0)
        self.active = self.size > 0

    def corrupt(self, image: np.ndarray, episode: int, step: int, camera: int) -> np.ndarray:
        h, w = image.shape[-3], image.shape[-2]
        side = max(1, round(self.size * min(h, w)))
        rng = self.rng(episode, 0, salt=20 + camera)  # step 0: the same place all episode
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        out = image.copy()
        out[..., y : y + side, x : x + side, :] = 0
        return out
