"""What every executor shares: the protocol it follows, the job it tracks, one retry policy.

An executor runs :class:`~vlabench.plan.jobs.Job` s and reports every event to a
:class:`JobEvents` (the runner) in the caller's process, which stores each episode as it
arrives: workers never touch the store, so SQLite has one writer. Executors: ``inline``
(:mod:`~vlabench.execute.inline`), ``processes`` (:mod:`~vlabench.execute.processes`) and
``ray`` (:mod:`~vlabench.execute.ray_cluster`); :func:`~vlabench.execute.choose.make_executor`
picks one by name. What a job runs with besides its config (videos, arming, torch threads:
:class:`~vlabench.execute.settings.ExecutionSettings`) is given to the executor and reaches
every worker on its :class:`WorkerSetup`, never through environment variables.

A worker (process or actor) that dies takes only its job with it: the episodes already received
are kept, and :func:`after_crash` decides, the same way for every executor, whether the rest is
retried on a fresh worker or the job is failed with the cause.
"""

from __future__ import annotations

import os
import signal
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from vlabench import api
from vlabench.execute.settings import ExecutionSettings
from vlabench.plan.jobs import Job

if TYPE_CHECKING:
    from vlabench.execute.local import JobWorker

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cpu_count() -> int:
    """CPUs this process may use (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """GPU ids for ``CUDA_VISIBLE_DEVICES``: the inherited list, else the NVIDIA driver's count.

    Read without importing torch or CUDA (the parent must stay light and fork-safe).
    """
    inherited = os.environ.get("CUDA_VISIBLE_DEVICES")
    if inherited is not None:
        return [g.strip() for g in inherited.split(",") if g.strip() and g.strip() != "-1"]
    gpus = Path("/proc/driver/nvidia/gpus")
    return [str(i) for i in range(len(list(gpus.iterdir())))] if gpus.is_dir() else []


def describe_exit(exitcode: int | None) -> str:
    """``killed by SIGSEGV`` / ``exited with code 3`` for a dead worker."""
    if exitcode is None:
        return "stopped responding"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class JobEvents(Protocol):
    """What an executor reports back to the runner (in the runner's process)."""

    def job_started(self, job: Job) -> None: ...

    def episode_finished(self, job: Job, record: api.EpisodeRecord) -> None: ...

    def job_retried(self, job: Job, error: str) -> None: ...

    def job_finished(self, job: Job, error: str | None) -> None: ...


class Executor(Protocol):
    """Runs jobs and reports every event, from one process (the caller's), in order per job.

    ``parallelism`` is how many jobs run at once (it sizes the episode blocks).
    """

    name: str
    parallelism: int

    def run(self, jobs: Sequence[Job], events: JobEvents) -> None: ...


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker process or Ray actor needs besides its jobs (all picklable): the parent's
    plugin view and the execution settings (videos, arming, threads), sent explicitly."""

    allow: frozenset[str] | None = None
    block: frozenset[str] = frozenset()
    batch_size: int = 1
    settings: ExecutionSettings = field(default_factory=ExecutionSettings)

    def job_worker(self) -> JobWorker:
        """The worker's :class:`~vlabench.execute.local.JobWorker` (plugins loaded here)."""
        from vlabench.catalog import catalog
        from vlabench.execute.local import JobWorker

        return JobWorker(catalog(self.allow, self.block), self.batch_size, self.settings)


@dataclass
class PendingJob:
    """A job in flight or queued, with what is left of it and how often it crashed."""

    job: Job
    left: list[int]
    attempts: int = 0
    started: bool = False


def after_crash(
    task: PendingJob,
    received: Collection[int],
    cause: str,
    retries: int,
    queue: deque[PendingJob],
    events: JobEvents,
) -> None:
    """The one retry policy: a job whose worker died keeps the episodes it ``received``; the
    rest is queued again (first in line) until ``retries`` is spent, then the job fails."""
    task.left = [i for i in task.left if i not in received]
    task.attempts += 1
    error = (
        f"{cause} while running episodes {task.left[:1] + (['...'] if len(task.left) > 1 else [])}"
        f" (attempt {task.attempts} of {retries + 1})"
    )
    if not task.left:
        events.job_finished(task.job, None)
    elif task.attempts > retries:
        events.job_finished(task.job, error)
    else:
        events.job_retried(task.job, error)
        queue.appendleft(task)
