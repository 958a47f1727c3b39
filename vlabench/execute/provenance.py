"""Where a result came from: package versions, interpreter, host and git revision; and the code
of the plugins a run used, which a run is only ever extended with (:func:`code_change`).

A plugin's code is its version and, where its distribution was installed from a local folder
or editable (PEP 610 ``direct_url.json`` with a ``file://`` URL), a fingerprint of its source:
sha256 over the ``.py`` files of the entry point's top-level package (path-sorted), so an
edit without a version bump is seen. The core's own plugins (``remote://``, exporters) are the
core: its version and git revision identify them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import platform
import socket
import subprocess
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import vlabench
from vlabench.catalog import DEFAULT_PLUGINS, Catalog

ALWAYS = ("numpy", "gymnasium", "torch")


@cache
def package_version(name: str) -> str | None:
    """Installed version of a distribution, without importing it (cached per process)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions(
    packages: Iterable[str] = (),
    plugins: dict[str, str | None] | None = None,
    sources: dict[str, str] | None = None,
) -> dict:
    """Versions of vlabench, python, the always-relevant stack, ``packages`` and plugins, with
    the source fingerprints of plugins installed from a local folder (:func:`plugin_code`)."""
    names = dict.fromkeys([*ALWAYS, *packages])
    return {
        "vlabench": vlabench.__version__,
        "python": platform.python_version(),
        "packages": {name: package_version(name) for name in names},
        "plugins": dict(plugins or {}),
        "plugin_sources": dict(sources or {}),
    }


@cache
def local_install(distribution: str) -> bool:
    """Whether ``distribution`` was installed from a local folder or file, or editable (PEP 610
    ``direct_url.json`` with a ``file://`` URL), rather than from an index."""
    try:
        text = importlib.metadata.distribution(distribution).read_text("direct_url.json")
        url = json.loads(text or "{}").get("url", "")
    except (importlib.metadata.PackageNotFoundError, ValueError, AttributeError, OSError):
        return False
    return isinstance(url, str) and url.startswith("file:")


@cache
def source_fingerprint(module: str) -> str | None:
    """sha256 (16 hex digits) over the ``.py`` files of ``module``'s top-level package, each
    with its path in the package, in path order; None when it cannot be found."""
    try:
        spec = importlib.util.find_spec(module.split(".")[0])
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        roots = [Path(p) for p in spec.submodule_search_locations]
        files = sorted((f.relative_to(r).as_posix(), f) for r in roots for f in r.rglob("*.py"))
    elif spec.origin and spec.origin.endswith(".py"):
        files = [(Path(spec.origin).name, Path(spec.origin))]
    else:
        return None
    digest = hashlib.sha256()
    for name, path in files:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        digest.update(name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()[:16]


def plugin_code(catalog: Catalog, plugins: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The code of ``plugins`` (names): ``{"plugins": name -> version, "plugin_sources": name
    -> source fingerprint}``, the latter for plugins installed from a local folder only."""
    infos = {info.name: info for info in catalog.plugins}
    found: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in dict.fromkeys(plugins):
        info = infos.get(name)
        found[name] = info.version if info else None
        if info is None or info.module in DEFAULT_PLUGINS or not info.distribution:
            continue
        fingerprint = local_install(info.distribution) and source_fingerprint(info.module)
        if fingerprint:
            sources[name] = fingerprint
    return {"plugins": found, "plugin_sources": sources}


def code_change(stored: Mapping[str, Any], current: Mapping[str, Any]) -> str | None:
    """How the plugin code ``current`` (:func:`plugin_code`) differs from what a run stored in
    its ``versions``: ``plugin x changed (source 1a2b -> 3c4d)``; None when it does not.

    Only what the run recorded is compared: a run stored before source fingerprints were
    recorded is compared by version, one stored before plugin versions, not at all.
    """
    stored_versions = stored.get("plugins") or {}
    stored_sources = stored.get("plugin_sources")
    changes = []
    for name, version in current["plugins"].items():
        what = []
        if name in stored_versions and stored_versions[name] != version:
            what.append(f"version {stored_versions[name]} -> {version}")
        if stored_sources is not None:
            before, now = stored_sources.get(name), current["plugin_sources"].get(name)
            if before != now:
                what.append(f"source {_source(before)} -> {_source(now)}")
        if what:
            changes.append(f"plugin {name} changed ({', '.join(what)})")
    return "; ".join(changes) or None


def _source(fingerprint: str | None) -> str:
    return fingerprint or "(not a local install)"


@cache
def git_sha() -> str | None:
    """The commit of the vlabench checkout, when it runs from one."""
    root = Path(vlabench.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def host() -> str:
    return socket.gethostname()
