"""Plugin discovery: the default plugins and the entry points of the group ``vlabench``.

The core's own plugins (:data:`DEFAULT_PLUGINS`: ``remote://`` addresses, the built-in export
formats) are registered by module name through the same manager as the entry points, and
answer before them (a plugin may still override with ``tryfirst``). Built-in envs and policies
are entry points like third-party ones. One broken plugin never stops the others: whatever its
import raises (an error, ``sys.exit()``, even ``KeyboardInterrupt``), a hook it implements that
no hookspec declares (``unknown hook vlabench_policy; did you mean vlabench_policies?``), or a
hook of it that raises is recorded, the plugin is shown ``failed`` by ``vlabench plugins`` and
the other plugins are used as if it were not installed.

A real Ctrl-C (or SIGTERM/SIGHUP, where Python handles them) arriving while a plugin imports or
answers a hook still stops the program: the signal is watched during those calls, and what it
raised passes through. Only what the plugin's own code raised is isolated.

Names no plugin lists (``remote://host:port``) are answered by the ``firstresult`` hooks
``vlabench_resolve_policy``/``vlabench_resolve_env`` through :meth:`Catalog.policy` and
:meth:`Catalog.env`; the answers are cached beside the catalog, whose dicts of plugin-provided
specs are never changed after loading.

Environment variables:
  ``VLABENCH_PLUGINS``         comma-separated allow-list of entry points to load (default
                               plugins are always loaded)
  ``VLABENCH_DISABLE_PLUGINS`` comma-separated block-list (also ``--disable-plugin``; default
                               plugins by module name)
  ``VLABENCH_TRACE_PLUGINS``   set to 1 to print every hook call (pluggy's call monitoring)
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pluggy

import vlabench
from vlabench import api
from vlabench.api import hookspecs

GROUP = "vlabench"
DEFAULT_PLUGINS = (
    "vlabench.isolation.remote",
    "vlabench.isolation.foreign",
    "vlabench.report.exporters",
)
"""The core's own plugins, registered (and shown by ``vlabench plugins``) under these names."""


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
    perturbations: dict[str, api.PerturbationSpec] = field(default_factory=dict)
    recorders: dict[str, api.RecorderSpec] = field(default_factory=dict)

    resolved: dict[tuple[str, str], tuple[Any, str | None]] = field(default_factory=dict)
    """Answers of the ``vlabench_resolve_*`` hooks by (kind, name), with the answering plugin:
    a cache on the side (``policies``/``envs`` stay what the plugins listed)."""

    def plugin_of(self, kind: str, name: str) -> str:
        if (kind, name) in self.owner:
            return self.owner[(kind, name)]
        return self.resolved.get((kind, name), (None, None))[1] or "?"

    def plugin_version(self, plugin: str) -> str | None:
        return next((p.version for p in self.plugins if p.name == plugin), None)

    def resolve_policy(self, name: str) -> tuple[api.PolicySpec, dict[str, Any]] | None:
        """``(spec, preset)`` for a policy name no plugin lists (``vlabench_resolve_policy``).

        Asked anew each time: the preset says what a server serves now."""
        return self._resolve("policy", "vlabench_resolve_policy", name, fresh=True)

    def find_policy(self, name: str) -> api.PolicySpec | None:
        """The policy type ``name``: listed by a plugin, or answered by a resolve hook."""
        if name in self.policies:
            return self.policies[name]
        found = self._resolve("policy", "vlabench_resolve_policy", name)
        return None if found is None else found[0]

    def find_env(self, name: str) -> api.EnvSpec | None:
        """The env ``name``: listed by a plugin, or answered by ``vlabench_resolve_env``."""
        if name in self.envs:
            return self.envs[name]
        return self._resolve("env", "vlabench_resolve_env", name)

    def policy(self, name: str) -> api.PolicySpec:
        """Like :meth:`find_policy`; an unknown type is a :class:`~vlabench.api.RegistryError`."""
        spec = self.find_policy(name)
        if spec is None:
            raise api.RegistryError(_missing("policy type", name, self.policies))
        return spec

    def env(self, name: str) -> api.EnvSpec:
        """Like :meth:`find_env`; an unknown env is a :class:`~vlabench.api.RegistryError`."""
        spec = self.find_env(name)
        if spec is None:
            raise api.RegistryError(_missing("env", name, self.envs))
        return spec

    def _resolve(self, kind: str, hook: str, name: str, fresh: bool = False) -> Any:
        if fresh or (kind, name) not in self.resolved:
            self.resolved[(kind, name)] = _first(self.manager, hook, name=name)
        return self.resolved[(kind, name)][0]


