"""Learning curves: success vs training step with 95% Wilson bands (terminal, PNG, HTML).

A point is one checkpoint: the runs stored with ``report_meta["training_step"]`` (written by
``vlabench sweep``) grouped by training run (``report_meta["training_run"]``) and step, all
their episodes pooled (errored ones count as failures).
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vlabench.stats import wilson_interval


@dataclass(frozen=True)
class CurvePoint:
    """One checkpoint of a training run on one suite."""

    training_run: str
    suite: str
    step: int
    successes: int
    n: int

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.n) if self.n else (0.0, 1.0)

    @property
    def rate(self) -> float:
        return self.successes / self.n if self.n else 0.0


def curve_points(
    runs: Iterable[Mapping[str, Any]], episodes: Mapping[int, list[Mapping[str, Any]]]
) -> list[CurvePoint]:
    """Points from stored runs (dicts with ``id``, ``suite``, ``report_meta``) and their
    episodes by run id; runs without a training step are left out."""
    pooled: dict[tuple[str, str, int], list[int]] = defaultdict(lambda: [0, 0])
    for run in runs:
        meta = run.get("report_meta") or {}
        if "training_step" not in meta:
            continue
        key = (str(meta.get("training_run", "")), str(run.get("suite", "")),
               int(meta["training_step"]))  # fmt: skip
        for episode in episodes.get(run["id"], []):
            pooled[key][0] += bool(episode["success"]) and episode.get("failure_reason") is None
            pooled[key][1] += 1
    return [CurvePoint(r, s, step, w, n) for (r, s, step), (w, n) in sorted(pooled.items())]


def to_text(points: list[CurvePoint], width: int = 80) -> str:
    """One line per checkpoint: step, success % [interval] n, and a bar with the band."""
    lines = []
    bar = max(10, width - 44)
    for (run, suite), group in _groups(points).items():
        lines.append(f"{run} on {suite}: success vs training step (95% Wilson)")
        for p in group:
            low, high = p.interval
            cells = [" "] * bar
            for i in range(int(low * (bar - 1)), int(high * (bar - 1)) + 1):
                cells[i] = "-"
            cells[int(p.rate * (bar - 1))] = "#"
            text = f"{100 * p.rate:5.1f} [{100 * low:5.1f},{100 * high:5.1f}] n={p.n:<4}"
            lines.append(f"{p.step:>8} {text} |{''.join(cells)}|")
    return "\n".join(lines)


def to_png(points: list[CurvePoint], dpi: int = 110) -> bytes:
    """The curves as a PNG (matplotlib): success % vs step, a shaded Wilson band each."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for (run, suite), group in _groups(points).items():
        steps = [p.step for p in group]
        ax.plot(steps, [100 * p.rate for p in group], marker="o", label=f"{run} ({suite})")
        ax.fill_between(steps, [100 * p.interval[0] for p in group],
                        [100 * p.interval[1] for p in group], alpha=0.2)  # fmt: skip
    ax.set_xlabel("training step")
    ax.set_ylabel("success % (95% Wilson)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi)
    plt.close(fig)
    return out.getvalue()


def to_html(points: list[CurvePoint]) -> str:
    """An HTML section: one inline SVG per curve (no script, no external files)."""
    if not points:
        return ""
    parts = ['<section class="curves"><h2>Learning curves</h2>']
    w, h, pad = 480, 200, 30
    for (run, suite), group in _groups(points).items():
        top = max(p.step for p in group) or 1

        def xy(step: int, rate: float, top: int = top) -> str:
            return f"{pad + (w - 2 * pad) * step / top:.1f},{h - pad - (h - 2 * pad) * rate:.1f}"

        band = [xy(p.step, p.interval[1]) for p in group]
        band += [xy(p.step, p.interval[0]) for p in reversed(group)]
        line = " ".join(xy(p.step, p.rate) for p in group)
        title = html.escape(f"{run} on {suite}")
        rows = "".join(
            f"<tr><td>{p.step}</td><td>{100 * p.rate:.1f}</td><td>[{100 * p.interval[0]:.1f}, "
            f"{100 * p.interval[1]:.1f}]</td><td>{p.n}</td></tr>"
            for p in group
        )
        parts.append(
            f"<h3>{title}</h3><svg width='{w}' height='{h}' role='img' aria-label='{title}'>"
            f"<polygon points='{' '.join(band)}' fill='#88f' fill-opacity='0.25'/>"
            f"<polyline points='{line}' fill='none' stroke='#22a' stroke-width='2'/></svg>"
            "<table><tr><th>step</th><th>success %</th><th>95% Wilson</th><th>n</th></tr>"
            f"{rows}</table>"
        )
    parts.append("</section>")
    return "".join(parts)


def _groups(points: list[CurvePoint]) -> dict[tuple[str, str], list[CurvePoint]]:
    groups: dict[tuple[str, str], list[CurvePoint]] = defaultdict(list)
    for p in points:
        groups[(p.training_run, p.suite)].append(p)
    return {k: sorted(v, key=lambda p: p.step) for k, v in groups.items()}
