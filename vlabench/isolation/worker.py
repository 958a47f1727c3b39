"""A worker process that hosts one env or policy and answers wire-protocol calls.

Started by the runner (``vlabench/isolation/proxies.py``) in any interpreter, usually another venv::

    /opt/simpler/bin/python /path/to/vlabench/isolation/worker.py --kind env --factory my_sim:make

It needs only numpy, msgpack and the hosted stack: run as a file, it loads its sibling
``wire.py`` directly instead of importing the ``vlabench`` package (which needs pluggy,
pydantic, ...). The target is either a factory ``module:attr`` (env: ``make(task, options)``;
policy: ``load(request)``) or, where vlabench itself is installed in that interpreter, a spec
from its plugin catalog (``--spec NAME``).

Messages are length-framed on stdin/stdout (the real stdout is kept private; anything the
hosted code prints goes to stderr) or on a Unix socket (``--socket PATH``, the runner listens).
The host classes here are also what ``vlabench serve`` runs behind its WebSocket.

Started by a runner (``--parent-pid PID``), a worker never outlives it, even hung in a call
(:func:`exit_with_parent`), and leaves Ctrl-C and hangups to it.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Mapping
from typing import Any

if __package__ in (None, ""):  # run as a file: don't let vlabench/*.py shadow top-level names
    _HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
    _spec = importlib.util.spec_from_file_location("_vlabench_wire", os.path.join(_HERE, "wire.py"))
    assert _spec is not None and _spec.loader is not None
    wire = importlib.util.module_from_spec(_spec)
    sys.modules["_vlabench_wire"] = wire
    _spec.loader.exec_module(wire)
else:
    from vlabench.isolation import wire


PR_SET_PDEATHSIG = 1


def exit_with_parent(parent_pid: int, *, pdeathsig: bool = True, every_s: float = 0.5) -> None:
    """End this process when its parent ``parent_pid`` ends, however it ends (kill -9 too).

    On Linux the kernel sends SIGKILL when the thread that started this process exits
    (``prctl(PR_SET_PDEATHSIG)``; only with ``pdeathsig``: a parent that starts workers from
    a short-lived thread must not ask for it). Everywhere, a daemon thread checks every
    ``every_s`` seconds that the parent is still this process's parent; if not (it died and
    this process was re-parented), the process exits at once. Stdlib only: any interpreter.
    """
    if pdeathsig and sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # it died before the watch began
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(every_s)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="vlabench-parent-watch", daemon=True).start()


def resolve_factory(target: str) -> Callable[..., Any]:
    """``module:attr`` (attr may be dotted) -> the object."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"factory must look like 'module:attr', got {target!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"factory {target!r} is a {type(obj).__name__}, not callable")
    return obj


