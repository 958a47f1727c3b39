"""Leaderboards from a small real store: aggregation, protocols, ranks, filters, exports.

The golden files in ``tests/golden/`` are the exact csv, markdown, LaTeX and json of a fixed
store (fixed timestamps, hosts and versions). After an intended format change, regenerate
them with ``VLABENCH_UPDATE_GOLDEN=1 pytest tests/test_report.py`` and review the diff.
"""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from vlabench.api import EpisodeRecord
from vlabench.report import FORMATS, Board, board_from_store, separated_ranks
from vlabench.report.exporters import builtin_exporters, exporters
from vlabench.report.latex import escape
from vlabench.store import Run, Store, open_store

GOLDEN = Path(__file__).parent / "golden"
PUSHT = {"name": "default", "episodes": 10, "max_steps": 300}
FAST = {"name": "fast", "episodes": 4, "max_steps": 100}
FULL = {"name": "full", "episodes": 50, "max_steps": 500}
REFUSED = "action space ee_delta | pixel_xy mismatch"
FIXED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def add_run(
    store: Store,
    policy: str,
    suite: str,
    task: str,
    protocol: dict[str, Any],
    protocol_hash: str,
    outcomes: str = "",
    status: str = "finished",
    error: str | None = None,
    checkpoint: str | None = None,
    checkpoint_hash: str | None = None,
    video: str | None = None,
    registry: dict[str, tuple[str, list[str]]] | None = None,
) -> int:
    """A run whose episodes are given as a string: ``s`` success, ``f`` failure, ``e`` error.

    Its ``report_meta`` is what the runner stores: here a sync run of an env without metric
    columns, with the groups of ``registry`` (name -> (env, tasks)) that contain its task.
    """
    env = "pusht" if suite == "pusht" else "metaworld"
    groups = {n: ts for n, (e, ts) in (registry or {}).items() if e == env and task in ts}
    run_id, _ = store.get_or_create_run(
        f"{policy}/{checkpoint}/{suite}/{task}/{protocol_hash}",
        policy=policy,
        policy_type=policy,
        policy_plugin="scripted",
        checkpoint=checkpoint,
        checkpoint_hash=checkpoint_hash,
        env=env,
        env_plugin="builtin",
        suite=suite,
        task=task,
        protocol=protocol,
        protocol_hash=protocol_hash,
        n_episodes=len(outcomes),
        host="testhost",
        git_sha="0123abc",
        versions={"vlabench": "0.1.0", "python": "3.12.0"},
        config={"suite": suite, "task": task},
        report_meta={
            "inference_label": "", "sync_config_hash": None, "metrics": [], "groups": groups,
        },
    )
    for i, outcome in enumerate(outcomes):
        store.add_episode(
            run_id,
            EpisodeRecord(
                task=task,
                episode_index=i,
                seed=1000 + i,
                init_state_id=i % 3,
                success=outcome == "s",
                steps=10,
                reward_sum=0.0,
                wall_time_s=0.1,
                failure_reason="policy raised" if outcome == "e" else None,
                video_path=video if i == 0 else None,
            ),
        )
    store.set_run_status(run_id, status, error)
    return run_id


def freeze_times(store: Store, when: datetime = FIXED) -> None:
    """Fixed timestamps, so that exports are byte-for-byte stable."""
    with store.engine.begin() as conn:
        conn.execute(update(Run).values(created_at=when, started_at=when, finished_at=when))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with open_store(f"sqlite:///{tmp_path / 'board.db'}") as s:
        # diffusion, pusht: 7/10 on one task, 5/10 (one errored) on the other -> 12/20
        add_run(s, "diffusion", "pusht", "t1", PUSHT, "aaaaaa11", "s" * 7 + "f" * 3)
        add_run(s, "diffusion", "pusht", "t2", PUSHT, "aaaaaa11", "s" * 5 + "e" + "f" * 4)
        add_run(s, "diffusion", "metaworld", "reach", FAST, "bbbbbb22", "ssss")
        add_run(s, "act", "pusht", "t1", PUSHT, "aaaaaa11", "s" * 3 + "f" * 7)
        add_run(s, "act", "metaworld", "reach", FULL, "cccccc33", status="running")
        for task in ("t1", "t2"):
            add_run(s, "random", "pusht", task, PUSHT, "aaaaaa11", "", "incompatible", REFUSED)
        freeze_times(s)
        yield s


