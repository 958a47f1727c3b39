"""Helpers shared by the benchmark scripts: alternating timed sides, medians, the machine.

The scripts import it as ``common`` (they put their own folder on ``sys.path``), so each runs
both as ``python benchmarks/x.py`` and from ``benchmarks/report.py``.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

Side = Callable[[], int]
"""Runs one side's work once and returns a count that must match the other sides' (steps)."""


def alternate(
    sides: Mapping[str, Side], repeats: int, warm: bool = True, same_counts: bool = True
) -> dict[str, Any]:
    """Run every side ``repeats`` times, round robin, in this process; medians and counts.

    Round robin (a, b, a, b, ...) spreads slow drifts of a shared machine over both sides.
    Returns ``{"seconds": {side: median}, "fastest": {side: min}, "counts": {side: count},
    "runs": {side: [..]}}`` and (``same_counts``) raises if two sides did a different amount
    of work. The fastest run is the least disturbed one: on a noisy machine its ratio
    resolves a small overhead that the medians' spread hides.
    """
    if warm:
        for fn in sides.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in sides}
    counts: dict[str, int] = {}
    for _ in range(repeats):
        for name, fn in sides.items():
            start = time.perf_counter()
            counts[name] = fn()
            times[name].append(time.perf_counter() - start)
    if same_counts and len(set(counts.values())) > 1:
        raise AssertionError(f"the sides did different work: {counts}")
    return {
        "seconds": {name: statistics.median(t) for name, t in times.items()},
        "fastest": {name: min(t) for name, t in times.items()},
        "counts": counts,
        "runs": times,
    }


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls (one untimed warm-up first)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_jitter(repeats: int = 20) -> dict[str, float]:
    """Milliseconds of one fixed pure-Python loop, ``repeats`` times: min, median, max.

    A wide spread says the machine's speed drifts (shared host, frequency scaling): ratios
    of whole runs then need many round-robin repeats, or work interleaved finer than a run.
    """
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        total = 0
        for i in range(200_000):
            total += i * i % 7
        times.append(1000 * (time.perf_counter() - start))
    return {"min": min(times), "median": statistics.median(times), "max": max(times)}


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, torch threads and the versions the numbers depend on."""
    from importlib.metadata import PackageNotFoundError, version

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    mem_gb = None
    try:
        with open("/proc/meminfo") as f:
            mem_gb = int(next(line.split()[1] for line in f if line.startswith("MemTotal"))) / 2**20
    except (OSError, StopIteration):
        pass
    versions = {}
    for dist in ("vlabench", "torch", "lerobot", "mujoco", "metaworld", "gym-pusht", "gymnasium",
                 "numpy", "sqlalchemy"):  # fmt: skip
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = None
    import torch

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": None if mem_gb is None else round(mem_gb, 1),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "torch_threads": torch.get_num_threads(),
        "versions": versions,
    }
