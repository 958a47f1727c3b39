"""`vlabench sweep` and `vlabench.evaluate` on a LeRobot training output's layout.

Random-weight ACT checkpoints (tests/lerobot_testkit.py) stand in for the steps of a training
run (``RUN/checkpoints/<step>/pretrained_model``); PushT, 2 episodes of 5 steps each. One
process, one LeRobot import.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

pytest.importorskip("lerobot")
pytest.importorskip("gym_pusht")

ROOT = Path(__file__).resolve().parent.parent
OPTIONS = "{action_space: pixel_xy_512, state_space: pixel_xy_512}"


def _checkpoint(run: Path, step: int) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    import lerobot_testkit as tk

    return tk.build_checkpoint(
        "act", run / "checkpoints" / f"{step:06d}" / "pretrained_model", seed=step
    )


def _sweep(db: str, run: Path, png: Path) -> Any:
    from vlabench.cli import app

    return CliRunner().invoke(
        app,
        ["--db", db, "-q", "sweep", str(run), "--suite", "pusht", "-n", "2", "--max-steps",
         "5", "--options", OPTIONS, "--png", str(png)],
    )  # fmt: skip


def test_sweep_stores_steps_resumes_and_draws_curves(tmp_path: Path) -> None:
    from vlabench.report.curves import curve_points, to_html
    from vlabench.store import open_store

    run = tmp_path / "outputs" / "train" / "act_pusht"
    for step in (10, 20):
        _checkpoint(run, step)
    (run / "checkpoints" / "last").symlink_to(run / "checkpoints" / "000020")
    db, png = f"sqlite:///{tmp_path / 'sweep.db'}", tmp_path / "curve.png"
    first = _sweep(db, run, png)
    assert first.exit_code == 0, first.output
    lines = [line for line in first.output.splitlines() if "n=2" in line]
    assert [line.split()[0] for line in lines] == ["10", "20"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open_store(db, read_only=True) as store:
        runs = store.runs()
        before = {r["id"]: [e["id"] for e in store.episodes(r["id"])] for r in runs}
    assert sorted((r["policy"], r["report_meta"]["training_step"]) for r in runs) == [
        ("act_pusht_000010", 10), ("act_pusht_000020", 20)
    ]  # fmt: skip
    assert all(r["report_meta"]["training_run"] == "act_pusht" for r in runs)

    _checkpoint(run, 30)  # training went on: only the new checkpoint is evaluated
    second = _sweep(db, run, png)
    assert second.exit_code == 0, second.output
    with open_store(db, read_only=True) as store:
        runs = store.runs()
        after = {r["id"]: [e["id"] for e in store.episodes(r["id"])] for r in runs}
        episodes = {r["id"]: store.episodes(r["id"]) for r in runs}
    assert len(after) == 3 and all(after[k] == v for k, v in before.items())
    points = curve_points(runs, episodes)
    assert [(p.step, p.n) for p in points] == [(10, 2), (20, 2), (30, 2)]
    page = to_html(points)
    assert "Learning curves" in page and "<svg" in page and "<td>30</td>" in page


def test_evaluate_api_checkpoint_and_preset(tmp_path: Path) -> None:
    import vlabench
    from vlabench.stats import wilson_interval
    from vlabench.store import open_store

    ckpt = _checkpoint(tmp_path / "run", 5)
    db = f"sqlite:///{tmp_path / 'eval.db'}"
    options = {"action_space": "pixel_xy_512", "state_space": "pixel_xy_512"}
    result = vlabench.evaluate(ckpt, "pusht", episodes=2, store=db, options=options,
                               max_steps=4, report_meta={"training_step": 5})  # fmt: skip
    assert [e["episode_index"] for e in result.episodes] == [0, 1]
    assert [e["seed"] for e in result.episodes] == [1000, 1001]
    assert all(e["steps"] == 4 and e["failure_reason"] is None for e in result.episodes)
    assert (result.summary.n, result.summary.successes) == (2, 0)
    assert (result.summary.low, result.summary.high) == wilson_interval(0, 2)
    with open_store(db, read_only=True) as store:
        [run] = store.runs()
    assert run["policy"] == "run_000005" and run["report_meta"]["training_step"] == 5
    # a scripted expert through the same API: successes and a narrower interval
    expert = vlabench.evaluate("metaworld-expert", "metaworld_mt1_reach-v3", episodes=3,
                               env_options={"cameras": []})  # fmt: skip
    assert expert.summary.successes == 3 and expert.summary.low > 0.4
    assert str(expert.summary).startswith("100.0% [")
