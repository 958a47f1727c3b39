"""The client side of ``remote://host:port``: a policy or env served by ``vlabench serve``.

Calls travel as the wire protocol (:mod:`vlabench.isolation.wire`) over a WebSocket, one
message per binary frame (the server: :mod:`vlabench.isolation.serve`). A token, when the
server wants one, is sent as ``Authorization: Bearer`` (clients read it from
``VLABENCH_TOKEN``).

This module is a default plugin (:data:`vlabench.catalog.DEFAULT_PLUGINS`): it answers
``remote://host:port`` through the ``vlabench_resolve_policy``/``vlabench_resolve_env`` hooks,
so that resolving such a name registers nothing anywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping
from typing import Any

from vlabench import api, hookimpl
from vlabench.isolation import wire
from vlabench.isolation.decode import env_interface_from, policy_interface_from
from vlabench.isolation.proxies import CallTiming, ProxyEnv, ProxyPolicy, request_to_wire
from vlabench.isolation.worker import plain

SCHEME = "remote://"
TOKEN_ENV = "VLABENCH_TOKEN"
REMOTE_TYPE = "remote"
"""The policy type of every served policy; ``options["url"]`` names the server."""


def parse_remote(name: str) -> str:
    """``remote://host:port`` -> ``ws://host:port`` (``ws://``/``wss://`` pass through)."""
    if name.startswith(("ws://", "wss://")):
        return name
    if not name.startswith(SCHEME):
        raise ValueError(f"expected remote://host:port, got {name!r}")
    address = name[len(SCHEME) :].rstrip("/")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected remote://host:port with a numeric port, got {name!r}")
    return f"ws://{address}"


# -- client -----------------------------------------------------------------------------------
class WsChannel:
    """Synchronous wire calls over one WebSocket connection (same API as a worker channel)."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect

        self.url = url
        self._ids = 0
        token = token if token is not None else os.environ.get(TOKEN_ENV)
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            self.ws = connect(
                url,
                additional_headers=headers,
                max_size=wire.MAX_MESSAGE_BYTES,
                open_timeout=timeout,
                compression=None,
            ).__enter__()  # closed in close(); entering opts out of websockets' legacy mode
        except InvalidStatus as exc:
            status = exc.response.status_code
            hint = " (missing or wrong token: set VLABENCH_TOKEN)" if status == 401 else ""
            raise PermissionError(f"{url} refused the connection: HTTP {status}{hint}") from None
        except OSError as exc:
            raise ConnectionError(f"cannot connect to {url}: {exc}") from None
        self.alive = True
        self.info, _ = self.call("hello", None)

    def call(
        self, op: str, args: Any = None, timeout: float | None = None
    ) -> tuple[Any, CallTiming]:
        from websockets.exceptions import ConnectionClosed

        self._ids += 1
        start = time.perf_counter()
        try:
            self.ws.send(wire.pack(wire.request(self._ids, op, args)))
            data = self.ws.recv(timeout=timeout)
        except (ConnectionClosed, OSError, TimeoutError) as exc:
            self.alive = False
            raise wire.PeerGone(f"{self.url}: connection lost during {op!r}: {exc}") from None
        result, inner_ms = wire.result_of(wire.unpack(data), f"reply from {self.url}")
        total_ms = 1000 * (time.perf_counter() - start)
        return result, CallTiming(inner_ms, max(0.0, total_ms - inner_ms))

    def close(self) -> None:
        self.alive = False
        with contextlib.suppress(Exception):
            self.ws.close()


def served_policy(name: str) -> dict[str, Any]:
    """What a policy server at ``remote://host:port`` serves (asks its hello)."""
    channel = WsChannel(parse_remote(name))
    try:
        info = channel.info
    finally:
        channel.close()
    if info.get("kind") != "policy":
        raise ValueError(f"{name} serves {info.get('kind')!r}, not a policy")
    return dict(info.get("served") or {})


def remote_policy_spec() -> api.PolicySpec:
    """The ``remote`` policy type: ``options["url"]`` names the server."""

    def connect(request: api.PolicyRequest) -> WsChannel:
        url = request.options.get("url")
        if not url:
            raise api.RegistryError(
                f"policy type {REMOTE_TYPE!r} needs a server: give remote://host:port as the policy"
            )
        return WsChannel(parse_remote(str(url)))

    def load(request: api.PolicyRequest) -> ProxyPolicy:
        return ProxyPolicy(lambda: connect(request), request)

    def describe(request: api.PolicyRequest) -> api.PolicyInterface:
        channel = connect(request)
        try:
            data, _ = channel.call("describe", request_to_wire(request))
        finally:
            channel.close()
        return policy_interface_from(data)

    return api.PolicySpec(
        name=REMOTE_TYPE,
        description="A policy served by `vlabench serve policy` (remote://host:port).",
        load=load,
        describe=describe,
    )


def remote_env_spec(name: str) -> api.EnvSpec:
    """An EnvSpec for ``remote://host:port`` served by `vlabench serve env` (asks it now)."""
    url = parse_remote(name)
    cache: dict[str, Any] = {}

    def describe(options: Mapping[str, Any]) -> dict[str, Any]:
        key = json.dumps(plain(dict(options)), sort_keys=True, default=str)
        if key not in cache:
            channel = WsChannel(url)
            try:
                cache[key], _ = channel.call("describe", {"options": dict(options)})
            finally:
                channel.close()
        return cache[key]

    first = describe({})

    def make(task: str, options: Mapping[str, Any]) -> ProxyEnv:
        return ProxyEnv(WsChannel(url), task, options)

    return api.EnvSpec(
        name=name,
        description=f"env {first['name']!r} served at {url}",
        make=make,
        interface=lambda options: env_interface_from(describe(options)["interface"]),
        tasks=lambda options: [api.TaskInfo(**t) for t in describe(options)["tasks"]],
        max_episode_steps=int(first["max_episode_steps"]),
        success=first["success"],
    )


# -- hooks: remote://host:port as a policy or an env -----------------------------------------
@hookimpl
def vlabench_resolve_policy(name: str) -> tuple[api.PolicySpec, dict[str, Any]] | None:
    """``remote://host:port``: the ``remote`` type, with what the server serves (asked now).

    What is served (preset, type, checkpoint, options) goes into the run's config, so two
    different policies behind one address never share a run. The bare type ``remote`` gets
    the spec alone (a worker looking up a config's policy type).
    """
    if name == REMOTE_TYPE:
        return remote_policy_spec(), {"type": REMOTE_TYPE}
    if not name.startswith(SCHEME):
        return None
    try:
        served = served_policy(name)
    except (ValueError, ConnectionError, PermissionError) as exc:
        raise api.RegistryError(f"policy {name!r}: {exc}") from None
    preset = {
        "type": REMOTE_TYPE,
        "checkpoint": served.get("checkpoint"),
        "options": {"url": name, "served": served},
    }
    return remote_policy_spec(), preset


@hookimpl
def vlabench_resolve_env(name: str) -> api.EnvSpec | None:
    """``remote://host:port``: the env served there (described now)."""
    if not name.startswith(SCHEME):
        return None
    try:
        return remote_env_spec(name)
    except (ValueError, ConnectionError, PermissionError) as exc:
        raise api.RegistryError(f"env {name!r}: {exc}") from None
