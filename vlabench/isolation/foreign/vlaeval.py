"""``vlaeval://host:port``: a policy served by a vla-eval model server (protocol version 1).

The protocol (``vla_eval.protocol``, ``vla_eval.connection``, ``model_servers/serve.py``):
the client speaks first with HELLO ``{harness_version, protocol_version, benchmark}``; the
server's HELLO may carry ``action_spec`` / ``observation_spec`` (``{name, dims, format,
range, accepts}`` per component) and ``observation_params``. Each episode is framed by
``episode_start`` / ``episode_end``; each ``observation`` gets one ``action`` (the server
buffers chunks per connection) or an ``error``, after which the connection stays open.

The announced specs feed ``vlabench check``: a camera or state the server expects and the
preset does not send, or an action of another dimension, is named before any episode.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any

import numpy as np

from vlabench import api
from vlabench.isolation.foreign import codec
from vlabench.isolation.foreign.client import ServedPolicy, ServerError
from vlabench.isolation.foreign.convention import Convention
from vlabench.isolation.foreign.openpi import connect_ws, convention_of, parse_url, token_from

SCHEME = "vlaeval://"
TYPE = "vlaeval"
IMAGE_FORMAT = "rgb_hwc_uint8"


class VlaevalConnection:
    """One session with a vla-eval model server."""

    def __init__(self, url: str, token: str | None = None, action_key: str = "actions",
                 benchmark: str = "vlabench", timeout: float = 30.0) -> None:
        self.url, self.action_key = url, action_key
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self.ws = connect_ws(url, headers, timeout)
        self.seq = 0
        try:
            kind, payload, _ = self._ask("hello", codec.vlaeval_hello(benchmark=benchmark),
                                         timeout)
        except Exception:
            self.close()
            raise
        if kind != "hello":
            self.close()
            raise ConnectionError(f"{url}: expected a HELLO reply, got {kind!r}")
        self.info: dict[str, Any] = dict(payload)
        self.episode: int | None = None
        self.last_step = -1

    def _send(self, kind: str, payload: dict[str, Any]) -> int:
        from websockets.exceptions import ConnectionClosed

        self.seq += 1
        try:
            self.ws.send(codec.vlaeval_pack(kind, payload, self.seq))
        except (ConnectionClosed, OSError) as exc:
            raise ConnectionError(f"{self.url}: connection lost: {exc}") from None
        return self.seq

    def _ask(self, kind: str, payload: dict[str, Any],
             timeout: float | None = None) -> tuple[str, Any, int]:
        from websockets.exceptions import ConnectionClosed

        self._send(kind, payload)
        try:
            return codec.vlaeval_unpack(self.ws.recv(timeout=timeout))
        except (ConnectionClosed, OSError, TimeoutError) as exc:
            raise ConnectionError(f"{self.url}: connection lost: {exc}") from None

    def act(self, obs: dict[str, Any], episode: int, step: int, task: str) -> np.ndarray:
        restart = self.episode != episode or step <= self.last_step
        if self.episode is not None and restart:
            self._send("episode_end", {"metrics": {}, "steps": self.last_step + 1})
        if self.episode is None or restart:
            self._send("episode_start", {"task": {"name": task, "episode_idx": episode}})
            self.episode = episode
        self.last_step = step
        kind, payload, _ = self._ask("observation", obs)
        if kind == "error":
            error = payload.get("error") if isinstance(payload, dict) else payload
            raise ServerError(f"{self.url} server error: {error}")
        if kind != "action" or not isinstance(payload, dict) or self.action_key not in payload:
            raise ServerError(f"{self.url} answered {kind!r} without {self.action_key!r}")
        return np.asarray(payload[self.action_key], dtype=np.float32)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()


def _url(request: api.PolicyRequest) -> str:
    url = request.options.get("url")
    if not url:
        raise api.RegistryError(f"policy type {TYPE!r} needs options.url (vlaeval://host:port)")
    return parse_url(str(url), SCHEME)[0]


def spec_interface(conv: Convention, env: api.EnvInterface,
                   hello: dict[str, Any]) -> api.PolicyInterface:
    """The interface, with what the server's HELLO announces checked against the preset.

    A component the server expects and the preset does not send becomes an input the env
    cannot offer (so ``vlabench check`` names it); announced action dims set the action's."""
    base = conv.interface(env)
    inputs = list(base.inputs)
    action = base.action
    for key, spec in (hello.get("observation_spec") or {}).items():
        fmt, dims = str(spec.get("format", "")), int(spec.get("dims", 0) or 0)
        if fmt == IMAGE_FORMAT and key not in conv.images:
            inputs.append(api.Feature(f"{key} (vla-eval camera, not in the preset)", "image",
                                      None, "uint8"))
        elif fmt == "language" and not conv.prompt:
            inputs.append(api.Feature("language (vla-eval expects a prompt, the preset sends "
                                      "none)", "state", None))
        elif spec.get("name") == "state" and dims:
            if not conv.state:
                inputs.append(api.Feature(f"{key} (vla-eval state {dims}-d, not in the preset)",
                                          "state", (dims,)))
                continue
            sent = [i for i, f in enumerate(inputs) if f.kind == "state"]
            if len(sent) == 1 and inputs[sent[0]].shape not in (None, (dims,)):
                inputs[sent[0]] = api.Feature(inputs[sent[0]].name, "state", (dims,), "float32",
                                              inputs[sent[0]].space)
    action_dims = [int(s.get("dims", 0) or 0) for s in (hello.get("action_spec") or {}).values()]
    if action_dims and all(action_dims):
        action = replace(action, shape=(sum(action_dims),))
    return api.PolicyInterface(tuple(inputs), action, chunk_size=base.chunk_size,
                               n_action_steps=base.n_action_steps)


def describe(request: api.PolicyRequest) -> api.PolicyInterface:
    """The preset's convention checked against the server's announced specs (asks HELLO)."""
    conv = convention_of(request, TYPE)
    conn = VlaevalConnection(_url(request), token_from(dict(request.options)))
    conn.close()
    return spec_interface(conv, request.env, conn.info)


def load(request: api.PolicyRequest) -> ServedPolicy:
    """A policy with one server session per episode in flight."""
    conv = convention_of(request, TYPE)
    url, token = _url(request), token_from(dict(request.options))
    return ServedPolicy(conv.interface(request.env), conv,
                        lambda: VlaevalConnection(url, token, conv.action_key),
                        per_episode=True, name=url)


SPEC = api.PolicySpec(
    name=TYPE,
    description="A model behind a vla-eval model server (vlaeval://host:port[/convention]).",
    load=load,
    describe=describe,
)


def resolve(name: str) -> dict[str, Any]:
    """The preset of ``vlaeval://host:port[/convention]`` (asks the server's HELLO now)."""
    url, convention = parse_url(name, SCHEME)
    conn = VlaevalConnection(url, token_from({}))
    conn.close()
    options: dict[str, Any] = {"url": SCHEME + url[len("ws://"):]}
    if convention:
        options["convention"] = convention
    served = {k: conn.info[k] for k in ("model_server", "vlabench") if k in conn.info}
    if served:
        options["served"] = served
    return {"type": TYPE, "checkpoint": (conn.info.get("vlabench") or {}).get("checkpoint"),
            "options": options}
