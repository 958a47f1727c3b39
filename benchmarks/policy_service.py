"""One shared, batched policy service vs a policy in every worker: episodes/s, RSS, batches.

A random-weight ACT checkpoint at LeRobot's real size (ResNet-18 backbone, no pretrained
weights) for PushT's features (96x96 top camera + agent position) is saved with
``save_pretrained`` (tests/lerobot_testkit.py). Its preset asks for a new chunk every
``--action-steps`` steps (default 1), so the policy call is the bottleneck. The same matrix
(``--episodes`` episodes of ``--max-steps`` steps, seeds 1000..) then runs with the processes
executor at 1, 2 and 4 workers, each time with a policy loaded in every worker and with one
shared service (``ExecutionSettings.policy_service``), round robin ``--repeats`` times:

* ``rollout_s``: the span of the episodes in the store (first start to last write): worker
  and model start-up left out; ``episodes_per_s`` is taken from it;
* ``wall_s``: the whole matrix, process start-up and LeRobot's import included;
* ``rss_mb``: the peak of the summed resident memory of every process the run started
  (workers and services, sampled every 0.1 s; the benchmark's own process is left out);
* ``rows_per_call``: the service's batch sizes (rows of one policy call: count).

    .venv/bin/python benchmarks/policy_service.py --episodes 8 --max-steps 40

Under ``--small`` the checkpoint is LeRobot's ACT shrunk for tests (what the tests run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from vs_lerobot_eval import SPACES, run_seconds

ROOT = Path(__file__).resolve().parent.parent


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines()
                       if line.startswith("VmRSS:")), 0)  # fmt: skip
    return total / 1024


class PeakRss:
    """The peak summed RSS of this process's descendants while the block runs."""

    def __enter__(self) -> PeakRss:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, rss_mb(descendants(os.getpid())))

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def checkpoint(root: Path, small: bool, action_steps: int) -> Path:
    """An ACT checkpoint for PushT and a registry file naming it ``bench_act``."""
    sys.path.insert(0, str(ROOT / "tests"))
    import lerobot_testkit as tk

    ckpt = tk.build_checkpoint("act", root / "act", small=small)
    options = SPACES[:-1] + f", n_action_steps: {action_steps}}}"
    registry = root / "registry.yaml"
    registry.write_text(
        f"version: 1\npolicies:\n  bench_act: {{type: act, checkpoint: {ckpt}, "
        f"options: {options}}}\n"
    )
    return registry


def run_once(registry: Any, workers: int, service: bool, args: Any, db: Path) -> dict[str, Any]:
    """One matrix into a fresh store: times, peak RSS and the service's batch sizes."""
    from vlabench.catalog import load_catalog
    from vlabench.execute.executor import WorkerSetup
    from vlabench.execute.processes import ProcessExecutor
    from vlabench.execute.runner import Runner
    from vlabench.execute.settings import ExecutionSettings
    from vlabench.plan.jobs import plan
    from vlabench.store import open_store

    catalog = load_catalog()
    pairs = plan(["bench_act"], ["pusht"], registry, catalog, episodes=args.episodes,
                 max_steps=args.max_steps)  # fmt: skip
    settings = ExecutionSettings(policy_service=service, service_max_batch=args.max_batch,
                                 service_wait_ms=args.wait_ms)  # fmt: skip
    executor = ProcessExecutor(workers, retries=0, setup=WorkerSetup(settings=settings))
    with open_store(f"sqlite:///{db}") as store, PeakRss() as rss:
        start = time.perf_counter()
        [result] = Runner(store, catalog, executor=executor).run_pairs(pairs)
        wall = time.perf_counter() - start
    assert result.status == "finished" and result.new_episodes == args.episodes, result
    rollout = run_seconds(db)
    stats = next(iter(executor.service_stats.values()), {}).get("stats", {})
    return {
        "workers": workers,
        "policy": "one service" if service else "per worker",
        "wall_s": wall,
        "rollout_s": rollout,
        "episodes_per_s": args.episodes / rollout,
        "rss_mb": rss.peak,
        "rows_per_call": {int(k): v for k, v in sorted(
            (stats.get("rows_per_call") or {}).items(), key=lambda kv: int(kv[0]))},
        "mean_rows_per_call": (stats["rows"] / stats["calls"]) if stats.get("calls") else None,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=40)
    parser.add_argument("--action-steps", type=int, default=1, help="steps per policy call")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--wait-ms", type=float, default=5.0, help="the service's batch wait")
    parser.add_argument("--max-batch", type=int, default=64, help="rows per call, at most")
    parser.add_argument("--repeats", type=int, default=1, help="best of, round robin")
    parser.add_argument("--small", action="store_true", help="the tests' shrunk ACT")
    args = parser.parse_args()
    best: dict[tuple[int, bool], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        from vlabench.registry import load_registry

        registry = load_registry([checkpoint(Path(tmp), args.small, args.action_steps)])
        for r in range(args.repeats):
            for workers in args.workers:
                for service in (False, True):
                    row = run_once(registry, workers, service, args,
                                   Path(tmp) / f"{workers}-{service}-{r}.db")  # fmt: skip
                    key = (workers, service)
                    if key not in best or row["rollout_s"] < best[key]["rollout_s"]:
                        best[key] = row
    rows = [best[k] for k in sorted(best)]
    size = "small" if args.small else "full-size"
    print(f"ACT ({size}, random weights) on PushT 96 px: {args.episodes} episodes x "
          f"{args.max_steps} steps, a chunk every {args.action_steps} step(s), "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'workers':>7} {'policy':<12} {'ep/s':>6} {'x':>5} {'rollout':>8} {'wall':>6} "
          f"{'RSS MB':>7} {'rows/call':>9}")  # fmt: skip
    for row in rows:
        per_worker = best[(row["workers"], False)]
        row["ratio_vs_per_worker"] = row["episodes_per_s"] / per_worker["episodes_per_s"]
        mean = row["mean_rows_per_call"]
        print(f"{row['workers']:>7} {row['policy']:<12} {row['episodes_per_s']:>6.2f} "
              f"{row['ratio_vs_per_worker']:>5.2f} {row['rollout_s']:>7.1f}s "
              f"{row['wall_s']:>5.1f}s {row['rss_mb']:>7.0f} "
              f"{'-' if mean is None else f'{mean:.2f}':>9}")  # fmt: skip
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
