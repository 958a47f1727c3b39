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

Placement: an actor asks Ray for one CPU, one GPU when the policy's device is ``cuda``, and
the policy preset's ``resources`` (``{num_gpus: 1}``, a node's custom resource); it gets jobs
only once Ray has placed it, so a job never waits behind an actor that cannot start while
another could run it. A job that no alive node can place fails at once, naming what it needs
and what the nodes offer; one that no node placed within ``placement_wait_s`` (while no actor
of its kind runs) fails the same way, instead of waiting forever. A lost node takes its
actors' jobs (the retry policy above); they go to the surviving nodes.

The head is watched from the driver: when its GCS port refuses connections for
``HEAD_LOST_S``, the matrix stops like Ctrl-C with :class:`ClusterLost` (the runs become
``interrupted``, finished episodes are stored, and the command exits 2 with one line);
rerunning the command against a running cluster resumes it.

Every node needs vlabench and the plugins the matrix uses installed (same versions). An actor
gets everything besides its jobs (plugins, batch size, the execution settings) as its
:class:`~vlabench.execute.executor.WorkerSetup`.
"""

from __future__ import annotations

import _thread
import os
import queue
import socket
import sys
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
from vlabench.execute.runner import Terminated
from vlabench.plan.configs import RunConfig
from vlabench.plan.jobs import Job
from vlabench.runtime.deadlines import Call, CallClock, timed_out

POLL_S = 0.2
"""The longest an actor waits between two readings of its clock."""
HEAD_LOST_S = 5.0
"""How long the head's GCS port may refuse connections before the matrix stops."""
FORCE_EXIT_S = 20.0
"""After the head is lost, how long the driver's main thread has to stop before the process
exits anyway (its runs are then settled by the next command)."""
NODES_REFRESH_S = 2.0
"""How often the driver reads the alive nodes (placement checks, CPU count)."""
CONNECT_WAIT_S = 10.0
"""How long the driver tries a ``host:port`` head before it gives up."""
PLACEMENT_WAIT_S = 300.0
"""The longest a job waits for Ray to place its first actor of a kind."""

Need = tuple[tuple[str, float], ...]
"""What one actor asks Ray for: sorted ``(resource, amount)`` pairs, ``CPU`` and ``GPU``
included."""
_RAY_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU"}


class ClusterLost(Terminated):
    """The Ray cluster went away under the matrix (its head stopped answering, or it could not
    be reached): stops the matrix like Ctrl-C (runs ``interrupted``, finished episodes
    stored); ``fatal``: the command says why in one line and exits 2."""

    fatal = True

    def __init__(self, message: str) -> None:
        KeyboardInterrupt.__init__(self, message)
        self.signal = "cluster lost"
        self.exit_code = 2


def job_need(job: Job) -> Need:
    """The job's actor request: one CPU, a GPU for a ``cuda`` policy, the preset's resources
    (``num_cpus``/``num_gpus`` spelled as Ray's ``CPU``/``GPU``)."""
    need = {"CPU": 1.0, "GPU": 1.0 if job.wants_gpu else 0.0}
    for key, amount in job.resources.items():
        need[_RAY_NAMES.get(key, key)] = float(amount)
    return tuple(sorted((k, v) for k, v in need.items() if v > 0 or k == "CPU"))


def describe_need(need: Need) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in need) + "}"


def fits(need: Need, offer: dict[str, float]) -> bool:
    """Whether a node offering ``offer`` (its total resources) can hold one such actor."""
    return all(offer.get(key, 0.0) >= amount for key, amount in need)


def describe_offers(offers: list[dict[str, float]]) -> str:
    """The alive nodes' resources, without Ray's bookkeeping ones (memory, node:IP)."""
    shown = []
    for offer in offers:
        items = {
            k: v
            for k, v in offer.items()
            if "memory" not in k and not k.startswith("node:") and not k.startswith("accelerator")
        }
        shown.append("{" + ", ".join(f"{k}: {v:g}" for k, v in sorted(items.items())) + "}")
    return "; ".join(shown) or "no alive node"


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
    need: Need
    ready: Any = None
    """The first ``ping``: resolves once Ray has placed and started the actor."""
    placed: bool = False
    created: float = field(default_factory=time.monotonic)
    task: PendingJob | None = None
    stream: Any = None
    policy_key: str | None = None
    received: set[int] = field(default_factory=set)
    started: dict[int, float] = field(default_factory=dict)


