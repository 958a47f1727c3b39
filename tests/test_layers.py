"""The import contracts of pyproject.toml hold, and they catch an import that runs upward."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).parent / "lint-imports"


def lint(tree: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the project's contracts over the packages in ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT), "--no-cache", str(ROOT / "pyproject.toml")],
        cwd=tree, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def copy_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "vlabench", tree / "vlabench")
    shutil.copytree(ROOT / "plugins", tree / "vlabench_plugins")
    return tree


def test_the_contracts_hold() -> None:
    out = lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_an_upward_import_breaks_the_layers(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    assert lint(tree).returncode == 0
    rollout = tree / "vlabench" / "runtime" / "rollout.py"
    rollout.write_text(rollout.read_text() + "\nfrom vlabench.store import open_store  # upward\n")
    out = lint(tree)
    assert out.returncode != 0
    assert "vlabench.runtime is not allowed to import vlabench.store" in out.stdout


def test_a_plugin_reaching_past_the_contracts_is_refused(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    hub = tree / "vlabench_plugins" / "lerobot" / "hub.py"
    hub.write_text(hub.read_text() + "\nfrom vlabench.registry import SuiteConfig  # a reach\n")
    out = lint(tree)
    assert out.returncode != 0
    assert "vlabench_plugins.lerobot.hub -> vlabench.registry" in out.stdout


def test_a_circle_inside_a_package_is_refused(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    engine = tree / "vlabench" / "store" / "engine.py"
    circle = "\nfrom vlabench.store import store as _store  # a circle\n"
    engine.write_text(engine.read_text() + circle)
    out = lint(tree)
    assert out.returncode != 0
    assert "No cycles are allowed in vlabench.store" in out.stdout
