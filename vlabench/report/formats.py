"""Text exports of a board: csv (one line per cell), json (everything), markdown.

Rates and interval bounds are fractions (0..1) in json and csv, percentages elsewhere. Metric
columns (open-loop errors, lower is better) show the metric's mean and interval in its own
units; in json and csv their cells carry ``metric`` and ``value`` and no ``success_rate``.
The json carries the full metadata of every run behind the board (config and its hash,
protocol and its hash, versions, host, git sha, timestamps), so a published number can be
traced to what produced it.

Names come from plugins, registries and stores, so every export is safe to open: csv prefixes
a string cell that a spreadsheet would run as a formula with ``'`` (:func:`csv_safe`), markdown
writes ``<``, ``>`` and ``&`` as entities and escapes what would end a cell or make a link
(:func:`_md`); json is data, and latex and html escape their own way.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

from vlabench.report.model import Board, Cell, Row, TaskResult

FIELDS = (
    "policy",
    "suite",
    "task",
    "column",
    "protocol",
    "protocol_hash",
    "n",
    "successes",
    "errors",
    "success_rate",
    "ci_low",
    "ci_high",
    "rank",
    "tied",
    "status",
    "reason",
)
METRIC_FIELDS = ("metric", "value")
"""Extra csv fields, present when the board has metric columns."""
MISSING = "—"


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def rank_text(rank: int | None, tied: bool) -> str:
    """``1``, ``=2`` (tied: intervals overlap) or ``—`` (not ranked)."""
    if rank is None:
        return MISSING
    return f"={rank}" if tied else str(rank)


def caption(board: Board) -> str:
    """What the numbers mean, for every human-readable format."""
    text = (
        f"success % [{board.interval_label}] n=episodes; rank only where intervals "
        "separate (=k: tied); a column is one protocol"
    )
    directions = {c.lower_is_better for c in board.columns if c.metric}
    if directions:
        better = {frozenset({True}): "lower", frozenset({False}): "higher"}.get(
            frozenset(directions), "lower or higher per metric"
        )
        text += (
            "; metric columns (suite metric): mean over episodes [95% bootstrap interval], "
            f"{better} is better, not in the row mean"
        )
    if board.anytime:
        text += (
            "; [..]~: stopped by a sequential rule (--precision, --until-decided), an "
            "anytime-valid interval (confidence sequence), not fixed-n; over tasks the mean "
            "of per-task rates"
        )
    return text


def cell_record(cell: Cell) -> dict[str, Any]:
    """One cell as a flat dict with the keys of :data:`FIELDS` (+ metric fields if a metric)."""
    record = {
        "policy": cell.policy,
        "suite": cell.column.suite,
        "task": cell.column.task,
        "column": cell.column.label,
        "protocol": cell.column.protocol,
        "protocol_hash": cell.column.protocol_hash,
        "n": cell.n,
        "successes": cell.successes,
        "errors": cell.errors,
        "success_rate": _round(cell.rate),
        "ci_low": _round(cell.ci_low),
        "ci_high": _round(cell.ci_high),
        "rank": cell.rank,
        "tied": cell.tied,
        "status": cell.status,
        "reason": cell.reason,
    }
    if cell.column.metric:
        record.update(metric=cell.column.metric, value=_round(cell.value))
    if cell.anytime:
        record["interval"] = "anytime-valid confidence sequence (sequentially stopped)"
    return record


def task_record(task: TaskResult) -> dict[str, Any]:
    return {
        "task": task.task,
        "n": task.n,
        "successes": task.successes,
        "errors": task.errors,
        "success_rate": _round(task.rate),
        "ci_low": _round(task.ci_low),
        "ci_high": _round(task.ci_high),
        "status": task.status,
        "reason": task.reason,
        "run_ids": list(task.run_ids),
    }


def row_record(row: Row) -> dict[str, Any]:
    return {
        "policy": row.policy,
        "name": row.name,
        "policy_type": row.policy_type,
        "checkpoint": row.checkpoint,
        "checkpoint_hash": row.checkpoint_hash,
        "options": dict(row.options),
        "mean_rate": _round(row.mean_rate),
        "mean_ci_low": _round(row.mean_low),
        "mean_ci_high": _round(row.mean_high),
        "rank": row.rank,
        "tied": row.tied,
    }


def to_json(board: Board) -> str:
    """Columns, rows (best first), cells with their tasks, and every run's full metadata."""
    data = {
        "filters": board.filters,
        "by": board.by,
        "interval": board.interval,
        "confidence": board.confidence,
        "caption": caption(board),
        "columns": [
            {
                "column": c.label,
                "suite": c.suite,
                "task": c.task,
                "protocol": c.protocol,
                "protocol_hash": c.protocol_hash,
                **({"metric": c.metric} if c.metric else {}),
            }
            for c in board.columns
        ],
        "rows": [row_record(r) for r in board.rows],
        "cells": [
            {**cell_record(c), "run_ids": list(c.run_ids),
             "tasks": [task_record(t) for t in c.task_results]}
            for c in board.cells
        ],
        "runs": [dict(board.runs[k]) for k in sorted(board.runs)],
    }
    return json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a csv cell as a formula (OWASP, "CSV injection")."""


def csv_safe(value: Any) -> Any:
    """A string cell that a spreadsheet would run as a formula (``=HYPERLINK(...)``,
    ``+cmd|...``, ``@SUM(...)``) gets a leading ``'``, so it opens as text (OWASP's advice).
    Numbers (``-0.5``), booleans and ``None`` are left as they are: a numeric cell stays
    numeric; only the strings (names, reasons) are ever prefixed."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def to_csv(board: Board) -> str:
    """One line per cell (long format), header :data:`FIELDS`; see :func:`csv_safe`."""
    fields = FIELDS + METRIC_FIELDS if any(c.metric for c in board.columns) else FIELDS
    # Lines end in "\n", but the writer is told "\r\n": it quotes a field holding either
    # (with "\n" alone, a bare CR stays unquoted and a spreadsheet starts a new row there).
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\r\n", restval="")
    lines = []
    for row in [dict(zip(fields, fields, strict=True)), *map(cell_record, board.cells)]:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow({k: "" if v is None else csv_safe(v) for k, v in row.items()})
        lines.append(buffer.getvalue().removesuffix("\r\n") + "\n")
    return "".join(lines)


