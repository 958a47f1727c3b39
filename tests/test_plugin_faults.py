"""Plugins that misbehave at import or in their code's identity, installed for real.

* A plugin calling ``sys.exit(3)`` or raising ``KeyboardInterrupt`` at import is listed as
  failed with what it did; every other command works. A real Ctrl-C during an import still
  stops the command.
* A misspelled hook (``vlabench_policy``) fails its plugin with a suggestion.
* A run is only extended with the plugin code it was made with: an edit of a local plugin's
  source (or a version bump) fails the rerun of that run instead of reusing it silently.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CLI, FIXTURES, ROOT, install_plugin

from vlabench import api, hookimpl
from vlabench.catalog import Catalog, _collect, _first, build_manager
from vlabench.execute import provenance

RUN = ("run", "--policy", "sweep", "--suite", "pusht_quick", "--max-steps", "5")


@pytest.fixture(scope="module")
def faulty_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("faulty-imports")
    return {
        name: install_plugin(FIXTURES / f"{name}-plugin", base / name)
        for name in ("exit", "interrupt", "typo")
    } | {"example": install_plugin(ROOT / "examples" / "vlabench-example-plugin", base / "ex")}


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """The example plugin installed from a local folder, into a folder of this test's own."""
    return install_plugin(ROOT / "examples" / "vlabench-example-plugin", tmp_path / "example")


def plugins(cli: CLI) -> dict[str, dict]:
    data = json.loads(cli("plugins", "--json").stdout)
    return {p["name"]: p for p in data["plugins"]}


def test_exit_and_interrupt_at_import_fail_only_their_plugin(
    cli: CLI, faulty_dirs: dict[str, Path]
) -> None:
    cli.with_plugins(faulty_dirs["exit"], faulty_dirs["interrupt"], faulty_dirs["example"])
    listing = plugins(cli)
    assert listing["exit"]["status"] == "failed"
    assert listing["exit"]["error"] == "SystemExit(3) at import"
    assert listing["interrupt"]["status"] == "failed"
    assert listing["interrupt"]["error"] == "KeyboardInterrupt at import"
    assert listing["example"]["status"] == listing["pusht"]["status"] == "loaded"
    table = cli("plugins").stdout
    assert "SystemExit(3) at" in table and "KeyboardInterrupt" in table
    assert "sweep" in cli("list", "policies").stdout
    cli(*RUN, "-n", "1")
    with cli.store() as store:
        [run] = store.runs()
        assert run["status"] == "finished" and len(store.episodes(run["id"])) == 1


