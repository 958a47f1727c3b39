"""The runner: executes planned pairs through an executor into the store, its single writer.

Executors (:mod:`vlabench.execute.executor`) hand it every finished episode, and it stores it
at once, so an interrupted matrix loses at most the episodes in flight. An episode that was
attempted and never finished (its worker died or timed out in it, more often than retries
allow) is stored as a failed episode with the cause, and counts in n like a policy error.

Signals: SIGTERM and SIGHUP are Ctrl-C (:func:`signals_as_interrupts`): the runs in progress
become ``interrupted``, the executor stops its workers, and the command exits 143 / 129.
A run is ``running`` only while its runner lives: its note names the process
(:mod:`vlabench.execute.owner`); the next command finds a run whose runner died and settles
it (:meth:`Runner.settle_dead_runs`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from vlabench import api
from vlabench.catalog import Catalog, notify_run_finished
from vlabench.execute import provenance
from vlabench.execute.executor import Executor, Unfinished
from vlabench.execute.owner import InFlight, Owner, died_reason
from vlabench.plan.compat import Compatibility, policy_request
from vlabench.plan.configs import RunConfig
from vlabench.plan.jobs import Job, Pair, block_size, episodes_to_run, split_blocks, stored_hash
from vlabench.runtime.rollout import EpisodeSpec, episode_specs


class ProgressSink(Protocol):
    """What the runner reports while it works (the CLI draws it).

    ``job_*`` calls are per job (an episode block); a run that is not executed (incompatible,
    failed check, nothing left to resume) gets one ``job_finished`` and no ``job_started``.
    """

    def matrix_started(self, jobs: int, episodes: int) -> None: ...

    def job_started(self, label: str, total: int, done: int) -> None: ...

    def episode_finished(self, record: api.EpisodeRecord) -> None: ...

    def job_retried(self, label: str, error: str) -> None: ...

    def job_note(self, label: str, text: str) -> None:
        """Something to say about a job: a slow call, a worker replaced, a dead run settled."""

    def job_finished(self, label: str, status: str) -> None: ...


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C (see :func:`signals_as_interrupts`)."""

    def __init__(self, signum: int) -> None:
        self.signal = signal.Signals(signum).name
        super().__init__(f"terminated by {self.signal}")
        self.exit_code = 128 + signum
        """What the command exits with: 143 for SIGTERM, 129 for SIGHUP."""


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Terminated` (a KeyboardInterrupt) in the main thread,
    so they stop a matrix exactly as Ctrl-C does; once raised, more of them are ignored until
    the stop is done. Elsewhere than the main thread nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    kinds = (signal.SIGTERM, signal.SIGHUP)

    def raise_terminated(signum: int, frame: Any) -> None:
        for kind in kinds:  # the stop itself is not interrupted
            signal.signal(kind, signal.SIG_IGN)
        raise Terminated(signum)

    previous = {kind: signal.signal(kind, raise_terminated) for kind in kinds}
    try:
        yield
    finally:
        for kind, handler in previous.items():
            signal.signal(kind, handler)


class SilentProgress:
    def matrix_started(self, jobs: int, episodes: int) -> None:
        pass

    def job_started(self, label: str, total: int, done: int) -> None:
        pass

    def episode_finished(self, record: api.EpisodeRecord) -> None:
        pass

    def job_retried(self, label: str, error: str) -> None:
        pass

    def job_note(self, label: str, text: str) -> None:
        pass

    def job_finished(self, label: str, status: str) -> None:
        pass


@dataclass
class RunResult:
    """The outcome of one run of the matrix (all its jobs)."""

    run_id: int
    label: str
    status: str
    new_episodes: int = 0
    error: str | None = None
    failed_episodes: int = 0
    """Of the new episodes, those stored with an error."""


@dataclass
class _RunState:
    config: RunConfig
    result: RunResult
    jobs_left: int = 0
    started: bool = False
    in_flight: dict[int, InFlight] = field(default_factory=dict)
    """Episodes started and not finished (journaled in the run's note by in-process
    executors)."""


@dataclass
class Runner:
    """Executes planned pairs into a store (``vlabench.store.Store``) through an executor.

    The runner is the only writer: executors hand it every finished episode, and it stores
    it at once (so an interrupted matrix loses at most the episodes in flight).
    """

    store: Any
    catalog: Catalog
    progress: ProgressSink = field(default_factory=SilentProgress)
    batch_size: int = 1
    executor: Executor | None = None
    """Default: the inline executor (this process, one job at a time)."""
    block: int | None = None
    """Episodes per job; default from the executor's parallelism (see :func:`block_size`)."""
    task_groups: Mapping[str, Sequence[tuple[str, Sequence[str]]]] = field(default_factory=dict)
    """Task groups for ``leaderboard --by group``, suite -> [(group, tasks)]: the groups the
    registry declares for the suite, in order. Each run stores those containing its task."""
    _runs: dict[int, _RunState] = field(default_factory=dict)
    _n_init: dict[str, int | None] = field(default_factory=dict)
    _hashes: dict[int, tuple[RunConfig, str]] = field(default_factory=dict)
    """``id(config) -> (config, its hash)``: hashed once, not per episode (the config is kept
    so that its id is not reused)."""

    def report_meta(self, config: RunConfig) -> dict[str, Any]:
        """What boards read of a run (``Run.report_meta``), fixed when it is written."""
        try:
            label = config.inference().label()
        except (TypeError, ValueError):
            label = "" if config.inference_mode == "sync" else config.inference_mode
        sync = replace(config, inference_mode="sync", inference_options={})
        metrics = self.catalog.env(config.env).metric_columns
        declared = self.task_groups.get(config.suite, ())
        groups = {name: list(tasks) for name, tasks in declared if config.task in tasks}
        return {
            "inference_label": label,
            "sync_config_hash": stored_hash(self.store, sync),  # a legacy-hashed one too
            # every metric column is an error today (EnvSpec.metric_columns): lower is better
            "metrics": [{"name": m, "lower_is_better": True} for m in metrics],
            "groups": groups,  # in declared order, as is group_order
            "group_order": [name for name, _ in declared],
        }

    def run_fields(self, config: RunConfig, status: str, error: str | None) -> dict[str, Any]:
        env = self.catalog.env(config.env)
        policy_spec = self.catalog.policy(config.policy.type)
        code = self.plugin_code(config)
        fingerprint = None
        if policy_spec.fingerprint is not None and status != "failed":
            try:
                fingerprint = policy_spec.fingerprint(policy_request(config, self.catalog))
            except Exception:
                fingerprint = None
        return dict(
            policy=config.policy.name,
            policy_type=config.policy.type,
            policy_plugin=config.policy.plugin,
            checkpoint=config.policy.checkpoint,
            checkpoint_hash=fingerprint,
            policy_options=config.policy.options,
            env=config.env,
            env_plugin=config.env_plugin,
            suite=config.suite,
            task=config.task,
            protocol=config.protocol.key() | {"episodes": config.protocol.episodes},
            protocol_hash=config.protocol_hash(),
            config=config.as_dict(),
            inference_mode=config.inference_mode,
            versions=provenance.versions(
                [*env.packages, *policy_spec.packages], code["plugins"], code["plugin_sources"]
            ),
            host=provenance.host(),
            git_sha=provenance.git_sha(),
            status=status,
            error=error,
            n_episodes=config.protocol.episodes,
            report_meta=self.report_meta(config),
        )

    def plugin_code(self, config: RunConfig) -> dict[str, dict[str, Any]]:
        """The versions (and local sources) of the run's policy and env plugins."""
        return provenance.plugin_code(self.catalog, (config.policy.plugin, config.env_plugin))

    def changed_code(self, config: RunConfig) -> RunResult | None:
        """A stored run of ``config`` made with other plugin code is kept as it is, neither
        extended nor taken as done: its result, failed with why; None when there is none."""
        run_id = self.store.find_run(stored_hash(self.store, config))
        if run_id is None:
            return None
        stored = (self.store.get_run(run_id) or {}).get("versions") or {}
        change = provenance.code_change(stored, self.plugin_code(config))
        if change is None:
            return None
        kept = len(self.store.finished_episode_indices(run_id))
        reason = (
            f"{change} since run {run_id} was stored: it keeps its {kept} episode(s) and is "
            "not extended with other code; restore that code, or evaluate into another "
            "store (--db)"
        )
        self.progress.job_finished(config.label, "failed")  # why: in the results, once
        return RunResult(run_id, config.label, "failed", error=reason)

    def _executor(self) -> Executor:
        if self.executor is None:
            from vlabench.execute.inline import InlineExecutor

            self.executor = InlineExecutor(self.catalog, self.batch_size)
        return self.executor

    def plan_jobs(self, pairs: list[Pair]) -> tuple[list[Job], list[RunResult]]:
        """Create the runnable pairs' runs and cut what each lacks into jobs.

        Returns the jobs and one result per run, in plan order; unrunnable pairs and runs
        with nothing left are recorded (final) at once. A run stored before env options were
        typed is found by its legacy hash and kept (:func:`~vlabench.plan.jobs.stored_hash`).
        """
        results: list[RunResult] = []
        lacking: list[tuple[RunConfig, int, list[int]]] = []
        self.settle_dead_runs()
        for pair in pairs:
            self._adopt_legacy_protocols(pair.runs)
            for i, config in enumerate(pair.runs):
                if not pair.runnable:
                    results.append(self.record_unrunnable(config, pair.status, pair.reason))
                    continue
                if i in pair.run_errors:  # its own task's preflight
                    results.append(self.record_unrunnable(config, "failed", pair.run_errors[i]))
                    continue
                changed = self.changed_code(config)
                if changed is not None:
                    results.append(changed)
                    continue
                run_id, _ = self.store.get_or_create_run(
                    stored_hash(self.store, config), **self.run_fields(config, "pending", None)
                )
                done = self.store.finished_episode_indices(run_id)
                todo = episodes_to_run(config, done)
                result = RunResult(run_id, config.label, "finished")
                results.append(result)
                if not todo:
                    self.store.set_run_status(run_id, "finished")
                    self.progress.job_finished(result.label, "finished (nothing to resume)")
                    continue
                self._runs[run_id] = _RunState(config, result)
                lacking.append((config, run_id, todo))
        total = sum(len(todo) for _, _, todo in lacking)
        size = self.block or block_size(total, self._executor().parallelism)
        jobs = [
            Job(config, run_id, block)
            for config, run_id, todo in lacking
            for block in split_blocks(todo, size)
        ]
        for job in jobs:
            self._runs[job.run_id].jobs_left += 1
        return jobs, results

    def _adopt_legacy_protocols(self, configs: list[RunConfig]) -> None:
        """Runs stored before env options were typed carry the protocol hash of the options as
        given; move them to the hash of the complete options, so that an old store shows one
        column per protocol, whichever way its runs spelled the defaults."""
        for legacy, current in {(c.legacy_protocol_hash(), c.protocol_hash()) for c in configs}:
            self.store.rekey_protocol(legacy, current)

    def run_pairs(self, pairs: list[Pair]) -> list[RunResult]:
        """Run every pair's missing episodes; one result per run."""
        jobs, results = self.plan_jobs(pairs)
        self.progress.matrix_started(len(jobs), sum(len(j.indices) for j in jobs))
        if not jobs:
            return results
        try:
            with signals_as_interrupts():
                self._executor().run(jobs, self)
        except KeyboardInterrupt as exc:
            why = str(exc) if isinstance(exc, Terminated) else "interrupted by the user"
            for run_id, state in self._runs.items():
                if state.jobs_left:
                    self.store.set_run_status(run_id, "interrupted", why)
                    state.result.status = "interrupted"
            raise
        for run_id, state in self._runs.items():
            if state.jobs_left:  # an executor that lost a job without reporting it
                self._job_done(run_id, state, "the executor returned without finishing it")
        return results

    def record_unrunnable(self, config: RunConfig, status: str, reason: str) -> RunResult:
        """Store an incompatible or failed pair's run, so the matrix shows why."""
        run_id, _ = self.store.get_or_create_run(
            stored_hash(self.store, config), **self.run_fields(config, status, reason)
        )
        self.store.set_run_status(run_id, status, reason)
        label = config.label
        self.progress.job_finished(label, status)  # why: in the results (or the pair's line)
        return RunResult(run_id, label, status, error=reason)

    def run_config(self, config: RunConfig) -> RunResult:
        """Run the episodes one run still lacks (earlier episodes are kept)."""
        pair = Pair(config.policy, config.suite, [config])
        pair.compatibility = Compatibility([], [])
        return self.run_pairs([pair])[0]

    # -- runs whose runner died -------------------------------------------------------------
    def settle_dead_runs(self) -> int:
        """Runs left ``running`` by a runner process of this host that died: the episodes its
        in-process executor had in flight are stored as failed (the process died in them, as
        when a policy calls ``os._exit``), and the run becomes ``interrupted`` (the next
        command resumes it). Runs of live runners, or of other hosts, are left alone.
        Returns how many runs were settled."""
        settled = 0
        for run in self.store.runs(status="running"):
            owner = Owner.parse(run.get("error"))
            if owner is None or owner.alive() is not False:
                continue
            stored = self.store.finished_episode_indices(run["id"])
            lost = [e for e in owner.in_flight if e.index not in stored]
            reason = died_reason(owner)
            self.store.add_episodes(
                run["id"],
                [
                    api.EpisodeRecord(run["task"], e.index, e.seed, e.init_state_id, False, 0,
                                      0.0, 0.0, failure_reason=reason)
                    for e in lost
                ],
            )
            why = f"its vlabench process (pid {owner.pid}) died"
            if lost:
                shown = ", ".join(str(e.index) for e in lost)
                why += f"; episode(s) {shown} it was running stored as failed"
            self.store.set_run_status(run["id"], "interrupted", why)
            self.progress.job_note(f"{run['policy']} × {run['suite']}/{run['task']}", why)
            settled += 1
        return settled

    def _note(self, run_id: int) -> str:
        """The run's note while it runs: this process, and (in-process executors) the
        episodes in flight."""
        state = self._runs[run_id]
        executor = self._executor()
        flight = tuple(state.in_flight.values()) if getattr(executor, "in_process", False) else ()
        return Owner.me(executor.name, flight).note()

    def _specs(self, config: RunConfig, indices: Sequence[int]) -> dict[int, EpisodeSpec]:
        """Episodes ``indices`` of the run (seed, init state), as its workers run them."""
        known = self._hashes.get(id(config))
        if known is None or known[0] is not config:
            known = self._hashes[id(config)] = (config, config.config_hash())
        key = known[1]
        if key not in self._n_init:
            try:
                env = self.catalog.env(config.env)
                self._n_init[key] = next(
                    (t.n_init_states for t in env.tasks(config.env_options)
                     if t.name == config.task),
                    None,
                )
            except Exception:  # the episode is still stored, without its init state
                self._n_init[key] = None
        specs = episode_specs(config.task, indices, config.protocol.seed, self._n_init[key])
        return {s.episode_index: s for s in specs}

    # -- JobEvents: called by the executor, in this process ---------------------------------
    def job_started(self, job: Job) -> None:
        state = self._runs[job.run_id]
        if not state.started:
            state.started = True
            self.store.set_run_status(job.run_id, "running", self._note(job.run_id))
        self.progress.job_started(job.label, len(job.indices), 0)

    def episode_started(self, job: Job, index: int) -> None:
        """In-process executors: the episode is journaled in the run's note before it runs
        (this process may die in it: see :meth:`settle_dead_runs`)."""
        if not getattr(self._executor(), "in_process", False):
            return
        spec = self._specs(job.config, [index])[index]
        self._runs[job.run_id].in_flight[index] = InFlight(index, spec.seed, spec.init_state_id)
        self.store.set_run_status(job.run_id, "running", self._note(job.run_id))

    def episode_finished(self, job: Job, record: api.EpisodeRecord) -> None:
        self._runs[job.run_id].in_flight.pop(int(record.episode_index), None)
        if self.store.add_episode(job.run_id, record):
            self._runs[job.run_id].result.new_episodes += 1
            self._runs[job.run_id].result.failed_episodes += bool(record.failure_reason)
        self.progress.episode_finished(record)

    def episodes_unfinished(self, job: Job, episodes: Sequence[Unfinished]) -> None:
        """Episodes attempted and never finished: stored as failed, with the cause."""
        specs = self._specs(job.config, [e.index for e in episodes])
        for episode in episodes:
            spec = specs[episode.index]
            record = api.EpisodeRecord(
                task=job.config.task,
                episode_index=episode.index,
                seed=spec.seed,
                init_state_id=spec.init_state_id,
                success=False,
                steps=episode.steps,
                reward_sum=0.0,
                wall_time_s=episode.wall_time_s,
                failure_reason=episode.reason,
            )
            self.episode_finished(job, record)

    def job_note(self, job: Job, text: str) -> None:
        self.progress.job_note(job.label, text)

    def job_retried(self, job: Job, error: str) -> None:
        self.progress.job_retried(job.label, error)

    def job_finished(self, job: Job, error: str | None) -> None:
        state = self._runs[job.run_id]
        self.progress.job_finished(job.label, "failed" if error else "finished")  # why: once,
        # in the results
        self._job_done(job.run_id, state, error)

    def _job_done(self, run_id: int, state: _RunState, error: str | None) -> None:
        state.jobs_left -= 1
        if error and state.result.error is None:
            state.result.error = error
            state.result.status = "failed"
        if state.jobs_left > 0:
            return
        result = state.result
        self.store.set_run_status(run_id, result.status, result.error)
        if result.status == "finished":
            notify_run_finished(self.catalog, self.store.get_run(run_id) or {})