def test_board_pools_tasks_and_separates_protocols(store: Store) -> None:
    board = board_from_store(store)
    assert [c.label for c in board.columns] == ["metaworld [fast]", "metaworld [full]", "pusht"]
    assert [(c.protocol, c.protocol_hash) for c in board.columns][:2] == [
        ("fast", "bbbbbb22"),
        ("full", "cccccc33"),
    ]
    assert [r.policy for r in board.rows] == ["diffusion", "act", "random"]

    cell = board.cell("diffusion", "pusht")
    assert cell is not None
    assert (cell.n, cell.successes, cell.errors, cell.tasks, cell.runs) == (20, 12, 1, 2, 2)
    assert cell.rate == pytest.approx(0.6) and cell.status == "ok"
    assert cell.ci_low == pytest.approx(0.3866, abs=1e-4)
    assert cell.ci_high == pytest.approx(0.7812, abs=1e-4)
    assert [(t.task, t.n, t.successes, t.errors) for t in cell.task_results] == [
        ("t1", 10, 7, 0),
        ("t2", 10, 5, 1),
    ]

    fast = board.cell("diffusion", "metaworld [fast]")
    assert fast is not None and (fast.n, fast.successes) == (4, 4)
    assert board.cell("diffusion", "metaworld [full]") is None
    assert board.rows[0].mean_rate == pytest.approx(0.8)
    assert len(board.runs) == 7 and board.runs[1]["host"] == "testhost"


def test_board_marks_incompatible_and_running_cells(store: Store) -> None:
    board = board_from_store(store)
    refused = board.cell("random", "pusht")
    assert refused is not None and refused.status == "incompatible"
    assert refused.reason == REFUSED and refused.n == 0 and refused.rate is None
    running = board.cell("act", "metaworld [full]")
    assert running is not None and running.status == "running" and running.reason is None
    assert board.rows[-1].mean_rate is None


def test_one_compatible_task_makes_the_cell_ok(store: Store) -> None:
    add_run(store, "random", "pusht", "t3", PUSHT, "aaaaaa11", "sf")
    cell = board_from_store(store).cell("random", "pusht")
    assert cell is not None and cell.status == "ok" and (cell.n, cell.successes) == (2, 1)


def test_filters_and_labels_follow_what_is_shown(store: Store) -> None:
    board = board_from_store(store, suite="pusht")
    assert [c.label for c in board.columns] == ["pusht"]
    assert board.filters == {"suite": "pusht"}
    board = board_from_store(store, env="metaworld", policy="act")
    assert [c.label for c in board.columns] == ["metaworld"]  # one protocol left: plain label
    assert [r.policy for r in board.rows] == ["act"]
    assert board_from_store(store, policy="nobody").rows == ()


def test_filters_accept_several_values(store: Store) -> None:
    board = board_from_store(store, policy=["act", "random"], suite=[], env=None)
    assert [r.policy for r in board.rows] == ["act", "random"]
    assert board.filters == {"policy": "act,random"}
    assert [c.label for c in board.columns] == ["metaworld", "pusht"]


def test_protocol_and_date_filters(store: Store) -> None:
    board = board_from_store(store, protocol="fast")
    assert [c.label for c in board.columns] == ["metaworld"]
    assert [r.policy for r in board.rows] == ["diffusion"]
    assert [c.label for c in board_from_store(store, protocol="cccc").columns] == ["metaworld"]
    later = add_run(store, "late", "pusht", "t1", PUSHT, "aaaaaa11", "ss")
    with store.engine.begin() as conn:
        conn.execute(
            update(Run).where(Run.id == later).values(created_at=datetime(2026, 3, 1, tzinfo=UTC))
        )
    since = board_from_store(store, since=datetime(2026, 2, 1))
    assert [r.policy for r in since.rows] == ["late"]
    until = board_from_store(store, until=datetime(2026, 2, 1))
    assert "late" not in [r.policy for r in until.rows] and len(until.rows) == 3
    assert since.filters == {"since": "2026-02-01T00:00:00"}


def test_unnamed_or_same_named_protocols_use_the_hash(store: Store) -> None:
    add_run(store, "act", "metaworld", "reach", {"name": "fast"}, "dddddd44", "sf")
    labels = [c.label for c in board_from_store(store).columns]
    assert labels == [
        "metaworld [bbbbbb]",
        "metaworld [dddddd]",
        "metaworld [full]",
        "pusht",
    ]


