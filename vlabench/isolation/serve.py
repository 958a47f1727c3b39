"""The server side of ``remote://host:port``: ``vlabench serve policy|env``.

The server speaks the wire protocol (:mod:`vlabench.isolation.wire`) over WebSocket, one message per
binary frame, and answers ``GET /health`` with a small JSON status. A served policy is shared
by all clients: concurrent action requests with the same batch layout are gathered into one
policy call (``batch_wait_ms`` bounds the wait) and the result is split back. A served env
gives each connection its own env. ``max_batch`` caps the rows of one call (the rest waits for
the next); ``stats`` counts calls, requests and rows, with a histogram of rows per call.

It binds loopback by default. Binding any other address needs ``allow_remote=True`` *and* a
shared token; a token, when set, is checked when a client connects (``Authorization: Bearer``
header; clients read it from ``VLABENCH_TOKEN``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from vlabench import api
from vlabench.isolation import wire
from vlabench.isolation.hosting import Started, WebSocketHost
from vlabench.isolation.remote import TOKEN_ENV
from vlabench.isolation.worker import EnvHost, hello, plain, request_from_wire

DEFAULT_PORT = 8765


# -- addresses and tokens ---------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, allow_remote: bool, token: str | None) -> None:
    """Refuse a non-loopback bind without the explicit flag and a token."""
    if is_loopback(host):
        return
    if not allow_remote:
        raise PermissionError(
            f"refusing to bind {host!r}: it is not a loopback address and would expose the "
            "server to the network; pass --allow-remote together with --token (or "
            f"${TOKEN_ENV}) to do that on purpose"
        )
    if not token:
        raise PermissionError(
            f"binding {host!r} with --allow-remote needs a shared token (--token or "
            f"${TOKEN_ENV}); clients send it as VLABENCH_TOKEN"
        )


# -- server -----------------------------------------------------------------------------------
def _batch_size(batch: Mapping[str, Any]) -> int:
    if api.EPISODE_INDEX_KEY in batch:
        return len(batch[api.EPISODE_INDEX_KEY])
    for value in batch.values():
        if isinstance(value, np.ndarray | list):
            return len(value)
    raise ValueError("cannot tell the batch size: the batch has no arrays")


def _layout(batch: Mapping[str, Any]) -> tuple[Any, ...]:
    """Requests with equal layouts can be concatenated along the batch axis."""
    parts = []
    for key in sorted(batch):
        value = batch[key]
        if isinstance(value, np.ndarray):
            parts.append((key, value.shape[1:], value.dtype.str))
        else:
            parts.append((key, type(value).__name__))
    return tuple(parts)


def _merge(batches: list[Mapping[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key, value in batches[0].items():
        if isinstance(value, np.ndarray):
            merged[key] = np.concatenate([b[key] for b in batches])
        elif isinstance(value, list):
            merged[key] = [x for b in batches for x in b[key]]
        else:
            merged[key] = value
    return merged


class PolicyService:
    """A policy preset served to many clients; one loaded policy per env interface."""

    kind = "policy"

    def __init__(self, spec: api.PolicySpec, checkpoint: str | None, options: Mapping[str, Any],
                 device: str = "cpu", batch_wait_ms: float = 2.0, policy_type: str = "",
                 name: str = "", max_batch: int | None = None,
                 threads: int | None = None) -> None:
        self.spec = spec
        self.name = name or policy_type or spec.name
        self.checkpoint = checkpoint
        self.options = dict(options)
        self.device = device
        self.type = policy_type or spec.name
        self.wait_s = batch_wait_ms / 1000
        self.max_batch = max_batch
        self.threads = threads
        """Torch threads of the loaded policies (the server's choice, never a client's)."""
        """The most rows one policy call gets (None: every waiting request)."""
        self.policies: dict[str, api.Policy] = {}
        self.pending: list[tuple[str, str, dict[str, Any], asyncio.Future]] = []
        self.stats: dict[str, Any] = {"calls": 0, "requests": 0, "rows": 0,
                                      "max_requests_per_call": 0, "max_rows_per_call": 0,
                                      "rows_per_call": {}}
        self.sessions = 0
        """Connected clients that loaded the policy: when all have asked, nobody waits."""
        self._flusher: asyncio.Task | None = None
        self._lock = threading.Lock()

    def _request(self, args: Mapping[str, Any]) -> api.PolicyRequest:
        data = dict(args)
        data.update(type=self.type, checkpoint=self.checkpoint, options=self.options,
                     device=self.device, threads=self.threads)  # never the client's
        return request_from_wire(data)

    def _key(self, args: Mapping[str, Any]) -> str:
        return json.dumps(plain(args.get("env")), sort_keys=True, default=str)

    def load(self, args: Mapping[str, Any]) -> tuple[str, Any]:
        key = self._key(args)
        with self._lock:
            if key not in self.policies:
                self.policies[key] = self.spec.load(self._request(args))
                self.policies[key].reset()
        return key, plain(self.policies[key].interface)

    def describe(self, args: Mapping[str, Any]) -> Any:
        return plain(self.spec.describe(self._request(args)))

    async def act(self, op: str, key: str, batch: dict[str, Any]) -> tuple[Any, float]:
        future = asyncio.get_running_loop().create_future()
        self.pending.append((op, key, batch, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self.pending:
            if len(self.pending) < self.sessions:
                await asyncio.sleep(self.wait_s)
            items = self._take()
            groups: dict[tuple[Any, ...], list[Any]] = {}
            for item in items:
                op, key, batch, _ = item
                groups.setdefault((op, key, _layout(batch)), []).append(item)
            for (op, key, _), group in groups.items():
                await self._run_group(op, key, group)

    def _take(self) -> list[Any]:
        """The waiting requests of the next call: in arrival order, up to ``max_batch`` rows
        (always at least one request)."""
        rows, count = 0, 0
        for _, _, batch, _ in self.pending:
            try:
                size = _batch_size(batch)
            except ValueError:
                size = 1  # its call reports the error
            if count and self.max_batch is not None and rows + size > self.max_batch:
                break
            rows, count = rows + size, count + 1
        items, self.pending = self.pending[:count], self.pending[count:]
        return items

    async def _run_group(self, op: str, key: str, group: list[Any]) -> None:
        batches = [item[2] for item in group]
        try:
            sizes = [_batch_size(b) for b in batches]
            policy = self.policies[key]
            fn = getattr(policy, op)
            merged = _merge(batches)
            start = time.perf_counter()
            out = await asyncio.to_thread(fn, merged)
            ms = 1000 * (time.perf_counter() - start)
            out = np.asarray(out, dtype=np.float32)
            if out.shape[0] != sum(sizes):
                raise ValueError(f"policy returned {out.shape[0]} rows for {sum(sizes)} requests")
        except Exception as exc:
            for *_, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        self.stats["calls"] += 1
        self.stats["requests"] += len(group)
        self.stats["max_requests_per_call"] = max(self.stats["max_requests_per_call"], len(group))
        rows = sum(sizes)
        self.stats["rows"] += rows
        self.stats["max_rows_per_call"] = max(self.stats["max_rows_per_call"], rows)
        histogram = self.stats["rows_per_call"]
        histogram[str(rows)] = histogram.get(str(rows), 0) + 1
        offsets = np.cumsum([0, *sizes])
        for (*_, future), lo, hi in zip(group, offsets[:-1], offsets[1:], strict=True):
            if not future.done():
                future.set_result((out[lo:hi], ms))


class _PolicySession:
    """One client connection of a policy service."""

    def __init__(self, service: PolicyService) -> None:
        self.service = service
        self.key: str | None = None

    async def handle(self, op: str, args: Any) -> tuple[Any, float | None]:
        if op == "load":
            loaded = self.key is not None
            self.key, interface = await asyncio.to_thread(self.service.load, args or {})
            self.service.sessions += 0 if loaded else 1
            return interface, None
        if op == "describe":
            return await asyncio.to_thread(self.service.describe, args or {}), None
        if op == "reset":
            return None, None  # the policy is shared; the runner owns per-episode state
        if op in ("select_action", "predict_action_chunk"):
            if self.key is None:
                raise RuntimeError(f"'{op}' before 'load'")
            if not isinstance(args, dict):
                raise ValueError(f"{op} expects a batch map, got {type(args).__name__}")
            return await self.service.act(op, self.key, args)
        raise ValueError(f"unknown policy op {op!r}")

    def close(self) -> None:
        if self.key is not None:
            self.service.sessions -= 1


class _EnvSession:
    """One client connection of an env service: its own env, stepped in a thread."""

    def __init__(self, spec: api.EnvSpec) -> None:
        self.host = EnvHost(spec.make, spec)

    async def handle(self, op: str, args: Any) -> tuple[Any, float | None]:
        if isinstance(args, dict) and isinstance(args.get("options"), dict):
            # a network client never arms the served robot (api.ARMED_OPTION is the runner's)
            args = {**args, "options": {
                k: v for k, v in args["options"].items() if k != api.ARMED_OPTION
            }}
        return await asyncio.to_thread(self.host.handle, op, args), None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.host.close()


class Server(WebSocketHost):
    """A WebSocket server for one policy service or one env spec."""

    def __init__(self, target: PolicyService | api.EnvSpec, *, host: str = "127.0.0.1",
                 port: int = DEFAULT_PORT, token: str | None = None,
                 allow_remote: bool = False, sock: Any = None) -> None:
        if sock is not None:  # a listening socket made by the caller (kept across restarts)
            host, port = sock.getsockname()[:2]
        check_bind(host, allow_remote, token)
        super().__init__()
        self.sock = sock
        self.target = target
        self.kind = "policy" if isinstance(target, PolicyService) else "env"
        self.host, self.port, self.token = host, port, token
        self.clients = 0
        self.started = time.time()

    def _session(self) -> Any:
        if isinstance(self.target, PolicyService):
            return _PolicySession(self.target)
        return _EnvSession(self.target)

    def served(self) -> dict[str, Any]:
        """What is served: identifies a remote policy in the run's config (and its hash)."""
        if isinstance(self.target, PolicyService):
            t = self.target
            return {"name": t.name, "type": t.type, "checkpoint": t.checkpoint,
                    "options": plain(t.options)}
        return {"name": self.target.name}

    def health(self) -> dict[str, Any]:
        info = {"status": "ok", "kind": self.kind, "protocol": wire.PROTOCOL_VERSION,
                "clients": self.clients, "uptime_s": round(time.time() - self.started, 3)}
        if isinstance(self.target, PolicyService):
            info["name"] = self.target.name
            info["stats"] = dict(self.target.stats)
        else:
            info["name"] = self.target.name
        return info

    def _process_request(self, connection: Any, request: Any) -> Any:
        if request.path.split("?")[0] == "/health":
            return connection.respond(200, json.dumps(self.health()) + "\n")
        if self.token:
            sent = request.headers.get("Authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {self.token}".encode()):
                return connection.respond(401, "missing or wrong token\n")
        return None

    async def _handler(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        session = self._session()
        self.clients += 1
        try:
            async for data in ws:
                msg_id = None
                try:
                    msg = wire.unpack(data)
                    msg_id = msg.get("id") if isinstance(msg, dict) else None
                    msg_id, op, args = wire.check_request(msg, f"{self.kind} server")
                    start = time.perf_counter()
                    if op == "hello":
                        result, ms = hello(self.kind) | {"served": self.served()}, None
                    else:
                        result, ms = await session.handle(op, args)
                    if ms is None:
                        ms = 1000 * (time.perf_counter() - start)
                    reply = wire.pack(wire.reply(msg_id, result, ms))
                except Exception as exc:
                    reply = wire.pack(wire.error_reply(msg_id, exc))
                await ws.send(reply)
        except ConnectionClosed:
            pass
        finally:
            self.clients -= 1
            session.close()

    async def serve_async(self, started: Started | None = None) -> None:
        where: dict[str, Any] = (
            {"sock": self.sock} if self.sock is not None else {"host": self.host, "port": self.port}
        )
        await self._listen(self._handler, started, max_size=wire.MAX_MESSAGE_BYTES, **where)
