"""Plan policy x suite jobs, check each pair, and execute the jobs into the store.

A run is one (policy, suite, task) under one protocol, keyed by its config hash. A job is a
block of the episodes its run still lacks, so a resumed matrix runs exactly the missing ones.
An executor (``vlabench.executors``: inline, processes; ``vlabench.ray_executor``: Ray) runs the
jobs and streams each finished episode back to the :class:`Runner`, the store's single writer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from vlabench import api, provenance
from vlabench.adapt import AdapterPipeline, Compatibility, build_adapters, check
from vlabench.config import PolicyChoice, RunConfig, resolve_policy, resolve_suite
from vlabench.inference import InferenceConfig
from vlabench.plugins import Catalog, missing_requirements, notify_run_finished
from vlabench.registry import Registry
from vlabench.rollout import Rollout, RolloutSettings, episode_specs


@dataclass
class Pair:
    """One cell of the matrix: a policy on a suite, its jobs and whether it can run."""

    policy: PolicyChoice
    suite: str
    jobs: list[RunConfig]
    compatibility: Compatibility | None = None
    error: str | None = None
    """Set when the pair cannot even be checked (missing stack, bad checkpoint, ...)."""

    @property
    def runnable(self) -> bool:
        return self.error is None and self.compatibility is not None and self.compatibility.ok

    @property
    def status(self) -> str:
        if self.error:
            return "failed"
        return "ok" if self.runnable else "incompatible"

    @property
    def reason(self) -> str:
        if self.error:
            return self.error
        return self.compatibility.reason() if self.compatibility else ""


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


def policy_request(config: RunConfig, catalog: Catalog) -> api.PolicyRequest:
    env = catalog.envs[config.env]
    return api.PolicyRequest(
        type=config.policy.type,
        checkpoint=config.policy.checkpoint,
        options=config.policy.options,
        env=env.interface(config.env_options),
        device=config.policy.device,
    )


def check_pair(config: RunConfig, catalog: Catalog) -> Compatibility:
    """Compatibility of the job's policy with its env, through the declared adapters."""
    request = policy_request(config, catalog)
    described = catalog.policies[config.policy.type].describe(request)
    adapters = build_adapters(config.adapters, catalog)
    return check(described, request.env, adapters)


def _unavailable(config: RunConfig, catalog: Catalog) -> str | None:
    """Why the job cannot run at all (missing stack, or its env's preflight), else None."""
    for kind, spec in (
        ("policy", catalog.policies[config.policy.type]),
        ("env", catalog.envs[config.env]),
    ):
        missing = missing_requirements(spec.requires)
        if missing:
            hint = f"; install with: {spec.install_hint}" if spec.install_hint else ""
            return f"{kind} {spec.name!r} is unavailable: missing {', '.join(missing)}{hint}"
    inference = config.inference()
    env_spec = catalog.envs[config.env]
    if (
        inference.mode != "sync"
        and inference.hold == "noop"
        and env_spec.interface(config.env_options).noop_action is None
    ):
        return f"inference hold=noop: env {config.env!r} declares no noop action"
    preflight = env_spec.preflight
    if preflight is None:
        return None
    try:
        reason = preflight(config.task, config.env_options)
    except Exception as exc:  # a broken check must not take the whole matrix down
        return f"env {config.env!r} preflight raised {type(exc).__name__}: {exc}"
    return None if reason is None else str(reason)


def plan(
    policies: list[str],
    suites: list[str],
    registry: Registry,
    catalog: Catalog,
    *,
    episodes: int | None = None,
    max_steps: int | None = None,
    tasks: list[str] | None = None,
    inference: InferenceConfig | None = None,
) -> list[Pair]:
    """Expand policies x suites into pairs of jobs and check each pair once.

    ``inference`` (default ``sync``) applies to every pair (see :mod:`vlabench.inference`).
    """
    pairs = []
    for name in policies:
        choice = resolve_policy(name, registry, catalog)
        for suite in suites:
            jobs = resolve_suite(
                suite,
                choice,
                registry,
                catalog,
                episodes=episodes,
                max_steps=max_steps,
                tasks=tasks,
                inference=inference,
            )
            pair = Pair(choice, suite, jobs)
            pair.error = _unavailable(jobs[0], catalog)
            if pair.error is None:
                try:
                    pair.compatibility = check_pair(jobs[0], catalog)
                except Exception as exc:
                    pair.error = f"cannot check the pair: {type(exc).__name__}: {exc}"
            pairs.append(pair)
    return pairs


