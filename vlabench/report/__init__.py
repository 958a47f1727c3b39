"""Leaderboards from the store: :func:`board_from_store` and the export ``FORMATS``."""

from vlabench.report.board import Board, Cell, Column, Row, board_from_store, build_board
from vlabench.report.formats import FORMATS, cell_text, to_csv, to_json, to_markdown

__all__ = [
    "FORMATS",
    "Board",
    "Cell",
    "Column",
    "Row",
    "board_from_store",
    "build_board",
    "cell_text",
    "to_csv",
    "to_json",
    "to_markdown",
]
