"""What ``vlabench serve policy PRESET --protocol openpi|vlaeval`` serves: the preset, loaded
against a suite's env interface, with the convention its clients speak."""

from __future__ import annotations

from typing import Any

from vlabench import api
from vlabench.catalog import Catalog
from vlabench.isolation.foreign.convention import BUILT_IN, Convention
from vlabench.isolation.foreign.servers import ServedModel
from vlabench.isolation.worker import plain
from vlabench.registry import Registry, RegistryError


def convention_named(name: str | None, registry: Registry) -> Convention:
    """A built-in convention, or the convention of an ``openpi``/``vlaeval`` preset; None:
    the identity (every feature under its own name)."""
    if not name:
        return Convention()
    if name in BUILT_IN:
        return BUILT_IN[name]
    preset = registry.policies.get(name)
    if preset is not None and preset.type in ("openpi", "vlaeval"):
        return Convention.from_options(dict(preset.options), f"policy preset {name!r}")
    known = sorted({*BUILT_IN, *(n for n, p in registry.policies.items()
                                  if p.type in ("openpi", "vlaeval"))})
    raise RegistryError(f"unknown convention {name!r} (known: {', '.join(known)})")


def env_interface(suite_name: str, registry: Registry, catalog: Catalog) -> api.EnvInterface:
    """The env interface of a suite, with its options (no simulator is built)."""
    from vlabench.plan.resolve import env_options

    suite = registry.suite(suite_name)
    env = catalog.find_env(suite.env)
    if env is None:
        raise RegistryError(f"suite {suite_name!r} uses env {suite.env!r}, which no loaded "
                            "plugin provides (see `vlabench plugins`)")
    options, _ = env_options(suite_name, suite, env, registry)
    return env.interface(options)


def load_served(preset: str, suite: str, convention: str | None, registry: Registry,
                catalog: Catalog) -> ServedModel:
    """Load ``preset`` for ``suite``'s env; the policy reads what the convention maps."""
    from vlabench.isolation.proxies import policy_spec_for
    from vlabench.plan.resolve import resolve_policy

    choice = resolve_policy(preset, registry, catalog)
    env = env_interface(suite, registry, catalog)
    spec = policy_spec_for(choice, catalog.policy(choice.type))
    request = api.PolicyRequest(type=choice.type, checkpoint=choice.checkpoint,
                                options=choice.options, env=env, device=choice.device)
    policy = spec.load(request)
    policy.reset()
    conv = convention_named(convention, registry).for_env(env, policy.interface.inputs)
    served: dict[str, Any] = {"name": choice.name, "type": choice.type,
                              "plugin": choice.plugin, "checkpoint": choice.checkpoint,
                              "options": plain(choice.options), "suite": suite}
    return ServedModel(policy, conv, served)
