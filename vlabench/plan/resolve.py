"""Resolution: policy and suite names (registry presets, plugin types) -> :class:`RunConfig` s."""

from __future__ import annotations

from vlabench.catalog import Catalog
from vlabench.plan.configs import EvalProtocol, PolicyChoice, RunConfig
from vlabench.registry import PolicyPreset, Registry, RegistryError, SuiteConfig, unknown
from vlabench.runtime.inference import InferenceConfig


def resolve_policy(name: str, registry: Registry, catalog: Catalog) -> PolicyChoice:
    """A registry preset by name, a bare policy type, or ``remote://host:port``."""
    if name.startswith(REMOTE_SCHEME) and name not in registry.policies:
        return _remote_policy(name, catalog)
    preset = registry.policies.get(name)
    if preset is None:
        if name in catalog.policies:
            preset = PolicyPreset(type=name)
        else:
            known = {**registry.policies, **catalog.policies}
            raise RegistryError(unknown("policy", name, known))
    if preset.type not in catalog.policies:
        raise RegistryError(
            f"policy {name!r} needs policy type {preset.type!r}, which no loaded plugin provides "
            f"(types: {', '.join(sorted(catalog.policies)) or 'none'}; see `vlabench plugins`)"
        )
    plugin = catalog.plugin_of("policy", preset.type)
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
    )


REMOTE_SCHEME = "remote://"


def _add_remote_policy_type(catalog: Catalog) -> None:
    from vlabench.isolation.remote import remote_policy_spec

    if "remote" not in catalog.policies:
        catalog.policies["remote"] = remote_policy_spec()
        catalog.owner[("policy", "remote")] = "vlabench"


def _remote_policy(name: str, catalog: Catalog) -> PolicyChoice:
    """``remote://host:port``: the core's ``remote`` policy type, served by `vlabench serve`.

    The server is asked what it serves (preset, type, checkpoint, options): that goes into
    the run's config, so two different policies behind one address never share a run.
    """
    from vlabench.isolation.remote import served_policy

    try:
        served = served_policy(name)
    except (ValueError, ConnectionError, PermissionError) as exc:
        raise RegistryError(f"policy {name!r}: {exc}") from None
    _add_remote_policy_type(catalog)
    return PolicyChoice(
        name,
        "remote",
        catalog.plugin_of("policy", "remote"),
        served.get("checkpoint"),
        {"url": name, "served": served},
    )


def add_remote_specs(config: RunConfig, catalog: Catalog) -> None:
    """Make the remote policy type / env a config names known to ``catalog`` (any process)."""
    if config.policy.type == "remote":
        _add_remote_policy_type(catalog)
    _remote_env(config.env, catalog)


def _remote_env(env: str, catalog: Catalog) -> None:
    """Make ``remote://host:port`` (an env served by `vlabench serve env`) known to the catalog."""
    if env in catalog.envs or not env.startswith(REMOTE_SCHEME):
        return
    from vlabench.isolation.remote import remote_env_spec

    try:
        catalog.envs[env] = remote_env_spec(env)
    except (ValueError, ConnectionError, PermissionError) as exc:
        raise RegistryError(f"env {env!r}: {exc}") from None
    catalog.owner[("env", env)] = "vlabench"


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
) -> list[RunConfig]:
    """One RunConfig per task of the suite, with CLI overrides applied."""
    if suite_name.startswith(REMOTE_SCHEME) and suite_name not in registry.suites:
        registry.suites[suite_name] = SuiteConfig(env=suite_name)  # a served env as a suite
    suite = registry.suite(suite_name)
    _remote_env(suite.env, catalog)
    if suite.env not in catalog.envs:
        raise RegistryError(
            f"suite {suite_name!r} uses env {suite.env!r}, which no loaded plugin provides "
            f"(envs: {', '.join(sorted(catalog.envs)) or 'none'}; see `vlabench plugins`)"
        )
    env = catalog.envs[suite.env]
    available = [t.name for t in env.tasks(suite.env_options)]
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
    )
    adapters = registry.adapter_steps([policy.name, policy.type], suite.env)
    inference = inference or InferenceConfig()
    return [
        RunConfig(
            policy=policy,
            suite=suite_name,
            env=suite.env,
            env_plugin=catalog.plugin_of("env", suite.env),
            env_options=dict(suite.env_options),
            task=task,
            protocol=protocol,
            adapters=adapters,
            inference_mode=inference.mode,
            inference_options=inference.options(),
            env_isolation=suite.isolation,
        )
        for task in chosen
    ]
