"""Where a LeRobotDataset lives, and checking its files before LeRobot reads them.

A dataset is named by the env option ``dataset``: a local directory (the dataset root, the one
holding ``meta/info.json``) or a hub id ``org/name`` (downloaded by LeRobot into its cache,
``HF_LEROBOT_HOME``). LeRobot 0.6 reads the v3.0 layout only (``meta/info.json``,
``meta/stats.json``, ``meta/tasks.parquet``, ``meta/episodes/*.parquet``, ``data/*.parquet``,
``videos/<camera>/*.mp4``); a v2.x dataset gets an error naming LeRobot's conversion script.
Every file an evaluation needs is checked up front, so a missing, truncated or corrupt file is
reported by its path instead of as a decoder or Arrow error deep inside LeRobot.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INFO = "meta/info.json"
STATS = "meta/stats.json"
TASKS = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
CONVERT = "python -m lerobot.scripts.convert_dataset_v21_to_v30 --repo-id={repo_id}"


class DatasetError(ValueError):
    """A dataset could not be opened; the message names the file and what was wrong."""


@dataclass(frozen=True)
class Source:
    """A dataset: its repo id (a label for local dirs), local root (None: hub) and revision."""

    repo_id: str
    root: Path | None
    revision: str | None = None

    @property
    def where(self) -> str:
        return str(self.root) if self.root is not None else f"hub dataset {self.repo_id}"


def resolve(options: Mapping[str, Any]) -> Source:
    """The ``dataset`` option (a directory or a hub id) as a :class:`Source`."""
    name = options.get("dataset")
    if not isinstance(name, str) or not name.strip():
        raise DatasetError(
            "dataset env needs option 'dataset': a LeRobotDataset directory or a hub id "
            f"(org/name), got {name!r}"
        )
    revision = options.get("revision")
    path = Path(name).expanduser()
    if path.is_dir() or name.startswith(("/", ".", "~")):
        repo_id = str(options.get("repo_id") or f"local/{path.name}")
        return Source(repo_id, path.resolve(), None)
    if name.count("/") != 1:
        raise DatasetError(
            f"dataset option 'dataset' {name!r} is neither an existing directory nor a hub id "
            "of the form org/name"
        )
    return Source(name, None, str(revision) if revision else None)


def hub_meta_root(source: Source) -> Path:
    """The local root of a hub dataset's metadata, fetched by LeRobot (``meta/`` only).

    LeRobot looks in ``$HF_LEROBOT_HOME/<repo_id>`` and its hub snapshot cache first, so this
    works offline for a dataset fetched before (``vlabench assets so100``).
    """
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

    try:
        return Path(LeRobotDatasetMetadata(source.repo_id, revision=source.revision).root)
    except Exception as exc:
        message = " ".join(str(exc).split())
        if "convert_dataset_v21_to_v30" in message:
            raise DatasetError(
                f"{source.where}: in LeRobot format v2.1; LeRobot 0.6 reads v3.0 only. Convert "
                f"it with: {CONVERT.format(repo_id=source.repo_id)}"
            ) from None
        raise DatasetError(
            f"cannot read {INFO} of {source.where} (not fetched yet, and the hub said "
            f"{type(exc).__name__}: {message[:300]})"
        ) from None


def _load_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise DatasetError(f"{path}: missing ({what})")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({what}): {exc}") from None


def read_info(source: Source) -> dict[str, Any]:
    """``meta/info.json`` of the dataset (a hub dataset: from LeRobot's cache, else the hub)."""
    path = (source.root if source.root is not None else hub_meta_root(source)) / INFO
    info = _load_json(path, "the dataset's info")
    check_info(info, path, source.repo_id, local=source.root is not None)
    return info


def check_info(info: Any, path: Path, repo_id: str, local: bool = False) -> None:
    """Version 3.x, an ``action`` feature and the keys LeRobot needs; else a DatasetError."""
    if not isinstance(info, dict):
        raise DatasetError(f"{path}: expected a JSON object, got {type(info).__name__}")
    version = str(info.get("codebase_version", ""))
    if version.startswith(("v2", "v1")):
        command = CONVERT.format(repo_id=repo_id)
        if local:  # LeRobot converts a local copy in place and keeps the original as DIR_old
            command += f" --root={path.parent.parent} --push-to-hub=false"
        raise DatasetError(
            f"{path}: dataset {repo_id} is in LeRobot format {version}; LeRobot 0.6 reads v3.0 "
            f"only. Convert it with: {command}"
        )
    if not version.startswith("v3"):
        raise DatasetError(f"{path}: unknown codebase_version {version!r}, expected v3.0")
    missing = [k for k in ("fps", "features", "data_path", "total_episodes") if k not in info]
    if missing:
        raise DatasetError(f"{path}: missing key(s) {missing}")
    features = info["features"]
    if not isinstance(features, dict) or "action" not in features:
        raise DatasetError(f"{path}: 'features' has no 'action' entry; nothing to compare with")
    for key, spec in features.items():
        if not isinstance(spec, dict) or "dtype" not in spec or "shape" not in spec:
            raise DatasetError(f"{path}: feature {key!r} needs 'dtype' and 'shape', got {spec!r}")


def camera_keys(info: Mapping[str, Any]) -> list[str]:
    """Feature names stored as video or images (``observation.images.<cam>``)."""
    return [k for k, v in info["features"].items() if v.get("dtype") in ("video", "image")]


def video_keys(info: Mapping[str, Any]) -> list[str]:
    return [k for k, v in info["features"].items() if v.get("dtype") == "video"]


def image_shape(spec: Mapping[str, Any]) -> tuple[int, int, int]:
    """``(H, W, C)`` of an image/video feature (LeRobot stores HWC with ``names``)."""
    shape = tuple(int(s) for s in spec["shape"])
    names = list(spec.get("names") or [])
    if len(shape) == 3 and names[:1] in (["channels"], ["channel"]):
        return (shape[1], shape[2], shape[0])
    if len(shape) != 3:
        raise DatasetError(f"image feature shape {shape} is not 3-d")
    return shape  # type: ignore[return-value]


def read_stats(root: Path) -> dict[str, Any]:
    """``meta/stats.json``, which must hold the action's ``mean`` and ``std``."""
    path = root / STATS
    stats = _load_json(path, "normalisation stats, needed for errors in normalised units")
    action = stats.get("action") if isinstance(stats, dict) else None
    if not isinstance(action, dict) or "std" not in action or "mean" not in action:
        raise DatasetError(f"{path}: no 'action' entry with 'mean' and 'std'")
    return stats


def _read_table(path: Path, what: str) -> Any:
    import pyarrow.parquet as pq

    if not path.is_file():
        raise DatasetError(f"{path}: missing ({what})")
    try:
        return pq.read_table(path)
    except Exception as exc:
        raise DatasetError(
            f"{path}: not a readable parquet file ({what}; truncated or corrupt?): "
            f"{type(exc).__name__}: {exc}"
        ) from None


def episode_rows(root: Path) -> dict[int, dict[str, Any]]:
    """``meta/episodes/*.parquet`` as ``{episode_index: row}`` (each file checked)."""
    folder = root / EPISODES_DIR
    files = sorted(folder.glob("chunk-*/file-*.parquet"))
    if not files:
        raise DatasetError(f"{folder}: missing (no chunk-*/file-*.parquet episode metadata)")
    rows: dict[int, dict[str, Any]] = {}
    for file in files:
        for row in _read_table(file, "episode metadata").to_pylist():
            rows[int(row["episode_index"])] = row
    return rows


def _check_video(path: Path) -> None:
    if not path.is_file():
        raise DatasetError(f"{path}: missing (video)")
    try:
        import av

        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DatasetError(f"{path}: has no video stream")
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(
            f"{path}: not a readable video (truncated or corrupt?): {type(exc).__name__}: {exc}"
        ) from None


def validate(root: Path, info: Mapping[str, Any], split: Sequence[int]) -> dict[str, Any]:
    """Check every file the episodes in ``split`` need; return ``meta/stats.json``.

    Reads each metadata and data parquet file in full (a truncated or corrupt one is named) and
    opens each video file of the split's episodes.
    """
    stats = read_stats(root)
    _read_table(root / TASKS, "task strings")
    rows = episode_rows(root)
    unknown = [e for e in split if e not in rows]
    if unknown:
        raise DatasetError(
            f"{root / EPISODES_DIR}: episode(s) {unknown} not in the dataset "
            f"({len(rows)} episodes: {min(rows)}..{max(rows)})"
        )
    data_files, videos = set(), set()
    for e in split:
        row = rows[e]
        data_files.add(
            root / info["data_path"].format(
                chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
            )
        )
        for key in video_keys(info):
            videos.add(
                root / info["video_path"].format(
                    video_key=key,
                    chunk_index=row[f"videos/{key}/chunk_index"],
                    file_index=row[f"videos/{key}/file_index"],
                )
            )
    for file in sorted(data_files):
        _read_table(file, "frame data")
    for file in sorted(videos):
        _check_video(file)
    return stats


def open_dataset(
    source: Source, split: Sequence[int], video_backend: str
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """A validated ``LeRobotDataset`` restricted to the split's episodes, its stats and info.

    A local dataset is checked before LeRobot opens it; a hub dataset after LeRobot has
    downloaded it (it checks the metadata it fetches itself).
    """
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    def _open() -> Any:
        try:
            return LeRobotDataset(
                source.repo_id,
                root=source.root,
                episodes=list(split),
                revision=source.revision,
                video_backend=video_backend,
                return_uint8=True,
            )
        except DatasetError:
            raise
        except Exception as exc:
            raise DatasetError(
                f"LeRobot could not open {source.where}: {type(exc).__name__}: {exc}"
            ) from None

    if source.root is not None:
        info = read_info(source)
        stats = validate(source.root, info, split)
        return _open(), stats, info
    dataset = _open()
    info = _load_json(Path(dataset.root) / INFO, "the dataset's info")
    check_info(info, Path(dataset.root) / INFO, source.repo_id)
    return dataset, validate(Path(dataset.root), info, split), info


def episode_actions(source: Source, episodes: Sequence[int]) -> list[Any]:
    """The recorded ``action`` arrays ``(T, A)`` of ``episodes``, read from the data parquet.

    No video is read. A hub dataset is opened by LeRobot (from its cache, else fetched without
    videos).
    """
    import numpy as np

    root = source.root
    if root is None:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        try:
            root = Path(
                LeRobotDataset(
                    source.repo_id, episodes=list(episodes), revision=source.revision,
                    download_videos=False,
                ).root
            )
        except Exception as exc:
            raise DatasetError(
                f"cannot fetch {source.where}: {type(exc).__name__}: {exc}"
            ) from None
    info = read_info(Source(source.repo_id, root, source.revision))
    rows = episode_rows(root)
    out = []
    tables: dict[Path, Any] = {}
    for e in episodes:
        if e not in rows:
            raise DatasetError(f"{root / EPISODES_DIR}: episode {e} not in the dataset")
        row = rows[e]
        file = root / info["data_path"].format(
            chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
        )
        if file not in tables:
            tables[file] = _read_table(file, "frame data")
        table = tables[file]
        index = np.asarray(table.column("episode_index").to_numpy())
        actions = table.column("action").to_pylist()
        picked = [a for a, i in zip(actions, index, strict=True) if int(i) == e]
        if not picked:
            raise DatasetError(f"{file}: no frames of episode {e}")
        out.append(np.asarray(picked, dtype=np.float32).reshape(len(picked), -1))
    return out
