"""Third-party plugins installed for real: discovery, failure isolation, misbehaving policies."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import CLI

RESCALE = """
adapters:
  - policy: normalized
    env: pusht
    steps:
      - {type: rescale_action, from: [-1, 1], to: [0, 512], space: pixel_xy_512}
"""


def plugins(cli: CLI, *flags: str) -> dict[str, dict]:
    data = json.loads(cli(*flags, "plugins", "--json").stdout)
    return {p["name"]: p for p in data["plugins"]}


def cells(cli: CLI) -> dict[str, dict]:
    data = json.loads(cli("leaderboard", "--format", "json").stdout)
    return {c["policy"]: c for c in data["cells"]}


def test_example_plugin_found_run_and_ranked(cli: CLI, plugin_dirs: dict[str, Path]) -> None:
    cli.with_plugins(plugin_dirs["example"])
    listing = plugins(cli)
    assert listing["example"]["status"] == "loaded"
    assert listing["example"]["provides"] == ["policy:sweep"]
    assert "sweep" in cli("plugins").stdout  # the table too
    cli(
        "matrix",
        "--policy",
        "sweep",
        "--policy",
        "noop",
        "--suite",
        "pusht_quick",
        "--episodes",
        "2",
        "--max-steps",
        "20",
    )
    board = cells(cli)
    assert board["sweep"]["n"] == 2 and board["sweep"]["status"] == "ok"
    assert board["noop"]["n"] == 2
    with cli.store() as store:
        [run] = store.runs(policy="sweep")
    assert run["versions"]["plugins"]["example"] == "0.1.0"
    assert run["policy_plugin"] == "example"


def test_broken_plugin_is_listed_and_the_rest_works(cli: CLI, plugin_dirs: dict[str, Path]) -> None:
    cli.with_plugins(plugin_dirs["broken"], plugin_dirs["example"])
    listing = plugins(cli)
    assert listing["broken"]["status"] == "failed"
    assert listing["broken"]["error"] == (
        "ImportError: vlabench_broken is broken on purpose (test fixture)"
    )
    assert listing["example"]["provides"] == ["policy:sweep"]  # the others still load
    assert listing["pusht"]["status"] == "loaded"
    cli("run", "--policy", "sweep", "--suite", "pusht_quick", "-n", "1", "--max-steps", "5")
    assert cells(cli)["sweep"]["n"] == 1


def test_blocking_a_plugin(cli: CLI, plugin_dirs: dict[str, Path]) -> None:
    cli.with_plugins(plugin_dirs["example"])
    listing = plugins(cli, "-p", "example")
    assert listing["example"]["status"] == "blocked" and listing["example"]["provides"] == []
    proc = cli("-p", "example", "run", "--policy", "sweep", "--suite", "pusht_quick", ok=False)
    assert proc.returncode == 2 and "unknown policy 'sweep'" in proc.stderr
    cli.env["VLABENCH_PLUGINS"] = "pusht,scripted"
    listing = plugins(cli)
    assert listing["example"]["status"] == "blocked"
    assert "policy:noop" in listing["scripted"]["provides"]


def test_default_plugins_are_registered_by_name_and_listed(cli: CLI) -> None:
    listing = plugins(cli)
    remote, report = listing["vlabench.isolation.remote"], listing["vlabench.report.exporters"]
    assert remote["status"] == report["status"] == "loaded"
    assert {"exporter:csv", "exporter:html", "exporter:png"} <= set(report["provides"])
    assert remote["provides"] == ["policy:<resolved names>", "env:<resolved names>"]
    assert "report" not in listing  # no longer an entry point
    cli.env["VLABENCH_PLUGINS"] = "scripted"  # the allow-list selects entry points only
    listing = plugins(cli)
    assert listing["vlabench.report.exporters"]["status"] == "loaded"
    assert listing["pusht"]["status"] == "blocked"
    listing = plugins(cli, "-p", "vlabench.isolation.remote")
    assert listing["vlabench.isolation.remote"]["status"] == "blocked"
    cli.env["VLABENCH_TRACE_PLUGINS"] = "1"  # pluggy's hook call monitoring
    err = cli("plugins", "--json").stderr
    assert "vlabench: calling vlabench_policies of plugin scripted" in err
    assert "vlabench: calling vlabench_exporters of plugin vlabench.report.exporters" in err


def test_policy_that_raises_fails_only_its_episodes(cli: CLI, plugin_dirs: dict[str, Path]) -> None:
    cli.with_plugins(plugin_dirs["faulty"])
    cli("run", "--policy", "raises", "--suite", "pusht_quick", "-n", "4", "--max-steps", "6")
    with cli.store() as store:
        [run] = store.runs()
        episodes = {e["episode_index"]: e for e in store.episodes(run["id"])}
    assert run["status"] == "finished"
    assert sorted(episodes) == [0, 1, 2, 3]
    for i in (1, 3):  # odd episodes raise at step 2
        assert (
            episodes[i]["failure_reason"] == "policy raised RuntimeError: boom at the chosen step"
        )
        assert episodes[i]["steps"] == 2 and not episodes[i]["success"]
    for i in (0, 2):
        assert episodes[i]["failure_reason"] is None and episodes[i]["steps"] == 6


def test_batched_policy_exception_fails_the_whole_call(
    cli: CLI, plugin_dirs: dict[str, Path]
) -> None:
    """With a batch, the episodes in the failing call fail; later episodes still run."""
    cli.with_plugins(plugin_dirs["faulty"])
    cli(
        "run",
        "--policy",
        "raises",
        "--suite",
        "pusht_quick",
        "-n",
        "4",
        "--max-steps",
        "6",
        "--batch-size",
        "2",
    )
    with cli.store() as store:
        [run] = store.runs()
        episodes = store.episodes(run["id"])
    assert len(episodes) == 4
    failed = [e for e in episodes if e["failure_reason"]]
    assert failed and all("RuntimeError" in e["failure_reason"] for e in failed)


def test_nan_and_wrong_shape_are_recorded(cli: CLI, plugin_dirs: dict[str, Path]) -> None:
    cli.with_plugins(plugin_dirs["faulty"])
    for policy in ("nan", "wrong_shape"):
        cli("run", "--policy", policy, "--suite", "pusht_quick", "-n", "2", "--max-steps", "5")
    with cli.store() as store:
        reasons = {
            run["policy"]: [e["failure_reason"] for e in store.episodes(run["id"])]
            for run in store.runs()
        }
    assert reasons["nan"][0] is None
    assert reasons["nan"][1] == "policy returned a non-finite action at step 2"
    assert reasons["wrong_shape"][0] is None
    assert "dimension 3" in reasons["wrong_shape"][1] and "expects 2" in reasons["wrong_shape"][1]


def test_incompatible_pair_is_named_stored_and_bridged(
    cli: CLI, plugin_dirs: dict[str, Path]
) -> None:
    cli.with_plugins(plugin_dirs["faulty"])
    check = cli("check", "normalized", "pusht", ok=False)
    assert check.returncode == 1
    assert "action space: policy normalized, env pixel_xy_512" in check.stdout

    cli(
        "matrix",
        "--policy",
        "normalized",
        "--policy",
        "noop",
        "--suite",
        "pusht_quick",
        "-n",
        "1",
        "--max-steps",
        "5",
    )
    board = cells(cli)
    assert board["normalized"]["status"] == "incompatible" and board["normalized"]["n"] == 0
    assert "action space: policy normalized, env pixel_xy_512" in board["normalized"]["reason"]
    assert board["noop"]["n"] == 1
    md = cli("leaderboard", "--format", "md").stdout
    assert "incompatible: action space: policy normalized, env pixel_xy_512" in md

    adapters = cli.registry(RESCALE)
    assert "compatible" in cli("--registry", str(adapters), "check", "normalized", "pusht").stdout
    cli(
        "--registry",
        str(adapters),
        "run",
        "--policy",
        "normalized",
        "--suite",
        "pusht_quick",
        "-n",
        "1",
        "--max-steps",
        "3",
    )
    with cli.store() as store:
        bridged = [r for r in store.runs(policy="normalized") if r["status"] == "finished"]
        [episode] = store.episodes(bridged[0]["id"])
    assert episode["steps"] == 3 and episode["clipped_actions"] == 0
    assert bridged[0]["config"]["adapters"][0]["type"] == "rescale_action"


def test_missing_stack_is_unavailable_with_hint(cli: CLI, plugin_dirs: dict[str, Path]) -> None:
    cli.with_plugins(plugin_dirs["faulty"])
    [unavailable] = plugins(cli)["faulty"]["unavailable"]
    assert unavailable == {
        "name": "needs_missing_stack",
        "missing": ["vlabench_no_such_module"],
        "install": "pip install vlabench-no-such-extra",
    }
    proc = cli("run", "--policy", "needs_missing_stack", "--suite", "pusht_quick", ok=False)
    assert proc.returncode == 1
    message = " ".join(proc.stdout.split())
    assert "missing vlabench_no_such_module" in message
    assert "pip install vlabench-no-such-extra" in message
    with cli.store() as store:
        [run] = store.runs()
    assert run["status"] == "failed" and "vlabench_no_such_module" in run["error"]
