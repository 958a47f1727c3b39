"""The ``ray`` executor: the matrix's jobs on Ray actors, on this machine or on a cluster.

Ray is imported only here, and only when the executor runs (``pip install vlabench[ray]``).
Each actor is a long-lived worker (one CPU, plus one GPU when the job's policy device is
``cuda``) that loads the plugins once and keeps its loaded policies for later jobs. A job is a
streaming actor call: every finished episode is yielded at once and stored by the driver, the
store's single writer (workers never need the store's URL or network access to it). An actor
that dies takes only its job (:func:`~vlabench.execute.executor.after_crash`, with Ray's error
as the cause and the episodes it was running as the suspects). An actor watches its own
:class:`~vlabench.runtime.deadlines.CallClock` from the thread that streams its episodes: a
slow call is reported, and a call past its deadline ends the stream with ``timeout``; the
driver then kills the actor, stores the call's episodes as failed and retries the rest.

Every node needs vlabench and the plugins the matrix uses installed (same versions). An actor
gets everything besides its jobs (plugins, batch size, the execution settings) as its
:class:`~vlabench.execute.executor.WorkerSetup`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from vlabench.api import EpisodeRecord
from vlabench.execute.executor import (
    Crash,
    JobEvents,
    PendingJob,
    WorkerSetup,
    after_crash,
    cpu_count,
)
from vlabench.plan.configs import RunConfig
from vlabench.plan.jobs import Job
from vlabench.runtime.deadlines import Call, CallClock, timed_out

POLL_S = 0.2
"""The longest an actor waits between two readings of its clock."""

_DONE = object()


class RayWorker:
    """The actor: runs jobs in its process and yields ``("started", index)``,
    ``("episode", record)`` and ``("slow", text)``, then ``("done", error_or_None)`` per job, or
    ``("timeout", call)`` when a call passed its deadline (the job's thread is left hung: the
    driver kills the actor)."""

    def __init__(self, setup: WorkerSetup) -> None:
        self.clock = CallClock()
        self.worker = setup.job_worker(self.clock)

    def ping(self) -> bool:
        return True

    def run(self, config: RunConfig, indices: Sequence[int]) -> Iterator[tuple[str, Any]]:
        """Run the job in a thread (the rollout reports by callback) and stream its episodes."""
        items: queue.Queue[Any] = queue.Queue()

        def target() -> None:
            try:
                self.worker.run(config, indices, items.put, lambda i: items.put(("started", i)))
            except Exception as exc:
                items.put(("done", f"{type(exc).__name__}: {exc}"))
            else:
                items.put(("done", None))

        thread = threading.Thread(target=target, name="vlabench-job", daemon=True)
        thread.start()
        reported = -1
        while True:
            call, now = self.clock.read(), time.monotonic()
            if call is not None and now >= call.deadline:
                yield ("timeout", call)
                return
            if call is not None and call.seq != reported and now >= call.slow_at():
                reported = call.seq
                yield ("slow", f"slow: {call.describe(now)}")
            try:
                item = items.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if isinstance(item, EpisodeRecord):
                yield ("episode", item)
                continue
            if item[0] == "started":
                yield item
                continue
            thread.join()
            yield item
            return


@dataclass(eq=False)
class _Actor:
    handle: Any
    gpu: bool
    task: PendingJob | None = None
    stream: Any = None
    policy_key: str | None = None
    received: set[int] = field(default_factory=set)
    started: dict[int, float] = field(default_factory=dict)


class RayExecutor:
    """Runs jobs on Ray actors (see the module docstring).

    ``address``: ``None`` starts a private local Ray for this matrix; ``auto`` or
    ``ray://host:10001`` joins a running cluster (an already initialised Ray is reused).
    ``workers``: CPU actors at most (default: the cluster's CPUs).
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        *,
        retries: int = 2,
        setup: WorkerSetup | None = None,
    ) -> None:
        self.address = address
        self.workers = workers
        self.parallelism = max(1, workers or cpu_count())
        self.retries = max(0, retries)
        self.setup = setup or WorkerSetup()
        """What every worker gets: the plugin view, batch size and execution settings."""

    def _connect(self) -> bool:
        """Initialise Ray unless it is; True when this executor started it."""
        import ray

        if ray.is_initialized():
            return False
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
        if self.address:
            ray.init(address=self.address, **options)
        else:
            ray.init(num_cpus=self.parallelism, **options)
        return True

    def run(self, jobs: Sequence[Job], events: JobEvents) -> None:
        import ray

        own = self._connect()
        resources = ray.cluster_resources()
        cpu_slots = max(1, self.workers or int(resources.get("CPU", 1)))
        gpu_slots = int(resources.get("GPU", 0))
        actor_class = ray.remote(RayWorker)
        queue_: deque[PendingJob] = deque(PendingJob(job, list(job.indices)) for job in jobs)
        actors: list[_Actor] = []
        try:
            while queue_ or any(a.task for a in actors):
                self._dispatch(queue_, actors, actor_class, cpu_slots, gpu_slots, events)
                busy = {a.stream: a for a in actors if a.task is not None}
                if not busy:
                    continue
                ready, _ = ray.wait(list(busy), num_returns=1, timeout=1.0)
                for stream in ready:
                    self._receive(busy[stream], actors, queue_, events)
        finally:
            for actor in actors:
                ray.kill(actor.handle, no_restart=True)
            if own:
                ray.shutdown()

    def _dispatch(
        self,
        queue_: deque[PendingJob],
        actors: list[_Actor],
        actor_class: Any,
        cpu_slots: int,
        gpu_slots: int,
        events: JobEvents,
    ) -> None:
        for task in list(queue_):
            gpu = task.job.wants_gpu
            if gpu and gpu_slots == 0:
                queue_.remove(task)
                events.job_finished(
                    task.job,
                    f"policy device {task.job.config.policy.device!r} needs a GPU, and the "
                    "Ray cluster has none",
                )
                continue
            idle = [a for a in actors if a.task is None and a.gpu == gpu]
            actor = next((a for a in idle if a.policy_key == task.job.policy_key), None)
            actor = actor or (idle[0] if idle else None)
            if actor is None and sum(a.gpu == gpu for a in actors) < (
                gpu_slots if gpu else cpu_slots
            ):
                options = {"num_cpus": 1, "num_gpus": 1 if gpu else 0, "max_restarts": 0}
                actor = _Actor(actor_class.options(**options).remote(self.setup), gpu)
                actors.append(actor)
            if actor is None:
                continue
            queue_.remove(task)
            if not task.started:
                task.started = True
                events.job_started(task.job)
            actor.task, actor.received, actor.started = task, set(), {}
            actor.policy_key = task.job.policy_key
            actor.stream = actor.handle.run.options(num_returns="streaming").remote(
                task.job.config, tuple(task.left)
            )

    def _receive(
        self, actor: _Actor, actors: list[_Actor], queue_: deque[PendingJob], events: JobEvents
    ) -> None:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        task = actor.task
        assert task is not None
        try:
            kind, payload = ray.get(next(actor.stream))
        except StopIteration:
            kind, payload = "done", None
        except RayTaskError as exc:  # not expected: the actor catches the job's errors
            kind, payload = "done", f"{type(exc).__name__}: {exc}"
        except (RayActorError, ray.exceptions.WorkerCrashedError) as exc:
            cause = f"Ray actor died ({str(exc).strip().splitlines()[0]})"
            self._lost(actor, actors, queue_, events, cause)
            return
        if kind == "started":
            actor.started[int(payload)] = time.monotonic()
            events.episode_started(task.job, int(payload))
            return
        if kind == "slow":
            events.job_note(task.job, str(payload))
            return
        if kind == "timeout":
            cause = timed_out(payload.kind, payload.timeout_s or 0.0)
            events.job_note(task.job, f"{cause}: its Ray actor killed")
            self._lost(actor, actors, queue_, events, cause, payload)
            return
        if kind == "episode":
            actor.received.add(int(payload.episode_index))
            events.episode_finished(task.job, payload)
            return
        actor.task, actor.stream = None, None
        events.job_finished(task.job, payload)

    def _lost(
        self,
        actor: _Actor,
        actors: list[_Actor],
        queue_: deque[PendingJob],
        events: JobEvents,
        cause: str,
        call: Call | None = None,
    ) -> None:
        """An actor that died, or whose call passed its deadline: killed, and its task to
        :func:`after_crash` (a timed-out call's episodes fail, a death charges those running)."""
        import ray

        task = actor.task
        assert task is not None
        actors.remove(actor)
        ray.kill(actor.handle, no_restart=True)
        running = [i for i in actor.started if i not in actor.received]
        crash = Crash(
            cause,
            tuple(i for i in call.episodes if i in running) if call is not None else tuple(running),
            timed_out=call is not None,
            steps=dict(call.entries) if call is not None else {},
            started=dict(actor.started),
            deadline=call.deadline if call is not None else None,
        )
        after_crash(task, actor.received, crash, self.retries, queue_, events)