class _HeadWatch:
    """A thread that connects to the head's GCS port every second; when it has refused for
    ``HEAD_LOST_S``, it interrupts the main thread (which raises :class:`ClusterLost`) and,
    should that not stop it within ``FORCE_EXIT_S``, prints why and ends the process."""

    def __init__(self, gcs_address: str) -> None:
        host, _, port = gcs_address.rpartition(":")
        self.where = (host, int(port))
        self.gcs_address = gcs_address
        self.lost: str | None = None
        self.up = True
        """Whether the head answered the last connection."""
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="vlabench-head", daemon=True)
        self.thread.start()

    def _reachable(self) -> bool:
        try:
            with socket.create_connection(self.where, timeout=1.0):
                return True
        except OSError:
            return False

    def _watch(self) -> None:
        down_since: float | None = None
        while not self.done.wait(1.0):
            self.up = self._reachable()
            if self.up:
                down_since = None
                continue
            down_since = down_since or time.monotonic()
            if time.monotonic() - down_since < HEAD_LOST_S:
                continue
            self.lost = (
                f"lost the Ray cluster: its head at {self.gcs_address} has not answered for "
                f"{HEAD_LOST_S:g} s; finished episodes are stored: rerun the same command "
                "against a running cluster (--address) to resume"
            )
            _thread.interrupt_main()
            if not self.done.wait(FORCE_EXIT_S):
                print(f"error: {self.lost}", file=sys.stderr, flush=True)
                os._exit(2)
            return

    def stop(self) -> None:
        self.done.set()