def test_a_real_ctrl_c_during_a_plugin_import_still_stops(
    cli: CLI, faulty_dirs: dict[str, Path], tmp_path: Path
) -> None:
    """The plugin hangs at import (it would raise KeyboardInterrupt itself otherwise); a
    SIGINT then is the user's, and ends the command as Ctrl-C does anywhere."""
    marker = tmp_path / "importing"
    cli.with_plugins(faulty_dirs["interrupt"])
    proc = subprocess.Popen(
        cli.command("plugins", "--json"),
        cwd=cli.cwd,
        env={**cli.env, "VLABENCH_TEST_HANG_AT_IMPORT": str(marker)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - sent < 10  # not the plugin's 60 s sleep
    assert proc.returncode == 130
    assert '"plugins"' not in out  # stopped: no listing


def test_misspelled_hook_fails_its_plugin_with_a_suggestion(
    cli: CLI, faulty_dirs: dict[str, Path]
) -> None:
    cli.with_plugins(faulty_dirs["typo"], faulty_dirs["example"])
    listing = plugins(cli)
    assert listing["typo"]["status"] == "failed"
    assert listing["typo"]["error"] == (
        "unknown hook vlabench_policy; did you mean vlabench_policies?"
    )
    assert listing["typo"]["provides"] == []
    assert listing["example"]["provides"] == ["policy:sweep"]  # the others keep working
    assert "unknown hook" in cli("plugins").stdout
    cli(*RUN, "-n", "1")


class _Exits:
    """A plugin object whose hooks end the interpreter."""

    @hookimpl
    def vlabench_policies(self) -> list[api.PolicySpec]:
        raise SystemExit(4)

    @hookimpl
    def vlabench_resolve_env(self, name: str) -> api.EnvSpec:
        raise KeyboardInterrupt  # raised by the plugin, no signal: its failure


def test_hooks_that_exit_fail_their_plugin_not_the_program() -> None:
    pm, _ = build_manager(allow={"scripted"})
    pm.register(_Exits(), name="exits")
    cat = Catalog([], {}, {}, {}, {}, [], {}, [], pm)
    policies = _collect(pm, "vlabench_policies", "policy", cat)
    assert "noop" in policies
    assert "plugin exits: hook vlabench_policies raised SystemExit(4)" in cat.problems
    with pytest.raises(api.RegistryError, match=r"plugin exits: .* raised KeyboardInterrupt"):
        _first(pm, "vlabench_resolve_env", name="nowhere")


def _run_count(cli: CLI) -> tuple[int, int, int]:
    with cli.store() as store:
        runs = store.runs()
        return len(runs), runs[0]["n_episodes"], len(store.episodes(runs[0]["id"]))


def test_editing_a_local_plugin_does_not_reuse_its_stale_run(cli: CLI, example: Path) -> None:
    cli.with_plugins(example)
    cli(*RUN, "-n", "2")
    with cli.store() as store:
        [run] = store.runs()
    fingerprint = run["versions"]["plugin_sources"]["example"]
    assert len(fingerprint) == 16
    shown = cli("show", str(run["id"]), "--no-episodes").stdout
    assert f"example 0.1.0 source {fingerprint}" in shown
    assert "plugin code (the run is only extended with this code)" in shown

    source = example / "vlabench_example" / "__init__.py"
    original = source.read_text()
    source.write_text(original + "\n# edited without a version bump\n")
    for episodes in ("2", "3"):  # neither taken as done nor extended
        proc = cli(*RUN, "-n", episodes, ok=False)
        assert proc.returncode == 1
        message = " ".join(proc.stdout.split())
        assert f"plugin example changed (source {fingerprint} -> " in message
        assert "since run 1 was stored: it keeps its 2 episode(s)" in message
        assert "0 new episode(s)" in message
        assert _run_count(cli) == (1, 2, 2)  # the stored run untouched

    source.write_text(original)  # the code the run was made with: extended again
    assert "1 new episode(s)" in cli(*RUN, "-n", "3").stdout
    assert _run_count(cli) == (1, 3, 3)


def test_a_plugin_from_an_index_is_identified_by_its_version(cli: CLI, example: Path) -> None:
    """Without a local ``direct_url.json`` only the version identifies the code (the rule in
    the README): an edit is not seen, a version bump is."""
    [dist_info] = example.glob("vlabench_example_plugin-*.dist-info")
    (dist_info / "direct_url.json").unlink()
    cli.with_plugins(example)
    cli(*RUN, "-n", "1")
    with cli.store() as store:
        [run] = store.runs()
    assert "example" not in run["versions"]["plugin_sources"]
    assert "example 0.1.0, pusht" in cli("show", "1", "--no-episodes").stdout

    source = example / "vlabench_example" / "__init__.py"
    source.write_text(source.read_text() + "\n# edited in site-packages\n")
    assert "1 new episode(s)" in cli(*RUN, "-n", "2").stdout

    metadata = dist_info / "METADATA"
    metadata.write_text(metadata.read_text().replace("Version: 0.1.0", "Version: 0.2.0"))
    proc = cli(*RUN, "-n", "3", ok=False)
    assert proc.returncode == 1
    assert "plugin example changed (version 0.1.0 -> 0.2.0)" in " ".join(proc.stdout.split())
    assert _run_count(cli) == (1, 2, 2)


def test_code_change_compares_only_what_a_run_recorded() -> None:
    now = {"plugins": {"example": "0.1.0", "pusht": "0.1.0"}, "plugin_sources": {"example": "b"}}
    assert provenance.code_change({}, now) is None  # stored before plugin versions
    assert provenance.code_change({"plugins": {"example": "0.1.0"}}, now) is None
    assert provenance.code_change({"plugins": {"example": "0.0.9"}}, now) == (
        "plugin example changed (version 0.0.9 -> 0.1.0)"
    )
    stored = {"plugins": now["plugins"], "plugin_sources": {"example": "a"}}
    assert provenance.code_change(stored, now) == "plugin example changed (source a -> b)"
    stored["plugin_sources"] = {}
    assert provenance.code_change(stored, now) == (
        "plugin example changed (source (not a local install) -> b)"
    )


def test_source_fingerprint_covers_the_top_level_package(tmp_path: Path) -> None:
    package = tmp_path / "fp_pkg"
    shutil.copytree(ROOT / "examples" / "vlabench-example-plugin" / "vlabench_example", package)
    (package / "sub").mkdir()
    (package / "sub" / "helper.py").write_text("X = 1\n")
    script = (
        "from vlabench.execute.provenance import source_fingerprint as f;"
        "print(f('fp_pkg.sub.helper'), f('fp_pkg'), f('no_such_pkg_here'))"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    def fingerprints() -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.split()

    first = fingerprints()
    assert first[0] == first[1] and first[2] == "None"
    (package / "sub" / "helper.py").write_text("X = 2\n")
    assert fingerprints()[0] != first[0]
