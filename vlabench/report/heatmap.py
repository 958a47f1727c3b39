"""The matrix as a PNG heatmap (matplotlib, imported lazily; ``pip install 'vlabench[report]'``).

Rows are policies, columns suites (or tasks); a cell shows the success rate and its
interval, incompatible cells are grey and hatched, missing ones blank.
"""

from __future__ import annotations

import io

from vlabench.report.model import Board


def to_png(board: Board, dpi: int = 120) -> bytes:
    """PNG bytes of the heatmap (deterministic: no timestamp in the file's metadata)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.figure import Figure

    n_rows, n_cols = max(len(board.rows), 1), max(len(board.columns), 1)
    values = np.full((n_rows, n_cols), np.nan)
    for i, row in enumerate(board.rows):
        for j, cell in enumerate(row.cells):
            if cell is not None and cell.rate is not None:
                values[i, j] = 100 * cell.rate
    fig = Figure(figsize=(1.6 + 1.3 * n_cols, 0.9 + 0.55 * n_rows), dpi=dpi)
    ax = fig.subplots()
    image = ax.imshow(
        np.ma.masked_invalid(values), cmap="viridis", vmin=0, vmax=100, aspect="auto"
    )
    fig.colorbar(image, ax=ax, label="success %", fraction=0.04)
    for i, row in enumerate(board.rows):
        for j, cell in enumerate(row.cells):
            if cell is None:
                continue
            if cell.rate is not None:
                text = f"{100 * cell.rate:.0f}\n[{100 * (cell.ci_low or 0):.0f}, "
                text += f"{100 * (cell.ci_high or 0):.0f}]"
                color = "white" if values[i, j] < 60 else "black"
            else:
                ax.add_patch(
                    plt.Rectangle(
                        (j - 0.5, i - 0.5), 1, 1, facecolor="0.85", hatch="//", edgecolor="0.6"
                    )
                )
                text, color = cell.status, "0.2"
                if cell.value is not None:  # a metric column (lower is better), not a rate
                    text = f"{cell.value:.3g}\n[{cell.ci_low or 0:.3g}, {cell.ci_high or 0:.3g}]"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color,
                    parse_math=False)
    ax.set_xticks(range(len(board.columns)), [c.label for c in board.columns], rotation=30,
                  ha="right", fontsize=8, parse_math=False)
    ax.set_yticks(range(len(board.rows)), [r.policy for r in board.rows], fontsize=8,
                  parse_math=False)
    ax.set_title(f"success % [{board.interval_label}]", fontsize=9)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()