@dataclass(frozen=True)
class Job:
    """A block of episodes of one run: the unit an executor runs (and retries) in one go."""

    config: RunConfig
    run_id: int
    indices: tuple[int, ...]

    @property
    def key(self) -> str:
        """``<config hash>:<first>-<last>``: the run and the episode block."""
        return f"{self.config.config_hash()}:{self.indices[0]}-{self.indices[-1]}"

    @property
    def label(self) -> str:
        return _label(self.config)

    @property
    def policy_key(self) -> str:
        """Jobs with equal keys can share one loaded policy."""
        return f"{self.config.policy}|{self.config.env}|{self.config.env_options}"

    @property
    def wants_gpu(self) -> bool:
        return self.config.policy.device.startswith("cuda")


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


class JobWorker:
    """Runs jobs in this process; each policy is loaded once and reused across jobs."""

    def __init__(self, catalog: Catalog, batch_size: int = 1) -> None:
        self.catalog = catalog
        self.batch_size = batch_size
        self._policies: dict[str, api.Policy] = {}

    def _policy(self, config: RunConfig) -> api.Policy:
        request = policy_request(config, self.catalog)
        key = f"{config.policy}|{request.env}"
        if key not in self._policies:
            from vlabench.isolation import policy_spec_for  # a preset may run in a worker

            spec = policy_spec_for(config, self.catalog.policies[config.policy.type])
            self._policies[key] = spec.load(request)
        return self._policies[key]

    def run(
        self,
        config: RunConfig,
        indices: Sequence[int],
        on_episode: Callable[[api.EpisodeRecord], None],
    ) -> None:
        """Run episodes ``indices`` of ``config``; job-level errors (policy load...) raise."""
        from vlabench.config import add_remote_specs  # remote:// policies and envs

        add_remote_specs(config, self.catalog)
        env_spec = self.catalog.envs[config.env]
        policy = self._policy(config)
        policy.reset()
        rollout = _build_rollout(
            config, env_spec, policy, self.catalog, on_episode, self.batch_size
        )
        n_init = next(
            (t.n_init_states for t in env_spec.tasks(config.env_options) if t.name == config.task),
            None,
        )
        rollout.run(episode_specs(config.task, list(indices), config.protocol.seed, n_init))


def block_size(total: int, parallelism: int) -> int:
    """Episodes per job: everything in one job when serial, else ~2 jobs per worker."""
    if parallelism <= 1:
        return max(1, total)
    return max(1, math.ceil(total / (2 * parallelism)))


def split_blocks(indices: Sequence[int], size: int) -> list[tuple[int, ...]]:
    """``indices`` in order, cut into blocks of at most ``size``."""
    ordered = sorted(indices)
    return [tuple(ordered[i : i + size]) for i in range(0, len(ordered), max(1, size))]


@dataclass
class PairPlan:
    """What a dry run shows for one pair: runs, jobs and episodes left to run."""

    pair: Pair
    runs: int
    jobs: int = 0
    episodes: int = 0
    stored: int = 0


def preview(
    pairs: list[Pair], store: Any | None, parallelism: int, block: int | None = None
) -> list[PairPlan]:
    """The jobs a matrix would run now (nothing is written; ``store`` may be None)."""
    plans, lacking = [], []
    for pair in pairs:
        plan_ = PairPlan(pair, len(pair.jobs))
        plans.append(plan_)
        if not pair.runnable:
            continue
        for config in pair.jobs:
            run_id = store.find_run(config.config_hash()) if store is not None else None
            done = store.finished_episode_indices(run_id) if run_id is not None else set()
            todo = [i for i in range(config.protocol.episodes) if i not in done]
            plan_.stored += config.protocol.episodes - len(todo)
            plan_.episodes += len(todo)
            lacking.append((plan_, todo))
    size = block or block_size(sum(len(todo) for _, todo in lacking), parallelism)
    for plan_, todo in lacking:
        plan_.jobs += len(split_blocks(todo, size))
    return plans


@dataclass
class JobResult:
    """The outcome of one run of the matrix (all its jobs)."""

    run_id: int
    label: str
    status: str
    new_episodes: int = 0
    error: str | None = None