def _missing(kind: str, name: str, known: dict[str, Any]) -> str:
    listing = ", ".join(sorted(known)) or "none"
    return f"no loaded plugin provides {kind} {name!r} (known: {listing}; see `vlabench plugins`)"


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
    """A fresh plugin manager with every permitted plugin loaded in its own try.

    Entry points are registered first and the default plugins last, so that pluggy calls the
    defaults first (a default export format wins over a plugin's of the same name).
    """
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    if os.environ.get("VLABENCH_TRACE_PLUGINS"):
        pm.add_hookcall_monitoring(_trace_before, lambda outcome, hook, impls, kwargs: None)
    allow = allow if allow is not None else _split_env("VLABENCH_PLUGINS")
    block = (block or set()) | _split_env("VLABENCH_DISABLE_PLUGINS")
    infos: list[PluginInfo] = []
    for ep in _entry_points():
        if ep.value in DEFAULT_PLUGINS:  # an install made before it became a default plugin
            continue
        dist = ep.dist.name if ep.dist else None
        version = ep.dist.version if ep.dist else None
        info = PluginInfo(ep.name, ep.value, dist, version)
        infos.append(info)
        if ep.name in block or (allow and ep.name not in allow):
            info.status = "blocked"
            pm.set_blocked(ep.name)
            continue
        _register(pm, info, ep.load)
    defaults = [PluginInfo(m, m, "vlabench", vlabench.__version__) for m in DEFAULT_PLUGINS]
    for info in defaults:
        if info.name in block:
            info.status = "blocked"
            pm.set_blocked(info.name)
            continue
        _register(pm, info, lambda name=info.module: importlib.import_module(name))
    pm.check_pending()  # never raises: a plugin with an unknown hook was failed and removed
    return pm, defaults + infos


def _register(pm: pluggy.PluginManager, info: PluginInfo, load: Any) -> None:
    with _SignalWatch() as watch:
        try:
            module = load()
            pm.register(module, name=info.name)
        except BaseException as exc:  # a broken plugin is recorded, never fatal
            if watch.fired:  # the user's Ctrl-C (or a kill) during the import: stop
                raise
            info.status = "failed"
            info.error = _what(exc, at=" at import")
            return
    unknown = _unknown_hooks(pm, module)
    if unknown:  # a misspelled hook would otherwise be silently never called
        pm.unregister(module)
        info.status, info.error = "failed", "; ".join(unknown)
        return
    info.hooks = sorted(h.name for h in pm.get_hookcallers(module) or [])


def _what(exc: BaseException, at: str = "") -> str:
    """``ImportError: reason`` for an error; ``SystemExit(3) at import`` for the rest."""
    if isinstance(exc, Exception):
        return f"{type(exc).__name__}: {exc}"
    args = f"({', '.join(map(repr, exc.args))})" if exc.args else ""
    return f"{type(exc).__name__}{args}{at}"


