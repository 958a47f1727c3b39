"""The terminal board (and compare table) picks a readable layout for the console's width:
every number of every cell is printed whole, at 80 and 200 columns and in a non-TTY log."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
from rich.console import Console

from vlabench.report.board import build_board
from vlabench.report.model import Board
from vlabench.report.terminal import board_table, compact_cell

POLICIES = ("metaworld-expert", "metaworld-expert [async 120ms g=0.5 weighted]", "random",
            "noop")  # fmt: skip


def runs_for(columns: int, seed: int = 0) -> list[dict[str, Any]]:
    """Synthetic ``reads.run_counts`` rows: four policies on ``columns`` tasks (noop only on
    the first half, some errored episodes), as ``build_board(by="task")`` reads them."""
    rng = random.Random(seed)
    runs, run_id = [], 0
    for policy in POLICIES:
        for i in range(columns):
            if policy == "noop" and i >= max(1, columns // 2):
                continue
            n = rng.choice((5, 10, 50, 200))
            run_id += 1
            runs.append({
                "id": run_id, "policy": policy, "suite": "metaworld_mt50",
                "task": f"task-{i:02d}-press-v3", "protocol_hash": "h1",
                "protocol": {"name": "full"}, "status": "finished", "n": n,
                "successes": rng.randint(0, n), "errors": rng.choice((0, 0, 1, 3)),
            })  # fmt: skip
    return runs


def render(board: Board, width: int) -> str:
    console = Console(width=width, force_terminal=False, record=True, color_system=None)
    with console.capture() as capture:
        console.print(board_table(board))
    return capture.get()


def numbers(cell_text: str) -> list[str]:
    """Rate, interval bounds, n and errors of a compact cell, as printed."""
    return re.findall(r"\d+", cell_text.split(" #")[0])


@pytest.mark.parametrize("columns", [3, 10, 50])
@pytest.mark.parametrize("width", [80, 200])
def test_every_number_whole_at_any_width(columns: int, width: int) -> None:
    board = build_board(runs_for(columns), by="task")
    out = render(board, width)
    for line in out.splitlines():
        assert len(line) <= width, line
    assert "…" not in out
    for row in board.rows:
        for cell in row.cells:
            if cell is None:
                continue
            text = compact_cell(cell)
            assert text in out, (text, out)  # the whole cell on one line: no number cut
            rate, low, high, n, *errors = numbers(text)
            assert f"{rate} [{low},{high}] n={n}" in out
            assert (f"n={n}, {errors[0]} err" in out) if cell.errors else True
    # the legend explains every mark
    words = " ".join(out.split())
    marks = ("#k: rank in the column", "=k: tied", "— : not run",
             "k episodes ended by an error", "k*: among those with fewer than all columns")
    for mark in marks:
        assert mark in words, mark


def test_layout_wide_when_it_fits_long_when_not() -> None:
    small = build_board(runs_for(3), by="task")
    wide = render(small, 200)
    assert "per column (" not in wide  # one table, a column per task
    assert wide.count("task-00-press-v3") == 1
    long = render(small, 80)
    assert "per column (3 columns: tasks of metaworld_mt50)" in long  # one row per column x policy
    big = render(build_board(runs_for(50), by="task"), 200)
    assert "per column (50 columns" in big


def test_cells_are_compact_with_errors_and_rank() -> None:
    runs = [
        {"id": 1, "policy": "a", "suite": "s", "task": "t", "protocol_hash": "h",
         "protocol": {}, "status": "finished", "n": 50, "successes": 49, "errors": 1},
        {"id": 2, "policy": "b", "suite": "s", "task": "t", "protocol_hash": "h",
         "protocol": {}, "status": "finished", "n": 50, "successes": 5, "errors": 0},
    ]  # fmt: skip
    board = build_board(runs)
    a, b = (r.cells[0] for r in board.rows)
    assert compact_cell(a) == "98 [90,100] n=50, 1 err #1"
    assert compact_cell(b) == "10 [4,21] n=50 #2"
    assert compact_cell(None) == "—"


def test_non_tty_cli_board_at_80_columns(cli: Any) -> None:
    from test_report import PUSHT, add_run

    with cli.store() as store:
        for i in range(10):
            add_run(store, "metaworld-expert", "metaworld_mt10", f"task-{i}", PUSHT, "h1",
                    "s" * 48 + "e" + "f")  # fmt: skip
            add_run(store, "random", "metaworld_mt10", f"task-{i}", PUSHT, "h1", "f" * 50)
    cli.env["COLUMNS"] = "80"
    out = cli("leaderboard", "--by", "task", "--suite", "metaworld_mt10").stdout
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= 80
    assert out.count("96 [87,99] n=50, 1 err #1") == 10
    assert out.count("0 [0,7] n=50 #2") == 10


def test_partial_rows_ranked_among_rows_on_the_same_columns() -> None:
    runs = runs_for(4)
    runs += [dict(r, id=100 + r["id"], policy="noop-2") for r in runs if r["policy"] == "noop"]
    board = build_board(runs, by="task")
    ranked = {r.policy: r.rank for r in board.rows}
    full = [p for p in POLICIES if p != "noop"]
    assert all(ranked[p] is not None for p in full)
    assert ranked["noop"] is not None and ranked["noop-2"] is not None  # same two columns
    alone = build_board(runs_for(4), by="task")
    assert {r.policy: r.rank for r in alone.rows}["noop"] is None  # alone on its columns
    out = render(board, 200)
    assert re.search(r"\d\* .*noop", out), out
