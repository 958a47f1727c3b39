"""Robustness suites: perturbed variants as data, control hashes unchanged, `vlabench
robustness` through the real runner and store, paired statistics, never pooled on the board."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from vlabench import stats
from vlabench.catalog import catalog
from vlabench.plan.configs import config_hash_of
from vlabench.plan.resolve import resolve_policy, resolve_suite
from vlabench.registry import RegistryError, load_registry
from vlabench.report import robustness

pytest.importorskip("metaworld")

# Hashes computed by the code before perturbations existed (commit 60ff9b1): stores made
# then must find their runs again, so a control's identity may never change.
CONTROL_HASHES = {
    ("metaworld_mt10", "metaworld-expert", "reach-v3"): ("ddd2596f9a213260", "a5092ec17db44219"),
    ("pusht", "noop", "push_t"): ("b3ec27db33bd26ac", "2ab91fd2bf0c1aac"),
}


def _resolve(suite: str, policy: str = "metaworld-expert", task: str = "reach-v3", reg=None):
    reg, cat = reg or load_registry(), catalog()
    (config,) = resolve_suite(suite, resolve_policy(policy, reg, cat), reg, cat, tasks=[task])
    return config


@pytest.mark.parametrize(("key", "hashes"), sorted(CONTROL_HASHES.items()))
def test_control_runs_keep_their_hashes(key, hashes) -> None:
    suite, policy, task = key
    config = _resolve(suite, policy, task)
    assert (config.config_hash(), config.protocol_hash()) == hashes
    assert "perturbation" not in config.as_dict()["protocol"]
    # severity 0 of any axis is the control itself, same name and hash
    zero = _resolve(f"{suite}@state_noise:0", policy, task)
    assert zero == config and zero.config_hash() == hashes[0]


def test_a_variant_carries_its_perturbation_in_protocol_and_hash() -> None:
    control = _resolve("metaworld_mt10")
    noisy = _resolve("metaworld_mt10@action_noise:2")
    assert noisy.suite == "metaworld_mt10@action_noise:2"
    assert noisy.protocol.perturbation == {
        "axis": "action_noise", "severity": 2, "perturbation": "action_noise",
        "params": {"std": 0.3},
    }
    assert noisy.adapters[0] == {
        "type": "perturb.action_noise", "std": 0.3, "seed": 1000, "axis": "action_noise"
    }
    assert noisy.env_options == control.env_options
    assert noisy.protocol_hash() != control.protocol_hash()
    assert noisy.config_hash() != _resolve("metaworld_mt10@action_noise:1").config_hash()
    stored = noisy.as_dict()
    assert config_hash_of(stored) == noisy.config_hash()  # what the store keeps re-hashes
    # an env-side axis changes env options only, the adapters stay the pair's
    moved = _resolve("metaworld_mt10@metaworld_camera_shift:1")
    assert moved.adapters == control.adapters
    assert moved.env_options["camera_pos"]["corner2"] == pytest.approx([0.77, 0.075, 0.7])
    others = {k: v for k, v in moved.env_options.items() if k != "camera_pos"}
    assert others == {k: v for k, v in control.env_options.items() if k != "camera_pos"}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("metaworld_mt10@nope:1", "unknown perturbation axis 'nope'"),
        ("metaworld_mt10@state_noise:7", "severities 0-3, not 7"),
        ("metaworld_mt10@state_noise", "expected SUITE@AXIS:SEVERITY"),
        ("nosuch@state_noise:1", "unknown suite 'nosuch'"),
        ("metaworld_mt10@libero_lighting:1", "applies to env(s) libero, not 'metaworld'"),
    ],
)
def test_bad_variants_are_one_line_errors(name, message) -> None:
    with pytest.raises(RegistryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _resolve(name)


def test_axes_are_validated_where_they_are_declared(tmp_path: Path) -> None:
    path = tmp_path / "extra.yaml"
    path.write_text("perturbations:\n  bad:\n    perturbation: state_noise\n"
                    "    levels: [{sigma: 1}]\n")
    reg = load_registry([path])
    assert reg.variants("metaworld_mt10", ["bad"]) == ["metaworld_mt10@bad:1"]
    with pytest.raises(RegistryError, match=r"extra.yaml:\d+.*severity 1.*unknown param"):
        _resolve("metaworld_mt10@bad:1", reg=reg)


def _arm(axis: str, severity: int, counts: tuple[int, int, int, int]) -> robustness.Arm:
    table = stats.PairedTable(*counts)
    low, high = stats.paired_difference_interval(table)
    rate = robustness.Rate.of(0, table.n, 0.95)
    return robustness.Arm(axis, severity, f"s@{axis}:{severity}", {}, rate, rate, table,
                          low, high, stats.mcnemar_exact(counts[1], counts[2]), 0)


def test_rank_by_worst_axis_only_where_intervals_separate() -> None:
    control = robustness.Rate.of(30, 30, 0.95)
    steady = robustness.Profile("steady", "s", control, (_arm("a", 1, (29, 0, 1, 0)),))
    fragile = robustness.Profile("fragile", "s", control, (_arm("a", 1, (5, 0, 25, 0)),))
    shaky = robustness.Profile("shaky", "s", control, (_arm("a", 1, (24, 0, 6, 0)),))
    ranked = {p.policy: (r, tied) for p, r, tied in robustness.rank([fragile, shaky, steady])}
    assert ranked["steady"][0] == 1 and ranked["fragile"][0] == 3
    # shaky's interval overlaps steady's: a shared rank, marked tied
    assert ranked["shaky"] == (1, True) and ranked["steady"][1]


def test_robustness_command_runs_pairs_and_reports(cli) -> None:
    args = ("robustness", "metaworld-expert", "--suite", "metaworld_mt10",
            "--axis", "action_noise", "--axis", "observation_delay", "--severity", "3",
            "--task", "reach-v3", "-n", "6", "--executor", "inline", "-o", "out")
    first = cli(*args, timeout=240)
    assert "3 run(s), 18 new episode(s)" in first.stdout
    rows = {line.split()[0]: line for line in first.stdout.splitlines()
            if line.startswith(("action_noise", "observation_delay"))}
    assert set(rows) == {"action_noise", "observation_delay"}
    assert all(len(line) <= 80 for line in first.stdout.splitlines() if str(cli.cwd) not in line)
    png = (cli.cwd / "out" / "robustness_metaworld-expert_metaworld_mt10.png").read_bytes()
    page = (cli.cwd / "out" / "robustness_metaworld-expert_metaworld_mt10.html").read_text()
    assert png.startswith(b"\x89PNG") and "data:image/png;base64," in page
    again = cli(*args, timeout=240)  # resumes: nothing new to run
    assert "0 new episode(s)" in again.stdout

    store = cli.store()
    prof = robustness.profile(store, "metaworld-expert", "metaworld_mt10")
    assert prof.control.n == 6 and {(a.axis, a.severity) for a in prof.arms} == {
        ("action_noise", 3), ("observation_delay", 3)
    }
    from vlabench.store import reads

    runs = {r["suite"]: r for r in reads.run_counts(store)}
    episodes = reads.episodes_by_run(store, [r["id"] for r in runs.values()])
    control = {e["episode_index"]: (e["seed"], e["success"])
               for e in episodes[runs["metaworld_mt10"]["id"]]}
    for arm in prof.arms:
        perturbed = {e["episode_index"]: (e["seed"], e["success"])
                     for e in episodes[runs[arm.suite]["id"]]}
        assert {k: v[0] for k, v in perturbed.items()} == {k: v[0] for k, v in control.items()}
        counts = [0, 0, 0, 0]
        for k, (_, x) in perturbed.items():
            y = control[k][1]
            counts[0 if x and y else 1 if x else 2 if y else 3] += 1
        assert arm.table == stats.PairedTable(*counts)
        assert (arm.low, arm.high) == stats.paired_difference_interval(arm.table)
        assert arm.p == stats.mcnemar_exact(counts[1], counts[2])
        row = rows[arm.axis]
        assert f"{100 * arm.difference:+.0f} [" in row
        # the perturbation reached the rollout: same starts, other trajectories
        rewards = {e["episode_index"]: e["reward_sum"] for e in episodes[runs[arm.suite]["id"]]}
        base = {e["episode_index"]: e["reward_sum"]
                for e in episodes[runs["metaworld_mt10"]["id"]]}
        assert any(rewards[k] != base[k] for k in base), arm.axis

    # the leaderboard: the variants are their own columns, never in the row's mean
    from vlabench.report.board import board_from_store

    board = board_from_store(store)
    labels = [c.label for c in board.columns]
    assert "metaworld_mt10@action_noise:3" in labels and "metaworld_mt10" in labels
    (row,) = board.rows
    assert row.mean_rate == prof.control.rate
    shown = json.loads(cli("leaderboard", "--format", "json").stdout)
    assert shown  # the board exports with the variant columns


def test_matrix_accepts_perturbed_suites(cli) -> None:
    cli("matrix", "--policy", "metaworld-expert", "--suite", "metaworld_mt10@state_noise:1",
        "-n", "1", "--executor", "inline", "--no-leaderboard", timeout=240)
    from vlabench.store import reads

    runs = reads.run_counts(cli.store())
    assert len(runs) == 10 and {r["suite"] for r in runs} == {"metaworld_mt10@state_noise:1"}
    assert all(r["protocol"]["perturbation"]["axis"] == "state_noise" for r in runs)
    assert all(r["config"]["adapters"][0]["type"] == "perturb.state_noise" for r in runs)


def test_profile_page_embeds_the_plot_and_ranks_several_policies() -> None:
    control = robustness.Rate.of(30, 30, 0.95)
    steady = robustness.Profile("steady", "s", control, (_arm("a", 1, (29, 0, 1, 0)),))
    fragile = robustness.Profile("fragile", "s", control,
                                 (_arm("a", 1, (5, 0, 25, 0)), _arm("b", 2, (20, 0, 10, 0))))
    png = robustness.to_png([steady, fragile])
    assert png.startswith(b"\x89PNG")
    page = robustness.to_html([steady, fragile], png)
    assert page.count("<h2>") == 3 and "Ranked by worst-axis drop" in page
    ranking = page.split("Ranked by worst-axis drop", 1)[1].split("</table>", 1)[0]
    assert ranking.index("steady") < ranking.index("fragile")
    assert "a:1" in ranking and "-83 [" in ranking  # fragile's worst arm, with its interval
    lines = robustness.table_lines(fragile)
    assert all(len(line) <= 80 for line in lines)
    assert any(line.startswith("b ") and "<.001" not in line for line in lines)
