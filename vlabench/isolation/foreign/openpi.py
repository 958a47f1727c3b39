"""``openpi://host:port``: a policy served by openpi's WebSocket policy server (or any server
speaking its protocol, ``vlabench serve policy --protocol openpi`` included).

The protocol (openpi ``serving/websocket_policy_server.py``, ``openpi_client``): the server
speaks first with one msgpack frame of metadata; then each binary frame from the client is a
bare observation map and each answer the policy's output map (``actions`` ``(H, A)``, plus
``server_timing``); an error is a *text* frame with the traceback, then close code 1011. An
``Authorization: Api-Key KEY`` header is sent when a key is configured.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from vlabench import api
from vlabench.isolation.foreign import codec
from vlabench.isolation.foreign.client import ServedPolicy, ServerError
from vlabench.isolation.foreign.convention import Convention

SCHEME = "openpi://"
TYPE = "openpi"
VLABENCH_KEY = "vlabench"
"""Metadata key under which ``vlabench serve --protocol openpi`` describes what it serves."""


def parse_url(name: str, scheme: str) -> tuple[str, str | None]:
    """``scheme://host:port[/convention]`` -> ``(ws://host:port, convention or None)``."""
    if not name.startswith(scheme):
        raise ValueError(f"expected {scheme}host:port, got {name!r}")
    address, _, convention = name[len(scheme):].partition("/")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected {scheme}host:port with a numeric port, got {name!r}")
    return f"ws://{address}", convention.strip("/") or None


def token_from(options: dict[str, Any]) -> str | None:
    """The key or token, read from the environment variable the preset names (never stored)."""
    import os

    return os.environ.get(str(options.get("token_env") or "VLABENCH_TOKEN")) or None


def connect_ws(url: str, headers: dict[str, str] | None, timeout: float) -> Any:
    """An open synchronous WebSocket; refusals and unreachable hosts as ConnectionError."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    try:
        return connect(url, additional_headers=headers, compression=None, max_size=None,
                       open_timeout=timeout).__enter__()
    except InvalidStatus as exc:
        status = exc.response.status_code
        hint = " (missing or wrong key: set the preset's token_env variable)" if status in (
            401, 403) else ""
        raise PermissionError(f"{url} refused the connection: HTTP {status}{hint}") from None
    except (OSError, TimeoutError) as exc:
        raise ConnectionError(f"cannot connect to {url}: {exc}") from None


class OpenpiConnection:
    """One connection to an openpi policy server."""

    def __init__(self, url: str, token: str | None = None, action_key: str = "actions",
                 timeout: float = 30.0) -> None:
        self.url, self.action_key = url, action_key
        headers = {"Authorization": f"Api-Key {token}"} if token else None
        self.ws = connect_ws(url, headers, timeout)
        try:
            self.metadata = codec.openpi_unpack(self.ws.recv(timeout=timeout))
        except Exception as exc:
            self.close()
            raise ConnectionError(f"{url}: no metadata frame from the server: {exc}") from None
        self.server_timing: dict[str, float] = {}

    def act(self, obs: dict[str, Any], episode: int, step: int, task: str) -> np.ndarray:
        from websockets.exceptions import ConnectionClosed

        try:
            self.ws.send(codec.openpi_pack(obs))
            reply = self.ws.recv()
        except (ConnectionClosed, OSError, TimeoutError) as exc:
            raise ConnectionError(f"{self.url}: connection lost: {exc}") from None
        if isinstance(reply, str):
            lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
            message = lines[-1] if lines else "(empty error frame)"
            raise ServerError(f"{self.url} server error: {message}")
        out = codec.openpi_unpack(reply)
        if not isinstance(out, dict) or self.action_key not in out:
            keys = sorted(out) if isinstance(out, dict) else type(out).__name__
            raise ServerError(f"{self.url} answered without {self.action_key!r} ({keys})")
        self.server_timing = dict(out.get("server_timing") or {})
        return np.asarray(out[self.action_key], dtype=np.float32)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()


def convention_of(request: api.PolicyRequest, kind: str = TYPE) -> Convention:
    """The request's convention; a bare address adopts what a vlabench server announces."""
    options = dict(request.options)
    conv = Convention.from_options(options, f"policy type {kind!r}")
    served = options.get("served")
    if not conv.declared and isinstance(served, dict):
        announced = (served.get(VLABENCH_KEY) or served).get("convention")
        if isinstance(announced, dict):
            conv = Convention.from_options(announced, "the server's announcement")
    return conv.for_env(request.env)


def _url(request: api.PolicyRequest) -> str:
    url = request.options.get("url")
    if not url:
        raise api.RegistryError(f"policy type {TYPE!r} needs options.url (openpi://host:port)")
    return parse_url(str(url), SCHEME)[0]


def describe(request: api.PolicyRequest) -> api.PolicyInterface:
    """From the preset's convention (nothing is asked of the server)."""
    return convention_of(request).interface(request.env)


def load(request: api.PolicyRequest) -> ServedPolicy:
    """A policy asking the server for every chunk."""
    conv = convention_of(request)
    url, token = _url(request), token_from(dict(request.options))
    return ServedPolicy(conv.interface(request.env), conv,
                        lambda: OpenpiConnection(url, token, conv.action_key),
                        per_episode=False, name=url)


SPEC = api.PolicySpec(
    name=TYPE,
    description="A model behind an openpi policy server (openpi://host:port[/convention]).",
    load=load,
    describe=describe,
)


def resolve(name: str) -> dict[str, Any]:
    """The preset of ``openpi://host:port[/convention]`` (asks the server's metadata now)."""
    url, convention = parse_url(name, SCHEME)
    conn = OpenpiConnection(url, token_from({}))
    conn.close()
    options: dict[str, Any] = {"url": SCHEME + url[len("ws://"):]}
    if convention:
        options["convention"] = convention
    served = conn.metadata.get(VLABENCH_KEY) if isinstance(conn.metadata, dict) else None
    if isinstance(served, dict):
        options["served"] = served
    return {"type": TYPE, "checkpoint": (served or {}).get("checkpoint"), "options": options}
