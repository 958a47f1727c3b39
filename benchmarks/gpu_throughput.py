"""Episodes/s of one GPU serving many env workers: SmolVLA through the shared policy service.

For a machine with a GPU (the number to hold against vla-eval's 2,000 LIBERO episodes in
18 minutes on one H100). A random-weight SmolVLA at its real size (SmolVLM2-500M's
architecture, LeRobot's default action expert; tests/lerobot_testkit.py, offline) for LIBERO's
features (two 256 px cameras, 8-d state, 7-d actions) is loaded once, in the policy service
on the GPU, and ``--workers`` env worker processes run LIBERO-Spatial through it
(``vlabench matrix --policy-service``). Printed: episodes/s over the rollouts (the span of
the episodes in the store) and over the whole run, the GPU's utilisation and memory
(``nvidia-smi``, sampled every 0.5 s while the episodes run), and the batch sizes the
service reached (rows per policy call).

    MUJOCO_GL=egl .venv/bin/python benchmarks/gpu_throughput.py --workers 16 --episodes 5

``--tiny`` runs the same path on a CPU at toy sizes (a tiny SmolVLA, 32 px cameras, one
task): what the tests run, to keep the script working where no GPU is lent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
SUITE = "gpu_bench_libero_spatial"


class GpuSampler:
    """``nvidia-smi`` utilisation (%) and memory (MiB) every ``every_s`` while active."""

    def __init__(self, every_s: float = 0.5) -> None:
        self.every_s = every_s
        self.util: list[float] = []
        self.memory: list[float] = []
        self.tool = shutil.which("nvidia-smi")

    def __enter__(self) -> GpuSampler:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        if self.tool:
            self._thread.start()
        return self

    def _watch(self) -> None:
        query = [str(self.tool), "--query-gpu=utilization.gpu,memory.used",
                 "--format=csv,noheader,nounits"]  # fmt: skip
        while not self._stop.wait(self.every_s):
            with contextlib.suppress(OSError, ValueError, subprocess.SubprocessError):
                out = subprocess.run(query, capture_output=True, text=True, timeout=5).stdout
                first = out.strip().splitlines()[0].split(",")
                self.util.append(float(first[0]))
                self.memory.append(float(first[1]))

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def summary(self) -> dict[str, Any]:
        if not self.util:
            return {"gpu": "unmeasured (no nvidia-smi)" if not self.tool else "no samples"}
        return {"gpu_util_mean": statistics.mean(self.util), "gpu_util_max": max(self.util),
                "gpu_memory_max_mib": max(self.memory)}  # fmt: skip


def registry(root: Path, tiny: bool, device: str, action_steps: int | None) -> Path:
    """A SmolVLA checkpoint for LIBERO's features and a registry naming it and the suite."""
    sys.path.insert(0, str(ROOT / "tests"))
    import lerobot_testkit as tk

    size = 32 if tiny else 256
    stats = tk.make_stats
    tk.make_stats = lambda *a, **kw: stats(*a, **{**kw, "low": -1.0, "high": 1.0})  # LIBERO's
    ckpt = tk.build_checkpoint("smolvla", root / "smolvla", action_dim=7, state_dim=8,
                               cameras=("image", "image2"), image_size=size,
                               small=tiny)  # fmt: skip
    options = "{action_space: libero_ee_delta, state_space: libero_eef_pos_axisangle_gripper"
    options += f", n_action_steps: {action_steps}}}" if action_steps else "}"
    path = root / "registry.yaml"
    path.write_text(
        "version: 1\n"
        "policies:\n"
        f"  bench_smolvla: {{type: smolvla, checkpoint: {ckpt}, device: {device}, "
        f"options: {options}}}\n"
        "suites:\n"
        f"  {SUITE}:\n"
        "    env: libero\n"
        "    description: LIBERO-Spatial for the GPU throughput benchmark.\n"
        "    episodes: 50\n    max_steps: 220\n    seed: 1000\n    success: ever\n"
        "    stop_on_success: true\n    settle_steps: 10\n"
        f"    env_options: {{suite: libero_spatial, image_size: {size}}}\n"
    )
    return path


