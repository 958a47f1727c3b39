"""Resolution: policy and suite names (registry presets, plugin types) -> :class:`RunConfig` s.

Pure: the registry and the catalog are read, never changed; names no plugin lists are answered
by the catalog's ``firstresult`` resolve hooks, and ``--env``/``-E`` arrive as a registry copy
(:meth:`~vlabench.registry.Registry.with_suite`) and ``env_overrides``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from vlabench import api
from vlabench.catalog import Catalog
from vlabench.plan.configs import EvalProtocol, PolicyChoice, RunConfig
from vlabench.plan.options import complete_options, describe_errors
from vlabench.registry import PolicyPreset, Registry, RegistryError, SuiteConfig, unknown
from vlabench.runtime.inference import InferenceConfig


def resolve_policy(name: str, registry: Registry, catalog: Catalog) -> PolicyChoice:
    """A registry preset by name, a bare policy type, or a name a plugin resolves.

    ``remote://host:port`` is resolved by the default plugin :mod:`vlabench.isolation.remote`
    (the ``vlabench_resolve_policy`` hook): the server is asked what it serves, which goes
    into the run's config, so two different policies behind one address never share a run.
    Nothing is added to the registry or the catalog.
    """
    preset = registry.policies.get(name)
    plugin: str | None = None
    if preset is None and name in catalog.policies:
        preset = PolicyPreset(type=name)
    elif preset is None:
        found = catalog.resolve_policy(name)
        if found is None:
            known = {**registry.policies, **catalog.policies}
            raise RegistryError(unknown("policy", name, known))
        preset = PolicyPreset.model_validate(found[1])
        plugin = catalog.plugin_of("policy", name)
    if catalog.find_policy(preset.type) is None:
        raise RegistryError(
            f"policy {name!r} needs policy type {preset.type!r}, which no loaded plugin provides "
            f"(types: {', '.join(sorted(catalog.policies)) or 'none'}; see `vlabench plugins`)"
        )
    plugin = plugin or catalog.plugin_of("policy", preset.type)
    if preset.plugin and preset.plugin != plugin:
        raise RegistryError(
            f"policy {name!r} asks for plugin {preset.plugin!r}, but type {preset.type!r} "
            f"comes from plugin {plugin!r}"
        )
    return PolicyChoice(
        name,
        preset.type,
        plugin,
        preset.checkpoint,
        dict(preset.options),
        preset.device,
        preset.isolation,
        preset.call_timeout_s,
        dict(preset.resources),
        preset.max_batch,
        preset.batch_wait_ms,
    )


def env_options(
    suite_name: str,
    suite: SuiteConfig,
    env: api.EnvSpec,
    registry: Registry,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(complete, given)``: the suite's env options with ``overrides`` (``-E``) over them,
    as given and validated by the env's model with its defaults (:mod:`vlabench.plan.options`).

    A bad option is a one-line :class:`RegistryError` naming the registry file and line of the
    option (or the suite), or the ``-E KEY`` flag it came from.
    """
    overrides = dict(overrides or {})
    given = {**suite.env_options, **overrides}
    if api.ARMED_OPTION in given:  # the runner's own: a registry never arms a robot
        raise RegistryError(
            f"suite {suite_name!r}: env option {api.ARMED_OPTION!r} is set by the runner only "
            "(`vlabench run --armed`), never by a suite or --env-option"
        )
    from_file = registry.suites.get(suite_name) is suite

    def where(key: str) -> str:
        if key in overrides:
            return f"-E {key}"
        head = f"suite {suite_name!r}: env_options.{key}"
        place = registry.where("suites", suite_name, "env_options", key) if from_file else None
        return f"{place}: {head}" if place else head

    try:
        return complete_options(env.options, given), given
    except ValidationError as exc:
        assert env.options is not None
        raise RegistryError(
            describe_errors(exc, env.options, env.name, given, where)
        ) from None


