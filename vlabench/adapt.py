"""Compatibility of a (policy, env) pair, and the adapter pipeline that may bridge it.

Adapters are small composable steps (like gymnasium wrappers) provided by plugins through the
``vlabench_adapters`` hook and declared per pair in registry.yaml. Observation adapters run in
declaration order (env -> policy); action adapters run in reverse order (policy -> env).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vlabench.api import (
    ANY_SPACE,
    TASK_KEY,
    Adapter,
    Batch,
    EnvInterface,
    Feature,
    PolicyInterface,
)
from vlabench.plugins import Catalog
from vlabench.registry import RegistryError, _unknown


@dataclass(frozen=True)
class Mismatch:
    """One reason a pair cannot run: what differs, and both sides."""

    what: str
    policy_side: str
    env_side: str

    def __str__(self) -> str:
        return f"{self.what}: policy {self.policy_side}, env {self.env_side}"


@dataclass
class Compatibility:
    """Result of :func:`check`: compatible when there are no mismatches."""

    mismatches: list[Mismatch] = field(default_factory=list)
    adapters: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def reason(self) -> str:
        return "; ".join(str(m) for m in self.mismatches)


def build_adapters(steps: Sequence[Mapping[str, Any]], catalog: Catalog) -> list[Adapter]:
    """Instantiate the adapter steps declared for a pair."""
    adapters = []
    for step in steps:
        params = {k: v for k, v in step.items() if k != "type"}
        kind = step["type"]
        if kind not in catalog.adapters:
            raise RegistryError(_unknown("adapter", kind, catalog.adapters))
        try:
            adapters.append(catalog.adapters[kind].build(params))
        except (TypeError, ValueError, KeyError) as exc:
            raise RegistryError(f"adapter {kind!r} with {params!r}: {exc}") from exc
    return adapters


def _resolve_action(policy_action: Feature, env_action: Feature) -> Feature:
    """A policy action of 'any' space adopts the env's action feature."""
    if policy_action.space == ANY_SPACE or policy_action.shape is None:
        return env_action
    return policy_action


def _outside(inner: Feature, outer: Feature) -> bool:
    """True when inner's declared bounds exceed outer's."""
    if None in (inner.low, inner.high, outer.low, outer.high):
        return False
    lo_in, hi_in = np.asarray(inner.low, float), np.asarray(inner.high, float)
    lo_out, hi_out = np.asarray(outer.low, float), np.asarray(outer.high, float)
    if lo_in.shape != lo_out.shape and lo_in.size != 1 and lo_out.size != 1:
        return False
    return bool(np.any(lo_in < lo_out - 1e-6) or np.any(hi_in > hi_out + 1e-6))


def _bounds(f: Feature) -> str:
    return "unbounded" if f.low is None else f"[{list(f.low)}, {list(f.high or ())}]"


def _check_input(want: Feature, env_features: dict[str, Feature]) -> list[Mismatch]:
    if want.kind == "language":
        if TASK_KEY in env_features:
            return []
        return [Mismatch("language instruction", f"reads '{TASK_KEY}'", "provides none")]
    have = env_features.get(want.name)
    if have is None:
        kind = "camera" if want.is_image else want.kind
        offered = sorted(n for n, f in env_features.items() if f.kind == want.kind) or ["none"]
        return [
            Mismatch(
                f"missing {kind} {want.name}",
                f"reads {want.describe()}",
                f"has {', '.join(offered)}",
            )
        ]
    found = []
    if want.shape is not None and have.shape is not None and tuple(want.shape) != tuple(have.shape):
        found.append(Mismatch(f"{want.name} shape", str(tuple(want.shape)), str(tuple(have.shape))))
    if (
        want.space
        and have.space
        and ANY_SPACE not in (want.space, have.space)
        and want.space != have.space
    ):
        found.append(Mismatch(f"{want.name} space", want.space, have.space))
    return found


def check(
    policy: PolicyInterface, env: EnvInterface, adapters: Sequence[Adapter] = ()
) -> Compatibility:
    """List every mismatch between what the policy reads/writes and what the env offers."""
    env_obs: tuple[Feature, ...] = env.observation
    for adapter in adapters:
        env_obs = adapter.observation_features(env_obs)
    env_features = {f.name: f for f in env_obs}
    result = Compatibility(adapters=[type(a).__name__ for a in adapters])
    for want in policy.inputs:
        result.mismatches += _check_input(want, env_features)

    action = _resolve_action(policy.action, env.action)
    for adapter in reversed(adapters):
        action = adapter.action_feature(action)
    target = env.action
    if action.shape is not None and target.shape is not None and action.shape != target.shape:
        result.mismatches.append(
            Mismatch("action dimension", str(tuple(action.shape)), str(tuple(target.shape)))
        )
    if action.space and target.space and action.space != target.space:
        result.mismatches.append(Mismatch("action space", action.space, target.space))
    elif _outside(action, target):
        result.mismatches.append(Mismatch("action range", _bounds(action), _bounds(target)))
    return result


class AdapterPipeline:
    """Applies a pair's adapters to batches (env -> policy) and actions (policy -> env)."""

    def __init__(self, adapters: Sequence[Adapter]) -> None:
        self.adapters = list(adapters)

    def observation_features(self, features: tuple[Feature, ...]) -> tuple[Feature, ...]:
        """The features the policy sees when the env offers ``features``."""
        for adapter in self.adapters:
            features = adapter.observation_features(features)
        return features

    def observation(self, batch: Batch) -> Batch:
        for adapter in self.adapters:
            batch = adapter.observation(batch)
        return batch

    def action(self, actions: np.ndarray) -> np.ndarray:
        for adapter in reversed(self.adapters):
            actions = adapter.action(actions)
        return actions