_MD_ESCAPES = {"\\": "\\\\", "|": "\\|", "`": "\\`", "&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _md(text: str) -> str:
    """One table cell of text that renders as itself: whitespace (newlines too) collapsed;
    ``<``, ``>``, ``&`` as HTML entities (no tag, however the renderer treats raw HTML);
    backslash, pipe and backtick escaped (no extra cell, no code span); ``](`` escaped (no
    link or image). ``[`` alone stays: ``62.0 [49.6, 73.0]`` and ``pusht [fast]`` are text."""
    text = "".join(_MD_ESCAPES.get(ch, ch) for ch in " ".join(str(text).split()))
    return text.replace("](", "\\](")


def cell_text(cell: Cell | None) -> str:
    """``62.0 [49.6, 73.0] n=50``, ``0.0 [0.0, 56.1] n=3, 1 errored`` (episodes ended by an
    error, counted as failures), ``incompatible: reason``, ``running`` or ``—``."""
    if cell is None:
        return MISSING
    n = f"n={cell.n}" + (f", {cell.errors} errored" if cell.errors else "")
    if cell.status == "ok" and cell.column.metric and cell.value is not None:
        low, high = cell.ci_low or 0.0, cell.ci_high or 0.0
        return f"{cell.value:.4g} [{low:.4g}, {high:.4g}] {n}"
    if cell.status == "ok" and cell.rate is not None:
        low, high = cell.ci_low or 0.0, cell.ci_high or 0.0
        seq = "~" if cell.anytime else ""  # anytime-valid (caption)
        return f"{100 * cell.rate:.1f} [{100 * low:.1f}, {100 * high:.1f}]{seq} {n}"
    return f"{cell.status}: {cell.reason}" if cell.reason else cell.status


def to_markdown(board: Board) -> str:
    """A pipe table: rank, policy, one column per suite (or task) and protocol; a caption."""
    header = ["rank", "policy", *(c.label for c in board.columns)]
    lines = [
        "| " + " | ".join(_md(h) for h in header) + " |",
        "| " + " | ".join([":---", ":---", *("---:" for _ in board.columns)]) + " |",
    ]
    for row in board.rows:
        cells = [
            rank_text(row.rank, row.tied),
            _md(row.policy),
            *(_md(cell_text(c)) for c in row.cells),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + caption(board) + "\n"


FORMATS: dict[str, Callable[[Board], str]] = {"json": to_json, "csv": to_csv, "md": to_markdown}
"""The plain-text formats (the full set, with latex, html and png, is in ``exporters``)."""
