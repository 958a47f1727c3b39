"""Plan policy x suite jobs, check each pair, and execute the jobs into the store.

A job is one run: (policy, suite, task) under one protocol, keyed by its config hash. The
executor here is sequential and in-process; each job resumes whatever episodes its run lacks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from vlabench import api, provenance
from vlabench.adapt import AdapterPipeline, Compatibility, build_adapters, check
from vlabench.config import PolicyChoice, RunConfig, resolve_policy, resolve_suite
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
    """What the runner reports while it works (the CLI draws it)."""

    def job_started(self, label: str, total: int, done: int) -> None: ...

    def episode_finished(self, record: api.EpisodeRecord) -> None: ...

    def job_finished(self, label: str, status: str) -> None: ...


class SilentProgress:
    def job_started(self, label: str, total: int, done: int) -> None:
        pass

    def episode_finished(self, record: api.EpisodeRecord) -> None:
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
    for kind, spec in (
        ("policy", catalog.policies[config.policy.type]),
        ("env", catalog.envs[config.env]),
    ):
        missing = missing_requirements(spec.requires)
        if missing:
            hint = f"; install with: {spec.install_hint}" if spec.install_hint else ""
            return f"{kind} {spec.name!r} is unavailable: missing {', '.join(missing)}{hint}"
    return None


def plan(
    policies: list[str],
    suites: list[str],
    registry: Registry,
    catalog: Catalog,
    *,
    episodes: int | None = None,
    max_steps: int | None = None,
    tasks: list[str] | None = None,
) -> list[Pair]:
    """Expand policies x suites into pairs of jobs and check each pair once."""
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


@dataclass
class JobResult:
    run_id: int
    label: str
    status: str
    new_episodes: int = 0
    error: str | None = None


@dataclass
class Runner:
    """Executes planned pairs sequentially into a store (``vlabench.store.Store``)."""

    store: Any
    catalog: Catalog
    progress: ProgressSink = field(default_factory=SilentProgress)
    batch_size: int = 1
    _policies: dict[str, api.Policy] = field(default_factory=dict)

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

    def run_pairs(self, pairs: list[Pair]) -> list[JobResult]:
        results = []
        for pair in pairs:
            for config in pair.jobs:
                if pair.runnable:
                    results.append(self.run_job(config))
                else:
                    results.append(self.record_unrunnable(config, pair.status, pair.reason))
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

    def _policy(self, config: RunConfig) -> api.Policy:
        request = policy_request(config, self.catalog)
        key = f"{config.policy}|{request.env}"
        if key not in self._policies:
            self._policies[key] = self.catalog.policies[config.policy.type].load(request)
        return self._policies[key]

    def run_job(self, config: RunConfig) -> JobResult:
        """Run the episodes this job's run still lacks; earlier episodes are kept."""
        label = _label(config)
        run_id, _ = self.store.get_or_create_run(
            config.config_hash(), **self.run_fields(config, "pending", None)
        )
        done = self.store.finished_episode_indices(run_id)
        todo = [i for i in range(config.protocol.episodes) if i not in done]
        self.progress.job_started(label, config.protocol.episodes, len(done))
        if not todo:
            self.store.set_run_status(run_id, "finished")
            self.progress.job_finished(label, "finished (nothing to resume)")
            return JobResult(run_id, label, "finished")
        env_spec = self.catalog.envs[config.env]
        counter = {"n": 0}

        def on_episode(record: api.EpisodeRecord) -> None:
            if self.store.add_episode(run_id, record):
                counter["n"] += 1
            self.progress.episode_finished(record)

        self.store.set_run_status(run_id, "running")
        try:
            policy = self._policy(config)
            policy.reset()
            rollout = _build_rollout(
                config, env_spec, policy, self.catalog, on_episode, self.batch_size
            )
            n_init = next(
                (
                    t.n_init_states
                    for t in env_spec.tasks(config.env_options)
                    if t.name == config.task
                ),
                None,
            )
            rollout.run(episode_specs(config.task, todo, config.protocol.seed, n_init))
        except KeyboardInterrupt:
            self.store.set_run_status(run_id, "interrupted", "interrupted by the user")
            self.progress.job_finished(label, "interrupted")
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            self.store.set_run_status(run_id, "failed", error)
            self.progress.job_finished(label, f"failed: {error}")
            return JobResult(run_id, label, "failed", counter["n"], error)
        self.store.set_run_status(run_id, "finished")
        self.progress.job_finished(label, "finished")
        run = self.store.get_run(run_id) or {}
        notify_run_finished(self.catalog, run)
        return JobResult(run_id, label, "finished", counter["n"])


def _label(config: RunConfig) -> str:
    return f"{config.policy.name} × {config.suite}/{config.task}"


def _settings(
    config: RunConfig, env_spec: api.EnvSpec, policy: api.Policy, batch_size: int
) -> RolloutSettings:
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
        batch_size=batch_size,
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

    def make_env() -> Any:
        return env_spec.make(config.task, options)

    return Rollout(
        make_env,
        policy,
        _settings(config, env_spec, policy, batch_size),
        on_episode,
        adapters=adapters,
        metrics=catalog.metrics,
    )
