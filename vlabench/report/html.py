"""The leaderboard as one self-contained HTML page (inline CSS and JS, nothing fetched).

The page has a sortable table (click a header) with intervals drawn as bars, a heatmap of
the matrix, and a drill-down per cell: its tasks, their episodes (with links to episode
videos when recorded) and the runs behind it. Incompatible cells show their reason.

Escaping: the table is rendered here with :func:`html.escape`; the drill-down data travels
as JSON inside ``<script type="application/json">`` with ``<``, ``>`` and ``&`` written as
``\\u003c`` etc., and the script builds every node with ``textContent``, never
``innerHTML``. A task named ``<script>`` is shown as text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from vlabench.report.formats import MISSING, caption, cell_text, rank_text
from vlabench.report.model import Board, Cell

_RUN_KEYS = (
    "id",
    "config_hash",
    "status",
    "error",
    "checkpoint",
    "checkpoint_hash",
    "protocol",
    "protocol_hash",
    "versions",
    "host",
    "git_sha",
    "created_at",
    "finished_at",
)


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def video_href(path: str | None) -> str | None:
    """A link target for a stored video path: a file URI when absolute, else a relative URL."""
    if not path:
        return None
    if path.startswith("/"):
        return "file://" + quote(path)
    return quote(str(PurePosixPath(path)))  # ':' is quoted: no scheme can be smuggled in


def _color(rate: float | None) -> str:
    if rate is None:
        return "#eeeeee"
    hue = round(120 * rate)  # red (0) -> green (100%)
    return f"hsl({hue}, 65%, 78%)"


def _pct(x: float | None) -> str:
    return MISSING if x is None else f"{100 * x:.1f}"


def _cell_td(cell: Cell | None, index: int | None) -> str:
    if cell is None:
        return f'<td class="cell missing" data-sort="">{MISSING}</td>'
    if cell.status != "ok" or cell.rate is None:
        reason = _e(cell_text(cell))
        return (
            f'<td class="cell {_e(cell.status)}" data-sort="" data-cell="{index}" '
            f'title="{reason}"><button type="button" class="drill">{reason}</button></td>'
        )
    low, high = cell.ci_low or 0.0, cell.ci_high or 0.0
    rank = f'<span class="rank">#{_e(rank_text(cell.rank, cell.tied))}</span>'
    bar = (
        f'<span class="bar"><span class="ci" style="left:{100 * low:.1f}%;'
        f'width:{100 * (high - low):.1f}%"></span><span class="pt" '
        f'style="left:{100 * cell.rate:.1f}%"></span></span>'
    )
    errors = f' <span class="err">{cell.errors} errors</span>' if cell.errors else ""
    return (
        f'<td class="cell ok" data-sort="{cell.rate:.6f}" data-cell="{index}">'
        f'<button type="button" class="drill"><b>{_pct(cell.rate)}</b> '
        f'<span class="ci-text">[{_pct(low)}, {_pct(high)}]{"~" if cell.anytime else ""}'
        "</span> "
        f'<span class="n">n={cell.n}</span> {rank}{errors}</button>{bar}</td>'
    )


def _episodes_for(
    board: Board, run_ids: Sequence[int], task: str
) -> list[dict[str, Any]]:
    out = []
    for run_id in run_ids:
        for ep in board.episodes.get(run_id, ()):
            if ep.get("task") != task:
                continue
            out.append(
                {
                    "run": run_id,
                    "index": ep.get("episode_index"),
                    "seed": ep.get("seed"),
                    "init": ep.get("init_state_id"),
                    "success": bool(ep.get("success")),
                    "steps": ep.get("steps"),
                    "failure": ep.get("failure_reason"),
                    "video": video_href(ep.get("video_path")),
                }
            )
    return out


def _run_summary(run: Mapping[str, Any]) -> dict[str, Any]:
    return {k: run.get(k) for k in _RUN_KEYS}


def _drill_data(board: Board, cells: list[Cell]) -> list[dict[str, Any]]:
    data = []
    for cell in cells:
        data.append(
            {
                "policy": cell.policy,
                "column": cell.column.label,
                "status": cell.status,
                "reason": cell.reason,
                "text": cell_text(cell),
                "tasks": [
                    {
                        "task": t.task,
                        "n": t.n,
                        "successes": t.successes,
                        "errors": t.errors,
                        "rate": t.rate,
                        "low": t.ci_low,
                        "high": t.ci_high,
                        "status": t.status,
                        "reason": t.reason,
                        "episodes": _episodes_for(board, t.run_ids, t.task),
                    }
                    for t in cell.task_results
                ],
                "runs": [_run_summary(board.runs[i]) for i in cell.run_ids if i in board.runs],
            }
        )
    return data


def _script_json(data: Any) -> str:
    text = json.dumps(data, ensure_ascii=False, default=str)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def to_html(board: Board, title: str = "vlabench leaderboard") -> str:
    """The whole page as one string."""
    cells: list[Cell] = []
    body_rows = []
    for row in board.rows:
        tds = []
        for cell in row.cells:
            index = None
            if cell is not None:
                index = len(cells)
                cells.append(cell)
            tds.append(_cell_td(cell, index))
        mean_sort = "" if row.mean_rate is None else f"{row.mean_rate:.6f}"
        mean = _pct(row.mean_rate)
        if row.mean_low is not None and row.mean_high is not None:
            mean += f' <span class="ci-text">[{_pct(row.mean_low)}, {_pct(row.mean_high)}]</span>'
        rank_sort = "" if row.rank is None else str(row.rank)
        policy_title = " · ".join(
            str(x) for x in (row.policy_type, row.checkpoint, row.checkpoint_hash) if x
        )
        body_rows.append(
            "<tr>"
            f'<td class="rank" data-sort="{rank_sort}">{_e(rank_text(row.rank, row.tied))}</td>'
            f'<td class="policy" data-sort="{_e(row.policy)}" title="{_e(policy_title)}">'
            f"{_e(row.policy)}</td>"
            + "".join(tds)
            + f'<td class="mean" data-sort="{mean_sort}">{mean}</td></tr>'
        )
    headers = [
        '<th data-type="num" aria-sort="ascending"><button type="button">rank</button></th>',
        '<th data-type="text"><button type="button">policy</button></th>',
    ]
    for column in board.columns:
        tip = f"protocol {column.protocol or '?'} ({column.protocol_hash})"
        headers.append(
            f'<th data-type="num" title="{_e(tip)}"><button type="button">'
            f"{_e(column.label)}</button></th>"
        )
    headers.append('<th data-type="num"><button type="button">mean</button></th>')
    heat = ["<tr><th></th>" + "".join(f"<th>{_e(c.label)}</th>" for c in board.columns) + "</tr>"]
    for row in board.rows:
        tds = []
        for cell in row.cells:
            rate = None if cell is None else cell.rate
            text = MISSING if cell is None else (_pct(rate) if rate is not None else cell.status)
            if cell is not None and cell.value is not None:  # a metric column (lower is better)
                text = f"{cell.value:.4g}"
            tip = "" if cell is None else cell_text(cell)
            tds.append(
                f'<td style="background:{_color(rate)}" title="{_e(tip)}">{_e(text)}</td>'
            )
        heat.append(f"<tr><th>{_e(row.policy)}</th>{''.join(tds)}</tr>")
    filters = ", ".join(f"{k}={v}" for k, v in board.filters.items())
    subtitle = f"{len(board.runs)} runs" + (f"; filters: {filters}" if filters else "")
    return _PAGE.format(
        title=_e(title),
        subtitle=_e(subtitle),
        caption=_e(caption(board)),
        headers="".join(headers),
        rows="\n".join(body_rows) or f'<tr><td colspan="{len(headers)}">no runs</td></tr>',
        heat="\n".join(heat),
        curves=_curves(board),
        css=_CSS,
        data=_script_json(_drill_data(board, cells)),
        js=_JS,
    )


def _curves(board: Board) -> str:
    """Learning curves of swept training runs (``vlabench sweep``), when the board has any."""
    from vlabench.report.curves import curve_points
    from vlabench.report.curves import to_html as curves_html

    return curves_html(curve_points(board.runs.values(), board.episodes))


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#222}
h1{font-size:1.4rem;margin:0 0 .2rem}.sub{color:#666;margin:0 0 1rem}
table{border-collapse:collapse;margin:.5rem 0 1rem}
th,td{border-bottom:1px solid #ddd;padding:.35rem .6rem;text-align:right;vertical-align:top}
td.policy,th:nth-child(2){text-align:left;font-weight:600}
th button{all:unset;cursor:pointer;font-weight:600}th button::after{content:" \\2195";color:#aaa}
th[aria-sort=ascending] button::after{content:" \\2191";color:#333}
th[aria-sort=descending] button::after{content:" \\2193";color:#333}
td.cell button.drill{all:unset;cursor:pointer;display:block}
td.cell button.drill:hover{text-decoration:underline}
.ci-text,.n,.rank{color:#666;font-size:.85em}.err{color:#b60;font-size:.85em}
td.incompatible,td.failed{background:#fff4e5;color:#8a4b00;text-align:left;max-width:22rem}
td.running,td.empty{color:#777}
.bar{position:relative;display:block;height:4px;background:#eee;margin-top:3px}
.bar .ci{position:absolute;top:0;height:4px;background:#7aa7d8}
.bar .pt{position:absolute;top:-2px;width:2px;height:8px;background:#123}
#heatmap td{text-align:center;min-width:4rem}#heatmap th{text-align:left}
#drill{border:1px solid #ccc;border-radius:6px;padding:1rem;margin:1rem 0;background:#fafafa}
#drill[hidden]{display:none}#drill table{font-size:.9em}
#drill td,#drill th{text-align:left}.ok-ep{color:#060}.fail-ep{color:#a00}
details{margin:.3rem 0}pre{white-space:pre-wrap;font-size:.8em;background:#f3f3f3;padding:.5rem}
.caption{color:#555;font-size:.9em}
"""