def test_two_checkpoints_under_one_name_are_two_rows(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'ckpt.db'}") as s:
        for outcomes, ckpt, ckpt_hash in (
            ("s" * 9 + "f", "ckpt/a", "aaaa1111beef"),
            ("s" * 2 + "f" * 8, "ckpt/b", "bbbb2222beef"),
        ):
            add_run(
                s, "smolvla", "pusht", "t1", PUSHT, "aaaaaa11", outcomes,
                checkpoint=ckpt, checkpoint_hash=ckpt_hash,
            )
        add_run(s, "noop", "pusht", "t1", PUSHT, "aaaaaa11", "f" * 10)
        board = board_from_store(s)
    assert [r.policy for r in board.rows] == ["smolvla@aaaa1111", "smolvla@bbbb2222", "noop"]
    assert [(r.name, r.checkpoint) for r in board.rows][:2] == [
        ("smolvla", "ckpt/a"),
        ("smolvla", "ckpt/b"),
    ]
    # 90% [59.6, 98.2] vs 20% [5.7, 51.0] vs 0% [0, 27.8]: the first is separated from both;
    # the other two overlap, so they tie for second place
    assert [(r.rank, r.tied) for r in board.rows] == [(1, False), (2, True), (2, True)]



def test_rank_rule_examples() -> None:
    ranks = separated_ranks([(0.6, 0.9), (0.5, 0.8), (0.1, 0.4), (0.0, 0.2)])
    # (0.1, 0.4) lies below the first two -> rank 3; (0.0, 0.2) also lies below only those two
    # (it overlaps (0.1, 0.4)) -> rank 3 as well: a tie
    assert ranks == [(1, True), (1, True), (3, True), (3, True)]
    assert separated_ranks([(0.5, 0.6), (0.1, 0.2), (0.0, 0.05)]) == [
        (1, False),
        (2, False),
        (3, False),
    ]
    assert separated_ranks([]) == []


