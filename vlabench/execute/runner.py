"""The runner: executes planned pairs through an executor into the store, its single writer.

Executors (:mod:`vlabench.execute.executor`) hand it every finished episode, and it stores it
at once, so an interrupted matrix loses at most the episodes in flight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from vlabench import api
from vlabench.catalog import Catalog, notify_run_finished
from vlabench.execute import provenance
from vlabench.execute.executor import Executor
from vlabench.plan.compat import Compatibility, policy_request
from vlabench.plan.configs import RunConfig
from vlabench.plan.jobs import Job, Pair, block_size, episodes_to_run, split_blocks, stored_hash


class ProgressSink(Protocol):
    """What the runner reports while it works (the CLI draws it).

    ``job_*`` calls are per job (an episode block); a run that is not executed (incompatible,
    failed check, nothing left to resume) gets one ``job_finished`` and no ``job_started``.
    """

    def matrix_started(self, jobs: int, episodes: int) -> None: ...

    def job_started(self, label: str, total: int, done: int) -> None: ...

    def episode_finished(self, record: api.EpisodeRecord) -> None: ...

    def job_retried(self, label: str, error: str) -> None: ...

    def job_finished(self, label: str, status: str) -> None: ...


class SilentProgress:
    def matrix_started(self, jobs: int, episodes: int) -> None:
        pass

    def job_started(self, label: str, total: int, done: int) -> None:
        pass

    def episode_finished(self, record: api.EpisodeRecord) -> None:
        pass

    def job_retried(self, label: str, error: str) -> None:
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


@dataclass
class _RunState:
    config: RunConfig
    result: RunResult
    jobs_left: int = 0
    started: bool = False


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
    task_groups: Mapping[str, tuple[str, Sequence[str]]] = field(default_factory=dict)
    """Task groups for ``leaderboard --by group``, name -> (env, tasks): the registry's suites
    with an explicit task list. Each run stores those of its env that contain its task."""
    _runs: dict[int, _RunState] = field(default_factory=dict)

    def report_meta(self, config: RunConfig) -> dict[str, Any]:
        """What boards read of a run (``Run.report_meta``), fixed when it is written."""
        try:
            label = config.inference().label()
        except (TypeError, ValueError):
            label = "" if config.inference_mode == "sync" else config.inference_mode
        sync = replace(config, inference_mode="sync", inference_options={})
        metrics = self.catalog.env(config.env).metric_columns
        groups = {
            name: list(tasks)
            for name, (env, tasks) in sorted(self.task_groups.items())
            if env == config.env and config.task in tasks
        }
        return {
            "inference_label": label,
            "sync_config_hash": stored_hash(self.store, sync),  # a legacy-hashed one too
            # every metric column is an error today (EnvSpec.metric_columns): lower is better
            "metrics": [{"name": m, "lower_is_better": True} for m in metrics],
            "groups": groups,
        }

    def run_fields(self, config: RunConfig, status: str, error: str | None) -> dict[str, Any]:
        env = self.catalog.env(config.env)
        policy_spec = self.catalog.policy(config.policy.type)
        plugins = {
            p: self.catalog.plugin_version(p) for p in (config.policy.plugin, config.env_plugin)
        }
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
            versions=provenance.versions([*env.packages, *policy_spec.packages], plugins),
            host=provenance.host(),
            git_sha=provenance.git_sha(),
            status=status,
            error=error,
            n_episodes=config.protocol.episodes,
            report_meta=self.report_meta(config),
        )

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
        for pair in pairs:
            self._adopt_legacy_protocols(pair.runs)
            for config in pair.runs:
                if not pair.runnable:
                    results.append(self.record_unrunnable(config, pair.status, pair.reason))
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
            self._executor().run(jobs, self)
        except KeyboardInterrupt:
            for run_id, state in self._runs.items():
                if state.jobs_left:
                    self.store.set_run_status(run_id, "interrupted", "interrupted by the user")
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
        self.progress.job_finished(label, f"{status}: {reason}")
        return RunResult(run_id, label, status, error=reason)

    def run_config(self, config: RunConfig) -> RunResult:
        """Run the episodes one run still lacks (earlier episodes are kept)."""
        pair = Pair(config.policy, config.suite, [config])
        pair.compatibility = Compatibility([], [])
        return self.run_pairs([pair])[0]

    # -- JobEvents: called by the executor, in this process ---------------------------------
    def job_started(self, job: Job) -> None:
        state = self._runs[job.run_id]
        if not state.started:
            state.started = True
            self.store.set_run_status(job.run_id, "running")
        self.progress.job_started(job.label, len(job.indices), 0)

    def episode_finished(self, job: Job, record: api.EpisodeRecord) -> None:
        if self.store.add_episode(job.run_id, record):
            self._runs[job.run_id].result.new_episodes += 1
        self.progress.episode_finished(record)

    def job_retried(self, job: Job, error: str) -> None:
        self.progress.job_retried(job.label, error)

    def job_finished(self, job: Job, error: str | None) -> None:
        state = self._runs[job.run_id]
        self.progress.job_finished(job.label, f"failed: {error}" if error else "finished")
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
