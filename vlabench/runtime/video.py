"""Episode videos: mp4 files written frame by frame while an episode runs (PyAV, lazily).

``--record-video N`` records the first N episodes of every task (episode index < N). Frames
come from ``env.render()`` (an RGB array), else from the first camera image of the
observation. Each run writes under ``<video dir>/<config hash>/`` and the file's path is
stored on its episode row (``video_path``). A frame source or encoder that fails drops the
video, never the episode.

The request travels explicitly: the CLI puts it on the execution settings
(:class:`vlabench.execute.settings.ExecutionSettings`), which every executor (in-process,
worker processes, Ray) hands to its job workers, and they put it on the rollout's
:class:`~vlabench.runtime.rollout.RolloutSettings` (``record_video``, ``video_dir``).
Recording is not part of a run's config (it changes no result).
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import numpy as np

from vlabench.api import IMAGE_PREFIX

CODEC = "libx264"


def default_directory(store_url: str) -> Path:
    """``videos/`` next to a SQLite store file, else ``./vlabench-videos``."""
    from sqlalchemy.engine import make_url

    url = make_url(store_url)
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database and not database.startswith(
        (":memory:", "file:")
    ):
        return Path(database).expanduser().resolve().parent / "videos"
    return Path("vlabench-videos").resolve()


def file_name(task: str, episode_index: int) -> str:
    """A safe file name for an episode's video: ``<task>_ep0003.mp4``."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", task).strip("._") or "task"
    return f"{safe[:80]}_ep{episode_index:04d}.mp4"


def frame_of(env: Any, observation: Any) -> np.ndarray | None:
    """An RGB ``HxWx3`` uint8 frame: ``env.render()``, else the first observation image."""
    frame = None
    render = getattr(env, "render", None)
    if callable(render):
        with contextlib.suppress(Exception):
            frame = render()
    if frame is None and isinstance(observation, dict):
        for key in sorted(observation):
            if key.startswith(IMAGE_PREFIX):
                frame = observation[key]
                break
    if frame is None:
        return None
    array = np.asarray(frame)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = np.moveaxis(array, 0, -1)  # CHW -> HWC
    if array.ndim != 3 or array.shape[-1] not in (1, 3):
        return None
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if array.dtype != np.uint8:
        scale = 255.0 if array.size and float(np.nanmax(array)) <= 1.0 else 1.0
        array = np.clip(np.nan_to_num(array) * scale, 0, 255).astype(np.uint8)
    return array


class VideoWriter:
    """An mp4 (H.264, yuv420p) written as frames arrive; odd sizes are padded to even."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = max(1, round(fps))
        self.frames = 0
        self._container: Any = None
        self._stream: Any = None
        self._shape: tuple[int, int] | None = None

    def add(self, frame: np.ndarray) -> None:
        import av

        height, width = frame.shape[:2]
        if self._container is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.path), mode="w")
            self._stream = self._container.add_stream(CODEC, rate=self.fps)
            self._stream.width, self._stream.height = width + width % 2, height + height % 2
            self._stream.pix_fmt = "yuv420p"
            self._shape = (height, width)
        if (height, width) != self._shape:
            raise ValueError(f"frame size changed from {self._shape} to {(height, width)}")
        if height % 2 or width % 2:
            frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> str | None:
        """Flush and close; the file's path, or None when no frame was written."""
        if self._container is None:
            return None
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None
        return str(self.path)

    def discard(self) -> None:
        """Close and delete a broken video."""
        with contextlib.suppress(Exception):
            if self._container is not None:
                self._container.close()
        self._container = None
        with contextlib.suppress(OSError):
            self.path.unlink()


def count_frames(path: str | Path) -> int:
    """Decode an mp4 and count its frames (for checks and tests)."""
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))
