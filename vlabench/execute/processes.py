"""The ``processes`` executor: jobs on local worker processes, each finished episode piped back.

It starts ``workers`` Python processes (``python -m vlabench.execute.processes FD CLOCK PID``).
Each loads the plugins once, keeps every policy it loads and reuses it for later jobs of that
policy (the dispatcher prefers to give a worker jobs of the policy it already holds). A worker
runs one job at a time and sends each episode's start and each finished episode back through
its pipe. A worker that dies (segfault, OOM kill, ``exit``) takes only its job with it
(:func:`~vlabench.execute.executor.after_crash`). Everything a worker needs besides its jobs
(plugins, batch size, the execution settings) is the
:class:`~vlabench.execute.executor.WorkerSetup` sent first on its pipe.

Deadlines: each worker brackets every policy and env call on a
:class:`~vlabench.runtime.deadlines.CallClock` in a small file mapped into both processes. The
parent reads the clocks while it waits: a call past half its timeout is reported as slow
(``JobEvents.job_note``); a call past its deadline gets its worker killed, the call's episodes
stored as failed (``timed out after N s in policy.predict``) and the rest of the job retried
on a fresh worker.

Policy services (``ExecutionSettings.policy_service``): each policy is loaded once, in its
own process (:mod:`~vlabench.execute.service`), and every job of it is sent with the
service's address; the workers call it there, batched with the other workers' calls. A
service that dies fails the calls it had in flight and is restarted while the parent waits.

Signals: workers ignore Ctrl-C and hangups (the parent decides what they mean: it stops them
and leaves the store consistent), and never outlive the parent, even after its kill -9
(:func:`~vlabench.isolation.worker.exit_with_parent`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import IO, TYPE_CHECKING, Any

from vlabench.execute.executor import (
    THREAD_VARS,
    Crash,
    JobEvents,
    PendingJob,
    WorkerSetup,
    after_crash,
    cpu_count,
    describe_exit,
    local_placement_error,
    visible_gpus,
)
from vlabench.plan.jobs import Job
from vlabench.runtime.deadlines import SIZE, Call, CallClock, timed_out

if TYPE_CHECKING:
    from vlabench.execute.service import PolicyServices

POLL_S = 0.2
"""The longest the parent waits between two readings of the workers' clocks."""


