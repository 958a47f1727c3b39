"""Shared policy services for the processes executor (``vlabench matrix --policy-service``).

Without a service every worker process loads every policy it runs: N workers hold N copies of
the model and each calls it with only its own few episodes. With one, each policy of the
matrix is loaded once, in its own process (``python -m vlabench.execute.service``), and the
workers' episodes reach it as remote calls: the wire protocol over a loopback WebSocket
(:class:`~vlabench.isolation.serve.Server` around a
:class:`~vlabench.isolation.serve.PolicyService`, whose requests waiting at the same time go
through one batched call: a short, bounded wait fills the batch, and the episodes of one
call are capped; both are a preset's ``max_batch`` / ``batch_wait_ms`` where it sets them,
else the run's ``service_max_batch`` / ``service_wait_ms``: :func:`batching`). The results do
not change: a policy gets the same rows, and the runner owns every episode's state.

The parent (:class:`PolicyServices`, held by the executor) makes each service's listening
socket and keeps it: a service that dies (segfault, OOM kill) fails only the calls in flight
(their episodes are stored as failed, like any policy error), and its replacement serves the
same address, so the workers' next calls reconnect and go on. A service that keeps dying is
given up after ``max_restarts``: its address closes, and the rest of its episodes fail at
once. GPU placement: the i-th service gets the i-th visible GPU (``CUDA_VISIBLE_DEVICES``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import signal
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from typing import Any

from vlabench.execute.executor import THREAD_VARS, WorkerSetup, cpu_count, describe_exit
from vlabench.plan.configs import PolicyChoice


def service_key(choice: PolicyChoice) -> str:
    """Jobs with equal keys share one service (one loaded model per env interface in it)."""
    return repr(choice)


@dataclass(eq=False)
class _Service:
    choice: PolicyChoice
    sock: socket.socket
    slot: int
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"ws://{host}:{port}"


class PolicyServices:
    """The policy services of one executor run: started on first use, restarted when they
    die, stopped at the end (see the module docstring)."""

    def __init__(self, setup: WorkerSetup, gpus: list[str], max_restarts: int = 2) -> None:
        self.setup = setup
        self.gpus = gpus
        self.max_restarts = max_restarts
        self._services: dict[str, _Service] = {}

    def url(self, choice: PolicyChoice) -> str:
        """The address of ``choice``'s service (started now if it is not running yet)."""
        key = service_key(choice)
        service = self._services.get(key)
        if service is None:
            sock = socket.create_server(("127.0.0.1", 0), backlog=256)
            service = _Service(choice, sock, len(self._services))
            self._services[key] = service
            self._start(service)
        return service.url

    def _start(self, service: _Service) -> None:
        env = dict(os.environ)
        for var in THREAD_VARS:  # the service does the model's work: all the CPUs
            env.setdefault(var, str(cpu_count()))
        if self.gpus:
            gpus = service_gpus(service.choice, service.slot, self.gpus)
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        fd = service.sock.fileno()
        masked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # as for workers
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "vlabench.execute.service", str(fd), str(os.getpid())],
                pass_fds=(fd,),
                env=env,
                stdin=subprocess.PIPE,
            )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, masked)
        settings = self.setup.settings
        assert process.stdin is not None
        limits = batching(service.choice, settings.service_max_batch, settings.service_wait_ms)
        with contextlib.suppress(OSError):
            process.stdin.write(pickle.dumps((self.setup, service.choice, *limits)))
            process.stdin.close()
        service.process = process
        service.starts += 1

    def check(self) -> list[tuple[str, str]]:
        """Restart every service that died: ``(service key, what happened)`` for each."""
        notes = []
        for key, service in self._services.items():
            process = service.process
            if process is None or process.poll() is None:
                continue
            cause = (
                f"policy service of {service.choice.name} (pid {process.pid}) "
                f"{describe_exit(process.returncode)}"
            )
            if service.starts > self.max_restarts:
                service.process = None
                service.sock.close()  # its clients' next calls fail at once
                notes.append((key, f"{cause}: given up after {service.starts} starts"))
            else:
                self._start(service)
                notes.append((key, f"{cause}: restarted (pid {service.process.pid})"))
        return notes

    def stats(self) -> dict[str, dict[str, Any]]:
        """Each live service's ``/health``: its calls, requests and rows per call."""
        found = {}
        for service in self._services.values():
            if service.process is None or service.process.poll() is not None:
                continue
            host, port = service.sock.getsockname()[:2]
            health = f"http://{host}:{port}/health"
            with (
                contextlib.suppress(OSError, ValueError),
                urllib.request.urlopen(health, timeout=5) as reply,
            ):
                found[service.choice.name] = json.loads(reply.read())
        return found

    def pids(self) -> list[int]:
        """The live services' process ids."""
        return [
            s.process.pid for s in self._services.values()
            if s.process is not None and s.process.poll() is None
        ]

    def stop(self) -> None:
        """End every service and close its address."""
        for service in self._services.values():
            if service.process is not None and service.process.poll() is None:
                service.process.terminate()
        for service in self._services.values():
            if service.process is not None:
                try:
                    service.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    service.process.kill()
                    service.process.wait()
            with contextlib.suppress(OSError):
                service.sock.close()
        self._services.clear()


def service_gpus(choice: PolicyChoice, slot: int, gpus: list[str]) -> list[str]:
    """The GPUs of the ``slot``-th service: its preset's ``num_gpus`` (at least one) visible
    GPUs, in turn from the ``slot``-th on."""
    count = min(len(gpus), max(1, math.ceil(choice.resources.get("num_gpus", 1))))
    start = slot * count
    return [gpus[(start + i) % len(gpus)] for i in range(count)]


def batching(choice: PolicyChoice, max_batch: int, wait_ms: float) -> tuple[int, float]:
    """A policy's service's largest call and batch wait: its preset's ``max_batch`` and
    ``batch_wait_ms`` where it sets them, else the run's (``service_max_batch``,
    ``service_wait_ms``)."""
    return (
        max_batch if choice.max_batch is None else choice.max_batch,
        wait_ms if choice.batch_wait_ms is None else choice.batch_wait_ms,
    )


def _service_main(sock_fd: int, parent_pid: int) -> None:
    """A service process: the setup and policy from stdin, then serve on the inherited socket
    until the parent ends it (or ends)."""
    from vlabench.isolation.worker import exit_with_parent

    for sig in (signal.SIGINT, signal.SIGHUP):  # the parent decides what they mean
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    exit_with_parent(parent_pid)
    setup, choice, max_batch, wait_ms = pickle.load(sys.stdin.buffer)
    from vlabench.catalog import catalog
    from vlabench.isolation.proxies import policy_spec_for
    from vlabench.isolation.serve import PolicyService, Server

    cat = catalog(setup.allow, setup.block)
    spec = policy_spec_for(choice, cat.policy(choice.type))
    service = PolicyService(
        spec, choice.checkpoint, choice.options, choice.device, wait_ms, choice.type,
        choice.name, max_batch=max_batch, threads=setup.settings.torch_threads,
    )
    Server(service, sock=socket.socket(fileno=sock_fd)).serve_forever()


if __name__ == "__main__":  # a service process (see PolicyServices._start)
    _service_main(int(sys.argv[1]), int(sys.argv[2]))