_JS = r"""
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("drill-data").textContent);
  const table = document.getElementById("board");
  const tbody = table.tBodies[0];
  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function pct(x) { return x === null || x === undefined ? "\u2014" : (100 * x).toFixed(1); }
  // sorting
  Array.from(table.tHead.rows[0].cells).forEach(function (th, col) {
    th.querySelector("button").addEventListener("click", function () {
      const numeric = th.dataset.type === "num";
      const current = th.getAttribute("aria-sort");
      let dir = current === "descending" ? "ascending" : "descending";
      if (current === null && !numeric) dir = "ascending";
      if (current === null && col === 0) dir = "ascending";
      Array.from(table.tHead.rows[0].cells).forEach(function (h) {
        h.removeAttribute("aria-sort");
      });
      th.setAttribute("aria-sort", dir);
      const rows = Array.from(tbody.rows);
      rows.sort(function (a, b) {
        const x = a.cells[col].dataset.sort, y = b.cells[col].dataset.sort;
        if (x === "" && y !== "") return 1;
        if (y === "" && x !== "") return -1;
        let c = numeric ? parseFloat(x) - parseFloat(y) : String(x).localeCompare(String(y));
        if (dir === "descending") c = -c;
        return c;
      });
      rows.forEach(function (r) { tbody.appendChild(r); });
    });
  });
  // drill-down
  const drill = document.getElementById("drill");
  function episodesTable(episodes) {
    const t = el("table");
    const head = t.createTHead().insertRow();
    ["run", "episode", "seed", "init state", "success", "steps", "failure", "video"].forEach(
      function (h) { head.appendChild(el("th", h)); });
    const body = t.createTBody();
    episodes.forEach(function (e) {
      const r = body.insertRow();
      [e.run, e.index, e.seed, e.init].forEach(function (v) { r.appendChild(el("td", v)); });
      r.appendChild(el("td", e.success ? "yes" : "no", e.success ? "ok-ep" : "fail-ep"));
      r.appendChild(el("td", e.steps));
      r.appendChild(el("td", e.failure));
      const v = el("td");
      if (e.video) { const a = el("a", "video"); a.href = e.video; v.appendChild(a); }
      r.appendChild(v);
    });
    return t;
  }
  function open(index) {
    const d = data[index];
    drill.replaceChildren();
    const close = el("button", "close");
    close.type = "button";
    close.addEventListener("click", function () { drill.hidden = true; });
    drill.appendChild(close);
    drill.appendChild(el("h2", d.policy + " \u00d7 " + d.column));
    drill.appendChild(el("p", d.text));
    const t = el("table", null, "tasks");
    const head = t.createTHead().insertRow();
    ["task", "success %", "interval", "n", "errors", "status"].forEach(function (h) {
      head.appendChild(el("th", h)); });
    const body = t.createTBody();
    d.tasks.forEach(function (task) {
      const r = body.insertRow();
      r.appendChild(el("td", task.task, "task-name"));
      r.appendChild(el("td", pct(task.rate)));
      const ci = "[" + pct(task.low) + ", " + pct(task.high) + "]";
      r.appendChild(el("td", task.rate === null ? "" : ci));
      r.appendChild(el("td", task.n));
      r.appendChild(el("td", task.errors));
      r.appendChild(el("td", task.reason ? task.status + ": " + task.reason : task.status));
    });
    drill.appendChild(t);
    d.tasks.forEach(function (task) {
      if (!task.episodes.length) return;
      const det = el("details");
      const label = "episodes of " + task.task + " (" + task.episodes.length + ")";
      det.appendChild(el("summary", label));
      det.appendChild(episodesTable(task.episodes));
      drill.appendChild(det);
    });
    const runs = el("details");
    runs.appendChild(el("summary", "runs (" + d.runs.length + "): config, protocol, versions"));
    runs.appendChild(el("pre", JSON.stringify(d.runs, null, 2)));
    drill.appendChild(runs);
    drill.hidden = false;
    drill.scrollIntoView({block: "nearest"});
  }
  tbody.addEventListener("click", function (event) {
    const td = event.target.closest("td[data-cell]");
    if (td) open(Number(td.dataset.cell));
  });
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; \
style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; media-src * file:">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<h1>{title}</h1>
<p class="sub">{subtitle}</p>
<table id="board">
<thead><tr>{headers}</tr></thead>
<tbody>
{rows}
</tbody>
</table>
<p class="caption">{caption}; mean: average of a policy's column rates, with a MOVER \
interval from the cells' intervals. Click a header to sort, a cell for its tasks and \
episodes.</p>
<section id="drill" hidden aria-live="polite"></section>
<h2>Heatmap</h2>
<table id="heatmap">
{heat}
</table>
{curves}
<script type="application/json" id="drill-data">{data}</script>
<script>{js}</script>
</body>
</html>
"""
