"""The ``processes`` executor: jobs on local worker processes, each finished episode piped back.

It starts ``workers`` Python processes (``python -m vlabench.execute.processes FD``). Each
loads the plugins once, keeps every policy it loads and reuses it for later jobs of that policy
(the dispatcher prefers to give a worker jobs of the policy it already holds). A worker runs
one job at a time and sends each finished episode back through its pipe. A worker that dies
(segfault, OOM kill, ``exit``) takes only its job with it (:func:`~vlabench.execute.executor.
after_crash`). Workers ignore Ctrl-C; the parent stops them and leaves the store consistent.
Everything a worker needs besides its jobs (plugins, batch size, the execution settings) is
the :class:`~vlabench.execute.executor.WorkerSetup` sent first on its pipe.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

from vlabench.execute.executor import (
    THREAD_VARS,
    JobEvents,
    PendingJob,
    WorkerSetup,
    after_crash,
    cpu_count,
    describe_exit,
    visible_gpus,
)
from vlabench.plan.jobs import Job


def _worker_main(fd: int) -> None:
    """Worker loop: a :class:`WorkerSetup`, then ``(job_id, config, indices)`` messages; for each
    it sends every finished episode, then ``done`` with the job's error (or None)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked since the fork
    conn = Connection(fd)
    try:
        setup: WorkerSetup = conn.recv()
        worker = setup.job_worker()
        while True:
            message = conn.recv()
            if message is None:
                return
            job_id, config, indices = message
            try:
                worker.run(config, indices, lambda r, j=job_id: conn.send(("episode", j, r)))
            except Exception as exc:
                conn.send(("done", job_id, f"{type(exc).__name__}: {exc}"))
            else:
                conn.send(("done", job_id, None))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the parent went away


@dataclass(eq=False)
class _Handle:
    process: subprocess.Popen[bytes]
    conn: Connection
    slot: int
    task: PendingJob | None = None
    policy_key: str | None = None
    received: set[int] = field(default_factory=set)


class ProcessExecutor:
    """Runs jobs on ``workers`` local processes (see the module docstring)."""

    name = "processes"

    def __init__(
        self,
        workers: int | None = None,
        *,
        retries: int = 2,
        setup: WorkerSetup | None = None,
    ) -> None:
        self.parallelism = max(1, workers or cpu_count())
        self.retries = max(0, retries)
        self.setup = setup or WorkerSetup()
        """What every worker gets: the plugin view, batch size and execution settings."""

    def _spawn(self, slot: int, gpus: list[str]) -> _Handle:
        """A fresh worker: ``python -m vlabench.execute.processes FD`` on one end of a socket pair.

        A plain subprocess (not ``multiprocessing``) so that nothing of the caller's
        ``__main__`` is re-imported, and thread and GPU settings are in its environment
        before torch or BLAS start.
        """
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        threads = str(max(1, cpu_count() // self.parallelism))
        for var in THREAD_VARS:
            env.setdefault(var, threads)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
        # SIGINT blocked while forking: the worker starts with it blocked (the mask survives
        # exec) and ignores it before unblocking; here a Ctrl-C waits for the unblock
        masked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "vlabench.execute.processes", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
            )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, masked)
            theirs.close()
        conn = Connection(ours.detach())
        conn.send(self.setup)
        return _Handle(process, conn, slot)

    def run(self, jobs: Sequence[Job], events: JobEvents) -> None:
        queue: deque[PendingJob] = deque(PendingJob(job, list(job.indices)) for job in jobs)
        gpus = visible_gpus() if any(job.wants_gpu for job in jobs) else []
        handles: list[_Handle] = []
        try:
            for slot in range(min(self.parallelism, len(queue))):
                handles.append(self._spawn(slot, gpus))
            while queue or any(h.task for h in handles):
                for handle in handles:
                    if handle.task is None and queue:
                        self._dispatch(handle, _pick(queue, handle.policy_key), events)
                self._pump(handles, queue, events, gpus)
        finally:
            _stop(handles)

    def _dispatch(self, handle: _Handle, task: PendingJob, events: JobEvents) -> None:
        handle.task, handle.received = task, set()
        handle.policy_key = task.job.policy_key
        if not task.started:
            task.started = True
            events.job_started(task.job)
        # a dead worker fails the send: its sentinel reports it and the task is retried
        with contextlib.suppress(OSError):
            handle.conn.send((id(task), task.job.config, tuple(task.left)))

    def _pump(
        self, handles: list[_Handle], queue: deque[PendingJob], events: JobEvents, gpus: list[str]
    ) -> None:
        """Wait for messages, handle them; a worker whose pipe ends is dead: retry its task
        and start a replacement while work remains."""
        busy = {id(h.conn): h for h in handles if h.task is not None}
        dead: list[_Handle] = []
        for conn in wait([h.conn for h in busy.values()]):
            handle = busy[id(conn)]
            try:
                self._receive(handle, events)
            except (EOFError, OSError):
                dead.append(handle)
        for handle in dead:
            try:
                handle.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                handle.process.kill()
                handle.process.wait()
            if handle.task is not None:
                self._crashed(handle, queue, events)
            handles.remove(handle)
            handle.conn.close()
            if queue and len(handles) < self.parallelism:
                handles.append(self._spawn(handle.slot, gpus))

    def _receive(self, handle: _Handle, events: JobEvents) -> None:
        kind, _job_id, payload = handle.conn.recv()
        task = handle.task
        if task is None:
            return
        if kind == "episode":
            handle.received.add(int(payload.episode_index))
            events.episode_finished(task.job, payload)
        elif kind == "done":
            handle.task = None
            events.job_finished(task.job, payload)

    def _crashed(self, handle: _Handle, queue: deque[PendingJob], events: JobEvents) -> None:
        task = handle.task
        assert task is not None
        handle.task = None
        cause = f"worker process {describe_exit(handle.process.returncode)}"
        after_crash(task, handle.received, cause, self.retries, queue, events)


def _pick(queue: deque[PendingJob], policy_key: str | None) -> PendingJob:
    """The first queued task of the worker's loaded policy, else the first task."""
    for task in queue:
        if policy_key is not None and task.job.policy_key == policy_key:
            queue.remove(task)
            return task
    return queue.popleft()


def _stop(handles: list[_Handle]) -> None:
    """Ask idle workers to exit; kill busy ones (their unfinished episodes are not stored)."""
    for handle in handles:
        try:
            if handle.task is None:
                handle.conn.send(None)
            else:
                handle.process.kill()
        except OSError:
            pass
    for handle in handles:
        try:
            handle.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            handle.process.kill()
            handle.process.wait()
        handle.conn.close()


if __name__ == "__main__":  # a worker process (see ProcessExecutor._spawn)
    _worker_main(int(sys.argv[1]))
