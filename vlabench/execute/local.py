"""Runs jobs in this process: loads each policy once, builds the env and the rollout.

The same class serves every executor: inline (the caller's process), a worker process, a Ray
actor. It reports each finished episode through a callback and never touches the store. Its
:class:`~vlabench.execute.settings.ExecutionSettings` reach the rollout (videos), the env
(``api.ARMED_OPTION``) and the policy (``api.PolicyRequest.threads``). Every policy and env
call is bracketed on the executor's :class:`~vlabench.runtime.deadlines.CallClock`, with the
run's :class:`~vlabench.runtime.deadlines.CallTimeouts` (:func:`call_timeouts`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from vlabench import api
from vlabench.catalog import Catalog
from vlabench.execute.phases import phase
from vlabench.execute.settings import ExecutionSettings
from vlabench.plan.compat import build_adapters, policy_request
from vlabench.plan.configs import RunConfig
from vlabench.runtime.adapters import AdapterPipeline
from vlabench.runtime.deadlines import Bracket, CallClock, CallTimeouts
from vlabench.runtime.rollout import EpisodeSpec, Rollout, RolloutSettings, episode_specs

SERVICE_CONNECT_S = 300.0
"""How long a worker waits for a (re)started policy service to accept its connection."""


def call_timeouts(config: RunConfig, settings: ExecutionSettings) -> CallTimeouts:
    """The run's call limits: ``--call-timeout`` over the preset's and the suite's
    ``call_timeout_s`` over the defaults (:mod:`vlabench.runtime.deadlines`)."""
    return CallTimeouts.resolve(
        settings.call_timeout_s,
        getattr(config.policy, "call_timeout_s", None),
        getattr(config, "env_call_timeout_s", None),
    )


def episode_specs_for(
    config: RunConfig, catalog: Catalog, indices: Sequence[int]
) -> list[EpisodeSpec]:
    """Episodes ``indices`` of the run: seed and init state, as every policy gets them."""
    env_spec = catalog.env(config.env)  # remote:// too, through the resolve hook
    n_init = next(
        (t.n_init_states for t in env_spec.tasks(config.env_options) if t.name == config.task),
        None,
    )
    return episode_specs(config.task, list(indices), config.protocol.seed, n_init)


class JobWorker:
    """Runs jobs in this process; each policy is loaded once and reused across jobs."""

    def __init__(
        self,
        catalog: Catalog,
        batch_size: int = 1,
        settings: ExecutionSettings | None = None,
        clock: CallClock | None = None,
    ) -> None:
        self.catalog = catalog
        self.batch_size = batch_size
        self.settings = settings or ExecutionSettings()
        self.clock = clock or CallClock()
        """Where every call is bracketed (shared with the parent in a worker process)."""
        self._policies: dict[str, api.Policy] = {}

    def _policy(self, config: RunConfig, service: str | None = None) -> api.Policy:
        request = policy_request(config, self.catalog)
        key = f"{config.policy}|{request.env}|{service}"
        if key not in self._policies:
            request = dataclasses.replace(request, threads=self.settings.torch_threads)
            with self._bracket("policy.load"), phase("policy load"):
                self._policies[key] = _load(config, self.catalog, request, service)
        return self._policies[key]

    def _bracket(self, kind: str) -> Bracket:
        return Bracket(self.clock, kind, ())

    def run(
        self,
        config: RunConfig,
        indices: Sequence[int],
        on_episode: Callable[[api.EpisodeRecord], None],
        on_start: Callable[[int], None] | None = None,
        service: str | None = None,
    ) -> None:
        """Run episodes ``indices`` of ``config``; job-level errors (policy load...) raise.

        ``on_start`` is told each episode's index as it starts (before its env is reset);
        ``service``: the address of the policy's shared service (:mod:`~.service`), if any."""
        env_spec = self.catalog.env(config.env)  # remote:// too, through the resolve hook
        self.clock.timeouts = call_timeouts(config, self.settings)
        policy = self._policy(config, service)
        with self._bracket("policy.reset"):
            policy.reset()
        rollout = _build_rollout(
            config, env_spec, policy, self.catalog, on_episode, self.batch_size, self.settings
        )
        rollout.clock = self.clock
        if on_start is not None:
            rollout.on_start = lambda spec: on_start(spec.episode_index)
        rollout.run(episode_specs_for(config, self.catalog, indices))


def _load(
    config: RunConfig, catalog: Catalog, request: api.PolicyRequest, service: str | None
) -> api.Policy:
    """The job's policy: loaded here (or in its preset's isolation worker), or a proxy of its
    shared service at ``service``."""
    if service is not None:
        from vlabench.isolation.proxies import ProxyPolicy
        from vlabench.isolation.remote import WsChannel

        return ProxyPolicy(lambda: WsChannel(service, None, SERVICE_CONNECT_S), request)
    from vlabench.isolation.proxies import policy_spec_for  # a preset may run in a worker

    return policy_spec_for(config, catalog.policy(config.policy.type)).load(request)


def rollout_settings(
    config: RunConfig,
    env_spec: api.EnvSpec,
    policy: api.Policy,
    batch_size: int,
    execution: ExecutionSettings,
) -> RolloutSettings:
    """The rollout's settings for ``config``'s protocol, env interface and policy."""
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
        record_video=execution.record_video,
        video_dir=execution.video_run_dir(config.config_hash()),
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
    execution: ExecutionSettings,
) -> Rollout:
    adapters = AdapterPipeline(build_adapters(config.adapters, catalog))
    env_features = env_spec.interface(config.env_options).observation
    options = execution.env_options(config.env_options)  # api.ARMED_OPTION: the runner's own
    options[api.REQUESTED_FEATURES_OPTION] = requested_features(env_features, policy, adapters)

    from vlabench.isolation.proxies import env_spec_for, instrument  # worker/remote envs, latencies

    make = env_spec_for(config, env_spec).make

    def make_env() -> Any:
        with phase("env build"):
            return make(config.task, options)

    make_env, on_episode = instrument(make_env, policy, on_episode)
    return Rollout(
        make_env,
        policy,
        rollout_settings(config, env_spec, policy, batch_size, execution),
        on_episode,
        adapters=adapters,
        metrics=catalog.metrics,
    )