def run(args: Any) -> dict[str, Any]:
    """The matrix through the policy service; the numbers of the docstring."""
    sys.path.insert(0, str(ROOT / "tests"))
    import lerobot_testkit as tk

    from vlabench.catalog import load_catalog
    from vlabench.execute.executor import WorkerSetup, visible_gpus
    from vlabench.execute.processes import ProcessExecutor
    from vlabench.execute.runner import Runner
    from vlabench.execute.settings import ExecutionSettings
    from vlabench.plan.jobs import plan
    from vlabench.registry import load_registry
    from vlabench.store import open_store

    device = args.device or ("cuda" if visible_gpus() else "cpu")
    with tempfile.TemporaryDirectory() as tmp, tk.offline_hub(
        Path(tmp) / "hf", "tiny" if args.tiny else "default"
    ):
        extra = registry(Path(tmp), args.tiny, device, args.action_steps)
        catalog, reg = load_catalog(), load_registry([extra])
        tasks = [t.name for t in catalog.env("libero").tasks({"suite": "libero_spatial"})]
        tasks = tasks[: args.tasks]
        pairs = plan(["bench_smolvla"], [SUITE], reg, catalog, episodes=args.episodes,
                     max_steps=args.max_steps, tasks=tasks)  # fmt: skip
        settings = ExecutionSettings(policy_service=True, service_max_batch=args.max_batch,
                                     service_wait_ms=args.wait_ms)  # fmt: skip
        executor = ProcessExecutor(args.workers, retries=0, setup=WorkerSetup(settings=settings))
        db = Path(tmp) / "gpu.db"
        with open_store(f"sqlite:///{db}") as store, GpuSampler() as gpu:
            start = time.perf_counter()
            results = Runner(store, catalog, executor=executor).run_pairs(pairs)
            wall = time.perf_counter() - start
        episodes = sum(r.new_episodes for r in results)
        failed = [r for r in results if r.status != "finished"]
        if failed:
            raise RuntimeError(f"runs not finished: {failed}")
        rollout = run_seconds_all(db)
    stats = next(iter(executor.service_stats.values()), {}).get("stats", {})
    return {
        "device": device, "workers": args.workers, "tasks": len(tasks),
        "episodes": episodes, "max_steps": args.max_steps, "tiny": args.tiny,
        "rollout_s": rollout, "wall_s": wall, "episodes_per_s": episodes / rollout,
        "episodes_per_s_wall": episodes / wall,
        "policy_calls": stats.get("calls", 0), "rows": stats.get("rows", 0),
        "mean_rows_per_call": stats["rows"] / stats["calls"] if stats.get("calls") else None,
        "max_rows_per_call": stats.get("max_rows_per_call"),
        "rows_per_call": {int(k): v for k, v in sorted(
            (stats.get("rows_per_call") or {}).items(), key=lambda kv: int(kv[0]))},
        **gpu.summary(),
    }  # fmt: skip


def run_seconds_all(db: Path) -> float:
    """The span of every run's episodes in the store (first start to last write)."""
    from datetime import datetime

    from vlabench.store import open_store

    with open_store(f"sqlite:///{db}") as store:
        episodes = [e for r in store.runs() for e in store.episodes(r["id"])]
    ends = [datetime.fromisoformat(e["created_at"]).timestamp() for e in episodes]
    return max(ends) - min(end - e["wall_time_s"] for end, e in zip(ends, episodes, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=16, help="env worker processes")
    parser.add_argument("--episodes", type=int, default=5, help="per task")
    parser.add_argument("--tasks", type=int, default=10, help="the first N LIBERO-Spatial tasks")
    parser.add_argument("--max-steps", type=int, default=220)
    parser.add_argument("--action-steps", type=int, default=None, help="steps per chunk")
    parser.add_argument("--max-batch", type=int, default=64, help="rows per policy call, max")
    parser.add_argument("--wait-ms", type=float, default=5.0, help="the service's batch wait")
    parser.add_argument("--device", default=None, help="cuda | cpu (default: cuda if present)")
    parser.add_argument("--tiny", action="store_true", help="toy sizes, for a CPU")
    parser.add_argument("--json", type=Path, default=None, help="also write the row here")
    args = parser.parse_args()
    row = run(args)
    print(f"SmolVLA ({'tiny' if args.tiny else 'real size'}, random weights) on "
          f"LIBERO-Spatial, {row['device']}: {row['episodes']} episodes on {row['tasks']} "
          f"task(s), {args.workers} env workers, one policy service")  # fmt: skip
    print(f"  episodes/s {row['episodes_per_s']:.3f} over the rollouts "
          f"({row['rollout_s']:.1f} s), {row['episodes_per_s_wall']:.3f} end to end "
          f"({row['wall_s']:.1f} s)")  # fmt: skip
    mean = row["mean_rows_per_call"]
    print(f"  policy calls {row['policy_calls']}, rows per call: mean "
          f"{'-' if mean is None else f'{mean:.2f}'}, max {row['max_rows_per_call']}")
    gpu = row.get("gpu") or (f"{row['gpu_util_mean']:.0f}% mean, {row['gpu_util_max']:.0f}% "
                             f"max, {row['gpu_memory_max_mib']:.0f} MiB")  # fmt: skip
    print(f"  GPU: {gpu}")
    if args.json:
        args.json.write_text(json.dumps(row))
    print(json.dumps(row))


if __name__ == "__main__":
    main()
