"""``replay``: play recorded actions, one list for every episode or one list per episode.

Options (exactly one): ``actions`` — a list of actions ``(T, A)`` used for every episode;
``episodes`` — a list of such lists, episode ``i`` plays ``episodes[i % len(episodes)]``;
``path`` — a ``.npy`` file holding ``(T, A)`` or ``(E, T, A)``, or a ``.json`` file holding
either list (or an object with an ``actions`` or ``episodes`` key); ``dataset`` — a
LeRobotDataset (directory or hub id, v3.0) with ``dataset_episodes`` (episode indices, ints or
``"a:b"`` ranges; default all): episode ``i`` plays the recorded actions of dataset episode
``dataset_episodes[i % n]`` (e.g. into a simulator whose init states match the recording, as a
check of env and dataset together). At step ``t`` an episode emits its
``actions[min(t, T - 1)]``: the last action is held after the recording ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vlabench import api

from ._common import action_dim, action_feature, episode_keys

SOURCES = ("actions", "episodes", "path", "dataset")


def _as_actions(value: Any, dim: int, where: str) -> np.ndarray:
    """``value`` as a finite float32 ``(T, dim)`` array with ``T >= 1``."""
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"replay {where} must be a list of actions of {dim} numbers: {exc}"
        ) from None
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] != dim:
        raise ValueError(
            f"replay {where} must have shape (T, {dim}) with T >= 1 to match the env action, "
            f"got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"replay {where} contains NaN or infinite values")
    return array


def _as_episodes(value: Any, dim: int, where: str) -> list[np.ndarray]:
    if isinstance(value, np.ndarray):
        value = list(value)
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) == 0:
        raise ValueError(f"replay {where} must be a non-empty list of action lists")
    return [_as_actions(episode, dim, f"{where}[{i}]") for i, episode in enumerate(value)]


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list) and value:
        depth, value = depth + 1, value[0]
    return depth


def _from_file(path: str, dim: int) -> list[np.ndarray]:
    file = Path(path).expanduser()
    where = f"option 'path' ({file})"
    if not file.is_file():
        raise ValueError(f"replay {where}: no such file")
    if file.suffix == ".npy":
        array = np.load(file, allow_pickle=False)
        if array.ndim == 3:
            return _as_episodes(array, dim, where)
        return [_as_actions(array, dim, where)]
    if file.suffix == ".json":
        import json

        data = json.loads(file.read_text())
        if isinstance(data, dict):
            keys = [k for k in ("actions", "episodes") if k in data]
            if len(keys) != 1:
                raise ValueError(f"replay {where}: a JSON object needs 'actions' or 'episodes'")
            data = data[keys[0]] if keys[0] == "episodes" else [data["actions"]]
            return _as_episodes(data, dim, where)
        if _depth(data) >= 3:
            return _as_episodes(data, dim, where)
        return [_as_actions(data, dim, where)]
    raise ValueError(f"replay {where}: expected a .npy or .json file")


def load_episodes(options: Mapping[str, Any], action: api.Feature) -> list[np.ndarray]:
    """The recorded action lists named by ``options``, validated against ``action``."""
    given = [key for key in SOURCES if options.get(key) is not None]
    if len(given) != 1:
        raise ValueError(
            "replay policy needs exactly one of the options 'actions', 'episodes', 'path', "
            f"'dataset'; got {given or 'none'}"
        )
    dim = action_dim(action)
    source = given[0]
    if source == "actions":
        return [_as_actions(options["actions"], dim, "option 'actions'")]
    if source == "episodes":
        return _as_episodes(options["episodes"], dim, "option 'episodes'")
    if source == "dataset":
        return _from_dataset(options, dim)
    return _from_file(str(options["path"]), dim)


def _from_dataset(options: Mapping[str, Any], dim: int) -> list[np.ndarray]:
    """Recorded actions of ``dataset_episodes`` of the LeRobotDataset ``dataset``."""
    from vlabench_plugins.dataset import env as dataset_env
    from vlabench_plugins.dataset import source

    src = source.resolve(options)
    episodes = options.get("dataset_episodes")
    total = None
    if episodes is None:
        total = int(source.read_info(src)["total_episodes"])
    indices = dataset_env.parse_split(episodes, total)
    actions = source.episode_actions(src, indices)
    where = f"option 'dataset' ({src.where})"
    return [
        _as_actions(a, dim, f"{where} episode {e}") for a, e in zip(actions, indices, strict=True)
    ]


def describe(request: api.PolicyRequest) -> api.PolicyInterface:
    """Reads no observation; validates the recording against the env's action feature."""
    action = action_feature(request.env, "replay")
    load_episodes(request.options, action)
    return api.PolicyInterface(inputs=(), action=action)


def fingerprint(request: api.PolicyRequest) -> str:
    """sha256 of the recorded actions (shapes and float32 values)."""
    import hashlib

    digest = hashlib.sha256()
    for episode in load_episodes(request.options, action_feature(request.env, "replay")):
        digest.update(repr(episode.shape).encode())
        digest.update(np.ascontiguousarray(episode, dtype="<f4").tobytes())
    return digest.hexdigest()


class ReplayPolicy:
    """Emits ``episodes[index % E][min(step, T - 1)]`` for each row of the batch."""

    def __init__(self, interface: api.PolicyInterface, episodes: list[np.ndarray]) -> None:
        self.interface = interface
        self.episodes = episodes

    def reset(self) -> None:
        """Stateless: the position comes from ``episode.step``."""

    def select_action(self, batch: api.Batch) -> np.ndarray:
        """``(B, A)`` float32 recorded actions."""
        index, step = episode_keys(batch, "replay")
        rows = []
        for i, t in zip(index, step, strict=True):
            actions = self.episodes[int(i) % len(self.episodes)]
            rows.append(actions[min(int(t), len(actions) - 1)])
        dim = self.episodes[0].shape[1]
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), dim)


def load(request: api.PolicyRequest) -> ReplayPolicy:
    """Build the policy from ``actions``, ``episodes`` or ``path``."""
    action = action_feature(request.env, "replay")
    interface = api.PolicyInterface(inputs=(), action=action)
    return ReplayPolicy(interface, load_episodes(request.options, action))


SPEC = api.PolicySpec(
    name="replay",
    description="Replay recorded actions (options: actions | episodes | path to .npy/.json | "
    "dataset + dataset_episodes).",
    load=load,
    describe=describe,
    fingerprint=fingerprint,
)
