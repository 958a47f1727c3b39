"""Write episodes (arrays) into a LeRobotDataset with LeRobot's own writer.

Used to record rollouts and to build small datasets for tests and benchmarks. Videos are
encoded with H.264 (``crf`` 0 by default: lossless luma, so tiny test frames survive) because
LeRobot's default AV1 encoder (SVT-AV1) rejects frames smaller than 64 px.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def features_for(
    state_dim: int | None, action_dim: int, cameras: Mapping[str, tuple[int, int]]
) -> dict[str, dict[str, Any]]:
    """LeRobot feature specs: ``observation.state``, ``action``, one video per camera (H, W)."""
    features: dict[str, dict[str, Any]] = {
        "action": {
            "dtype": "float32", "shape": (action_dim,),
            "names": [f"a{i}" for i in range(action_dim)],
        }
    }
    if state_dim:
        features["observation.state"] = {
            "dtype": "float32", "shape": (state_dim,),
            "names": [f"s{i}" for i in range(state_dim)],
        }
    for name, (h, w) in cameras.items():
        key = name if name.startswith("observation.images.") else f"observation.images.{name}"
        features[key] = {
            "dtype": "video", "shape": (h, w, 3), "names": ["height", "width", "channels"]
        }
    return features


def write_dataset(
    root: str | Path,
    episodes: Sequence[Sequence[Mapping[str, Any]]],
    features: Mapping[str, Mapping[str, Any]],
    *,
    fps: int = 10,
    repo_id: str = "local/recorded",
    robot_type: str | None = None,
    crf: int = 0,
) -> Path:
    """Write ``episodes`` (each a list of frames: feature arrays + ``task``) under ``root``."""
    from lerobot.configs.video import RGBEncoderConfig
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset.create(
        repo_id,
        fps=fps,
        features=dict(features),
        root=root,
        robot_type=robot_type,
        use_videos=True,
        rgb_encoder=RGBEncoderConfig(vcodec="h264", crf=crf, g=2),
        video_backend="pyav",
    )
    for frames in episodes:
        for frame in frames:
            dataset.add_frame(
                {k: (v if k == "task" else np.asarray(v)) for k, v in frame.items()}
            )
        dataset.save_episode(parallel_encoding=False)
    dataset.finalize()
    return Path(root)


def recorded_features(interface: Any, first: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """LeRobot features for an env's numeric states, its cameras and its action.

    Shapes come from the first recorded frame (what the env really returned); string and
    shapeless features (task names, simulator states) are left out.
    """
    features: dict[str, dict[str, Any]] = {}
    for feature in (*interface.observation, interface.action):
        value = first.get(feature.name)
        if value is None or feature.kind == "language" or feature.dtype == "str":
            continue
        array = np.asarray(value)
        if feature.kind == "image":
            features[feature.name] = {
                "dtype": "video", "shape": tuple(array.shape),
                "names": ["height", "width", "channels"],
            }
        elif feature.shape is not None and array.dtype.kind in "fiu":
            names = [f"{feature.name.rsplit('.', 1)[-1]}_{i}" for i in range(array.shape[-1])]
            features[feature.name] = {
                "dtype": "float32", "shape": tuple(array.shape), "names": names
            }
    return features


def resize_images(images: Sequence[Any], size: int) -> np.ndarray:
    """``images`` (each H x W x 3 uint8) at ``size`` x ``size``, as one (T, size, size, 3) array.

    torchvision's antialiased bilinear resize of the [0, 1] float images, then clamped: the op
    of LeRobot's ``image_crop_resize_processor`` step, so a checkpoint trained on these frames
    and given that step sees the same pixels from full-size renders. One call per episode.
    """
    import torch
    from torchvision.transforms.functional import resize

    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255.0)
    out = resize(batch, [size, size]).clamp_(0.0, 1.0)
    return out.mul_(255.0).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _select(
    features: dict[str, dict[str, Any]], observations: Sequence[str] | None
) -> dict[str, dict[str, Any]]:
    """Only the observation features named in ``observations`` (all when None), and action."""
    if observations is None:
        return features
    unknown = sorted(set(observations) - set(features))
    if unknown:
        raise ValueError(f"no recorded feature {', '.join(unknown)} (have: {', '.join(features)})")
    return {k: v for k, v in features.items() if k in observations or k == "action"}


def write_recording(
    root: str, episodes: Sequence[Sequence[Mapping[str, Any]]], interface: Any,
    options: Mapping[str, Any],
) -> str:
    """``RecorderSpec.write`` for LeRobotDataset v3.0 (see :class:`vlabench.api.RecorderSpec`).

    Options: ``fps``, ``repo_id``, ``robot_type``, ``crf``; ``observations`` (keep only these
    observation features) and ``resize`` (cameras downsampled to N x N, see
    :func:`resize_image`).
    """
    if not episodes or not episodes[0]:
        raise ValueError("no episodes to write")
    features = _select(recorded_features(interface, episodes[0][0]), options.get("observations"))
    size = options.get("resize")
    images = [k for k, v in features.items() if v["dtype"] == "video"]
    if size:
        for key in images:
            features[key] = {**features[key], "shape": (size, size, 3)}
    keep = [*features, "task"]
    frames = [[{k: f[k] for k in keep} for f in episode] for episode in episodes]
    if size:
        for episode in frames:
            for key in images:
                small = resize_images([f[key] for f in episode], size)
                for frame, image in zip(episode, small, strict=True):
                    frame[key] = image
    fps = options.get("fps", 10)
    return str(write_dataset(
        root, frames, features, fps=round(fps), repo_id=options.get("repo_id", "local/recorded"),
        robot_type=options.get("robot_type"), crf=options.get("crf", 0),
    ))  # fmt: skip
