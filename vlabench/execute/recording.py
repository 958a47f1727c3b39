"""Roll a policy out on a suite and keep every step, to write the episodes as a dataset.

The episodes run through the same :class:`~vlabench.runtime.rollout.Rollout` as ``vlabench
run`` (seeds, init states, settle steps, chunks, adapters), with the env wrapped so that each
step's observation (before the step) and the action the env received are kept. Settle steps
are not recorded. A plugin's :class:`vlabench.api.RecorderSpec` writes the dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vlabench import api
from vlabench.catalog import Catalog
from vlabench.execute.local import rollout_settings
from vlabench.execute.settings import ExecutionSettings
from vlabench.plan.compat import build_adapters, policy_request
from vlabench.plan.configs import RunConfig
from vlabench.runtime.adapters import AdapterPipeline
from vlabench.runtime.rollout import Rollout, episode_specs


def _copy(obs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v for k, v in obs.items()}


class RecordingEnv:
    """Wraps an env: keeps ``{observation..., "action": ...}`` for each step after settling."""

    def __init__(self, env: Any, settle_steps: int, task: str) -> None:
        self.env, self.settle_steps, self.task = env, settle_steps, task
        self.frames: list[dict[str, Any]] = []
        self._obs: dict[str, Any] = {}
        self._skip = 0

    def reset(self, *args: Any, **kwargs: Any) -> Any:
        obs, info = self.env.reset(*args, **kwargs)
        self.frames, self._obs, self._skip = [], _copy(obs), self.settle_steps
        return obs, info

    def step(self, action: Any) -> Any:
        out = self.env.step(action)
        if self._skip:
            self._skip -= 1
        else:
            frame = dict(self._obs)
            frame.setdefault("task", self.task)
            frame["action"] = np.asarray(action, np.float32).reshape(-1)
            self.frames.append(frame)
        self._obs = _copy(out[0])
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)


@dataclass
class Recording:
    """What a recording kept: frames per episode and the outcome of every episode."""

    interface: api.EnvInterface
    episodes: list[list[dict[str, Any]]] = field(default_factory=list)
    records: list[api.EpisodeRecord] = field(default_factory=list)


def record_run(
    config: RunConfig,
    catalog: Catalog,
    recording: Recording | None = None,
    *,
    only_success: bool = False,
    on_episode: Callable[[api.EpisodeRecord], None] | None = None,
) -> Recording:
    """Run every episode of ``config`` (one env, batch 1) and keep its frames."""
    from vlabench.isolation.proxies import policy_spec_for

    env_spec = catalog.env(config.env)
    iface = env_spec.interface(config.env_options)
    recording = recording or Recording(iface)
    policy = policy_spec_for(config, catalog.policy(config.policy.type)).load(
        policy_request(config, catalog)
    )
    policy.reset()
    options = dict(config.env_options)
    options[api.REQUESTED_FEATURES_OPTION] = [f.name for f in iface.observation]
    wrapped: list[RecordingEnv] = []

    def make_env() -> Any:
        env = RecordingEnv(
            env_spec.make(config.task, options), config.protocol.settle_steps, config.task
        )
        wrapped.append(env)
        return env

    def finished(record: api.EpisodeRecord) -> None:
        recording.records.append(record)
        if wrapped and record.failure_reason is None and (record.success or not only_success):
            recording.episodes.append(wrapped[-1].frames)
        if on_episode is not None:
            on_episode(record)

    settings = rollout_settings(config, env_spec, policy, 1, ExecutionSettings())
    adapters = AdapterPipeline(build_adapters(config.adapters, catalog))
    rollout = Rollout(make_env, policy, settings, finished, adapters=adapters)
    n_init = next(
        (t.n_init_states for t in env_spec.tasks(config.env_options) if t.name == config.task),
        None,
    )
    indices = range(config.protocol.episodes)
    try:
        rollout.run(episode_specs(config.task, indices, config.protocol.seed, n_init))
    finally:
        for env in wrapped:
            close = getattr(env.env, "close", None)
            if callable(close):
                close()
    return recording


def write(
    recording: Recording,
    catalog: Catalog,
    out: str,
    options: Mapping[str, Any],
    recorder: str = "lerobot",
) -> str:
    """Write ``recording`` with the plugin's recorder ``recorder``; returns its directory."""
    spec = catalog.recorders.get(recorder)
    if spec is None:
        known = ", ".join(sorted(catalog.recorders)) or "none installed"
        raise ValueError(f"no dataset recorder {recorder!r} (known: {known})")
    if not recording.episodes:
        failed = next((r.failure_reason for r in recording.records if r.failure_reason), None)
        why = f"an episode failed: {failed.splitlines()[0]}" if failed else "none succeeded?"
        raise ValueError(f"no episode to write ({why})")
    return spec.write(out, recording.episodes, recording.interface, options)


def record_configs(
    configs: Sequence[RunConfig],
    catalog: Catalog,
    *,
    only_success: bool = False,
    on_episode: Callable[[api.EpisodeRecord], None] | None = None,
) -> Recording:
    """Record every run of ``configs`` (the tasks of one suite) into one recording."""
    recording: Recording | None = None
    for config in configs:
        recording = record_run(
            config, catalog, recording, only_success=only_success, on_episode=on_episode
        )
    if recording is None:
        raise ValueError("nothing to record")
    return recording
