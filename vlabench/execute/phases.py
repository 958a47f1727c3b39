"""Start-up phases of this process (``vlabench -v``): what each step before the episodes cost.

Each phase is timed the first time it runs (plugins, registry, store, plan, policy load, env
build); later runs of the same phase (a second job's env) are left out, since start-up is
what a short run pays once. :func:`since_start` is the interpreter's own start-up and
imports: the time from the process's start to the call.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

_PHASES: dict[str, float] = {}


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Time the block as phase ``name`` (only its first run counts)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        _PHASES.setdefault(name, time.perf_counter() - start)


def record(name: str, seconds: float) -> None:
    """Record phase ``name`` as measured elsewhere (first record counts)."""
    _PHASES.setdefault(name, seconds)


def phases() -> list[tuple[str, float]]:
    """The phases measured so far, in the order they first ended."""
    return list(_PHASES.items())


def since_start() -> float | None:
    """Seconds since this process started (Linux ``/proc``), or None where unknown."""
    try:
        with open("/proc/self/stat") as f:
            started_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime - started_ticks / os.sysconf("SC_CLK_TCK"))
