"""The demo's main job (scripts/demo.sh: `vlabench matrix`, registry.yaml matrices.default),
smaller: the policies' intervals separate, and the HTML report is written and its path printed."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
pytest.importorskip("metaworld")


def _separate(a: dict, b: dict) -> bool:
    return a["ci_low"] > b["ci_high"] or b["ci_low"] > a["ci_high"]


def test_demo_matrix_separates_and_writes_the_report(cli) -> None:
    cli.env["MUJOCO_GL"] = "egl"
    proc = cli("matrix", "--name", "default", "-n", "2", "--workers", "2", timeout=240)

    # The board: at least two policies whose intervals do not overlap on a column.
    board = json.loads(cli("leaderboard", "-f", "json").stdout)
    cells: dict[str, list[dict]] = {}
    for cell in board["cells"]:
        if cell.get("ci_low") is not None and cell.get("n"):
            cells.setdefault(cell["column"], []).append(cell)
    assert cells, board
    separated = [
        (a["policy"], b["policy"])
        for column in cells.values()
        for i, a in enumerate(column)
        for b in column[i + 1 :]
        if _separate(a, b)
    ]
    assert separated, f"no two policies' intervals separate: {cells}"
    policies = {cell["policy"] for column in cells.values() for cell in column}
    assert {"metaworld-expert", "random", "noop"} <= policies

    # The HTML report beside the store, its path printed, and what to try next.
    report = cli.db_path.parent / "leaderboard.html"
    assert report.is_file()
    assert "metaworld-expert" in report.read_text(encoding="utf-8")
    printed = re.search(r"^HTML report: (.+)$", proc.stdout, re.M)
    assert printed, proc.stdout
    assert Path(printed.group(1)).resolve() == report.resolve()
    assert "vlabench leaderboard --by task" in proc.stdout
    assert "vlabench compare metaworld-expert random" in proc.stdout


def test_no_leaderboard_writes_no_report(cli) -> None:
    proc = cli(
        "matrix", "--policy", "noop", "--suite", "pusht_quick", "-n", "1", "--no-leaderboard"
    )
    assert "HTML report" not in proc.stdout + proc.stderr
    assert not (cli.db_path.parent / "leaderboard.html").exists()