@dataclass
class _RunState:
    config: RunConfig
    result: JobResult
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
    _runs: dict[int, _RunState] = field(default_factory=dict)

    def run_fields(self, config: RunConfig, status: str, error: str | None) -> dict[str, Any]:
        env = self.catalog.envs[config.env]
        policy_spec = self.catalog.policies[config.policy.type]
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
        )

    def _executor(self) -> Executor:
        if self.executor is None:
            from vlabench.executors import InlineExecutor

            self.executor = InlineExecutor(self.catalog, self.batch_size)
        return self.executor

    def plan_jobs(self, pairs: list[Pair]) -> tuple[list[Job], list[JobResult]]:
        """Create the runnable pairs' runs and cut what each lacks into jobs.

        Returns the jobs and one result per run, in plan order; unrunnable pairs and runs
        with nothing left are recorded (final) at once.
        """
        results: list[JobResult] = []
        lacking: list[tuple[RunConfig, int, list[int]]] = []
        for pair in pairs:
            for config in pair.jobs:
                if not pair.runnable:
                    results.append(self.record_unrunnable(config, pair.status, pair.reason))
                    continue
                run_id, _ = self.store.get_or_create_run(
                    config.config_hash(), **self.run_fields(config, "pending", None)
                )
                done = self.store.finished_episode_indices(run_id)
                todo = [i for i in range(config.protocol.episodes) if i not in done]
                result = JobResult(run_id, _label(config), "finished")
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

    def run_pairs(self, pairs: list[Pair]) -> list[JobResult]:
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

    def record_unrunnable(self, config: RunConfig, status: str, reason: str) -> JobResult:
        """Store an incompatible or failed pair's run, so the matrix shows why."""
        run_id, _ = self.store.get_or_create_run(
            config.config_hash(), **self.run_fields(config, status, reason)
        )
        self.store.set_run_status(run_id, status, reason)
        label = _label(config)
        self.progress.job_finished(label, f"{status}: {reason}")
        return JobResult(run_id, label, status, error=reason)

    def run_job(self, config: RunConfig) -> JobResult:
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


def _label(config: RunConfig) -> str:
    return f"{config.policy.name} × {config.suite}/{config.task}"


def _settings(
    config: RunConfig, env_spec: api.EnvSpec, policy: api.Policy, batch_size: int
) -> RolloutSettings:
    from vlabench import video  # --record-video (set by the CLI through the environment)

    iface = env_spec.interface(config.env_options)
    action = iface.action
    n_action_steps = policy.interface.n_action_steps
    return RolloutSettings(
        max_steps=config.protocol.max_steps,
        success=config.protocol.success,
        stop_on_success=config.protocol.stop_on_success,
        settle_steps=config.protocol.settle_steps,
        noop_action=iface.noop_action,
        action_low=None if action.low is None else np.asarray(action.low, np.float32),
        action_high=None if action.high is None else np.asarray(action.high, np.float32),
        action_dim=action.shape[-1] if action.shape else None,
        n_obs_steps=policy.interface.n_obs_steps,
        n_action_steps=n_action_steps,
        chunk_size=policy.interface.chunk_size,
        batch_size=batch_size,
        record_video=video.requested_episodes(),
        video_dir=video.run_directory(config.config_hash()),
        fps=iface.fps,
        inference=config.inference(),
    )


def requested_features(
    env_features: tuple[api.Feature, ...], policy: api.Policy, adapters: AdapterPipeline
) -> list[str]:
    """The env features the policy reads, seen through the pair's adapters (renames etc.).

    A policy that declares no inputs (e.g. a random policy) reads nothing from the env.
    """
    wanted = {f.name for f in policy.interface.inputs}
    needed = []
    for feature in env_features:
        seen = adapters.observation_features((feature,))
        if any(f.name in wanted for f in seen):
            needed.append(feature.name)
    return needed


def _build_rollout(
    config: RunConfig,
    env_spec: api.EnvSpec,
    policy: api.Policy,
    catalog: Catalog,
    on_episode: Callable[[api.EpisodeRecord], None],
    batch_size: int,
) -> Rollout:
    adapters = AdapterPipeline(build_adapters(config.adapters, catalog))
    env_features = env_spec.interface(config.env_options).observation
    options = {
        **config.env_options,
        api.REQUESTED_FEATURES_OPTION: requested_features(env_features, policy, adapters),
    }

    from vlabench.isolation import env_spec_for, instrument  # worker/remote envs, latencies

    make = env_spec_for(config, env_spec).make

    def make_env() -> Any:
        return make(config.task, options)

    make_env, on_episode = instrument(make_env, policy, on_episode)
    return Rollout(
        make_env,
        policy,
        _settings(config, env_spec, policy, batch_size),
        on_episode,
        adapters=adapters,
        metrics=catalog.metrics,
    )
