"""Pick an executor by name: ``inline``, ``processes`` or ``ray``."""

from __future__ import annotations

from typing import Any

from vlabench.catalog import Catalog
from vlabench.execute.executor import WorkerSetup
from vlabench.execute.settings import ExecutionSettings

EXECUTORS = ("inline", "processes", "ray")


def make_executor(
    kind: str,
    catalog: Catalog,
    *,
    workers: int | None = None,
    retries: int = 2,
    batch_size: int = 1,
    address: str | None = None,
    allow: frozenset[str] | None = None,
    block: frozenset[str] = frozenset(),
    settings: ExecutionSettings | None = None,
) -> Any:
    """An executor by name: ``inline``, ``processes`` or ``ray``; every job it runs gets
    ``settings`` (videos, arming, torch threads; default: none of them)."""
    setup = WorkerSetup(allow, block, batch_size, settings or ExecutionSettings())
    if kind == "inline":
        from vlabench.execute.inline import InlineExecutor

        return InlineExecutor(catalog, batch_size, settings)
    if kind == "processes":
        from vlabench.execute.processes import ProcessExecutor

        return ProcessExecutor(workers, retries=retries, setup=setup)
    if kind == "ray":
        from vlabench.execute.ray_cluster import RayExecutor

        return RayExecutor(address=address, workers=workers, retries=retries, setup=setup)
    raise ValueError(f"unknown executor {kind!r}: expected one of {', '.join(EXECUTORS)}")
