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
