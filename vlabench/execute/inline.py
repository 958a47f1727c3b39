"""The ``inline`` executor: jobs one after the other in this process (no isolation).

An armed robot runs here: its confirmation at the terminal is asked in this process."""

from __future__ import annotations

from collections.abc import Sequence

from vlabench.catalog import Catalog
from vlabench.execute.executor import JobEvents
from vlabench.execute.local import JobWorker
from vlabench.execute.settings import ExecutionSettings
from vlabench.plan.jobs import Job


class InlineExecutor:
    """Runs jobs one after the other in this process (no isolation: a segfault ends it all)."""

    name = "inline"
    parallelism = 1

    def __init__(
        self, catalog: Catalog, batch_size: int = 1, settings: ExecutionSettings | None = None
    ) -> None:
        self.worker = JobWorker(catalog, batch_size, settings)

    def run(self, jobs: Sequence[Job], events: JobEvents) -> None:
        for job in jobs:
            events.job_started(job)
            try:
                self.worker.run(
                    job.config, job.indices, lambda r, job=job: events.episode_finished(job, r)
                )
            except Exception as exc:
                events.job_finished(job, f"{type(exc).__name__}: {exc}")
                continue
            events.job_finished(job, None)
