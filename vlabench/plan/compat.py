"""Is a (policy, env) pair compatible? Every mismatch named, through the pair's adapters.

Adapters are small composable steps provided by plugins through the ``vlabench_adapters`` hook
and declared per pair in registry.yaml; :func:`build_adapters` builds them, :func:`check`
compares the policy's features with the env's as the adapters transform them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vlabench import api
from vlabench.api import (
    ANY_SPACE,
    TASK_KEY,
    Adapter,
    EnvInterface,
    Feature,
    PolicyInterface,
)
from vlabench.catalog import Catalog, missing_requirements
from vlabench.plan.configs import RunConfig
from vlabench.registry import RegistryError, unknown


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
            raise RegistryError(unknown("adapter", kind, catalog.adapters))
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


def policy_request(config: RunConfig, catalog: Catalog) -> api.PolicyRequest:
    env = catalog.env(config.env)
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
    described = catalog.policy(config.policy.type).describe(request)
    if not isinstance(described, PolicyInterface):
        plugin = catalog.plugin_of("policy", config.policy.type)
        raise RegistryError(
            f"plugin {plugin}: policy {config.policy.type!r} describe returned "
            f"a {type(described).__name__}, expected api.PolicyInterface"
        )
    adapters = build_adapters(config.adapters, catalog)
    return check(described, request.env, adapters)


def unavailable(
    config: RunConfig, catalog: Catalog, runner_options: Mapping[str, Any] | None = None
) -> str | None:
    """Why the job cannot run at all (missing stack, or its env's preflight), else None.

    ``runner_options``: the env options the runner sets for this execution (e.g.
    ``api.ARMED_OPTION``), given to the env's preflight over the config's own; never hashed."""
    for kind, spec in (
        ("policy", catalog.policy(config.policy.type)),
        ("env", catalog.env(config.env)),
    ):
        missing = missing_requirements(spec.requires)
        if missing:
            hint = f"; install with: {spec.install_hint}" if spec.install_hint else ""
            return f"{kind} {spec.name!r} is unavailable: missing {', '.join(missing)}{hint}"
    inference = config.inference()
    env_spec = catalog.env(config.env)
    if (
        inference.mode != "sync"
        and inference.hold == "noop"
        and env_spec.interface(config.env_options).noop_action is None
    ):
        return f"inference hold=noop: env {config.env!r} declares no noop action"
    preflight = env_spec.preflight
    if preflight is None:
        return None
    options = {k: v for k, v in config.env_options.items() if k != api.ARMED_OPTION}
    options.update(runner_options or {})
    try:
        reason = preflight(config.task, options)
    except Exception as exc:  # a broken check must not take the whole matrix down
        return f"env {config.env!r} preflight raised {type(exc).__name__}: {exc}"
    return None if reason is None else str(reason)
