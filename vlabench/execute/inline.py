"""The ``inline`` executor: jobs one after the other in this process (no isolation).

An armed robot runs here: its confirmation at the terminal is asked in this process.

Deadlines: in the main thread every call is bounded by ``SIGALRM``
(:func:`~vlabench.runtime.deadlines.alarms`): a call past its deadline raises
:class:`~vlabench.runtime.deadlines.CallTimeout` where it is, and its episodes fail with
``timed out after N s in ...`` (a call hung in C code is not interrupted; the processes
executor bounds that too). A policy or env that ends this process (``os._exit``, a segfault)
ends the command: the runner journals the episodes in flight (``in_process``) and the next
command stores them as failed (:mod:`vlabench.execute.owner`).
"""

from __future__ import annotations

from collections.abc import Sequence

from vlabench.catalog import Catalog
from vlabench.execute.executor import JobEvents
from vlabench.execute.local import JobWorker
from vlabench.execute.settings import ExecutionSettings
from vlabench.plan.jobs import Job
from vlabench.runtime.deadlines import CallClock, CallTimeout, alarms


class InlineExecutor:
    """Runs jobs one after the other in this process (no isolation: a segfault ends it all)."""

    name = "inline"
    parallelism = 1
    in_process = True
    """Episodes run in the runner's process: the runner journals those in flight."""

    def __init__(
        self, catalog: Catalog, batch_size: int = 1, settings: ExecutionSettings | None = None
    ) -> None:
        self.clock = CallClock()
        self.worker = JobWorker(catalog, batch_size, settings, self.clock)

    def run(self, jobs: Sequence[Job], events: JobEvents) -> None:
        with alarms(self.clock):
            for job in jobs:
                events.job_started(job)
                try:
                    self.worker.run(
                        job.config,
                        job.indices,
                        lambda r, job=job: events.episode_finished(job, r),
                        lambda i, job=job: events.episode_started(job, i),
                    )
                except (Exception, CallTimeout) as exc:
                    reason = str(exc) if isinstance(exc, CallTimeout) else None
                    events.job_finished(job, reason or f"{type(exc).__name__}: {exc}")
                    continue
                events.job_finished(job, None)
