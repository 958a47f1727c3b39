"""Leaderboards from the store: :func:`board_from_store`, exports and paired comparisons."""

from vlabench.report.board import board_from_store, build_board
from vlabench.report.cells import separated_ranks
from vlabench.report.formats import FORMATS, cell_text, to_csv, to_json, to_markdown
from vlabench.report.model import Board, Cell, Column, Row, TaskResult

__all__ = [
    "FORMATS",
    "Board",
    "Cell",
    "Column",
    "Row",
    "TaskResult",
    "board_from_store",
    "build_board",
    "cell_text",
    "separated_ranks",
    "to_csv",
    "to_json",
    "to_markdown",
]
