"""The built-in export formats, offered through the ``vlabench_exporters`` hook.

This module is a default plugin (:data:`vlabench.catalog.DEFAULT_PLUGINS`), registered
through the same manager as third-party ones and called before them, so a plugin format with
the name of a built-in one is ignored (the built-in wins). :func:`exporters` reads the
catalog, which has them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from vlabench import api, hookimpl


class HasExporters(Protocol):
    """What :func:`exporters` reads of a plugin catalog (``vlabench.catalog.Catalog``)."""

    @property
    def exporters(self) -> Mapping[str, api.ExporterSpec]: ...


def _latex(board: object) -> str:
    from vlabench.report.latex import to_latex

    return to_latex(board)  # type: ignore[arg-type]


def _html(board: object) -> str:
    from vlabench.report.html import to_html

    return to_html(board)  # type: ignore[arg-type]


def _png(board: object) -> bytes:
    from vlabench.report.heatmap import to_png

    return to_png(board)  # type: ignore[arg-type]


def builtin_exporters() -> list[api.ExporterSpec]:
    """csv, json, md, latex, html and png."""
    from vlabench.report.formats import to_csv, to_json, to_markdown

    return [
        api.ExporterSpec("csv", "one line per cell (long format)", ".csv", to_csv),
        api.ExporterSpec(
            "json", "cells, tasks and full run metadata (versions, hashes)", ".json", to_json
        ),
        api.ExporterSpec("md", "markdown pipe table with caption", ".md", to_markdown),
        api.ExporterSpec("latex", "booktabs table for papers", ".tex", _latex),
        api.ExporterSpec(
            "html",
            "self-contained page: sortable table, heatmap, drill-down, video links",
            ".html",
            _html,
            episodes=True,
        ),
        api.ExporterSpec("png", "heatmap of the matrix (matplotlib)", ".png", _png, binary=True),
    ]


@hookimpl
def vlabench_exporters() -> list[api.ExporterSpec]:
    """The built-in leaderboard formats."""
    return builtin_exporters()


def exporters(catalog: HasExporters | None = None) -> dict[str, api.ExporterSpec]:
    """Every available format by name: the catalog's; without a catalog, the built-ins."""
    if catalog is None:
        return {spec.name: spec for spec in builtin_exporters()}
    return dict(catalog.exporters)
