"""``vlabench serve policy PRESET --protocol openpi|vlaeval``: a vlabench policy behind a
foreign protocol, so an openpi client (a robot runtime) or vla-eval's benchmarks can drive it.

Each request is one observation in the client's keys; the convention
(:mod:`~vlabench.isolation.foreign.convention`) turns it into a vlabench batch of one, the
loaded policy answers, and the answer goes back in the protocol's form: openpi gets the whole
chunk ``(H, A)`` (its client executes part of it); vla-eval gets one action per observation,
the first ``n_action_steps`` of each chunk being queued per connection (as vla-eval's own
``PredictModelServer`` and vlabench's runner both do). ``episode_start``/``episode_end`` of a
vla-eval session go to an optional recorder (the CLI stores them as a run).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from vlabench import api
from vlabench.isolation.foreign import codec
from vlabench.isolation.foreign.convention import Convention
from vlabench.isolation.foreign.openpi import VLABENCH_KEY
from vlabench.isolation.hosting import Started, WebSocketHost
from vlabench.isolation.serve import check_bind

PROTOCOLS = ("openpi", "vlaeval")


class EpisodeRecorder(Protocol):
    """Told of a vla-eval client's episodes (the CLI's implementation writes the store)."""

    def started(self, session: str, benchmark: str, payload: dict[str, Any]) -> None: ...

    def ended(self, session: str, payload: dict[str, Any], steps: int) -> None: ...


@dataclass
class ServedModel:
    """A loaded vlabench policy and the convention its clients speak."""

    policy: api.Policy
    convention: Convention
    served: dict[str, Any] = field(default_factory=dict)
    """What is served (preset, type, checkpoint, options): announced to clients."""

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        interface = self.policy.interface
        self.chunked = callable(getattr(self.policy, "predict_action_chunk", None)) and (
            interface.chunk_size > 1)

    def announced(self, whole_chunks: bool = True) -> dict[str, Any]:
        """The convention a bare ``openpi://``/``vlaeval://`` client adopts: the chunk
        schedule of the served policy (``whole_chunks``), or one action per observation."""
        interface = self.policy.interface
        conv = self.convention.as_options()
        chunks = whole_chunks and self.chunked
        conv.update(chunk_size=max(1, interface.chunk_size) if chunks else 1,
                    n_action_steps=max(1, interface.n_action_steps) if chunks else 1)
        return {**self.served, "convention": conv}

    def act(self, obs: dict[str, Any], episode: int, step: int) -> np.ndarray:
        """``(H, A)`` float32 for one client observation."""
        row = self.convention.from_client(obs)
        batch: dict[str, Any] = {k: ([v] if isinstance(v, str) else np.asarray(v)[None])
                                 for k, v in row.items()}
        batch[api.EPISODE_INDEX_KEY] = np.array([episode], np.int64)
        batch[api.EPISODE_STEP_KEY] = np.array([step], np.int64)
        with self.lock:
            if self.chunked:
                out = self.policy.predict_action_chunk(batch)  # type: ignore[attr-defined]
            else:
                out = self.policy.select_action(batch)
        out = np.asarray(out, dtype=np.float32)
        return out[0] if out.ndim == 3 else out.reshape(1, -1)

    @property
    def execute(self) -> int:
        return max(1, self.policy.interface.n_action_steps) if self.chunked else 1


def _action_spec(conv: Convention, dim: int) -> dict[str, Any]:
    if conv.action_space == "libero_ee_delta" and dim == 7:  # vla-eval's LIBERO components
        return {"position": {"name": "position", "dims": 3, "format": "delta_xyz",
                             "range": [-1, 1]},
                "rotation": {"name": "rotation", "dims": 3, "format": "axis_angle",
                             "range": [-3.15, 3.15]},
                "gripper": {"name": "gripper", "dims": 1, "format": "binary_close_positive",
                            "range": [-1, 1]}}
    return {"action": {"name": "action", "dims": dim, "format": conv.action_space or "raw"}}


def _observation_spec(conv: Convention, state_dims: int) -> dict[str, Any]:
    spec: dict[str, Any] = {key: {"name": "image", "dims": 0, "format": "rgb_hwc_uint8"}
                            for key in conv.images}
    if conv.prompt:
        spec["language"] = {"name": "language", "dims": 0, "format": "language"}
    if conv.state:
        spec["state"] = {"name": "state", "dims": state_dims,
                         "format": conv.state_space or "raw"}
    return spec


class ForeignServer(WebSocketHost):
    """A WebSocket server speaking openpi's or vla-eval's protocol for one served model."""

    def __init__(self, model: ServedModel, protocol: str, *, host: str = "127.0.0.1",
                 port: int = 8000, token: str | None = None, allow_remote: bool = False,
                 recorder: EpisodeRecorder | None = None) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r} (expected {', '.join(PROTOCOLS)})")
        check_bind(host, allow_remote, token)
        super().__init__()
        self.model, self.protocol = model, protocol
        self.host, self.port, self.token = host, port, token
        self.recorder = recorder
        self.kind = f"policy ({protocol} protocol)"
        self.sessions = 0

    # -- HTTP -------------------------------------------------------------------------------
    def _process_request(self, connection: Any, request: Any) -> Any:
        path = request.path.split("?")[0]
        if self.protocol == "openpi" and path == "/healthz":
            return connection.respond(200, "OK\n")
        if self.protocol == "vlaeval" and path == "/health":
            return connection.respond(200, json.dumps({"status": "ok"}) + "\n")
        if self.token:
            scheme = "Api-Key" if self.protocol == "openpi" else "Bearer"
            sent = request.headers.get("Authorization", "")
            if not hmac.compare_digest(sent.encode(), f"{scheme} {self.token}".encode()):
                return connection.respond(401, "missing or wrong key\n")
        return None

    # -- openpi -----------------------------------------------------------------------------
    async def _openpi(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed
        from websockets.frames import CloseCode

        self.sessions += 1
        episode, calls = self.sessions, 0
        await ws.send(codec.openpi_pack({VLABENCH_KEY: self.model.announced()}))
        prev_total: float | None = None
        while True:
            try:
                start = time.monotonic()
                obs = codec.openpi_unpack(await ws.recv())
                infer = time.monotonic()
                step = calls * self.model.execute
                actions = await asyncio.to_thread(self.model.act, obs, episode, step)
                calls += 1
                timing = {"infer_ms": 1000 * (time.monotonic() - infer)}
                if prev_total is not None:
                    timing["prev_total_ms"] = 1000 * prev_total
                await ws.send(codec.openpi_pack({"actions": actions, "server_timing": timing}))
                prev_total = time.monotonic() - start
            except ConnectionClosed:
                return
            except Exception:
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(traceback.format_exc())
                    await ws.close(code=CloseCode.INTERNAL_ERROR,
                                   reason="Internal server error. Traceback included in "
                                          "previous frame.")
                return

    # -- vla-eval ---------------------------------------------------------------------------
    def _hello(self) -> dict[str, Any]:
        conv, interface = self.model.convention, self.model.policy.interface
        dim = int((interface.action.shape or (0,))[0])
        state = next((f for f in interface.inputs if f.kind == "state"), None)
        state_dims = int(np.prod(state.shape)) if state is not None and state.shape else 0
        params = {"send_wrist_image": any("wrist" in key for key in conv.images),
                  "send_state": bool(conv.state)}  # vla-eval benchmarks' own switches
        return codec.vlaeval_hello(
            model_server="vlabench", capabilities={},
            observation_params={k: v for k, v in params.items() if v},
            action_spec=_action_spec(conv, dim),
            observation_spec=_observation_spec(conv, state_dims),
            **{VLABENCH_KEY: self.model.announced(whole_chunks=False)},
        )

    async def _vlaeval(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        self.sessions += 1
        session = f"s{self.sessions}-{id(ws):x}"
        benchmark, episode, step, in_episode = "", self.sessions, 0, False
        last_error = ""
        queue: deque[np.ndarray] = deque()
        record = self._record

        try:
            async for data in ws:
                try:
                    kind, payload, seq = codec.vlaeval_unpack(data)
                except ValueError as exc:
                    await ws.send(codec.vlaeval_pack("error", {"error": str(exc)}))
                    continue
                payload = payload if isinstance(payload, dict) else {}
                if kind == "hello":
                    benchmark = str(payload.get("benchmark") or "")
                    await ws.send(codec.vlaeval_pack("hello", self._hello(), seq))
                elif kind == "episode_start":
                    if in_episode:  # vla-eval sends no episode_end after a failed step
                        why = f"no episode_end from the client after: {last_error or '?'}"
                        await record("ended", session, {"failure_reason": why}, step)
                    last_error = ""
                    task = payload.get("task") or {}
                    episode = int(task.get("episode_idx", episode)) if isinstance(
                        task, dict) else episode
                    step, in_episode = 0, True
                    queue.clear()
                    await record("started", session, benchmark, payload)
                elif kind == "observation":
                    try:
                        if not queue:
                            chunk = await asyncio.to_thread(self.model.act, payload, episode,
                                                            step)
                            queue.extend(chunk[: self.model.execute])
                        action = queue.popleft()
                        step += 1
                        await ws.send(codec.vlaeval_pack("action", {"actions": action}, seq))
                    except ConnectionClosed:
                        raise
                    except Exception as exc:
                        queue.clear()
                        error = f"observation_failed: {type(exc).__name__}: {exc}"
                        last_error = error
                        await ws.send(codec.vlaeval_pack("error", {"error": error}, seq))
                elif kind == "episode_end":
                    in_episode = False
                    await record("ended", session, payload, step)
        except ConnectionClosed:
            pass
        finally:
            if in_episode:
                await record("ended", session, {}, step)

    async def _record(self, what: str, *args: Any) -> None:
        if self.recorder is None:
            return
        try:
            await asyncio.to_thread(getattr(self.recorder, what), *args)
        except Exception as exc:  # the client's episode must not fail for the store
            print(f"vlabench: could not record {what} episode: {exc}", flush=True)

    # -- serving ----------------------------------------------------------------------------
    async def serve_async(self, started: Started | None = None) -> None:
        handler = self._openpi if self.protocol == "openpi" else self._vlaeval
        await self._listen(
            handler, started, host=self.host, port=self.port, max_size=None, ping_interval=None
        )

    @property
    def health_path(self) -> str:
        return "/healthz" if self.protocol == "openpi" else "/health"
