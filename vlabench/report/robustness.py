"""Robustness profiles: a policy on a suite's control and its perturbed variants, paired.

A variant ``suite@axis:k`` runs the control's episodes (same task, index, seed and init
state) under severity ``k`` of an axis; each of its episodes is paired with the control's
episode of the same key, under the same protocol otherwise. Per axis and severity: success
with its Wilson interval, the paired difference to the control (perturbed minus control) with
Newcombe's interval for paired data, and McNemar's exact p. A variant is never pooled with its
control, nor with another variant. Policies are ranked on their worst-axis drop only where
those intervals separate (:func:`rank`).
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vlabench import api, stats
from vlabench.report.compare import select_runs

if TYPE_CHECKING:
    from vlabench.store import Store

Key = tuple[str, int, int, int | None]
"""An episode's start: task, index, seed, init state."""


def is_perturbed(suite: str) -> bool:
    """Whether a stored suite name is a perturbed variant (``suite@axis:k``)."""
    return api.VARIANT_MARK in suite


def _perturbation(run: dict[str, Any]) -> dict[str, Any] | None:
    return (run.get("protocol") or {}).get("perturbation")


def _protocol_key(run: dict[str, Any]) -> str:
    """The run's protocol without the episode count and the perturbation, plus inference."""
    protocol = {k: v for k, v in (run.get("protocol") or {}).items()
                if k not in ("episodes", "perturbation")}
    return json.dumps([protocol, run.get("inference_mode")], sort_keys=True, default=str)


@dataclass(frozen=True)
class Rate:
    """Successes of n episodes with the Wilson interval."""

    successes: int
    n: int
    low: float
    high: float

    @property
    def rate(self) -> float:
        return self.successes / self.n if self.n else 0.0

    @classmethod
    def of(cls, successes: int, n: int, confidence: float) -> Rate:
        low, high = stats.wilson_interval(successes, n, confidence) if n else (0.0, 1.0)
        return cls(successes, n, low, high)


