"""Real Ray nodes on this machine for the cluster tests and benchmarks: ``ray start`` processes.

A :class:`RayNode` is one ``ray start --block`` in its own process group (its raylet, GCS on
the head, agents, and the workers the raylet spawns), with its own temp dir and free ports, so
that two worker nodes live side by side on one host and each can be killed alone:
:meth:`RayNode.kill` sends SIGKILL to the process group and to every descendant recorded
from ``/proc`` (only processes this module started, never by name). :class:`RayCluster` is a
head and named worker nodes, each worker offering a custom resource of its own name.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = Path(sys.executable).parent / "ray"
START_TIMEOUT_S = 90.0


def ray_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this environment) for a node or a driver of these clusters: token
    authentication off on every side (Ray turns it on for a head when ``~/.ray/auth_token``
    exists, which a local ``ray.init()`` writes, but not for a joining node)."""
    env = {k: v for k, v in (base or os.environ).items() if k != "RAY_ADDRESS"}
    env["RAY_AUTH_MODE"] = "disabled"
    return env


_GIVEN: set[int] = set()


def free_port() -> int:
    """A port free now, and never given before by this process (two components of one node
    must not get the same one)."""
    while True:
        with socket.socket() as s:
            s.bind(("", 0))
            port = int(s.getsockname()[1])
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@dataclass
class RayNode:
    """One ``ray start --block`` process (see the module docstring)."""

    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    """Over this environment for the node (PYTHONPATH of test plugins, ...)."""
    temp_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vlb-ray-")))
    proc: subprocess.Popen | None = None
    pids: set[int] = field(default_factory=set)

    def start(self) -> RayNode:
        log = open(self.temp_dir / "start.log", "w")  # noqa: SIM115 (kept by the process)
        self.proc = subprocess.Popen(
            [
                str(RAY),
                "start",
                "--block",
                "--disable-usage-stats",
                "--temp-dir",
                str(self.temp_dir),
                *self.args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the whole node
            env=ray_env({**os.environ, **self.env}),
        )
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        path = self.temp_dir / "start.log"
        return path.read_text()[-3000:] if path.is_file() else ""

    def wait(self) -> RayNode:
        """Until ``ray start`` says the node runs; RuntimeError with its log otherwise."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if "Ray runtime started" in self.log():
                time.sleep(0.5)  # its raylet's workers are spawned below it from now on
                self.record()
                return self
            if not self.alive:
                raise RuntimeError(f"ray node {self.name} exited:\n{self.log()}")
            time.sleep(0.3)
        raise RuntimeError(f"ray node {self.name} not up in {START_TIMEOUT_S:.0f} s:\n{self.log()}")

    def record(self) -> set[int]:
        """The node's processes now (kept for :meth:`kill`)."""
        if self.proc is not None:
            self.pids |= {self.proc.pid} | descendants(self.proc.pid)
        return self.pids

    def kill(self) -> None:
        """SIGKILL the node: its process group and every process recorded below it."""
        if self.proc is None:
            return
        self.record()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


class RayCluster:
    """A head node (by default no CPUs: the driver's node) and worker nodes, each with
    ``cpus`` CPUs and a custom resource named after it; ``address`` is the head's GCS
    address."""

    def __init__(
        self,
        workers: tuple[str, ...] = ("node_a", "node_b"),
        cpus: int = 1,
        system_config: dict | None = None,
        env: dict[str, str] | None = None,
        head_cpus: int = 0,
    ) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.system_config = system_config or {}
        self.env = env or {}
        self.head_cpus = head_cpus
        self.head: RayNode | None = None
        self.workers: dict[str, RayNode] = {}
        self.worker_names, self.cpus = workers, cpus

    def _ports(self) -> list[str]:
        return [
            "--dashboard-agent-listen-port",
            str(free_port()),
            "--metrics-export-port",
            str(free_port()),
        ]

    def start_head(self) -> RayNode:
        args = [
            "--head",
            "--port",
            str(self.port),
            "--num-cpus",
            str(self.head_cpus),
            "--include-dashboard",
            "false",
            "--dashboard-port",
            str(free_port()),
            "--ray-client-server-port",
            str(free_port()),
            *self._ports(),
        ]
        if self.system_config:
            args += ["--system-config", json.dumps(self.system_config)]
        self.head = RayNode("head", args, self.env).start()
        return self.head

    def start_worker(self, name: str, cpus: int | None = None) -> RayNode:
        args = [
            "--address",
            self.address,
            "--num-cpus",
            str(cpus or self.cpus),
            "--resources",
            json.dumps({name: 1}),
            *self._ports(),
        ]
        self.workers[name] = RayNode(name, args, self.env).start()
        return self.workers[name]

    def start(self) -> RayCluster:
        """Head, then the workers; waits until every node is up (RuntimeError with the
        node's log when one is not within START_TIMEOUT_S)."""
        head = self.start_head().wait()
        found = re.search(r"ray start --address='([^']+)'", head.log())
        if found:  # the address the head listens on (its node IP, not necessarily 127.0.0.1)
            self.address = found[1]
        for name in self.worker_names:
            self.start_worker(name)
        for node in self.workers.values():
            node.wait()
        return self

    def stop(self) -> None:
        for node in [*self.workers.values(), self.head]:
            if node is not None:
                node.stop()
