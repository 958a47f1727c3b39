"""Plugin discovery: entry points of the group ``vlabench``, each loaded in isolation.

Built-in plugins are registered through the very same entry-point group as third-party ones.
One broken plugin never stops the others: its import error (or a hook that raises) is
recorded and shown by ``vlabench plugins``.

Environment variables:
  ``VLABENCH_PLUGINS``         comma-separated allow-list of plugin names to load
  ``VLABENCH_DISABLE_PLUGINS`` comma-separated block-list (also ``--disable-plugin``)
  ``VLABENCH_TRACE_PLUGINS``   set to 1 to print every hook call
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pluggy

from vlabench import api
from vlabench.api import hookspecs

GROUP = "vlabench"


@dataclass
class PluginInfo:
    """What ``vlabench plugins`` shows for one entry point."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    status: str = "loaded"  # loaded | failed | blocked
    error: str | None = None
    hooks: list[str] = field(default_factory=list)


@dataclass
class Catalog:
    """Everything the loaded plugins offer, keyed by name, with problems recorded."""

    plugins: list[PluginInfo]
    policies: dict[str, api.PolicySpec]
    envs: dict[str, api.EnvSpec]
    adapters: dict[str, api.AdapterSpec]
    exporters: dict[str, api.ExporterSpec]
    metrics: list[Any]
    owner: dict[tuple[str, str], str]
    """(kind, name) -> plugin name that provided it."""
    problems: list[str]
    manager: pluggy.PluginManager
    assets: dict[str, api.AssetSpec] = field(default_factory=dict)

    def plugin_of(self, kind: str, name: str) -> str:
        return self.owner.get((kind, name), "?")

    def plugin_version(self, plugin: str) -> str | None:
        return next((p.version for p in self.plugins if p.name == plugin), None)


def _split_env(var: str) -> set[str]:
    return {p.strip() for p in os.environ.get(var, "").split(",") if p.strip()}


def missing_requirements(requires: Iterable[str]) -> list[str]:
    """Import names among ``requires`` that cannot be found (nothing is imported)."""
    missing = []
    for name in requires:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError):
            missing.append(name)
    return missing


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    eps = importlib.metadata.entry_points(group=GROUP)
    seen: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in eps:  # an editable and a regular install can both list one name; keep the first
        seen.setdefault(ep.name, ep)
    return sorted(seen.values(), key=lambda ep: ep.name)


def build_manager(
    allow: set[str] | None = None, block: set[str] | None = None
) -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    """A fresh plugin manager with every permitted entry point loaded in its own try."""
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    allow = allow if allow is not None else _split_env("VLABENCH_PLUGINS")
    block = (block or set()) | _split_env("VLABENCH_DISABLE_PLUGINS")
    infos: list[PluginInfo] = []
    for ep in _entry_points():
        dist = ep.dist.name if ep.dist else None
        version = ep.dist.version if ep.dist else None
        info = PluginInfo(ep.name, ep.value, dist, version)
        infos.append(info)
        if ep.name in block or (allow and ep.name not in allow):
            info.status = "blocked"
            pm.set_blocked(ep.name)
            continue
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:  # a broken plugin is recorded, never fatal
            info.status = "failed"
            info.error = f"{type(exc).__name__}: {exc}"
            continue
        info.hooks = sorted(h.name for h in pm.get_hookcallers(module) or [])
    return pm, infos


def _collect(pm: pluggy.PluginManager, hook: str, kind: str, catalog: Catalog) -> dict[str, Any]:
    """Call each implementation of ``hook`` separately so one failure stays with its plugin."""
    found: dict[str, Any] = {}
    infos = {info.name: info for info in catalog.plugins}
    trace = bool(os.environ.get("VLABENCH_TRACE_PLUGINS"))
    for impl in reversed(getattr(pm.hook, hook).get_hookimpls()):  # registration order
        info = infos.get(impl.plugin_name)
        if trace:
            print(f"vlabench: calling {hook} of plugin {impl.plugin_name}", file=sys.stderr)
        try:
            items = impl.function() or []
        except Exception as exc:
            error = f"hook {hook} raised {type(exc).__name__}: {exc}"
            if info is not None:
                info.status, info.error = "failed", error
            catalog.problems.append(f"plugin {impl.plugin_name}: {error}")
            continue
        for item in items:
            name = getattr(item, "name", None)
            if name is None:  # metrics are bare callables
                catalog.metrics.append(item)
                continue
            if name in found:
                first = catalog.owner[(kind, name)]
                catalog.problems.append(
                    f"{kind} {name!r} is provided by plugins {first!r} and "
                    f"{impl.plugin_name!r}; keeping {first!r}"
                )
                continue
            found[name] = item
            catalog.owner[(kind, name)] = impl.plugin_name
    return found


def load_catalog(allow: set[str] | None = None, block: set[str] | None = None) -> Catalog:
    """Load all permitted plugins and gather their specs (uncached; see :func:`catalog`)."""
    pm, infos = build_manager(allow, block)
    cat = Catalog(infos, {}, {}, {}, {}, [], {}, [], pm)
    cat.policies = _collect(pm, "vlabench_policies", "policy", cat)
    cat.envs = _collect(pm, "vlabench_envs", "env", cat)
    cat.adapters = _collect(pm, "vlabench_adapters", "adapter", cat)
    cat.exporters = _collect(pm, "vlabench_exporters", "exporter", cat)
    cat.assets = _collect(pm, "vlabench_assets", "assets", cat)
    _collect(pm, "vlabench_metrics", "metric", cat)
    return cat


@cache
def catalog(allow: frozenset[str] | None = None, block: frozenset[str] = frozenset()) -> Catalog:
    """The process-wide catalog, built on first use."""
    return load_catalog(set(allow) if allow is not None else None, set(block))


def notify_run_finished(cat: Catalog, run: dict[str, Any]) -> None:
    """Tell observers a run finished; an observer that raises is reported, not fatal."""
    for info in cat.plugins:
        plugin = cat.manager.get_plugin(info.name) if info.status == "loaded" else None
        impl = getattr(plugin, "vlabench_run_finished", None)
        if impl is None:
            continue
        try:
            impl(run=run)
        except Exception:
            print(
                f"vlabench: plugin {info.name} failed in vlabench_run_finished:\n"
                + traceback.format_exc(limit=3),
                file=sys.stderr,
            )