class RayExecutor:
    """Runs jobs on Ray actors (see the module docstring).

    ``address``: ``None`` starts a private local Ray for this matrix; ``auto``, the head's
    ``host:port`` or ``ray://host:10001`` joins a running cluster (an already initialised Ray
    is reused). ``workers``: CPU actors at most (default: the cluster's CPUs).
    ``placement_wait_s``: the longest a job waits for Ray to place its first actor.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        *,
        retries: int = 2,
        setup: WorkerSetup | None = None,
        placement_wait_s: float = PLACEMENT_WAIT_S,
    ) -> None:
        self.address = address
        self.workers = workers
        self.parallelism = max(1, workers or cpu_count())
        self.retries = max(0, retries)
        self.setup = setup or WorkerSetup()
        """What every worker gets: the plugin view, batch size and execution settings."""
        self.placement_wait_s = placement_wait_s
        self._offers: list[dict[str, float]] = []

    def _connect(self) -> bool:
        """Initialise Ray unless it is; True when this executor started it."""
        import ray

        if ray.is_initialized():
            return False
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
        if self.address:
            self._check_reachable(self.address)
            try:
                ray.init(address=self.address, **options)
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ClusterLost(
                    f"cannot reach the Ray cluster at {self.address}: {first}"
                ) from None
        else:
            ray.init(num_cpus=self.parallelism, **options)
        return True

    @staticmethod
    def _check_reachable(address: str, wait_s: float = CONNECT_WAIT_S) -> None:
        """A ``host:port`` head that refuses connections for ``wait_s`` is an error at once
        (Ray itself would retry for minutes); ``auto`` and ``ray://`` are left to Ray."""
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or "://" in address:
            return
        deadline = time.monotonic() + wait_s
        while True:
            try:
                with socket.create_connection((host, int(port)), timeout=2.0):
                    return
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise ClusterLost(
                        f"cannot reach the Ray cluster at {address}: nothing answers there "
                        f"({exc.strerror or exc}); start its head (ray start --head) or fix "
                        "--address"
                    ) from None
            time.sleep(0.5)

    def _watch_head(self) -> _HeadWatch | None:
        """A watch on the head, when this driver joined a cluster over its GCS address."""
        import ray

        if not self.address or self.address.startswith("ray://"):
            return None
        try:
            gcs = ray.get_runtime_context().gcs_address
        except Exception:
            return None
        return _HeadWatch(gcs) if gcs and ":" in gcs else None

    def _nodes(self) -> list[dict[str, float]]:
        """The alive nodes' total resources, as last read by the reader thread."""
        return self._offers

    def _read_nodes(self, stop: threading.Event, watch: _HeadWatch | None) -> None:
        """Every ``NODES_REFRESH_S``, the alive nodes' resources (a GCS call, made off the
        main thread, and not while the head is unreachable: it would block until Ray's own
        timeout)."""
        import ray

        while not stop.wait(NODES_REFRESH_S):
            if watch is not None and not watch.up:
                continue
            try:
                nodes = ray.nodes()
            except Exception:
                continue
            self._offers = [dict(n.get("Resources") or {}) for n in nodes if n.get("Alive")]

    def run(self, jobs: Sequence[Job], events: JobEvents) -> None:
        import ray

        own = self._connect()
        self._offers = [dict(n.get("Resources") or {}) for n in ray.nodes() if n.get("Alive")]
        watch = self._watch_head()
        stop = threading.Event()
        threading.Thread(
            target=self._read_nodes, args=(stop, watch), name="vlabench-nodes", daemon=True
        ).start()
        actor_class = ray.remote(RayWorker)
        queue_: deque[PendingJob] = deque(PendingJob(job, list(job.indices)) for job in jobs)
        actors: list[_Actor] = []
        lost = False
        try:
            while queue_ or any(a.task for a in actors):
                self._unplaceable(queue_, actors, events)
                self._dispatch(queue_, actors, actor_class, events)
                streams = {a.stream: a for a in actors if a.task is not None}
                pings = {a.ready: a for a in actors if not a.placed}
                if not streams and not pings:
                    time.sleep(0.05)
                    continue
                ready, _ = ray.wait([*streams, *pings], num_returns=1, timeout=1.0)
                for ref in ready:
                    if ref in pings:
                        self._placed(pings[ref], actors, queue_, events)
                    else:
                        self._receive(streams[ref], actors, queue_, events)
        except KeyboardInterrupt:
            if watch is not None and watch.lost:
                lost = True
                raise ClusterLost(watch.lost) from None
            raise
        finally:
            stop.set()
            if watch is not None:
                watch.stop()
            if not lost:  # a lost cluster has nothing left to kill or shut down
                for actor in actors:
                    ray.kill(actor.handle, no_restart=True)
                if own:
                    ray.shutdown()

    def _slots(self) -> int:
        """CPU actors at most: ``workers``, else the alive nodes' CPUs."""
        return max(1, self.workers or int(sum(o.get("CPU", 0.0) for o in self._nodes())))

    def _dispatch(
        self,
        queue_: deque[PendingJob],
        actors: list[_Actor],
        actor_class: Any,
        events: JobEvents,
    ) -> None:
        """Queued jobs to idle placed actors of their kind (one with the job's policy loaded
        first); new actors where a kind has more queued jobs than actors on the way; actors
        still unplaced with no job left for them are dropped."""
        import ray

        for task in list(queue_):
            need = job_need(task.job)
            idle = [a for a in actors if a.placed and a.task is None and a.need == need]
            actor = next((a for a in idle if a.policy_key == task.job.policy_key), None)
            actor = actor or (idle[0] if idle else None)
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
        waiting: dict[Need, int] = {}
        for task in queue_:
            need = job_need(task.job)
            waiting[need] = waiting.get(need, 0) + 1
        for actor in [a for a in actors if not a.placed]:
            if waiting.get(actor.need, 0) > 0:
                waiting[actor.need] -= 1
            else:  # nothing left for it
                actors.remove(actor)
                ray.kill(actor.handle, no_restart=True)
        for need, count in waiting.items():
            for _ in range(count):
                if len(actors) >= self._slots():
                    return
                amounts = dict(need)
                options = {
                    "num_cpus": amounts.pop("CPU", 1.0),
                    "num_gpus": amounts.pop("GPU", 0.0),
                    "resources": amounts,
                    "max_restarts": 0,
                }
                handle = actor_class.options(**options).remote(self.setup)
                actors.append(_Actor(handle, need, ready=handle.ping.remote()))

    def _placed(
        self, actor: _Actor, actors: list[_Actor], queue_: deque[PendingJob], events: JobEvents
    ) -> None:
        """An actor's first ping returned: placed; or it died starting, which costs a job of
        its kind an attempt (:func:`after_crash`)."""
        import ray
        from ray.exceptions import RayError

        try:
            ray.get(actor.ready)
        except RayError as exc:
            actors.remove(actor)
            ray.kill(actor.handle, no_restart=True)
            task = next((t for t in queue_ if job_need(t.job) == actor.need), None)
            if task is not None:
                queue_.remove(task)
                cause = f"Ray actor failed to start ({str(exc).strip().splitlines()[0]})"
                after_crash(task, set(), Crash(cause), self.retries, queue_, events)
            return
        actor.placed = True

    def _unplaceable(
        self, queue_: deque[PendingJob], actors: list[_Actor], events: JobEvents
    ) -> None:
        """Fail the queued jobs no alive node can place, or that waited past
        ``placement_wait_s`` for their first actor while none of their kind ran."""
        import ray

        if not queue_:
            return
        offers = self._nodes()
        now = time.monotonic()
        for need in {job_need(t.job) for t in queue_}:
            kind = [a for a in actors if a.need == need]
            if any(fits(need, o) for o in offers):
                stuck = [a for a in kind if not a.placed]
                if not stuck or any(a.placed for a in kind):
                    continue
                waited = now - min(a.created for a in stuck)
                if waited < self.placement_wait_s:
                    continue
                error = (
                    f"no Ray node placed a worker needing {describe_need(need)} within "
                    f"{self.placement_wait_s:g} s (alive nodes offer: {describe_offers(offers)})"
                )
            elif (
                dict(need).get("GPU")
                and not any(o.get("GPU") for o in offers)
                and (set(dict(need)) <= {"CPU", "GPU"})
            ):
                device = next(t.job.config.policy.device for t in queue_ if job_need(t.job) == need)
                error = f"policy device {device!r} needs a GPU, and the Ray cluster has none"
            else:
                error = (
                    f"no node of the Ray cluster can place a worker needing "
                    f"{describe_need(need)} (alive nodes offer: {describe_offers(offers)})"
                )
            for actor in kind:
                if not actor.placed:
                    actors.remove(actor)
                    ray.kill(actor.handle, no_restart=True)
            for task in [t for t in queue_ if job_need(t.job) == need]:
                queue_.remove(task)
                if not task.started:  # the progress counts it as started, then failed
                    task.started = True
                    events.job_started(task.job)
                events.job_finished(task.job, error)

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
