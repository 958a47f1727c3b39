"""Give a saved LeRobot checkpoint LeRobot's own image resize step.

A policy trained on downsampled frames (``vlabench record --resize N``) takes full-size
renders once its saved preprocessor resizes them first: the step is LeRobot's registered
``image_crop_resize_processor`` (antialiased bilinear, then clamped to [0, 1]), the op the
recorder used, so both ``lerobot-eval`` and vlabench feed the network the training pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

from .features import PREPROCESSOR_FILE, RESIZE_STEP


def add_resize_step(checkpoint: str | Path, size: int) -> Path:
    """Insert (or replace) the resize-to-``size`` step before the normaliser; returns the file."""
    path = Path(checkpoint) / PREPROCESSOR_FILE
    pipeline = json.loads(path.read_text())
    steps = [s for s in pipeline["steps"] if s.get("registry_name") != RESIZE_STEP]
    names = [s.get("registry_name") for s in steps]
    at = names.index("normalizer_processor") if "normalizer_processor" in names else len(steps)
    step = {"registry_name": RESIZE_STEP,
            "config": {"crop_params_dict": None, "resize_size": [size, size]}}  # fmt: skip
    steps.insert(at, step)
    path.write_text(json.dumps({**pipeline, "steps": steps}, indent=2) + "\n")
    return path
