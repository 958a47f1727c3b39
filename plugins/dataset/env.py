"""The replay env: a LeRobotDataset episode played back open-loop, the policy's actions scored.

``reset(options={"init_state_id": i})`` starts held-out episode ``split[i % len(split)]``; each
``step(action)`` scores ``action`` against the recorded action of the current frame and returns
the next recorded frame (``observation.state``, ``observation.images.<cam>`` uint8 HxWx3 decoded
from the dataset's videos, ``task``), whatever the action was. The episode is ``truncated`` at
its last frame, whose info carries the episode's errors (:mod:`.metrics`) under
``episode.metrics``; ``is_success`` is never true. Chunks the policy predicts reach
``observe_chunk`` and are scored over their horizon.

Options (suite ``env_options``):

* ``dataset`` (required): a LeRobotDataset directory or a hub id; ``repo_id`` (a label for a
  local directory), ``revision`` (hub);
* ``split``: the held-out episode indices, a list of ints and ``"a:b"`` ranges (default: every
  episode) — the same episodes for every policy;
* ``task``: the name of the suite's one task (default ``heldout``); the instruction of each frame
  is the dataset's task string;
* ``action_space`` / ``state_space``: space tags (default ``dataset:<repo_id>``), so that
  ``vlabench check`` refuses a policy trained on something else unless declared;
* ``cameras``: camera names (``front`` or ``observation.images.front``) to expose (default: all);
* ``video_backend``: LeRobot's decoder (``pyav``, default, or ``torchcodec``);
* ``decode_block``: frames decoded per video seek (default 32).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vlabench import api

from . import source
from .metrics import OpenLoopErrors

DEFAULT_TASK = "heldout"
DEFAULT_BLOCK = 32
MAX_EPISODE_STEPS = 100_000
"""Bound of the env; an episode ends at its last recorded frame anyway."""


class DatasetOptions(BaseModel):
    """The env options, typed (the plan validates suites with it and fills in defaults);
    :func:`parse_split` and :func:`_cameras` still check episodes and cameras."""

    model_config = ConfigDict(extra="forbid", strict=True)
    dataset: str
    repo_id: str | None = None
    revision: str | int | None = None
    split: int | str | list[int | str] | None = None
    task: str = DEFAULT_TASK
    action_space: str | None = None
    state_space: str | None = None
    cameras: list[str] | None = None
    video_backend: str = "pyav"
    decode_block: int = Field(DEFAULT_BLOCK, gt=0)


def parse_split(value: Any, total: int | None = None) -> list[int]:
    """The ``split`` option as episode indices: ints and ``"a:b"`` ranges (b exclusive)."""
    if value is None:
        if total is None:
            raise ValueError("dataset env: no 'split' and the number of episodes is unknown")
        return list(range(total))
    items = value if isinstance(value, list | tuple) else [value]
    out: list[int] = []
    for item in items:
        if isinstance(item, bool):
            raise ValueError(f"dataset option 'split': {item!r} is not an episode index")
        if isinstance(item, int) and item >= 0:
            out.append(item)
        elif isinstance(item, str) and ":" in item:
            a, _, b = item.partition(":")
            try:
                out.extend(range(int(a), int(b)))
            except ValueError:
                raise ValueError(f"dataset option 'split': bad range {item!r}") from None
        else:
            raise ValueError(
                f"dataset option 'split' must list episode indices (int >= 0) or 'a:b' ranges, "
                f"got {item!r}"
            )
    if not out or len(set(out)) != len(out):
        raise ValueError(f"dataset option 'split' must name distinct episodes, got {value!r}")
    return out


def _space(options: Mapping[str, Any], key: str, src: source.Source) -> str:
    return str(options.get(key) or f"dataset:{src.repo_id}")


def _cameras(options: Mapping[str, Any], info: Mapping[str, Any]) -> list[str]:
    keys = source.camera_keys(info)
    wanted = options.get("cameras")
    if wanted is None:
        return keys
    names = [w if w.startswith(api.IMAGE_PREFIX) else api.IMAGE_PREFIX + w for w in wanted]
    unknown = [n for n in names if n not in keys]
    if unknown:
        raise ValueError(f"dataset option 'cameras': {unknown} not in the dataset's {keys}")
    return names


def interface(options: Mapping[str, Any]) -> api.EnvInterface:
    """Features from ``meta/info.json`` (no frame is read, no video decoded)."""
    src = source.resolve(options)
    info = source.read_info(src)
    features = info["features"]
    observation: list[api.Feature] = []
    if api.STATE_KEY in features:
        shape = tuple(int(s) for s in features[api.STATE_KEY]["shape"])
        observation.append(
            api.Feature(
                api.STATE_KEY, "state", shape, "float32", _space(options, "state_space", src),
                description="recorded robot state",
            )
        )
    for key in _cameras(options, info):
        observation.append(
            api.Feature(key, "image", source.image_shape(features[key]), "uint8",
                        description="recorded camera frame")
        )
    observation.append(api.Feature(api.TASK_KEY, "language", None, "str",
                                   description="the dataset's task string"))
    shape = tuple(int(s) for s in features["action"]["shape"])
    action = api.Feature(
        api.ACTION_KEY, "action", shape, "float32", _space(options, "action_space", src),
        description="compared with the recorded action (open-loop)",
    )
    return api.EnvInterface(tuple(observation), action, float(info["fps"]))


def tasks(options: Mapping[str, Any]) -> list[api.TaskInfo]:
    """One task per suite: the held-out split, one init state per held-out episode."""
    split = options.get("split")
    total = None
    if split is None:
        total = int(source.read_info(source.resolve(options))["total_episodes"])
    n = len(parse_split(split, total))
    name = str(options.get("task") or DEFAULT_TASK)
    return [api.TaskInfo(name, "held-out episodes of the dataset", n_init_states=n)]


def _to_numpy(values: Any) -> np.ndarray:
    import torch

    if isinstance(values, torch.Tensor):
        return values.numpy()
    if values and isinstance(values[0], torch.Tensor):
        return torch.stack(list(values)).numpy()
    return np.asarray(values)


class DatasetReplayEnv:
    """Plays held-out episodes of one dataset; see the module docstring."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.source = source.resolve(options)
        total = None
        if options.get("split") is None:
            total = int(source.read_info(self.source)["total_episodes"])
        self.split = parse_split(options.get("split"), total)
        backend = str(options.get("video_backend") or "pyav")
        self.dataset, stats, info = source.open_dataset(self.source, self.split, backend)
        self.meta = self.dataset.meta
        self.info = info
        self.root = Path(self.dataset.root)
        self.episode_meta = source.episode_rows(self.root)
        self.backend = backend
        self.block = int(options.get("decode_block") or DEFAULT_BLOCK)
        cameras = _cameras(options, info)
        requested = options.get(api.REQUESTED_FEATURES_OPTION)
        if requested is not None:
            cameras = [c for c in cameras if c in set(requested)]
        self.cameras = cameras
        self.has_state = api.STATE_KEY in info["features"]
        self.std = np.asarray(stats["action"]["std"], dtype=np.float64).reshape(-1)
        self.task_strings = {
            int(row["task_index"]): str(name) for name, row in self.meta.tasks.iterrows()
        }
        self.episode: int | None = None
        self.t = 0

    # -- episode data ----------------------------------------------------------------------
    def _load(self, episode: int) -> None:
        row = self.episode_meta[episode]
        start, stop = int(row["dataset_from_index"]), int(row["dataset_to_index"])
        mapping = self.dataset.absolute_to_relative_idx
        rows = [mapping[i] for i in range(start, stop)] if mapping else list(range(start, stop))
        frames = self.dataset.hf_dataset.select(rows)
        columns = [c for c in ("action", api.STATE_KEY, "timestamp", "task_index")
                   if c in frames.column_names]
        data = {c: _to_numpy(frames[c]) for c in columns}
        self.actions = data["action"].astype(np.float32).reshape(len(rows), -1)
        self.states = data.get(api.STATE_KEY)
        self.timestamps = data["timestamp"].astype(np.float64).reshape(-1)
        self.task_index = data["task_index"].astype(np.int64).reshape(-1)
        self.rows = rows
        self.row = row
        self.episode = episode
        self.cache: dict[str, tuple[int, np.ndarray]] = {}
        if len(self.actions) == 0:
            raise source.DatasetError(f"{self.source.where}: episode {episode} has no frames")

    def _frame(self, key: str, t: int) -> np.ndarray:
        start, frames = self.cache.get(key, (-1, np.empty(0)))
        if not start <= t < start + len(frames):
            start, frames = t, self._decode(key, t, min(t + self.block, len(self.actions)))
            self.cache[key] = (start, frames)
        return frames[t - start]

    def _decode(self, key: str, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop`` of camera ``key`` as uint8 ``(n, H, W, 3)``."""
        if self.info["features"][key]["dtype"] != "video":
            items = [self.dataset[self.rows[t]] for t in range(start, stop)]
            return np.stack([_hwc_uint8(item[key]) for item in items])
        from lerobot.datasets.video_utils import decode_video_frames

        episode = int(self.row["episode_index"])
        path = self.root / self.info["video_path"].format(
            video_key=key,
            chunk_index=self.row[f"videos/{key}/chunk_index"],
            file_index=self.row[f"videos/{key}/file_index"],
        )
        offset = float(self.row[f"videos/{key}/from_timestamp"])
        times = [offset + float(ts) for ts in self.timestamps[start:stop]]
        try:
            frames = decode_video_frames(
                path, times, self.dataset.tolerance_s, self.backend, return_uint8=True
            )
        except Exception as exc:
            raise source.DatasetError(
                f"{path}: cannot decode frames {start}..{stop - 1} of episode {episode}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        return np.stack([_hwc_uint8(f) for f in frames])

    def _observation(self, t: int) -> api.Observation:
        obs: api.Observation = {}
        if self.has_state and self.states is not None:
            obs[api.STATE_KEY] = np.asarray(self.states[t], dtype=np.float32).reshape(-1)
        for key in self.cameras:
            obs[key] = self._frame(key, t)
        obs[api.TASK_KEY] = self.task_strings.get(int(self.task_index[t]), "")
        return obs

    # -- gymnasium-style API ---------------------------------------------------------------
    def reset(
        self, seed: int | None = None, options: Mapping[str, Any] | None = None
    ) -> tuple[api.Observation, dict[str, Any]]:
        """Start held-out episode ``split[init_state_id % len(split)]`` at its first frame."""
        k = int((options or {}).get("init_state_id") or 0)
        episode = self.split[k % len(self.split)]
        if episode != self.episode:
            self._load(episode)
        self.t = 0
        self.errors = OpenLoopErrors(self.std)
        self.observed_chunks = False
        return self._observation(0), {"dataset.episode": episode, "dataset.frame": 0}

    def observe_chunk(self, actions: np.ndarray) -> None:
        """Score a chunk predicted at the current frame over its horizon."""
        self.observed_chunks = True
        chunk = np.asarray(actions, dtype=np.float32).reshape(len(actions), -1)
        self.errors.add_chunk(chunk, self.actions[self.t : self.t + len(chunk)])

    def step(self, action: np.ndarray) -> tuple[api.Observation, float, bool, bool, dict]:
        """Score ``action`` against frame ``t``'s recorded action; return frame ``t + 1``."""
        if self.episode is None or self.t >= len(self.actions):
            raise RuntimeError("dataset env: step() after the episode's last frame; reset() first")
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        target = self.actions[self.t]
        self.errors.add_executed(action, target)
        if not self.observed_chunks:  # a policy without chunks: each action is a chunk of 1
            self.errors.add_chunk(action[None], target[None])
        self.t += 1
        done = self.t >= len(self.actions)
        obs = self._observation(min(self.t, len(self.actions) - 1))
        info: dict[str, Any] = {
            "is_success": False,
            "dataset.episode": self.episode,
            "dataset.frame": self.t,
        }
        if done:
            info[api.EPISODE_METRICS_KEY] = self.errors.summary()
        return obs, 0.0, False, done, info

    def render(self) -> np.ndarray | None:
        """The current frame of the first exposed camera (for episode videos)."""
        if not self.cameras or self.episode is None:
            return None
        return self._frame(self.cameras[0], min(self.t, len(self.actions) - 1))

    def close(self) -> None:
        self.cache = {}


def _hwc_uint8(frame: Any) -> np.ndarray:
    array = _to_numpy(frame)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = np.transpose(array, (1, 2, 0))
    if array.dtype != np.uint8:
        array = np.clip(np.rint(array.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def make(task: str, options: Mapping[str, Any]) -> DatasetReplayEnv:
    """Open the dataset (validated) for ``task`` (the suite's one held-out split)."""
    return DatasetReplayEnv(options)


def preflight(task: str, options: Mapping[str, Any]) -> str | None:
    """A local dataset must exist and be v3.0 (a hub dataset is checked when it is opened)."""
    try:
        src = source.resolve(options)
        if src.root is not None:
            source.read_info(src)
    except (ValueError, OSError) as exc:
        return str(exc)
    return None