def perturb(
    variant: tuple[str, str, int],
    suite: SuiteConfig,
    options: Mapping[str, Any],
    env: api.EnvSpec,
    registry: Registry,
    catalog: Catalog,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """``(protocol entry, adapter steps, env options)`` of a perturbed variant of ``suite``.

    The protocol entry (axis, severity, perturbation, params) identifies the variant; an
    adapter-side perturbation is one step, first in the pair, with the suite's seed and the
    axis (seeded per episode); an env-side one returns the env options it sets over
    ``options`` (the control's, complete).
    """
    base, axis_name, severity = variant
    axis = registry.perturbations[axis_name]
    where = registry.where("perturbations", axis_name, "perturbation") or f"axis {axis_name!r}"
    spec = catalog.perturbations.get(axis.perturbation)
    if spec is None:
        known = catalog.perturbations
        raise RegistryError(f"{where}: {unknown('perturbation', axis.perturbation, known)}")
    if spec.envs and env.name not in spec.envs:
        raise RegistryError(
            f"{where}: perturbation {spec.name!r} applies to env(s) {', '.join(spec.envs)}, "
            f"not {env.name!r} (suite {base!r})"
        )
    params = dict(axis.levels[severity - 1])
    entry = {
        "axis": axis_name, "severity": severity, "perturbation": spec.name, "params": params
    }
    if spec.adapter is not None:
        step = {"type": spec.adapter, **params, "seed": suite.seed, "axis": axis_name}
        if spec.adapter not in catalog.adapters:
            raise RegistryError(f"{where}: {unknown('adapter', spec.adapter, catalog.adapters)}")
        try:
            catalog.adapters[spec.adapter].build({k: v for k, v in step.items() if k != "type"})
        except ValueError as exc:
            raise RegistryError(f"{where}: severity {severity}: {exc}") from None
        return entry, [step], {}
    assert spec.env_options is not None
    try:
        return entry, [], spec.env_options(params, options)
    except ValueError as exc:
        raise RegistryError(f"{where}: severity {severity}: {exc}") from None


def resolve_suite(
    suite_name: str,
    policy: PolicyChoice,
    registry: Registry,
    catalog: Catalog,
    *,
    episodes: int | None = None,
    max_steps: int | None = None,
    tasks: list[str] | None = None,
    inference: InferenceConfig | None = None,
    env_overrides: Mapping[str, Any] | None = None,
) -> list[RunConfig]:
    """One RunConfig per task of the suite, with CLI overrides applied.

    ``env_overrides`` (``-E KEY=VALUE``) go over the suite's ``env_options``. A name that is no
    suite but an env a plugin resolves (``remote://host:port``) is that env's bare suite.
    Nothing is added to the registry or the catalog.
    """
    variant = registry.variant(suite_name)
    if variant is not None and variant[2] == 0:  # severity 0: the control itself
        suite_name, variant = variant[0], None
    base_name = suite_name if variant is None else variant[0]
    suite = registry.suites.get(base_name)
    if suite is None and suite_name not in catalog.envs and catalog.find_env(suite_name):
        suite = SuiteConfig(env=suite_name)  # a served env as a suite
    suite = suite or registry.suite(base_name)
    env = catalog.find_env(suite.env)
    if env is None:
        raise RegistryError(
            f"suite {suite_name!r} uses env {suite.env!r}, which no loaded plugin provides "
            f"(envs: {', '.join(sorted(catalog.envs)) or 'none'}; see `vlabench plugins`)"
        )
    options, given = env_options(base_name, suite, env, registry, env_overrides)
    perturbation, steps, env_side = None, [], {}
    if variant is not None:
        perturbation, steps, env_side = perturb(variant, suite, options, env, registry, catalog)
    if env_side:
        options, given = env_options(
            base_name, suite, env, registry, {**dict(env_overrides or {}), **env_side}
        )
    available = [t.name for t in env.tasks(options)]
    chosen = tasks or suite.tasks or available
    for task in chosen:
        if task not in available:
            raise RegistryError(
                f"suite {suite_name!r}: env {suite.env!r} has no task {task!r} "
                f"(tasks: {', '.join(available[:20])}{' ...' if len(available) > 20 else ''})"
            )
    success = suite.success or env.success
    protocol = EvalProtocol(
        name=suite.protocol,
        episodes=episodes or suite.episodes,
        max_steps=max_steps or suite.max_steps or env.max_episode_steps,
        seed=suite.seed,
        success=success,
        stop_on_success=suite.stop_on_success
        if suite.stop_on_success is not None
        else success == "ever",
        settle_steps=suite.settle_steps,
        perturbation=perturbation,
    )
    adapters = steps + registry.adapter_steps([policy.name, policy.type], suite.env)
    inference = inference or InferenceConfig()
    return [
        RunConfig(
            policy=policy,
            suite=suite_name,
            env=suite.env,
            env_plugin=catalog.plugin_of("env", suite.env),
            env_options=dict(options),
            task=task,
            protocol=protocol,
            adapters=adapters,
            inference_mode=inference.mode,
            inference_options=inference.options(),
            env_isolation=suite.isolation,
            env_call_timeout_s=suite.call_timeout_s,
            env_options_given=given,
        )
        for task in chosen
    ]
