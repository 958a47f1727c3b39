"""Leaderboard exports: ``FORMATS[name](board) -> str`` for json, csv and md.

Rates and interval bounds are fractions (0..1) in json and csv, percentages in markdown.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

from vlabench.report.board import Board, Cell

FIELDS = (
    "policy",
    "suite",
    "column",
    "protocol",
    "protocol_hash",
    "n",
    "successes",
    "errors",
    "success_rate",
    "ci_low",
    "ci_high",
    "status",
    "reason",
)
MISSING = "—"


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def cell_record(cell: Cell) -> dict[str, Any]:
    """One cell as a flat dict with the keys of :data:`FIELDS`."""
    return {
        "policy": cell.policy,
        "suite": cell.column.suite,
        "column": cell.column.label,
        "protocol": cell.column.protocol,
        "protocol_hash": cell.column.protocol_hash,
        "n": cell.n,
        "successes": cell.successes,
        "errors": cell.errors,
        "success_rate": _round(cell.rate),
        "ci_low": _round(cell.ci_low),
        "ci_high": _round(cell.ci_high),
        "status": cell.status,
        "reason": cell.reason,
    }


def to_json(board: Board) -> str:
    """Columns, rows (policy and mean rate, best first) and every cell."""
    data = {
        "filters": board.filters,
        "columns": [
            {
                "column": c.label,
                "suite": c.suite,
                "protocol": c.protocol,
                "protocol_hash": c.protocol_hash,
            }
            for c in board.columns
        ],
        "rows": [{"policy": r.policy, "mean_rate": _round(r.mean_rate)} for r in board.rows],
        "cells": [cell_record(c) for c in board.cells],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def to_csv(board: Board) -> str:
    """One line per cell (long format), header :data:`FIELDS`."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for cell in board.cells:
        writer.writerow({k: "" if v is None else v for k, v in cell_record(cell).items()})
    return out.getvalue()


def _md(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def cell_text(cell: Cell | None) -> str:
    """``62.0 [49.6, 73.0] n=50``, ``incompatible: reason``, ``running`` or ``—``."""
    if cell is None:
        return MISSING
    if cell.status == "ok" and cell.rate is not None:
        low, high = cell.ci_low or 0.0, cell.ci_high or 0.0
        return f"{100 * cell.rate:.1f} [{100 * low:.1f}, {100 * high:.1f}] n={cell.n}"
    return f"{cell.status}: {cell.reason}" if cell.reason else cell.status


def to_markdown(board: Board) -> str:
    """A pipe table: one row per policy, one column per suite/protocol."""
    header = ["policy", *(c.label for c in board.columns)]
    lines = [
        "| " + " | ".join(_md(h) for h in header) + " |",
        "| " + " | ".join([":---", *("---:" for _ in board.columns)]) + " |",
    ]
    for row in board.rows:
        cells = [_md(row.policy), *(_md(cell_text(c)) for c in row.cells)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


FORMATS: dict[str, Callable[[Board], str]] = {"json": to_json, "csv": to_csv, "md": to_markdown}
