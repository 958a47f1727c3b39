"""Envs and policies in a worker process, possibly another interpreter or venv.

A plugin declares isolation in one line::

    make=isolated_env("my_sim_plugin.sim:make", python="/opt/simpler-venv/bin/python")

and a registry suite or policy preset with ``isolation: /path/to/python`` (or a mapping, see
:class:`Isolation`). The runner starts ``vlabench/isolation/worker.py`` under that
interpreter and talks the wire protocol over its stdin/stdout. The proxies here satisfy the
contracts (a gymnasium-style env, a :class:`~vlabench.api.Policy`); a worker that dies
mid-call (segfault, ``os._exit``, kill -9) raises :class:`WorkerDied`, which the rollout records
as that episode's failure reason; the next episode gets a fresh worker.
Every call is timed twice: inside the worker and round trip;
the difference is the wire time (see :func:`instrument`). A worker never outlives the process
that started it (``--parent-pid``: :func:`vlabench.isolation.worker.exit_with_parent`), and a
call abandoned half-way (Ctrl-C, a deadline's alarm) kills it: its stream is out of step.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from vlabench import api
from vlabench.isolation import wire
from vlabench.isolation.decode import policy_interface_from

WORKER_FILE = Path(__file__).resolve().parent / "worker.py"


class WorkerDied(RuntimeError):
    """The worker process exited or was killed during a call."""


class WorkerTimeout(RuntimeError):
    """The worker did not answer in time (it is killed)."""


@dataclass(frozen=True)
class Isolation:
    """Where and how a worker runs.

    ``python``: interpreter (a venv's ``bin/python`` or the venv folder; default: this one).
    ``factory``: ``module:attr`` building the env (``make(task, options)``) or loading the
    policy (``load(request)``) inside the worker; without it the worker looks the spec up by
    name in its own vlabench installation. ``path``: extra ``PYTHONPATH`` entries.
    """

    python: str | None = None
    factory: str | None = None
    describe: str | None = None
    """Policies: ``module:attr`` of a describe function, for :func:`isolated_describe`."""
    path: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    start_timeout_s: float = 120.0
    call_timeout_s: float | None = None

    @classmethod
    def parse(cls, value: Any, where: str) -> Isolation:
        """From a registry value: a python path string or a mapping of the fields above."""
        if isinstance(value, Isolation):
            return value
        if isinstance(value, str):
            return cls(python=value)
        if isinstance(value, Mapping):
            unknown = set(value) - {"python", "factory", "describe", "path", "env",
                                    "start_timeout_s", "call_timeout_s"}
            if unknown:
                raise ValueError(
                    f"{where}: unknown isolation key(s) {sorted(unknown)}; expected python, "
                    "factory, path, env, start_timeout_s, call_timeout_s"
                )
            data = dict(value)
            if isinstance(data.get("path"), str):
                data["path"] = (data["path"],)
            data["path"] = tuple(str(p) for p in data.get("path") or ())
            return cls(**data)
        raise ValueError(f"{where}: isolation must be a python path or a mapping, got {value!r}")

    def interpreter(self) -> str:
        if not self.python:
            return sys.executable
        path = Path(os.path.expanduser(self.python))
        if path.is_dir():
            path = path / "bin" / "python"
        return str(path)


@dataclass
class CallTiming:
    """One call: time inside the serving side and the rest (encode, transfer, decode)."""

    inner_ms: float
    wire_ms: float


class Channel:
    """Framed wire calls to one worker process over its stdin/stdout."""

    def __init__(self, kind: str, isolation: Isolation, target: str) -> None:
        self.kind = kind
        self.isolation = isolation
        self.target = target
        self._ids = 0
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the worker)
        command = [isolation.interpreter(), str(WORKER_FILE), "--kind", kind]
        command += ["--factory", isolation.factory] if isolation.factory else ["--spec", target]
        command += ["--describe", isolation.describe] if isolation.describe else []
        command += ["--parent-pid", str(os.getpid())]
        if threading.current_thread() is threading.main_thread():  # the kernel's watch is
            command.append("--pdeathsig")  # tied to the starting thread: only a lasting one
        env = {**os.environ, **isolation.env}
        if isolation.path:
            env["PYTHONPATH"] = os.pathsep.join([*isolation.path, env.get("PYTHONPATH", "")])
        try:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=env,
            )
        except OSError as exc:
            raise WorkerDied(
                f"cannot start the {kind} worker with {command[0]!r}: {exc.strerror}"
            ) from None
        self.info, _ = self.call("hello", None, timeout=isolation.start_timeout_s)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def _describe_death(self) -> str:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=2)
        code = self.proc.returncode
        if code is None:
            how = "stopped answering"
        elif code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        self._stderr.seek(0)
        lines = self._stderr.read()[-4000:].decode(errors="replace").strip().splitlines()
        tail = f"; last stderr line: {lines[-1].strip()[:300]}" if lines else ""
        return f"{self.kind} worker {self.target!r} (pid {self.proc.pid}) {how}{tail}"

    def _read_exact(self, n: int, deadline: float | None) -> bytes:
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        chunks, left = [], n
        while left:
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                    self.kill()
                    raise WorkerTimeout(
                        f"{self.kind} worker {self.target!r} did not answer within the timeout"
                    )
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                raise WorkerDied(self._describe_death())
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def call(
        self, op: str, args: Any = None, timeout: float | None = None
    ) -> tuple[Any, CallTiming]:
        """Run ``op`` in the worker; returns its result and the call's timing.

        A call abandoned half-way (KeyboardInterrupt, an alarm's
        :class:`~vlabench.runtime.deadlines.CallTimeout`) kills the worker: the next reply on
        its stream would answer this call."""
        try:
            return self._call(op, args, timeout)
        except Exception:
            raise
        except BaseException:
            self.kill()
            raise

    def _call(self, op: str, args: Any, timeout: float | None) -> tuple[Any, CallTiming]:
        if not self.alive:
            raise WorkerDied(self._describe_death())
        self._ids += 1
        start = time.perf_counter()
        data = wire.pack(wire.request(self._ids, op, args))
        try:
            self.proc.stdin.write(len(data).to_bytes(4, "big") + data)  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError):
            raise WorkerDied(self._describe_death()) from None
        timeout = timeout if timeout is not None else self.isolation.call_timeout_s
        deadline = None if timeout is None else time.monotonic() + timeout
        size = int.from_bytes(self._read_exact(4, deadline), "big")
        if size > wire.MAX_MESSAGE_BYTES:
            self.kill()
            raise wire.WireError(f"{self.kind} worker sent a frame of {size} bytes (too large)")
        result, inner_ms = wire.result_of(
            wire.unpack(self._read_exact(size, deadline)), f"reply of {self.kind} worker"
        )
        total_ms = 1000 * (time.perf_counter() - start)
        return result, CallTiming(inner_ms, max(0.0, total_ms - inner_ms))

    def kill(self) -> None:
        if self.alive:
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)

    def close(self) -> None:
        """Close stdin (the worker closes its env and exits), then make sure it is gone."""
        with contextlib.suppress(Exception):
            self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
        with contextlib.suppress(Exception):
            self.proc.stdout.close()  # type: ignore[union-attr]
        self._stderr.close()


# -- env proxy --------------------------------------------------------------------------------
class ProxyEnv:
    """A gymnasium-style env whose calls go over a channel (worker pipe or WebSocket).

    Per-step timings are kept per reset seed (``timings``) for latency accounting.
    """

    def __init__(self, channel: Any, task: str, options: Mapping[str, Any]) -> None:
        self.channel = channel
        self.timings: dict[Any, list[CallTiming]] = {}
        self._seed: Any = None
        try:
            channel.call("make", {"task": task, "options": dict(options)})
        except Exception:
            channel.close()
            raise

    def reset(self, seed: int | None = None, options: Mapping[str, Any] | None = None):
        self._seed = seed
        self.timings[seed] = []
        (obs, info), _ = self.channel.call("reset", {"seed": seed, "options": dict(options or {})})
        return obs, info

    def step(self, action: Any):
        out, timing = self.channel.call("step", {"action": np.asarray(action)})
        self.timings.setdefault(self._seed, []).append(timing)
        obs, reward, terminated, truncated, info = out
        return obs, reward, terminated, truncated, info

    def render(self) -> Any:
        """The hosted env's ``render()`` (an RGB frame for videos), or None."""
        frame, _ = self.channel.call("render", None)
        return frame

    def close(self) -> None:
        alive = getattr(self.channel, "alive", True)
        if alive:
            with contextlib.suppress(Exception):
                self.channel.call("close", None, timeout=30)
        self.channel.close()


def isolated_env(
    factory: str | None = None, python: str | None = None, *, name: str | None = None, **kw: Any
) -> Callable[[str, Mapping[str, Any]], ProxyEnv]:
    """An ``EnvSpec.make`` that builds the env in a worker: one worker per env.

    ``factory`` is ``module:attr`` with the signature of ``EnvSpec.make``, importable by
    ``python``; without it, ``name`` is looked up in the worker's own vlabench catalog.
    """
    isolation = Isolation(python=python, factory=factory, **kw)
    target = factory or name
    if target is None:
        raise ValueError("isolated_env needs a factory 'module:attr' or an env name")

    def make(task: str, options: Mapping[str, Any]) -> ProxyEnv:
        return ProxyEnv(Channel("env", isolation, target), task, options)

    return make


# -- policy proxy -----------------------------------------------------------------------------
def request_to_wire(request: api.PolicyRequest) -> dict[str, Any]:
    from vlabench.isolation.worker import plain

    return plain(request)


class ProxyPolicy:
    """A :class:`~vlabench.api.Policy` whose calls go over a channel.

    ``connect()`` returns a fresh channel. A worker that died fails the next call (recorded with
    how it died); the call after that reconnects and reloads. Timings are kept per episode index
    (``timings``) for latency accounting.
    """

    def __init__(self, connect: Callable[[], Any], request: api.PolicyRequest) -> None:
        self._connect = connect
        self._request = request_to_wire(request)
        self.channel: Any = None
        self.timings: dict[int, list[CallTiming]] = {}
        self.interface = self._open()
        self.chunked = self.interface.chunk_size > 1

    def _open(self) -> api.PolicyInterface:
        self.channel = self._connect()
        try:
            data, _ = self.channel.call("load", self._request)
        except Exception:
            self.channel.close()
            self.channel = None
            raise
        return policy_interface_from(data)

    def _call(self, op: str, args: Any) -> tuple[Any, CallTiming]:
        # A worker that died since the last call fails this call (the channel says how it
        # died, so the episode records it); the next call starts a fresh worker.
        if self.channel is None:
            self.interface = self._open()
        try:
            return self.channel.call(op, args)
        except BaseException as exc:
            lost = isinstance(exc, WorkerDied | WorkerTimeout | wire.PeerGone)
            if lost or not getattr(self.channel, "alive", True):  # killed by an abandoned call
                self.channel.close()
                self.channel = None
            raise

    def reset(self) -> None:
        self._call("reset", None)

    def _act(self, op: str, batch: api.Batch) -> np.ndarray:
        out, timing = self._call(op, batch)
        for index in np.asarray(batch.get(api.EPISODE_INDEX_KEY, ()), dtype=np.int64).ravel():
            self.timings.setdefault(int(index), []).append(timing)
        return out

    def select_action(self, batch: api.Batch) -> np.ndarray:
        return self._act("select_action", batch)

    def predict_action_chunk(self, batch: api.Batch) -> np.ndarray:
        return self._act("predict_action_chunk", batch)

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None


def isolated_policy(
    factory: str | None = None, python: str | None = None, *, name: str | None = None, **kw: Any
) -> Callable[[api.PolicyRequest], ProxyPolicy]:
    """A ``PolicySpec.load`` that loads the policy in a worker process."""
    isolation = Isolation(python=python, factory=factory, **kw)
    target = factory or name
    if target is None:
        raise ValueError("isolated_policy needs a factory 'module:attr' or a policy name")

    def load(request: api.PolicyRequest) -> ProxyPolicy:
        return ProxyPolicy(lambda: Channel("policy", isolation, target), request)

    return load


def isolated_describe(
    factory: str, describe: str, python: str | None = None, **kw: Any
) -> Callable[[api.PolicyRequest], api.PolicyInterface]:
    """A ``PolicySpec.describe`` run in a (short-lived) worker, for stacks the runner lacks."""
    isolation = Isolation(python=python, factory=factory, describe=describe, **kw)

    def run(request: api.PolicyRequest) -> api.PolicyInterface:
        channel = Channel("policy", isolation, describe)
        try:
            data, _ = channel.call("describe", request_to_wire(request))
        finally:
            channel.close()
        return policy_interface_from(data)

    return run


# -- runner hooks -----------------------------------------------------------------------------
def env_spec_for(config: Any, spec: api.EnvSpec) -> api.EnvSpec:
    """``spec`` with ``make`` in a worker when the run's suite declares ``isolation``."""
    value = getattr(config, "env_isolation", None)
    if not value:
        return spec
    iso = Isolation.parse(value, f"suite {config.suite!r}")
    target = iso.factory or spec.name

    def make(task: str, options: Mapping[str, Any]) -> ProxyEnv:
        return ProxyEnv(Channel("env", iso, target), task, options)

    return replace(spec, make=make)


def policy_spec_for(config: Any, spec: api.PolicySpec) -> api.PolicySpec:
    """``spec`` with ``load`` in a worker when the policy preset declares ``isolation``.

    ``config`` is a RunConfig or a PolicyChoice. With ``describe`` (and ``factory``) in the
    declaration, ``describe`` runs in a worker too.
    """
    choice = getattr(config, "policy", config)
    value = getattr(choice, "isolation", None)
    if not value:
        return spec
    iso = Isolation.parse(value, f"policy {choice.name!r}")
    target = iso.factory or spec.name

    def load(request: api.PolicyRequest) -> ProxyPolicy:
        return ProxyPolicy(lambda: Channel("policy", iso, target), request)

    describe = spec.describe
    if iso.describe and iso.factory:
        describe = isolated_describe(iso.factory, iso.describe, iso.python, path=iso.path,
                                     env=iso.env, start_timeout_s=iso.start_timeout_s)
    return replace(spec, load=load, describe=describe)


def _stats(prefix: str, values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    arr = np.asarray(values, dtype=np.float64)
    return {f"{prefix}_p50": float(np.percentile(arr, 50)),
            f"{prefix}_p95": float(np.percentile(arr, 95))}


def latency_metrics(
    record: api.EpisodeRecord, policy: Any, envs: Sequence[Any]
) -> dict[str, float]:
    """Per-episode wire and inner latencies of proxied calls (and forgets them).

    ``policy_ms``/``wire_ms``: inside the policy / on the wire per policy call;
    ``env_ms``/``env_wire_ms``: the same per env step. Absent for in-process objects.
    """
    metrics: dict[str, float] = {}
    if isinstance(policy, ProxyPolicy):
        calls = policy.timings.pop(record.episode_index, [])
        metrics |= _stats("policy_ms", [t.inner_ms for t in calls])
        metrics |= _stats("wire_ms", [t.wire_ms for t in calls])
    for env in envs:
        steps = env.timings.pop(record.seed, None)
        if steps:
            metrics |= _stats("env_ms", [t.inner_ms for t in steps])
            metrics |= _stats("env_wire_ms", [t.wire_ms for t in steps])
    return metrics


def instrument(
    make_env: Callable[[], Any],
    policy: Any,
    on_episode: Callable[[api.EpisodeRecord], None],
) -> tuple[Callable[[], Any], Callable[[api.EpisodeRecord], None]]:
    """Wrap a rollout's ``make_env`` and ``on_episode`` so proxied latencies reach metrics."""
    envs: list[Any] = []

    def make() -> Any:
        env = make_env()
        if isinstance(env, ProxyEnv):
            envs.append(env)
        return env

    def finished(record: api.EpisodeRecord) -> None:
        record.metrics.update(latency_metrics(record, policy, envs))
        on_episode(record)

    return make, finished
