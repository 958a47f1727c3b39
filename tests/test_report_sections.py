"""benchmarks/report.py's generated sections: service, start-up, same-work gap; spliced in."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import report_sections as rs

SERVICE_ROWS = [
    {"workers": 2, "policy": "per worker", "episodes_per_s": 0.27, "ratio_vs_per_worker": 1.0,
     "rollout_s": 30.2, "wall_s": 43.4, "rss_mb": 2293, "rows_per_call": {},
     "mean_rows_per_call": None},
    {"workers": 2, "policy": "one service", "episodes_per_s": 0.43, "ratio_vs_per_worker": 1.62,
     "rollout_s": 18.6, "wall_s": 29.4, "rss_mb": 1404, "rows_per_call": {1: 26, 2: 147},
     "mean_rows_per_call": 1.85},
]  # fmt: skip


def test_service_section_shows_speed_up_memory_and_batches() -> None:
    text = rs.service_section(SERVICE_ROWS, ["--episodes", "8"])
    assert text.startswith(rs.SERVICE + "\n")
    row = "| 2 | one service | 0.43 | **1.62** | 18.6 | 29.4 | 1404 | 1 (26), 2 (147); mean 1.85 |"
    assert row in text
    assert "**1.62x** the episodes/s" in text and "1404 MB" in text and "2293 MB" in text


def test_startup_and_overhead_sections_carry_the_numbers() -> None:
    startup = rs.startup_section(
        [{"policy": "noop", "repeats": 3, "seconds": {"registry": 0.019, "process": 1.85}},
         {"alembic_import_s": 0.225, "repeats": 3}],
        ["--repeats", "3"],
    )  # fmt: skip
    assert "| registry | 0.019 |" in startup and "| whole process | 1.850 |" in startup
    assert "**0.225 s** per command" in startup
    row = {"per_run_ms": 54.4, "per_episode_ms": 2.74, "per_step_us": 35.3,
           "predicted_ratio_10x300": 1.111, "raw_episode_ms": 1.27, "raw_step_us": 557.9,
           "episodes": 20, "steps": 600,
           "before": {"per_run_ms": 46.5, "per_episode_ms": 5.19, "per_step_us": 87.2,
                      "predicted_ratio_10x300": 1.213},
           "pieces_cpu": {"now": {"call clock, us per step": 3.3},
                          "before": {"call clock, us per step": 8.8}}}  # fmt: skip
    overhead = rs.overhead_section(row, ["--before"])
    assert "| predicted same-work ratio, 10 x 300 steps | **1.111** | 1.213 |  |" in overhead
    assert "| per episode (reset, record, two store writes), ms | **2.74** | 5.19 | 1.27 |" in (
        overhead
    )
    assert "| call clock, us per step | **3.30** | 8.80 |" in overhead


def test_splice_replaces_a_section_and_appends_a_new_one() -> None:
    note = f"# B\n\n## A\n\nold a\n\n{rs.OVERHEAD}\n\nold\n\n## Arguments used\n\nargs\n"
    new = f"{rs.OVERHEAD}\n\nnew\n"
    out = rs.splice(note, [new, f"{rs.STARTUP}\n\nphases\n"])
    assert "old\n" not in out.replace("old a", "") and "new\n\n## " in out
    assert out.index(rs.STARTUP) < out.index("## Arguments used")
    assert "old a" in out and out.endswith("args\n")
