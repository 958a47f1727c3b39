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
are kept, and :func:`after_crash` decides, the same way for every executor, what becomes of the
rest. The episodes that were running when it died (those of the call in progress, when the
worker's :class:`~vlabench.runtime.deadlines.CallClock` says which) are charged with it: one
charged more than ``retries`` times is never finished, and the runner stores it as a failed
episode with the cause (:class:`Unfinished`), so it counts in n like any policy error; a call
past its timeout fails its episodes at once (it would hang again). The rest of the job is
retried on a fresh worker. A worker that dies with no episode running (loading the policy)
costs the job an attempt, and the job fails with the cause once ``retries`` is spent.
"""

from __future__ import annotations

import os
import signal
import time
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from vlabench import api
from vlabench.execute.settings import ExecutionSettings
from vlabench.plan.jobs import Job
from vlabench.runtime.deadlines import CallClock

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


LOCAL_RESOURCES = frozenset({"num_cpus", "num_gpus"})
"""The preset ``resources`` one machine can honour; any other name is a Ray node's resource."""


def local_placement_error(job: Job, gpus: Sequence[str]) -> str | None:
    """Why this machine cannot honour ``job``'s preset ``resources``, or None if it can."""
    custom = sorted(set(job.resources) - LOCAL_RESOURCES)
    if custom:
        names = ", ".join(custom)
        return f"resources {names} name Ray nodes: run this policy with --executor ray"
    wanted = job.resources.get("num_gpus", 0.0)
    if wanted > len(gpus):
        return f"the policy preset needs {wanted:g} GPU(s) and this machine shows {len(gpus)}"
    return None


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


@dataclass(frozen=True)
class Unfinished:
    """An episode that was attempted and never finished: its worker died or timed out in it
    (more than ``retries`` times). The runner stores it as a failed episode."""

    index: int
    reason: str
    steps: int = 0
    """The steps it had taken, where known (the step of the call that hung)."""
    wall_time_s: float = 0.0
    deadline: float | None = None
    """The ``time.monotonic()`` deadline it missed, when it timed out."""


@dataclass(frozen=True)
class Crash:
    """How a worker died or was stopped: the cause, and the episodes charged with it."""

    cause: str
    """``worker process was killed by SIGSEGV in policy.predict``, ``timed out after 30 s in
    env.step``."""
    suspects: tuple[int, ...] = ()
    """The episodes that were running (those of the call in progress, when known)."""
    timed_out: bool = False
    steps: Mapping[int, int] = field(default_factory=dict)
    started: Mapping[int, float] = field(default_factory=dict)
    """``time.monotonic()`` at which each suspect started (for its wall time)."""
    deadline: float | None = None


class JobEvents(Protocol):
    """What an executor reports back to the runner (in the runner's process)."""

    def job_started(self, job: Job) -> None: ...

    def episode_started(self, job: Job, index: int) -> None: ...

    def episode_finished(self, job: Job, record: api.EpisodeRecord) -> None: ...

    def episodes_unfinished(self, job: Job, episodes: Sequence[Unfinished]) -> None: ...

    def job_note(self, job: Job, text: str) -> None:
        """Something to say about a running job (a slow call, a worker replaced)."""

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

    def job_worker(self, clock: CallClock | None = None) -> JobWorker:
        """The worker's :class:`~vlabench.execute.local.JobWorker` (plugins loaded here),
        bracketing its calls on ``clock``."""
        from vlabench.catalog import catalog
        from vlabench.execute.local import JobWorker

        return JobWorker(catalog(self.allow, self.block), self.batch_size, self.settings, clock)


@dataclass
class PendingJob:
    """A job in flight or queued, with what is left of it and how often it crashed."""

    job: Job
    left: list[int]
    attempts: int = 0
    """Crashes with no episode running (each costs the job an attempt)."""
    started: bool = False
    charged: dict[int, int] = field(default_factory=dict)
    """Episode index -> crashes it was running in."""


def after_crash(
    task: PendingJob,
    received: Collection[int],
    crash: Crash | str,
    retries: int,
    queue: deque[PendingJob],
    events: JobEvents,
) -> None:
    """The one retry policy (see the module docstring): a job whose worker died keeps the
    episodes it ``received``; the episodes running in it are charged (a timed-out one fails at
    once, another once charged more than ``retries`` times) and reported as never finished;
    the rest is queued again (first in line). With no episode running, the job is retried
    until ``retries`` is spent, then failed with the cause."""
    if isinstance(crash, str):
        crash = Crash(crash)
    task.left = [i for i in task.left if i not in received]
    suspects = [i for i in dict.fromkeys(crash.suspects) if i in task.left]
    given_up: list[int] = []
    for index in suspects:
        task.charged[index] = task.charged.get(index, 0) + 1
        if crash.timed_out or task.charged[index] > retries:
            given_up.append(index)
    if not suspects:
        task.attempts += 1
    if given_up:
        now = time.monotonic()
        events.episodes_unfinished(
            task.job,
            [
                Unfinished(
                    index,
                    crash.cause if crash.timed_out else
                    f"{crash.cause} (attempt {task.charged[index]} of {retries + 1})",
                    crash.steps.get(index, 0),
                    max(0.0, now - crash.started[index]) if index in crash.started else 0.0,
                    crash.deadline,
                )
                for index in given_up
            ],
        )
        task.left = [i for i in task.left if i not in given_up]
    if suspects:
        shown = f"episode{'s' if len(suspects) > 1 else ''} {', '.join(map(str, suspects))}"
        attempt = max(task.charged[i] for i in suspects)
        what = (
            "stored as failed" if len(given_up) == len(suspects)
            else f"attempt {attempt} of {retries + 1}"
        )
        error = f"{crash.cause} while running {shown} ({what})"
    else:
        error = (
            f"{crash.cause} while running episodes "
            f"{task.left[:1] + (['...'] if len(task.left) > 1 else [])}"
            f" (attempt {task.attempts} of {retries + 1})"
        )
    if not task.left:
        events.job_finished(task.job, None)
    elif not suspects and task.attempts > retries:
        events.job_finished(task.job, error)
    else:
        events.job_retried(task.job, error)
        queue.appendleft(task)
