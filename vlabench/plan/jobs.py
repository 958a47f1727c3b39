"""Plan a matrix: policies x suites -> pairs (each checked once) -> jobs of episodes to run.

A run is one (policy, suite, task) under one protocol, keyed by its config hash. A job is a
block of the episodes its run still lacks (:func:`episodes_to_run`), so a resumed matrix runs
exactly the missing ones. Nothing here runs an episode or writes the store.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vlabench.catalog import Catalog
from vlabench.plan.compat import Compatibility, check_pair, unavailable
from vlabench.plan.configs import PolicyChoice, RunConfig
from vlabench.plan.resolve import resolve_policy, resolve_suite
from vlabench.registry import Registry
from vlabench.runtime.inference import InferenceConfig


@dataclass
class Pair:
    """One cell of the matrix: a policy on a suite, its runs (one config per task) and
    whether it can run."""

    policy: PolicyChoice
    suite: str
    runs: list[RunConfig]
    compatibility: Compatibility | None = None
    error: str | None = None
    """Set when the pair cannot even be checked (missing stack, bad checkpoint, ...)."""
    run_errors: dict[int, str] = field(default_factory=dict)
    """Runs (by position in ``runs``) that cannot run though the pair can: their task's
    preflight failed (e.g. its assets are missing); each names its own task."""

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
    runner_options: Mapping[str, Any] | None = None,
    env_overrides: Mapping[str, Any] | None = None,
) -> list[Pair]:
    """Expand policies x suites into pairs of run configs and check each pair once.

    ``inference`` (default ``sync``) applies to every pair (see :mod:`vlabench.inference`).
    ``runner_options``: env options the runner will set (``api.ARMED_OPTION`` of an armed
    run), seen by the env's preflight; they are not part of any run config.
    ``env_overrides`` (``-E KEY=VALUE``) go over every suite's ``env_options``.
    """
    pairs = []
    for name in policies:
        choice = resolve_policy(name, registry, catalog)
        for suite in suites:
            configs = resolve_suite(
                suite,
                choice,
                registry,
                catalog,
                episodes=episodes,
                max_steps=max_steps,
                tasks=tasks,
                inference=inference,
                env_overrides=env_overrides,
            )
            pair = Pair(choice, suite, configs)
            errors = [unavailable(config, catalog, runner_options) for config in configs]
            if len(set(errors)) == 1:  # the same for every task: the pair's (a missing stack)
                pair.error = errors[0]
            else:  # a task's own preflight: that run fails, the others run
                pair.run_errors = {i: e for i, e in enumerate(errors) if e is not None}
            if pair.error is None:
                try:
                    pair.compatibility = check_pair(configs[0], catalog)
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
        return self.config.label

    @property
    def policy_key(self) -> str:
        """Jobs with equal keys can share one loaded policy."""
        return f"{self.config.policy}|{self.config.env}|{self.config.env_options}"

    @property
    def wants_gpu(self) -> bool:
        return self.config.policy.device.startswith("cuda")

    @property
    def resources(self) -> dict[str, float]:
        """What one worker of this job needs (the policy preset's ``resources``)."""
        return dict(getattr(self.config.policy, "resources", None) or {})


def stored_hash(store: Any, config: RunConfig) -> str:
    """The hash the store knows ``config``'s run by: its config hash, or the legacy hash of a
    run stored before env options were typed (:meth:`RunConfig.legacy_config_hash`), which
    then keeps being used; the config hash when neither is stored."""
    hashes = config.config_hashes()
    return next((h for h in hashes if store.find_run(h) is not None), hashes[0])


def episodes_to_run(config: RunConfig, done: Iterable[int]) -> list[int]:
    """Indices of the run's episodes not in ``done`` (those already stored), in order."""
    stored = set(done)
    return [i for i in range(config.protocol.episodes) if i not in stored]


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
        plan_ = PairPlan(pair, len(pair.runs))
        plans.append(plan_)
        if not pair.runnable:
            continue
        for i, config in enumerate(pair.runs):
            if i in pair.run_errors:  # cannot run: print_plan says why
                continue
            run_id = store.find_run(stored_hash(store, config)) if store is not None else None
            done = store.finished_episode_indices(run_id) if run_id is not None else set()
            todo = episodes_to_run(config, done)
            plan_.stored += config.protocol.episodes - len(todo)
            plan_.episodes += len(todo)
            lacking.append((plan_, todo))
    size = block or block_size(sum(len(todo) for _, todo in lacking), parallelism)
    for plan_, todo in lacking:
        plan_.jobs += len(split_blocks(todo, size))
    return plans