def plain(obj: Any) -> Any:
    """Dataclasses and simple objects (interfaces, features) as plain wire data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, types.SimpleNamespace):
        return {k: plain(v) for k, v in vars(obj).items()}
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


def _namespace(data: Any) -> Any:
    if isinstance(data, dict):
        return types.SimpleNamespace(**{k: _namespace(v) for k, v in data.items()})
    if isinstance(data, list):
        return tuple(_namespace(v) for v in data)
    return data


def request_from_wire(data: Mapping[str, Any]) -> Any:
    """A PolicyRequest from wire data (vlabench.api's when importable, else a namespace)."""
    try:
        from vlabench.isolation.decode import policy_request_from
    except ImportError:  # a bare interpreter: numpy, msgpack and the hosted stack only
        return _namespace(dict(data))
    return policy_request_from(data)


def _step_result(out: Any) -> list[Any]:
    obs, reward, terminated, truncated, info = out
    return [obs, float(reward), bool(terminated), bool(truncated), dict(info)]


class EnvHost:
    """One env session: ``make`` once, then ``reset``/``step``/``close``.

    ``spec`` (optional) answers ``describe`` with the env's metadata for remote clients.
    """

    kind = "env"

    def __init__(self, make: Callable[[str, Mapping[str, Any]], Any], spec: Any = None) -> None:
        self._make = make
        self._spec = spec
        self.env: Any = None

    def handle(self, op: str, args: Any) -> Any:
        args = args or {}
        if op == "make":
            self.close()
            self.env = self._make(args["task"], args.get("options") or {})
            return None
        if op == "describe":
            if self._spec is None:
                raise ValueError("this env host has no spec to describe")
            options = args.get("options") or {}
            return {
                "name": self._spec.name,
                "description": self._spec.description,
                "max_episode_steps": self._spec.max_episode_steps,
                "success": self._spec.success,
                "tasks": plain(list(self._spec.tasks(options))),
                "interface": plain(self._spec.interface(options)),
            }
        if op == "close":
            self.close()
            return None
        if self.env is None:
            raise RuntimeError(f"'{op}' before 'make': no env is built in this session")
        if op == "reset":
            obs, info = self.env.reset(seed=args.get("seed"), options=args.get("options") or {})
            return [obs, dict(info)]
        if op == "step":
            return _step_result(self.env.step(args["action"]))
        if op == "render":
            return self.env.render()
        raise ValueError(
            f"unknown env op {op!r} (ops: make, describe, reset, step, render, close)"
        )

    def close(self) -> None:
        env, self.env = self.env, None
        if env is not None:
            env.close()


class PolicyHost:
    """One loaded policy: ``load`` (or ``describe``), then ``reset`` and action calls."""

    kind = "policy"

    def __init__(self, load: Callable[[Any], Any], describe: Callable[[Any], Any] | None = None):
        self._load = load
        self._describe = describe
        self.policy: Any = None

    def handle(self, op: str, args: Any) -> Any:
        if op == "load":
            self.policy = self._load(request_from_wire(args))
            return plain(self.policy.interface)
        if op == "describe":
            if self._describe is None:
                raise ValueError("this policy host has no describe function")
            return plain(self._describe(request_from_wire(args)))
        if self.policy is None:
            raise RuntimeError(f"'{op}' before 'load': no policy is loaded in this worker")
        if op == "reset":
            self.policy.reset()
            return None
        if op in ("select_action", "predict_action_chunk"):
            fn = getattr(self.policy, op, None)
            if fn is None:
                raise ValueError(f"the hosted policy has no {op}")
            import numpy as np

            return np.asarray(fn(args), dtype=np.float32)
        raise ValueError(
            f"unknown policy op {op!r} (ops: load, describe, reset, select_action, "
            "predict_action_chunk)"
        )

    def close(self) -> None:
        self.policy = None


def hello(kind: str) -> dict[str, Any]:
    import numpy as np

    return {
        "protocol": wire.PROTOCOL_VERSION,
        "kind": kind,
        "pid": os.getpid(),
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "numpy": np.__version__,
    }


def answer(host: Any, data: bytes, max_bytes: int = wire.MAX_MESSAGE_BYTES) -> bytes:
    """Decode one request, run it on ``host``, and encode the reply (errors included)."""
    msg_id = None
    try:
        msg = wire.unpack(data, max_bytes)
        if isinstance(msg, dict):
            msg_id = msg.get("id")
        msg_id, op, args = wire.check_request(msg, f"{host.kind} worker")
        start = time.perf_counter()
        result = hello(host.kind) if op == "hello" else host.handle(op, args)
        ms = 1000 * (time.perf_counter() - start)
        return wire.pack(wire.reply(msg_id, result, ms), max_bytes)
    except Exception as exc:
        return wire.pack(wire.error_reply(msg_id, exc))


def serve_stream(host: Any, reader: Any, writer: Any) -> None:
    """Answer framed requests until the other side closes the stream."""
    while True:
        try:
            data = wire.read_frame(reader)
        except wire.PeerGone:
            return
        except wire.WireError as exc:  # an oversized frame cannot be skipped: say so and stop
            wire.write_frame(writer, wire.pack(wire.error_reply(None, exc)))
            return
        wire.write_frame(writer, answer(host, data))


def build_host(
    kind: str, factory: str | None, spec: str | None, describe: str | None = None
) -> Any:
    if (factory is None) == (spec is None):
        raise SystemExit("worker: give exactly one of --factory module:attr or --spec NAME")
    if kind == "env":
        if factory:
            return EnvHost(resolve_factory(factory))
        from vlabench.catalog import catalog

        env_spec = catalog().envs[spec]
        return EnvHost(env_spec.make, env_spec)
    if factory:
        return PolicyHost(resolve_factory(factory), resolve_factory(describe) if describe else None)
    from vlabench.catalog import catalog

    policy_spec = catalog().policies[spec]
    return PolicyHost(policy_spec.load, policy_spec.describe)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="vlabench wire-protocol worker")
    parser.add_argument("--kind", choices=("env", "policy"), required=True)
    parser.add_argument("--factory", help="module:attr building the env / loading the policy")
    parser.add_argument("--spec", help="name of an env/policy in this interpreter's vlabench")
    parser.add_argument("--describe", help="policy: module:attr describing it (with --factory)")
    parser.add_argument("--socket", help="Unix socket the runner listens on (default: stdio)")
    parser.add_argument("--parent-pid", type=int, help="exit when this process (the runner) does")
    parser.add_argument("--pdeathsig", action="store_true",
                        help="with --parent-pid: also ask Linux for SIGKILL when it dies")
    args = parser.parse_args(argv)
    if args.parent_pid:
        for sig in (signal.SIGINT, signal.SIGHUP):  # the runner decides what they mean
            signal.signal(sig, signal.SIG_IGN)
        exit_with_parent(args.parent_pid, pdeathsig=args.pdeathsig)
    if args.socket:
        import socket

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(args.socket)
        reader, writer = sock.makefile("rb"), sock.makefile("wb")
    else:
        # Keep the protocol stream private: fd 1 (print, C libraries) goes to stderr.
        reader = os.fdopen(os.dup(0), "rb", buffering=0)
        writer = os.fdopen(os.dup(1), "wb")
        os.dup2(2, 1)
        sys.stdout = sys.stderr
    host = build_host(args.kind, args.factory, args.spec, args.describe)
    try:
        serve_stream(host, reader, writer)
    finally:
        try:
            host.close()
        except Exception as exc:
            print(f"worker: close failed: {type(exc).__name__}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    main()
