"""The HTML report in a real browser (headless Chromium through Playwright's Python API).

Checks that the table renders, that clicking a header sorts, that a cell opens its
drill-down, and that hostile names are shown as text: no dialog, no injected element. A
screenshot is written to ``tests/artifacts/html_report.png`` (git-ignored).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_report import FAST, PUSHT, add_run

from vlabench.report import board_from_store
from vlabench.report.exporters import exporters
from vlabench.store import open_store

ARTIFACTS = Path(__file__).parent / "artifacts"
XSS_TASK = "<img src=x onerror=alert(1)>"
XSS_REASON = "needs camera <script>alert(2)</script>"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("html")
    with open_store(f"sqlite:///{tmp / 'report.db'}") as s:
        add_run(s, "diffusion", "pusht", "t1", PUSHT, "aaaaaa11", "s" * 6 + "f" * 4,
                video="/data/videos/diffusion t1 ep0.mp4")
        add_run(s, "diffusion", "pusht", XSS_TASK, PUSHT, "aaaaaa11", "s" * 2 + "f" * 8)
        add_run(s, "act", "pusht", "t1", PUSHT, "aaaaaa11", "s" * 9 + "f")
        add_run(s, "noop", "pusht", "t1", PUSHT, "aaaaaa11", "f" * 10)
        add_run(s, "noop", "metaworld", "reach", FAST, "bbbbbb22", "ffff")
        add_run(s, "act", "metaworld", "reach", FAST, "bbbbbb22", "", "incompatible", XSS_REASON)
        add_run(s, "diffusion", "metaworld", "reach", FAST, "bbbbbb22", "sssf")
        board = board_from_store(s, episodes=True)
    html = exporters()["html"].export(board)
    assert isinstance(html, str)
    path = tmp / "board.html"
    path.write_text(html, encoding="utf-8")
    return path


def test_page_is_self_contained_and_escaped(report: Path) -> None:
    html = report.read_text()
    assert XSS_TASK not in html and "<script>alert" not in html
    assert "needs camera &lt;script&gt;alert(2)&lt;/script&gt;" in html  # the table cell
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in html  # the drill-down data
    assert "http://" not in html and "https://" not in html  # nothing fetched from a CDN
    assert html.count("<script") == 2  # the JSON data block and the page's own script
    assert "file:///data/videos/diffusion%20t1%20ep0.mp4" in html


def test_report_in_headless_chromium(report: Path) -> None:
    from playwright.sync_api import sync_playwright

    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(report.as_uri())

            def policies() -> list[str]:
                return page.locator("#board tbody td.policy").all_inner_texts()

            # the table renders: ranked rows first; act is unranked overall (incompatible
            # with metaworld, so its mean is over fewer columns) and comes last
            assert page.locator("#board tbody tr").count() == 3
            assert policies() == ["diffusion", "noop", "act"]
            # sorting: the pusht column, descending then ascending
            header = page.locator("#board thead th", has_text="pusht").locator("button")
            header.click()
            assert policies() == ["act", "diffusion", "noop"]  # 90%, 40%, 0%
            assert page.locator("#board thead th", has_text="pusht").get_attribute(
                "aria-sort"
            ) == "descending"
            header.click()
            assert policies() == ["noop", "diffusion", "act"]
            page.locator("#board thead th", has_text="policy").locator("button").click()
            assert policies() == ["act", "diffusion", "noop"]

            # an incompatible cell shows its reason as text
            refused = page.locator("#board td.incompatible")
            assert "incompatible: needs camera <script>alert(2)</script>" in refused.inner_text()

            # drill-down: diffusion x pusht lists both tasks, the hostile name as plain text
            row = page.locator("#board tbody tr", has_text="diffusion")
            row.locator("td.cell.ok button", has_text="40.0").click()
            drill = page.locator("#drill")
            assert drill.is_visible()
            assert "diffusion × pusht" in drill.locator("h2").inner_text()
            names = drill.locator("td.task-name").all_inner_texts()
            assert names == sorted(["t1", XSS_TASK])
            assert drill.get_by_text(XSS_TASK, exact=True).first.is_visible()
            # episodes with a video link
            drill.locator("summary", has_text="episodes of t1").click()
            link = drill.locator("a", has_text="video")
            assert link.count() == 1
            assert link.get_attribute("href") == "file:///data/videos/diffusion%20t1%20ep0.mp4"
            assert page.locator("img").count() == 0  # nothing was injected
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "html_report.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
            assert shot.stat().st_size > 10_000
            assert dialogs == [] and errors == []
        finally:
            browser.close()


def test_hostile_names_in_headers_policies_and_reasons_are_escaped() -> None:
    from vlabench.report import build_board
    from vlabench.report.html import to_html, video_href

    bad = '"><script>alert(3)</script>'
    runs = [
        {"id": 1, "policy": bad, "suite": bad, "task": XSS_TASK, "protocol_hash": "h",
         "protocol": {"name": bad}, "status": "finished", "n": 2, "successes": 1, "errors": 0},
        {"id": 2, "policy": "p", "suite": bad, "task": XSS_TASK, "protocol_hash": "h",
         "protocol": {"name": bad}, "status": "incompatible", "error": bad, "n": 0,
         "successes": 0, "errors": 0},
    ]  # fmt: skip
    html = to_html(build_board(runs, by="task"))
    assert "<script>alert" not in html and XSS_TASK not in html
    assert "&quot;&gt;&lt;script&gt;" in html  # even the attribute-closing quote
    assert html.count("&lt;script&gt;alert(3)&lt;/script&gt;") >= 4  # header, rows, heatmap
    assert video_href("javascript:alert(1)") == "javascript%3Aalert%281%29"
    assert video_href("clips/a b.mp4") == "clips/a%20b.mp4" and video_href(None) is None
