"""Where a result came from: package versions, interpreter, host and git revision."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import subprocess
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import vlabench

ALWAYS = ("numpy", "gymnasium", "torch")


@cache
def package_version(name: str) -> str | None:
    """Installed version of a distribution, without importing it (cached per process)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions(packages: Iterable[str] = (), plugins: dict[str, str | None] | None = None) -> dict:
    """Versions of vlabench, python, the always-relevant stack, ``packages`` and plugins."""
    names = dict.fromkeys([*ALWAYS, *packages])
    return {
        "vlabench": vlabench.__version__,
        "python": platform.python_version(),
        "packages": {name: package_version(name) for name in names},
        "plugins": dict(plugins or {}),
    }


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