@dataclass(frozen=True)
class Arm:
    """One axis x severity against the control, on the episodes both have."""

    axis: str
    severity: int
    suite: str
    params: dict[str, Any]
    perturbed: Rate
    control: Rate
    table: stats.PairedTable
    """A = perturbed, B = control."""
    low: float
    high: float
    """Newcombe's interval of the paired difference (perturbed - control)."""
    p: float
    """McNemar's exact p."""
    unpaired: int

    @property
    def difference(self) -> float:
        return self.table.difference

    @property
    def separated(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class Profile:
    """A policy's robustness on one suite: the control and every measured arm."""

    policy: str
    suite: str
    control: Rate
    arms: tuple[Arm, ...]
    confidence: float = 0.95
    notes: tuple[str, ...] = field(default=())

    def axes(self) -> list[str]:
        return list(dict.fromkeys(a.axis for a in self.arms))

    def worst(self) -> Arm | None:
        """The arm with the largest drop (lowest paired difference), at any severity."""
        return min(self.arms, key=lambda a: (a.difference, a.high), default=None)

    def as_dict(self) -> dict[str, Any]:
        def rate(r: Rate) -> dict[str, Any]:
            return {"successes": r.successes, "n": r.n, "rate": r.rate, "low": r.low,
                    "high": r.high}

        return {
            "policy": self.policy, "suite": self.suite, "confidence": self.confidence,
            "control": rate(self.control),
            "arms": [
                {"axis": a.axis, "severity": a.severity, "suite": a.suite, "params": a.params,
                 "perturbed": rate(a.perturbed), "control": rate(a.control),
                 "pairs": a.table.n, "only_perturbed": a.table.only_a,
                 "only_control": a.table.only_b, "difference": a.difference,
                 "low": a.low, "high": a.high, "mcnemar_p": a.p, "unpaired": a.unpaired}
                for a in self.arms
            ],
            "notes": list(self.notes),
        }


def _outcomes(runs: list[dict[str, Any]], episodes: dict[int, list[dict[str, Any]]]
              ) -> dict[Key, bool]:
    out: dict[Key, bool] = {}
    for run in runs:
        for ep in episodes.get(run["id"], ()):
            key = (ep["task"], int(ep["episode_index"]), int(ep["seed"]), ep["init_state_id"])
            out.setdefault(key, bool(ep["success"]) and not ep.get("failure_reason"))
    return out


def profile(store: Store, policy: str, suite: str, *, axes: Sequence[str] | None = None,
            confidence: float = 0.95) -> Profile:
    """The robustness profile of ``policy`` on ``suite`` from the store (its control runs and
    the runs of every ``suite@axis:k`` variant, or those of ``axes``)."""
    from vlabench.store import reads

    runs = [r for r in reads.run_counts(store)
            if r["suite"] == suite or str(r["suite"]).startswith(suite + api.VARIANT_MARK)]
    runs = select_runs(runs, policy) if runs else []
    controls = [r for r in runs if r["suite"] == suite and _perturbation(r) is None]
    variants = [r for r in runs if r["suite"] != suite and _perturbation(r) is not None]
    if axes:
        variants = [r for r in variants if _perturbation(r)["axis"] in axes]  # type: ignore[index]
    episodes = reads.episodes_by_run(store, [r["id"] for r in controls + variants])
    by_protocol: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in controls:
        by_protocol[_protocol_key(run)].append(run)
    control_all = _outcomes(controls, episodes)
    grouped: dict[tuple[str, int, str], list[dict[str, Any]]] = defaultdict(list)
    for run in variants:
        pert = _perturbation(run) or {}
        grouped[(str(pert["axis"]), int(pert["severity"]), _protocol_key(run))].append(run)
    arms, notes = [], []
    for (axis, severity, key), group in sorted(grouped.items()):
        control = _outcomes(by_protocol.get(key, []), episodes)
        perturbed = _outcomes(group, episodes)
        shared = sorted(set(control) & set(perturbed), key=str)
        if not shared:
            notes.append(f"{group[0]['suite']}: no control episode under the same protocol")
            continue
        counts = [0, 0, 0, 0]
        for k in shared:
            x, y = perturbed[k], control[k]
            counts[0 if x and y else 1 if x else 2 if y else 3] += 1
        table = stats.PairedTable(*counts)
        low, high = stats.paired_difference_interval(table, confidence)
        arms.append(Arm(
            axis, severity, str(group[0]["suite"]), dict(_perturbation(group[0])["params"]),  # type: ignore[index]
            Rate.of(counts[0] + counts[1], len(shared), confidence),
            Rate.of(counts[0] + counts[2], len(shared), confidence),
            table, low, high, stats.mcnemar_exact(table.only_a, table.only_b),
            len(perturbed) - len(shared),
        ))
    successes = sum(control_all.values())
    return Profile(policy, suite, Rate.of(successes, len(control_all), confidence),
                   tuple(arms), confidence, tuple(notes))


def rank(profiles: Sequence[Profile]) -> list[tuple[Profile, int, bool]]:
    """``(profile, rank, tied)`` by worst-axis drop: one policy ranks above another only when
    its worst arm's Newcombe interval lies wholly above the other's (else they share a rank)."""
    worst = {id(p): p.worst() for p in profiles}

    def bounds(p: Profile) -> tuple[float, float]:
        arm = worst[id(p)]
        return (-1.0, 1.0) if arm is None else (arm.low, arm.high)

    out = []
    for p in profiles:
        low, high = bounds(p)
        above = sum(1 for q in profiles if q is not p and bounds(q)[0] > high)
        tied = any(q is not p and not (bounds(q)[0] > high or bounds(q)[1] < low)
                   for q in profiles)
        out.append((p, 1 + above, tied))
    return sorted(out, key=lambda t: (t[1], -(worst[id(t[0])].difference if worst[id(t[0])]
                                              else -2.0), t[0].policy))


def _pct(x: float) -> str:
    return f"{100 * x:.0f}"


def p_text(p: float) -> str:
    """McNemar's p in 5 characters: ``0.250``, ``<.001``."""
    return "<.001" if p < 0.001 else f"{p:.3f}"


def table_lines(p: Profile) -> list[str]:
    """The profile as text rows (80 columns)."""
    c = p.control
    lines = [
        f"{p.policy} on {p.suite}: control {_pct(c.rate)}% [{_pct(c.low)}, {_pct(c.high)}] "
        f"n={c.n}",
        f"{'axis':<22}{'sev':>3}  {'success':>14}  {'diff vs ctrl':>17}  {'p':>6}  {'n':>4}",
    ]
    for a in p.arms:
        r = a.perturbed
        success = f"{_pct(r.rate)} [{_pct(r.low)},{_pct(r.high)}]"
        diff = f"{100 * a.difference:+.0f} [{100 * a.low:+.0f},{100 * a.high:+.0f}]"
        mark = "*" if a.separated else " "
        lines.append(
            f"{a.axis[:22]:<22}{a.severity:>3}  {success:>14}  {diff:>16}{mark}  "
            f"{p_text(a.p):>6}  {a.table.n:>4}"
        )
    lines += [
        "success %, Wilson interval; diff = perturbed - control in points, Newcombe",
        "paired interval (* excludes 0); p = exact McNemar; n = paired episodes",
    ]
    return lines + list(p.notes)


def to_png(profiles: Sequence[Profile], dpi: int = 110) -> bytes:
    """Success vs severity per axis (one panel per policy), the control's interval shaded."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    n = max(len(profiles), 1)
    fig = Figure(figsize=(5.2 * n, 3.6), dpi=dpi)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, p in zip(axes, profiles, strict=False):
        c = p.control
        ax.axhspan(100 * c.low, 100 * c.high, color="0.85", label="control (95% CI)")
        ax.axhline(100 * c.rate, color="0.4", lw=1)
        for axis in p.axes():
            arms = sorted((a for a in p.arms if a.axis == axis), key=lambda a: a.severity)
            xs = [0] + [a.severity for a in arms]
            ys = [100 * c.rate] + [100 * a.perturbed.rate for a in arms]
            err_low = [0.0] + [100 * (a.perturbed.rate - a.perturbed.low) for a in arms]
            err_high = [0.0] + [100 * (a.perturbed.high - a.perturbed.rate) for a in arms]
            ax.errorbar(xs, ys, yerr=[err_low, err_high], marker="o", capsize=3, label=axis)
        ax.set_ylim(-3, 103)
        ax.set_xticks(sorted({0, *(a.severity for a in p.arms)}))
        ax.set_xlabel("severity (0 = control)")
        ax.set_ylabel("success %")
        ax.set_title(f"{p.policy} on {p.suite}", fontsize=9, parse_math=False)
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


def to_html(profiles: Sequence[Profile], png: bytes | None = None) -> str:
    """A self-contained page: the ranking, each profile's table and the plot (embedded)."""
    import base64
    import html

    e = html.escape
    parts = ["<!doctype html><meta charset='utf-8'><title>vlabench robustness</title>",
             "<style>body{font:14px system-ui,sans-serif;margin:2rem}td,th{padding:.2rem .6rem;"
             "border-bottom:1px solid #ddd;text-align:right}th:first-child,td:first-child"
             "{text-align:left}.sep{font-weight:600}</style>",
             "<h1>Robustness profiles</h1>"]
    if png is None:
        png = to_png(profiles)
    parts.append(f"<img alt='robustness profile' src='data:image/png;base64,"
                 f"{base64.b64encode(png).decode()}'>")
    if len(profiles) > 1:
        parts.append("<h2>Ranked by worst-axis drop (only where intervals separate)</h2><table>"
                     "<tr><th>rank</th><th>policy</th><th>worst arm</th><th>diff [CI]</th></tr>")
        for p, r, tied in rank(profiles):
            a = p.worst()
            what = "" if a is None else f"{a.axis}:{a.severity}"
            diff = "" if a is None else (f"{100 * a.difference:+.0f} [{100 * a.low:+.0f}, "
                                         f"{100 * a.high:+.0f}]")
            parts.append(f"<tr><td>{r}{'=' if tied else ''}</td><td>{e(p.policy)}</td>"
                         f"<td>{e(what)}</td><td>{e(diff)}</td></tr>")
        parts.append("</table>")
    for p in profiles:
        c = p.control
        parts.append(f"<h2>{e(p.policy)} on {e(p.suite)}</h2><p>control {_pct(c.rate)}% "
                     f"[{_pct(c.low)}, {_pct(c.high)}], n = {c.n}</p><table><tr><th>axis</th>"
                     "<th>severity</th><th>params</th><th>success [Wilson]</th>"
                     "<th>paired diff [Newcombe]</th><th>McNemar p</th><th>pairs</th></tr>")
        for a in p.arms:
            r = a.perturbed
            parts.append(
                f"<tr{' class=sep' if a.separated else ''}><td>{e(a.axis)}</td>"
                f"<td>{a.severity}</td><td>{e(json.dumps(a.params))}</td>"
                f"<td>{_pct(r.rate)} [{_pct(r.low)}, {_pct(r.high)}]</td>"
                f"<td>{100 * a.difference:+.0f} [{100 * a.low:+.0f}, {100 * a.high:+.0f}]</td>"
                f"<td>{p_text(a.p)}</td><td>{a.table.n}</td></tr>"
            )
        parts.append("</table>")
        parts += [f"<p>{e(n)}</p>" for n in p.notes]
    return "\n".join(parts)
