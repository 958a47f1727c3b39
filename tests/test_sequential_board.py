"""Boards never show a fixed-n interval for a run stopped by a sequential rule: its cell (and
its task drill-down, every export, `show`) carries the confidence sequence; fixed-n runs
keep the interval they had."""

from __future__ import annotations

import json
from pathlib import Path

from test_report import PUSHT, add_run

from vlabench import sequential, stats
from vlabench.report import board_from_store
from vlabench.report.compare import compare
from vlabench.report.exporters import exporters
from vlabench.report.terminal import compact_cell
from vlabench.sequential import StoppingRule
from vlabench.store import open_store

RULE = {**StoppingRule("precision", precision=0.2, round=5).as_dict(), "budget": 50,
        "looks": [5, 10, 15], "stopped": "precision"}  # fmt: skip


def _cell(board: object, policy: str) -> object:
    """The policy's cell of task t1 (columns are labelled by task)."""
    return next(
        c for c in board.cells  # type: ignore[attr-defined]
        if c.policy == policy and c.column.task == "t1"
    )


def test_stopped_cells_show_the_confidence_sequence(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'b.db'}") as store:
        stopped_1 = add_run(store, "seq", "pusht", "t1", PUSHT, "aaaaaa11", "s" * 14 + "f")
        stopped_2 = add_run(store, "seq", "pusht", "t2", PUSHT, "aaaaaa11", "s" * 5 + "f" * 5)
        add_run(store, "fixed", "pusht", "t1", PUSHT, "aaaaaa11", "s" * 14 + "f")
        for run_id in (stopped_1, stopped_2):
            store.update_report_meta(run_id, sequential=RULE)
        by_task = board_from_store(store, by="task")
        pooled = board_from_store(store)
        html = exporters(None)["html"].export(pooled)  # type: ignore[arg-type]
        as_json = json.loads(exporters(None)["json"].export(by_task))  # type: ignore[arg-type]
        paired = compare(store, "seq", "fixed")

    seq, fixed = _cell(by_task, "seq"), _cell(by_task, "fixed")
    assert seq is not None and fixed is not None
    assert seq.anytime and not fixed.anytime
    assert (seq.ci_low, seq.ci_high) == sequential.rate_sequence(14, 15)
    assert (fixed.ci_low, fixed.ci_high) == stats.wilson_interval(14, 15)
    assert seq.ci_low < fixed.ci_low  # the valid interval is the wider one
    assert "]~ n=15" in compact_cell(seq) and "~" not in compact_cell(fixed)
    assert seq.task_results[0].anytime

    # two tasks stopped at their own n: the mean of per-task rates, simultaneous sequences
    cell = pooled.cell("seq", "pusht")
    assert cell is not None and cell.anytime and cell.n == 25
    assert cell.rate == (14 / 15 + 5 / 10) / 2
    bounds = [sequential.rate_sequence(14, 15, 0.025), sequential.rate_sequence(5, 10, 0.025)]
    assert cell.ci_low == sum(b[0] for b in bounds) / 2
    assert cell.ci_high == sum(b[1] for b in bounds) / 2
    assert pooled.anytime and "anytime-valid" in html
    cells = {(c["policy"], c["task"]): c for c in as_json["cells"]}
    assert "interval" in cells[("seq", "t1")] and "interval" not in cells[("fixed", "t1")]

    # compare on a sequentially stopped run: the paired confidence sequence, not exact McNemar
    assert paired.anytime and paired.table.n == 15
    t = paired.table
    assert (paired.low, paired.high) == sequential.paired_sequence(t.only_a, t.only_b, t.n)
    assert "anytime-valid" in paired.verdict() and "McNemar p" not in paired.verdict()
    assert paired.as_dict()["overall"]["interval"].startswith("anytime-valid")
