"""The whole plugin surface of vlabench: one small function per hook.

A plugin is a module (or object) registered under the entry-point group ``vlabench`` that
implements some of these functions, decorated with ``vlabench.hookimpl``. Each returns plain
objects from :mod:`vlabench.api`; heavy libraries are imported only inside ``make``/``load``.

The ``vlabench_resolve_*`` hooks are ``firstresult``: they answer names no plugin lists (such
as ``remote://host:port``, answered by the default plugin :mod:`vlabench.isolation.remote`),
without registering anything. A policy's preset dict holds ``type`` (the spec's name),
``checkpoint`` and ``options``: what identifies the policy in its runs' config hash (for a
served policy, what the server serves). Asked with a bare type name, only the spec matters.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("vlabench")


@hookspec
def vlabench_policies() -> list[Any]:
    """Return a list of ``PolicySpec``: policy types this plugin can load."""


@hookspec
def vlabench_envs() -> list[Any]:
    """Return a list of ``EnvSpec``: environments this plugin can build."""


@hookspec(firstresult=True)
def vlabench_resolve_policy(name: str) -> Any:
    """Return ``(PolicySpec, preset dict to store)`` for a name no plugin lists, or None."""


@hookspec(firstresult=True)
def vlabench_resolve_env(name: str) -> Any:
    """Return an ``EnvSpec`` for an env name no plugin lists (``remote://host:port``), or None."""


@hookspec
def vlabench_adapters() -> list[Any]:
    """Return a list of ``AdapterSpec``: adapter steps that registry.yaml pairs may use."""


@hookspec
def vlabench_perturbations() -> list[Any]:
    """Return a list of ``PerturbationSpec``: perturbations registry axes may apply to suites."""


@hookspec
def vlabench_exporters() -> list[Any]:
    """Return a list of ``ExporterSpec``: leaderboard formats beyond the built-in ones."""


@hookspec
def vlabench_recorders() -> list[Any]:
    """Return a list of ``RecorderSpec``: dataset formats ``vlabench record`` can write."""


@hookspec
def vlabench_assets() -> list[Any]:
    """Return a list of ``AssetSpec``: data files to fetch (``vlabench assets NAME``)."""


@hookspec
def vlabench_metrics() -> list[Any]:
    """Return callables ``(info_history) -> dict[str, float]`` adding per-episode metrics.

    While any is installed the runner keeps every step's info of every episode alive; an env
    that computes its own numbers should rather report them in
    ``info[vlabench.api.EPISODE_METRICS_KEY]`` (the built-in envs do), which costs nothing.
    """


@hookspec
def vlabench_run_finished(run: dict[str, Any]) -> None:
    """Observe a finished run (its stored summary as a dict); the return value is ignored."""
