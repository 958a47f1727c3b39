"""Shared test helpers: run the real CLI in a subprocess, install fixture plugins for real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def install_plugin(source: Path, target: Path) -> Path:
    """Build and install a plugin distribution into ``target`` (as pip would, wheel + metadata).

    Installed with ``--target`` so the shared test venv is not changed; a subprocess sees the
    plugin when ``target`` is on its PYTHONPATH (entry points come from its dist-info).
    """
    uv = BIN / "uv"
    subprocess.run(
        [
            str(uv),
            "pip",
            "install",
            "--quiet",
            "--python",
            sys.executable,
            "--no-deps",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return target


@pytest.fixture(scope="session")
def plugin_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The example, faulty and broken plugins, each installed into its own folder."""
    base = tmp_path_factory.mktemp("plugins")
    return {
        "example": install_plugin(ROOT / "examples" / "vlabench-example-plugin", base / "example"),
        "faulty": install_plugin(FIXTURES / "faulty-plugin", base / "faulty"),
        "broken": install_plugin(FIXTURES / "broken-plugin", base / "broken"),
    }


class CLI:
    """Runs ``vlabench`` in a subprocess against one SQLite store in a temp dir."""

    def __init__(self, tmp_path: Path) -> None:
        self.cwd = tmp_path
        self.db_path = tmp_path / "store.db"
        self.env = {**os.environ, "VLABENCH_DB": f"sqlite:///{self.db_path}"}
        self.env.pop("VLABENCH_REGISTRY", None)
        self.env.pop("VLABENCH_PLUGINS", None)
        self.env.pop("VLABENCH_DISABLE_PLUGINS", None)

    def with_plugins(self, *dirs: Path) -> CLI:
        self.env["PYTHONPATH"] = os.pathsep.join(str(d) for d in dirs)
        return self

    def command(self, *args: str) -> list[str]:
        return [str(BIN / "vlabench"), *args]

    def __call__(
        self, *args: str, ok: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            self.command(*args),
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if ok and proc.returncode != 0:
            raise AssertionError(
                f"vlabench {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def store(self):
        from vlabench.store import open_store

        return open_store(f"sqlite:///{self.db_path}")

    def registry(self, text: str, name: str = "extra.yaml") -> Path:
        path = self.cwd / name
        path.write_text(text)
        return path


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    return CLI(tmp_path)
