"""docs/plugins.md stays true: its walk-throughs are extracted, installed and evaluated; plus
`vlabench describe` and the errors a plugin author meets with a wrong return type."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import CLI, ROOT, install_plugin

DOC = ROOT / "docs" / "plugins.md"
BLOCK = re.compile(r"^```(\w+) file=(\S+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def doc_files() -> dict[str, str]:
    """``{relative path: text}`` of every fenced block marked ``file=PATH`` in the doc."""
    files = {path: body for _lang, path, body in BLOCK.findall(DOC.read_text())}
    assert files, f"no ```LANG file=PATH blocks in {DOC}"
    return files


@pytest.fixture(scope="module")
def doc_plugins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each walk-through (top folder of its blocks) written out and installed on its own."""
    src = tmp_path_factory.mktemp("doc-src")
    for rel, text in doc_files().items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    base = tmp_path_factory.mktemp("doc-plugins")
    return {d.name: install_plugin(d, base / d.name) for d in sorted(src.iterdir())}


def test_doc_has_both_walkthroughs() -> None:
    files = doc_files()
    assert {"vlabench-toward/pyproject.toml", "vlabench-toward/toward_policy/__init__.py"} <= set(
        files
    )
    assert {"vlabench-line/pyproject.toml", "vlabench-line/line_env/__init__.py"} <= set(files)
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Write a plugin", 1)[1].split("\n## ", 1)[0]
    assert "docs/plugins.md" in section


def test_policy_walkthrough_checks_and_runs(cli: CLI, doc_plugins: dict[str, Path]) -> None:
    cli.with_plugins(doc_plugins["vlabench-toward"])
    listing = {p["name"]: p for p in json.loads(cli("plugins", "--json").stdout)["plugins"]}
    assert listing["toward"]["status"] == "loaded"
    assert listing["toward"]["provides"] == ["policy:toward"]
    assert "compatible: toward on pusht" in cli("check", "toward", "pusht").stdout
    described = cli("describe", "policy", "toward", "--env", "pusht").stdout
    assert "observation.state" in described and "[pixel_xy_512]" in described
    cli("matrix", "--policy", "toward", "--suite", "pusht_quick", "-n", "2", "--max-steps", "5")
    with cli.store() as store:
        [run] = store.runs(policy="toward")
        episodes = store.episodes(run["id"])
    assert run["status"] == "finished" and run["policy_plugin"] == "toward"
    assert len(episodes) == 2
    assert all(e["failure_reason"] is None and e["steps"] == 5 for e in episodes)
    assert all(e["clipped_actions"] == 0 for e in episodes)  # within the env's bounds


def test_env_walkthrough_runs(cli: CLI, doc_plugins: dict[str, Path]) -> None:
    cli.with_plugins(doc_plugins["vlabench-line"])
    described = cli("describe", "env", "line").stdout
    assert "[line_x]" in described and "[line_dx]" in described
    assert "reach_origin" in described and "tolerance: float = 0.05" in described
    assert "noop action: [0.0]" in described
    cli("run", "--policy", "random", "--env", "line", "-n", "2", "--max-steps", "5")
    cli("run", "--policy", "noop", "--env", "line", "-n", "2", "--max-steps", "5")
    with cli.store() as store:
        runs = store.runs()
        assert sorted(r["policy"] for r in runs) == ["noop", "random"]
        for run in runs:
            assert run["status"] == "finished" and run["env_plugin"] == "line"
            episodes = store.episodes(run["id"])
            assert len(episodes) == 2
            assert all(e["failure_reason"] is None for e in episodes)


def test_describe_env_pusht(cli: CLI) -> None:
    out = cli("describe", "env", "pusht").stdout
    assert "fps 10.0" in out and "noop action: none" in out
    assert re.search(r"observation\.state\s+state\s+\(2,\)\s+float32\s+\[pixel_xy_512\]", out)
    assert "[0.0, 0.0] .. [512.0, 512.0]" in out
    assert "observation.images.top" in out and "(96, 96, 3)" in out and "uint8" in out
    assert "push_t:" in out
    assert "image_size: int = 96" in out and "render: bool = True" in out


def test_describe_policy(cli: CLI) -> None:
    out = cli("describe", "policy", "random").stdout
    assert "described against env pusht" in out and "[pixel_xy_512]" in out
    assert cli("describe", "policy", "nope", ok=False).returncode == 2
    bad = cli("describe", "thing", "pusht", ok=False)
    assert bad.returncode == 2 and "choose env or policy" in bad.stderr


BAD_PLUGIN = """
from vlabench import api, hookimpl


def _describe(request):
    return {"inputs": [], "action": "action"}


@hookimpl
def vlabench_policies():
    return [api.PolicySpec(name="dictdesc", description="d", load=None, describe=_describe)]


@hookimpl
def vlabench_adapters():
    return [{"name": "adapter-as-dict"}]
"""

BAD_PYPROJECT = """
[project]
name = "vlabench-badtypes"
version = "0.1.0"

[project.entry-points.vlabench]
badtypes = "badtypes"

[build-system]
requires = ["setuptools>=75"]
build-backend = "setuptools.build_meta"

[tool.setuptools]
packages = ["badtypes"]
"""


def test_wrong_return_types_name_plugin_hook_and_type(cli: CLI, tmp_path: Path) -> None:
    src = tmp_path / "badtypes-src"
    (src / "badtypes").mkdir(parents=True)
    (src / "pyproject.toml").write_text(BAD_PYPROJECT)
    (src / "badtypes" / "__init__.py").write_text(BAD_PLUGIN)
    cli.with_plugins(install_plugin(src, tmp_path / "badtypes-target"))
    data = json.loads(cli("plugins", "--json").stdout)
    [info] = [p for p in data["plugins"] if p["name"] == "badtypes"]
    expected = "vlabench_adapters returned a dict, expected api.AdapterSpec"
    assert info["status"] == "failed" and expected in info["error"]
    assert f"plugin badtypes: {expected}" in data["problems"]
    checked = cli("check", "dictdesc", "pusht", ok=False)
    assert checked.returncode == 2
    assert (
        "plugin badtypes: policy 'dictdesc' describe returned a dict, expected "
        "api.PolicyInterface" in checked.stderr
    )
    described = cli("describe", "policy", "dictdesc", ok=False)
    assert "expected api.PolicyInterface" in described.stderr


def test_collect_rejects_non_lists_and_wrong_items() -> None:
    import pluggy

    from vlabench import api, hookimpl
    from vlabench.api import hookspecs
    from vlabench.catalog import Catalog, PluginInfo, _collect

    class Single:
        @hookimpl
        def vlabench_envs(self):
            return api.TaskInfo("x")

    class Metrics:
        @hookimpl
        def vlabench_metrics(self):
            return [len, "not callable"]

    pm = pluggy.PluginManager("vlabench")
    pm.add_hookspecs(hookspecs)
    pm.register(Single(), name="single")
    pm.register(Metrics(), name="metrics")
    infos = [PluginInfo("single", "single", None, None), PluginInfo("metrics", "m", None, None)]
    cat = Catalog(infos, {}, {}, {}, {}, [], {}, [], pm)
    assert _collect(pm, "vlabench_envs", "env", cat) == {}
    _collect(pm, "vlabench_metrics", "metric", cat)
    assert cat.metrics == []
    assert cat.problems == [
        "plugin single: vlabench_envs returned a TaskInfo, expected a list of api.EnvSpec",
        "plugin metrics: vlabench_metrics returned a str, expected a callable",
    ]
    assert [i.status for i in infos] == ["failed", "failed"]