def _unknown_hooks(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    """``unknown hook NAME; did you mean ...?`` for each hook of ``plugin`` without a hookspec
    (pluggy's own check, :meth:`~pluggy.PluginManager.check_pending`, for one plugin)."""
    known = sorted(name for name, caller in vars(pm.hook).items() if caller.has_spec())
    unknown = []
    for caller in pm.get_hookcallers(plugin) or []:
        impls = [i for i in caller.get_hookimpls() if i.plugin is plugin]
        if caller.has_spec() or all(i.optionalhook for i in impls):
            continue
        close = difflib.get_close_matches(caller.name, known, n=1)
        hint = f"did you mean {close[0]}?" if close else f"hooks are {', '.join(known)}"
        unknown.append(f"unknown hook {caller.name}; {hint}")
    return sorted(unknown)


_WATCHED = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class _SignalWatch:
    """Whether a signal reached a Python handler during a block (``fired``).

    What a plugin raises while it imports or answers a hook is the plugin's, and is isolated,
    unless a signal arrived meanwhile: then it came from the user's Ctrl-C (or a kill) and must
    stop the program. A ``KeyboardInterrupt`` raised by the plugin itself, with no signal, is
    the plugin's. Signals reach only the main thread, so in any other nothing is watched.
    """

    def __enter__(self) -> _SignalWatch:
        self.fired = False
        self._saved: dict[int, tuple[Any, Callable[..., Any]]] = {}
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in _WATCHED:
            previous = signal.getsignal(sig)
            if not callable(previous):  # default or ignored: nothing is raised in Python
                continue

            def handler(signum: int, frame: Any, previous: Callable[..., Any] = previous) -> Any:
                self.fired = True
                return previous(signum, frame)

            try:
                signal.signal(sig, handler)
            except (ValueError, OSError):
                continue
            self._saved[sig] = (previous, handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, (previous, handler) in self._saved.items():
            if signal.getsignal(sig) is handler:  # unless the plugin installed its own
                signal.signal(sig, previous)


def _trace_before(hook: str, impls: list[Any], kwargs: dict[str, Any]) -> None:
    plugins = ", ".join(impl.plugin_name for impl in impls)
    print(f"vlabench: calling {hook} of plugin {plugins}", file=sys.stderr)


def _call_one(pm: pluggy.PluginManager, hook: str, impl: Any, kwargs: dict[str, Any]) -> Any:
    """Call one plugin's implementation through pluggy (so call monitoring sees it)."""
    others = [p for p in pm.get_plugins() if p is not impl.plugin]
    return pm.subset_hook_caller(hook, others)(**kwargs)


def _first(pm: pluggy.PluginManager, hook: str, **kwargs: Any) -> tuple[Any, str | None]:
    """A ``firstresult`` hook called the pluggy way, also saying which plugin answered.

    A :class:`~vlabench.api.RegistryError` (the plugin's own one-line reason, e.g. a server
    that cannot be reached) passes through; anything else is one naming the plugin.
    """
    for impl in reversed(getattr(pm.hook, hook).get_hookimpls()):  # pluggy's call order
        with _SignalWatch() as watch:
            try:
                result = _call_one(pm, hook, impl, kwargs)
            except api.RegistryError:
                raise
            except BaseException as exc:  # sys.exit() in a plugin is its failure, not ours
                if watch.fired:
                    raise
                raise api.RegistryError(
                    f"plugin {impl.plugin_name}: {hook}({kwargs}) raised {_what(exc)}"
                ) from exc
        if result is not None:
            return result, impl.plugin_name
    return None, None


def _collect(pm: pluggy.PluginManager, hook: str, kind: str, catalog: Catalog) -> dict[str, Any]:
    """Call each implementation of ``hook`` separately so one failure stays with its plugin."""
    found: dict[str, Any] = {}
    infos = {info.name: info for info in catalog.plugins}
    for impl in reversed(getattr(pm.hook, hook).get_hookimpls()):  # pluggy's call order
        info = infos.get(impl.plugin_name)
        results: list[Any] = []
        error = None
        with _SignalWatch() as watch:
            try:
                results = _call_one(pm, hook, impl, {})
            except BaseException as exc:  # sys.exit() in a hook fails the plugin, not us
                if watch.fired:
                    raise
                error = f"hook {hook} raised {_what(exc)}"
        if error is not None:
            if info is not None:
                info.status, info.error = "failed", error
            catalog.problems.append(f"plugin {impl.plugin_name}: {error}")
            continue
        wrong = _wrong_type(hook, results[0] if results else [])
        if wrong is not None:  # a dict or a bare spec would only fail later, far from here
            error = f"{hook} returned {wrong}"
            if info is not None:
                info.status = "failed"
                info.error = f"{info.error}; {error}" if info.error else error
            catalog.problems.append(f"plugin {impl.plugin_name}: {error}")
            continue
        for item in results[0] if results else []:
            if kind == "metric":  # metrics are bare callables
                catalog.metrics.append(item)
                continue
            name = item.name
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


_EXPECTED: dict[str, type] = {
    "vlabench_policies": api.PolicySpec,
    "vlabench_envs": api.EnvSpec,
    "vlabench_adapters": api.AdapterSpec,
    "vlabench_exporters": api.ExporterSpec,
    "vlabench_assets": api.AssetSpec,
    "vlabench_recorders": api.RecorderSpec,
    "vlabench_perturbations": api.PerturbationSpec,
}
"""What each list hook's items must be (``vlabench_metrics``: callables)."""


def _wrong_type(hook: str, result: Any) -> str | None:
    """``a dict, expected api.PolicySpec`` when ``result`` is not a list of the hook's class."""
    cls = _EXPECTED.get(hook)
    expected = f"api.{cls.__name__}" if cls is not None else "a callable"
    if not isinstance(result, list | tuple):
        return f"{_a(result)}, expected a list of {expected}"
    for item in result:
        if not (isinstance(item, cls) if cls is not None else callable(item)):
            return f"{_a(item)}, expected {expected}"
    return None


def _a(value: Any) -> str:
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def load_catalog(allow: set[str] | None = None, block: set[str] | None = None) -> Catalog:
    """Load all permitted plugins and gather their specs (uncached; see :func:`catalog`)."""
    pm, infos = build_manager(allow, block)
    cat = Catalog(infos, {}, {}, {}, {}, [], {}, [], pm)
    cat.policies = _collect(pm, "vlabench_policies", "policy", cat)
    cat.envs = _collect(pm, "vlabench_envs", "env", cat)
    cat.adapters = _collect(pm, "vlabench_adapters", "adapter", cat)
    cat.exporters = _collect(pm, "vlabench_exporters", "exporter", cat)
    cat.assets = _collect(pm, "vlabench_assets", "assets", cat)
    cat.perturbations = _collect(pm, "vlabench_perturbations", "perturbation", cat)
    cat.recorders = _collect(pm, "vlabench_recorders", "recorder", cat)
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
        with _SignalWatch() as watch:
            try:
                impl(run=run)
            except BaseException:
                if watch.fired:
                    raise
                print(
                    f"vlabench: plugin {info.name} failed in vlabench_run_finished:\n"
                    + traceback.format_exc(limit=3),
                    file=sys.stderr,
                )