def test_columns_by_task_and_bootstrap_interval(store: Store) -> None:
    board = board_from_store(store, by="task", suite="pusht")
    assert [c.label for c in board.columns] == ["pusht/t1", "pusht/t2"]
    t1 = board.cell("diffusion", "pusht/t1")
    assert t1 is not None and (t1.n, t1.successes) == (10, 7)
    # act is only on t1: 3/10 vs 7/10 overlap -> tied; diffusion lacks nothing, act lacks t2
    assert (t1.rank, t1.tied) == (1, True)
    boot = board_from_store(store, suite="pusht", interval="bootstrap")
    cell = boot.cell("diffusion", "pusht")
    assert cell is not None and cell.rate == pytest.approx(0.6)
    assert 0.35 < cell.ci_low < 0.6 < cell.ci_high < 0.85
    assert boot.interval_label == "95% stratified bootstrap interval"
    with pytest.raises(ValueError):
        board_from_store(store, by="episode")


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("VLABENCH_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


@pytest.mark.parametrize(
    ("fmt", "golden"),
    [("csv", "board.csv"), ("md", "board.md"), ("latex", "board.tex"), ("json", "board.json")],
)
def test_golden_exports(store: Store, fmt: str, golden: str) -> None:
    text = exporters()[fmt].export(board_from_store(store))
    assert isinstance(text, str)
    check_golden(golden, text)


def test_csv_and_json_parse(store: Store) -> None:
    board = board_from_store(store)
    rows = list(csv.DictReader(io.StringIO(FORMATS["csv"](board))))
    assert len(rows) == 5 and rows[-1]["reason"] == REFUSED
    data = json.loads(FORMATS["json"](board))
    assert [r["policy"] for r in data["rows"]] == ["diffusion", "act", "random"]
    run = data["runs"][0]
    assert run["config_hash"] and run["protocol_hash"] == "aaaaaa11"
    assert run["versions"] == {"vlabench": "0.1.0", "python": "3.12.0"}
    assert run["protocol"] == PUSHT and run["config"] == {"suite": "pusht", "task": "t1"}
    assert data["cells"][1]["tasks"][1]["errors"] == 1


def test_latex_escapes_user_strings() -> None:
    assert escape("a_b & 50% {x} #1 $ ~ ^ \\ |") == (
        r"a\_b \& 50\% \{x\} \#1 \$ \textasciitilde{} \textasciicircum{} \textbackslash{}"
        r" \textbar{}"
    )


def test_exporters_registry_png_and_empty_board(tmp_path: Path, store: Store) -> None:
    assert {s.name for s in builtin_exporters()} == {"csv", "json", "md", "latex", "html", "png"}
    png = exporters()["png"]
    assert png.binary and png.suffix == ".png"
    data = png.export(board_from_store(store))
    assert isinstance(data, bytes) and data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000
    with open_store(f"sqlite:///{tmp_path / 'empty.db'}") as s:
        board = board_from_store(s)
    assert board == Board(columns=(), rows=())
    assert FORMATS["md"](board).startswith("| rank | policy |\n| :--- | :--- |\n")
    assert FORMATS["csv"](board).count("\n") == 1
    assert json.loads(FORMATS["json"](board))["cells"] == []
    assert isinstance(exporters()["png"].export(board), bytes)


# -- columns by task groups (registry suites, stored with the runs) ----------------------------
GROUPS = {
    "g1": ("metaworld", ["t1", "t2"]),
    "g2": ("metaworld", ["t3", "t4"]),
    "g_wide": ("metaworld", ["t1", "t5"]),  # t5 never stored: not a subset, no column
    "g_pusht": ("pusht", ["t1"]),  # another env: not stored with these runs, no column
    "mt4": ("metaworld", ["t1", "t2", "t3", "t4"]),  # the stored suite itself: no column
}


def group_store(path: Path, registry: dict[str, tuple[str, list[str]]] = GROUPS) -> Store:
    """Runs written as the runner writes them under a registry with ``registry``'s suites."""
    s = open_store(f"sqlite:///{path}")
    # a: t1 4/4, t2 2/4 (one errored), t3 0/4, t4 1/4; b: t1 1/4, t2 0/4, t3 4/4, t4 4/4
    for policy, outcomes in (("a", ("ssss", "ssef", "ffff", "sfff")),
                             ("b", ("sfff", "ffff", "ssss", "ssss"))):
        for task, o in zip(("t1", "t2", "t3", "t4"), outcomes, strict=True):
            add_run(s, policy, "mt4", task, FAST, "dddddd44", o, registry=registry)
    # another protocol for t1 only: a separate stored column that no group covers
    add_run(s, "a", "mt4", "t1", FULL, "eeeeee55", "ss", registry=registry)
    freeze_times(s)
    return s


def test_columns_by_group_pool_the_group_tasks(tmp_path: Path) -> None:
    from vlabench.report.board import UnknownGroupError
    from vlabench.stats import wilson_interval

    with group_store(tmp_path / "g.db") as s:
        board = board_from_store(s, by="group")
        only = board_from_store(s, by="group", group=["g2"])
        with pytest.raises(UnknownGroupError, match=r"g_pusht .*: g1, g2, g_wide, mt4\)"):
            board_from_store(s, by="group", group="g_pusht")
    with group_store(tmp_path / "none.db", registry={}) as s:
        none = board_from_store(s, by="group")
    assert [c.label for c in board.columns] == ["mt4:g1", "mt4:g2"]
    assert [c.group for c in board.columns] == ["g1", "g2"]
    expected = {("a", "g1"): (8, 6, 1), ("a", "g2"): (8, 1, 0),
                ("b", "g1"): (8, 1, 0), ("b", "g2"): (8, 8, 0)}
    for (policy, group), (n, successes, errors) in expected.items():
        cell = board.cell(policy, f"mt4:{group}")
        assert cell is not None and (cell.n, cell.successes, cell.errors) == (n, successes, errors)
        assert cell.tasks == 2 and cell.rate == pytest.approx(successes / n)
        assert (cell.ci_low, cell.ci_high) == pytest.approx(wilson_interval(successes, n))
    # ranks per group column: 6/8 vs 1/8 overlap (tie); 1/8 vs 8/8 separate
    ranks = {(c.policy, c.column.group): (c.rank, c.tied) for c in board.cells}
    assert ranks[("a", "g1")] == ranks[("b", "g1")] == (1, True)
    assert (ranks[("b", "g2")], ranks[("a", "g2")]) == ((1, False), (2, False))
    # an explicit choice of groups; no groups, no columns (the FULL-protocol t1 run never pools in)
    assert [c.label for c in only.columns] == ["mt4:g2"]
    assert none.columns == () and none.rows == ()


def test_cli_leaderboard_by_group(cli: Any) -> None:
    group_store(cli.db_path).close()
    # the groups are the stored ones: a registry at read time adds none
    extra = cli.registry("suites:\n  g3: {env: metaworld, tasks: [t1]}\n")
    out = cli("--registry", str(extra), "leaderboard", "--by", "group", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    got = {(r["policy"], r["column"]): (r["n"], r["successes"]) for r in rows}
    assert got[("a", "mt4:g1")] == ("8", "6") and got[("b", "mt4:g2")] == ("8", "8")
    assert {r["column"] for r in rows} == {"mt4:g1", "mt4:g2"}
    one = cli("leaderboard", "--group", "g1", "-f", "csv").stdout
    assert {r["column"] for r in csv.DictReader(io.StringIO(one))} == {"mt4:g1"}
    bad = cli("leaderboard", "--group", "nope", ok=False)
    assert bad.returncode == 2 and "nope" in bad.stderr and "g1, g2, g_wide, mt4" in bad.stderr
    read_time = cli("--registry", str(extra), "leaderboard", "--group", "g3", ok=False)
    assert read_time.returncode == 2 and "g3" in read_time.stderr