def _worker_main(fd: int, clock_fd: int, parent_pid: int) -> None:
    """Worker loop: a :class:`WorkerSetup` (answered ``ready``), then ``(job_id, config,
    indices, service)`` messages; for each it sends ``started`` and ``episode`` per episode,
    then ``done`` with the job's error (or None)."""
    from vlabench.isolation.worker import exit_with_parent

    for sig in (signal.SIGINT, signal.SIGHUP):  # the parent decides what they mean
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked since the fork
    exit_with_parent(parent_pid)
    conn = Connection(fd)
    clock = CallClock.shared(clock_fd)
    try:
        setup: WorkerSetup = conn.recv()
        worker = setup.job_worker(clock)
        conn.send(("ready", None, os.getpid()))
        while True:
            message = conn.recv()
            if message is None:
                return
            job_id, config, indices, service = message
            try:
                worker.run(
                    config,
                    indices,
                    lambda r, j=job_id: conn.send(("episode", j, r)),
                    lambda i, j=job_id: conn.send(("started", j, i)),
                    service,
                )
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
    clock: CallClock
    clock_file: IO[bytes]
    task: PendingJob | None = None
    policy_key: str | None = None
    received: set[int] = field(default_factory=set)
    started: dict[int, float] = field(default_factory=dict)
    """Episodes of the task it started: index -> ``time.monotonic()`` when told."""
    reported_slow: int = -1
    """The clock sequence number of the call last reported as slow."""

    def close(self) -> None:
        self.conn.close()
        self.clock.close()
        self.clock_file.close()


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
        self.services: PolicyServices | None = None
        """The policy services of the run in progress (``--policy-service``)."""
        self.service_stats: dict[str, dict[str, Any]] = {}
        """Each service's ``/health`` (calls, rows per call) at the end of the last run."""

    def _spawn(self, slot: int, gpus: list[str]) -> _Handle:
        """A fresh worker: ``python -m vlabench.execute.processes FD CLOCK PID`` on one end of
        a socket pair, with its call clock in a shared file.

        A plain subprocess (not ``multiprocessing``) so that nothing of the caller's
        ``__main__`` is re-imported, and thread and GPU settings are in its environment
        before torch or BLAS start.
        """
        ours, theirs = socket.socketpair()
        clock_file = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the worker)
        clock_file.truncate(SIZE)
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
                [
                    sys.executable,
                    "-m",
                    "vlabench.execute.processes",
                    str(theirs.fileno()),
                    str(clock_file.fileno()),
                    str(os.getpid()),
                ],
                pass_fds=(theirs.fileno(), clock_file.fileno()),
                env=env,
                stdin=subprocess.DEVNULL,
            )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, masked)
            theirs.close()
        conn = Connection(ours.detach())
        conn.send(self.setup)
        return _Handle(process, conn, slot, CallClock.shared(clock_file.fileno()), clock_file)

    def run(self, jobs: Sequence[Job], events: JobEvents) -> None:
        wants_gpus = any(job.wants_gpu or job.resources.get("num_gpus") for job in jobs)
        gpus = visible_gpus() if wants_gpus else []
        placeable = []
        for job in jobs:  # a preset's resources this machine can't honour fail at once
            error = local_placement_error(job, gpus)
            if error is None:
                placeable.append(job)
            else:
                events.job_started(job)
                events.job_finished(job, error)
        queue: deque[PendingJob] = deque(PendingJob(job, list(job.indices)) for job in placeable)
        handles: list[_Handle] = []
        if self.setup.settings.policy_service:
            from vlabench.execute.service import PolicyServices

            self.services = PolicyServices(self.setup, gpus, max_restarts=self.retries)
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
            if self.services is not None:
                self.service_stats = self.services.stats()
                self.services.stop()
                self.services = None

    def _dispatch(self, handle: _Handle, task: PendingJob, events: JobEvents) -> None:
        handle.task, handle.received, handle.started = task, set(), {}
        handle.policy_key = task.job.policy_key
        if not task.started:
            task.started = True
            events.job_started(task.job)
        config = task.job.config
        service = None if self.services is None else self.services.url(config.policy)
        # a dead worker fails the send: its sentinel reports it and the task is retried
        with contextlib.suppress(OSError):
            handle.conn.send((id(task), config, tuple(task.left), service))

    def _pump(
        self, handles: list[_Handle], queue: deque[PendingJob], events: JobEvents, gpus: list[str]
    ) -> None:
        """Wait for messages (at most until the next deadline), handle them; a worker whose
        pipe ends is dead, one past a deadline is killed: its task goes to
        :func:`after_crash`, and a replacement starts while work remains."""
        busy = {id(h.conn): h for h in handles if h.task is not None}
        if self.services is not None:
            self._check_services(list(busy.values()), events)
        expired, wait_s = self._watch(list(busy.values()), events)
        dead: list[_Handle] = list(expired)
        if not expired:
            for conn in wait([h.conn for h in busy.values()], timeout=wait_s):
                handle = busy[id(conn)]
                try:
                    self._receive(handle, events)
                except (EOFError, OSError):
                    dead.append(handle)
        for handle in dead:
            call = expired.get(handle)
            if call is None:
                call = handle.clock.read()  # the call it died in, if it died in one
            else:
                handle.process.kill()
            self._drain(handle, events)
            try:
                handle.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                handle.process.kill()
                handle.process.wait()
            if handle.task is not None:
                self._crashed(handle, queue, events, call, handle in expired)
            handles.remove(handle)
            handle.close()
            if queue and len(handles) < self.parallelism:
                handles.append(self._spawn(handle.slot, gpus))

    def _check_services(self, busy: list[_Handle], events: JobEvents) -> None:
        """Restart dead policy services; tell the jobs of each what happened."""
        from vlabench.execute.service import service_key

        assert self.services is not None
        for key, note in self.services.check():
            for handle in busy:
                if handle.task is not None and service_key(handle.task.job.config.policy) == key:
                    events.job_note(handle.task.job, note)

    def _watch(
        self, busy: list[_Handle], events: JobEvents
    ) -> tuple[dict[_Handle, Call], float]:
        """Read the busy workers' clocks: the calls past their deadline, and how long to wait
        before the next deadline (or slow report) is due. A call past half its timeout is
        reported once as slow."""
        now = time.monotonic()
        expired: dict[_Handle, Call] = {}
        wait_s = POLL_S
        for handle in busy:
            call = handle.clock.read()
            if call is None:
                continue
            if now >= call.deadline:
                expired[handle] = call
                continue
            wait_s = min(wait_s, call.deadline - now)
            if call.seq != handle.reported_slow:
                if now >= call.slow_at():
                    handle.reported_slow = call.seq
                    assert handle.task is not None
                    events.job_note(handle.task.job, f"slow: {call.describe(now)}")
                else:
                    wait_s = min(wait_s, call.slow_at() - now)
        return expired, max(0.0, wait_s)

    def _drain(self, handle: _Handle, events: JobEvents) -> None:
        """Handle what a dead (or killed) worker sent before it ended."""
        with contextlib.suppress(EOFError, OSError):
            while handle.conn.poll(1.0):
                self._receive(handle, events)

    def _receive(self, handle: _Handle, events: JobEvents) -> None:
        kind, _job_id, payload = handle.conn.recv()
        task = handle.task
        if task is None or kind == "ready":
            return
        if kind == "started":
            handle.started[int(payload)] = time.monotonic()
            events.episode_started(task.job, int(payload))
        elif kind == "episode":
            handle.received.add(int(payload.episode_index))
            events.episode_finished(task.job, payload)
        elif kind == "done":
            handle.task = None
            events.job_finished(task.job, payload)

    def _crashed(
        self,
        handle: _Handle,
        queue: deque[PendingJob],
        events: JobEvents,
        call: Call | None,
        expired: bool,
    ) -> None:
        """The task of a worker that died, or was killed at ``call``'s deadline: the
        episodes running in it are charged (those of the call, when it was in one)."""
        task = handle.task
        assert task is not None
        handle.task = None
        running = [i for i in handle.started if i not in handle.received]
        named = [i for i in call.episodes if i in running] if call is not None else []
        if expired and call is not None:
            cause = timed_out(call.kind, call.timeout_s or 0.0)
            suspects = named
        else:
            where = f" in {call.kind}" if call is not None else ""
            cause = f"worker process {describe_exit(handle.process.returncode)}{where}"
            suspects = named or running
        crash = Crash(
            cause,
            tuple(suspects),
            timed_out=expired,
            steps=dict(call.entries) if call is not None else {},
            started=dict(handle.started),
            deadline=call.deadline if expired and call is not None else None,
        )
        if expired:
            events.job_note(task.job, f"{cause}: its worker (pid {handle.process.pid}) killed")
        after_crash(task, handle.received, crash, self.retries, queue, events)


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
        handle.close()


if __name__ == "__main__":  # a worker process (see ProcessExecutor._spawn)
    _worker_main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
