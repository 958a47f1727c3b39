"""Leaderboards from a small real store: aggregation, columns per protocol, exports."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from vlabench.api import EpisodeRecord
from vlabench.report import FORMATS, Board, board_from_store, to_csv, to_json, to_markdown
from vlabench.store import Store, open_store

PUSHT = {"name": "default", "episodes": 10, "max_steps": 300}
FAST = {"name": "fast", "episodes": 4, "max_steps": 100}
FULL = {"name": "full", "episodes": 50, "max_steps": 500}
REFUSED = "action space ee_delta | pixel_xy mismatch"


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
) -> int:
    """A run whose episodes are given as a string: ``s`` success, ``f`` failure, ``e`` error."""
    run_id, _ = store.get_or_create_run(
        f"{policy}/{suite}/{task}/{protocol_hash}",
        policy=policy,
        policy_type=policy,
        policy_plugin="scripted",
        env="pusht" if suite == "pusht" else "metaworld",
        env_plugin="builtin",
        suite=suite,
        task=task,
        protocol=protocol,
        protocol_hash=protocol_hash,
        n_episodes=len(outcomes),
    )
    for i, outcome in enumerate(outcomes):
        store.add_episode(
            run_id,
            EpisodeRecord(
                task=task,
                episode_index=i,
                seed=i,
                init_state_id=None,
                success=outcome == "s",
                steps=10,
                reward_sum=0.0,
                wall_time_s=0.1,
                failure_reason="policy raised" if outcome == "e" else None,
            ),
        )
    store.set_run_status(run_id, status, error)
    return run_id


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

    fast = board.cell("diffusion", "metaworld [fast]")
    assert fast is not None and (fast.n, fast.successes) == (4, 4)
    assert board.cell("diffusion", "metaworld [full]") is None
    assert board.rows[0].mean_rate == pytest.approx(0.8)


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


def test_unnamed_or_same_named_protocols_use_the_hash(store: Store) -> None:
    add_run(store, "act", "metaworld", "reach", {"name": "fast"}, "dddddd44", "sf")
    labels = [c.label for c in board_from_store(store).columns]
    assert labels == [
        "metaworld [bbbbbb]",
        "metaworld [dddddd]",
        "metaworld [full]",
        "pusht",
    ]


EXPECTED_MD = """\
| policy | metaworld [fast] | metaworld [full] | pusht |
| :--- | ---: | ---: | ---: |
| diffusion | 100.0 [51.0, 100.0] n=4 | — | 60.0 [38.7, 78.1] n=20 |
| act | — | running | 30.0 [10.8, 60.3] n=10 |
| random | — | — | incompatible: action space ee_delta \\| pixel_xy mismatch |
"""

EXPECTED_CSV = """\
policy,suite,column,protocol,protocol_hash,n,successes,errors,success_rate,ci_low,ci_high,status,reason
diffusion,metaworld,metaworld [fast],fast,bbbbbb22,4,4,0,1.0,0.510109,1.0,ok,
diffusion,pusht,pusht,default,aaaaaa11,20,12,1,0.6,0.386582,0.781193,ok,
act,metaworld,metaworld [full],full,cccccc33,0,0,0,,,,running,
act,pusht,pusht,default,aaaaaa11,10,3,0,0.3,0.107791,0.603222,ok,
random,pusht,pusht,default,aaaaaa11,0,0,0,,,,incompatible,action space ee_delta | pixel_xy mismatch
"""


def test_markdown(store: Store) -> None:
    assert to_markdown(board_from_store(store)) == EXPECTED_MD


def test_csv(store: Store) -> None:
    text = to_csv(board_from_store(store))
    assert text == EXPECTED_CSV
    assert len(list(csv.DictReader(io.StringIO(text)))) == 5


def test_json(store: Store) -> None:
    data = json.loads(to_json(board_from_store(store)))
    assert [c["column"] for c in data["columns"]] == [
        "metaworld [fast]",
        "metaworld [full]",
        "pusht",
    ]
    assert data["rows"] == [
        {"policy": "diffusion", "mean_rate": 0.8},
        {"policy": "act", "mean_rate": 0.3},
        {"policy": "random", "mean_rate": None},
    ]
    assert data["cells"][1] == {
        "policy": "diffusion",
        "suite": "pusht",
        "column": "pusht",
        "protocol": "default",
        "protocol_hash": "aaaaaa11",
        "n": 20,
        "successes": 12,
        "errors": 1,
        "success_rate": 0.6,
        "ci_low": 0.386582,
        "ci_high": 0.781193,
        "status": "ok",
        "reason": None,
    }
    assert data["cells"][-1]["status"] == "incompatible"
    assert data["cells"][-1]["reason"] == REFUSED
    assert len(data["cells"]) == 5


def test_formats_registry_and_empty_board(tmp_path: Path) -> None:
    assert set(FORMATS) == {"json", "csv", "md"}
    with open_store(f"sqlite:///{tmp_path / 'empty.db'}") as s:
        board = board_from_store(s)
    assert board == Board(columns=(), rows=())
    assert FORMATS["md"](board) == "| policy |\n| :--- |\n"
    assert FORMATS["csv"](board).count("\n") == 1
    assert json.loads(FORMATS["json"](board))["cells"] == []
