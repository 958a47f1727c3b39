"""A vlabench policy backed by a foreign model server (openpi or vla-eval): the shared part.

The runner hands a batch; each row goes to the server as that server's observation
(:class:`~vlabench.isolation.foreign.convention.Convention`), one request per row (neither
protocol batches on the wire). A server error raises with the server's message, so the
rollout fails the call's episodes only; a dropped connection is reopened once for the same
request, and a second loss fails the episode the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from vlabench import api
from vlabench.isolation.foreign.convention import Convention


class ServerError(RuntimeError):
    """The server answered with an error (its message is kept)."""


class Connection(Protocol):
    """One open connection to a foreign server."""

    def act(self, obs: dict[str, Any], episode: int, step: int, task: str) -> np.ndarray: ...

    def close(self) -> None: ...


def batch_rows(batch: api.Batch) -> list[dict[str, Any]]:
    """The rows of a batch (``(B, ...)`` arrays, ``task`` a list) as unbatched observations."""
    size = len(batch[api.EPISODE_INDEX_KEY])
    return [{k: (v[i] if isinstance(v, np.ndarray | list) else v) for k, v in batch.items()}
            for i in range(size)]


class ServedPolicy:
    """An :class:`api.Policy` whose every row is answered by a foreign server.

    ``connect(key)`` opens a connection; ``per_episode`` gives every episode its own (a
    vla-eval session keeps a chunk buffer per connection) instead of one for all.
    """

    def __init__(self, interface: api.PolicyInterface, convention: Convention,
                 connect: Callable[[], Connection], per_episode: bool, name: str) -> None:
        self.interface = interface
        self.convention = convention
        self._connect = connect
        self._per_episode = per_episode
        self._name = name
        self._connections: dict[int, Connection] = {}

    def reset(self) -> None:
        """Nothing: episodes are told apart by ``episode.index``/``episode.step``."""

    def _connection(self, episode: int, fresh: bool = False) -> Connection:
        key = episode if self._per_episode else 0
        if fresh and key in self._connections:
            with contextlib.suppress(Exception):
                self._connections.pop(key).close()
        if key not in self._connections:
            self._connections[key] = self._connect()
        return self._connections[key]

    def _row(self, row: dict[str, Any]) -> np.ndarray:
        episode = int(row[api.EPISODE_INDEX_KEY])
        step = int(row[api.EPISODE_STEP_KEY])
        obs = self.convention.to_server(row)
        task = str(row.get(api.TASK_KEY, ""))
        try:
            return self._connection(episode).act(obs, episode, step, task)
        except ConnectionError:  # dropped: reopen once and ask again
            try:
                return self._connection(episode, fresh=True).act(obs, episode, step, task)
            except ConnectionError as exc:
                self._drop(episode)
                raise ConnectionError(f"{self._name}: connection lost twice: {exc}") from None
        except ServerError:
            self._drop(episode)  # the server may have closed it (openpi does)
            raise

    def _drop(self, episode: int) -> None:
        key = episode if self._per_episode else 0
        conn = self._connections.pop(key, None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _forget_finished(self, batch: api.Batch) -> None:
        """Per-episode connections of episodes no longer in the batch are handed on."""
        if not self._per_episode:
            return
        live = {int(i) for i in batch[api.EPISODE_INDEX_KEY]}
        for episode in [e for e in self._connections if e not in live]:
            self._drop(episode)

    def predict_action_chunk(self, batch: api.Batch) -> np.ndarray:
        """``(B, H, A)``: one server answer per row."""
        rows = batch_rows(batch)
        out = [np.asarray(self._row(row), dtype=np.float32) for row in rows]
        self._forget_finished(batch)
        chunks = [a[None] if a.ndim == 1 else a for a in out]
        need = self.interface.n_action_steps
        for chunk in chunks:
            if chunk.ndim != 2 or chunk.shape[0] < need:
                raise ValueError(
                    f"{self._name} returned actions of shape {chunk.shape}; the preset executes "
                    f"{need} of each chunk (chunk_size {self.interface.chunk_size})"
                )
        horizon = min(c.shape[0] for c in chunks)
        return np.stack([c[:horizon] for c in chunks])

    def select_action(self, batch: api.Batch) -> np.ndarray:
        """``(B, A)``: the first action of each row's answer."""
        return self.predict_action_chunk(batch)[:, 0]

    def close(self) -> None:
        for episode in list(self._connections):
            self._drop(episode)
