"""CPU latency of the LeRobot policy types through the vlabench plugin, with peak memory.

For each (type, size) a fresh subprocess builds a random-weight checkpoint with PushT's
features (2-d state, one 96x96 camera, 2-d action), loads it through the plugin (LeRobot's
``from_pretrained`` and processors) and times, for batch 1 and 8:

* ``chunk_ms``: one ``predict_action_chunk`` (preprocess + model + postprocess), the call
  vlabench's rollout makes; median over repeats after one warm-up;
* ``step_ms``: LeRobot's own queue-based ``select_action`` (with the processors) averaged
  over a full cycle of ``n_action_steps`` calls (one inference, then queue pops);
* ``peak_rss_mb`` of the subprocess (build + load + all measurements).

Sizes: ``test`` = the tiny configs of tests/lerobot_testkit.py; ``default`` = LeRobot's
defaults (SmolVLA on SmolVLM2-500M's architecture; Pi0/Pi0.5 at 4B params only with
``--include-default-pi``: ~200 s to build and ~18 GB of memory each). Torch threads are set
with ``--threads`` (default 2). Random weights: the numbers are speed, not quality.

    .venv/bin/python benchmarks/lerobot_latency.py --sizes test
    .venv/bin/python benchmarks/lerobot_latency.py --sizes default --include-default-pi
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("act", "diffusion", "smolvla", "pi0", "pi05")


def _batch(size: int, n_obs: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    shape = (size, n_obs) if n_obs > 1 else (size,)
    return {
        "observation.state": rng.uniform(0, 512, (*shape, 2)).astype(np.float32),
        "observation.images.top": rng.integers(0, 255, (*shape, 96, 96, 3), dtype=np.uint8),
        "task": ["Push the T-shaped block onto the T-shaped target."] * size,
        "episode.index": np.arange(size),
        "episode.step": np.zeros(size, np.int64),
    }


def _timed(fn, budget_s: float, max_repeats: int) -> tuple[float, int]:
    """Median ms of ``fn()`` after one warm-up; repeats until the budget or max_repeats."""
    import statistics

    fn()
    times: list[float] = []
    start = time.perf_counter()
    while not times or (time.perf_counter() - start < budget_s and len(times) < max_repeats):
        t = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times), len(times)


def worker(kind: str, size: str, batches: list[int], budget_s: float, max_repeats: int) -> dict:
    """Build, load and time one (type, size); returns the measurements."""
    import resource

    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    import lerobot_testkit as tk
    from vlabench_plugins import lerobot as plugin

    from vlabench import api

    torch.manual_seed(0)
    out: dict = {"type": kind, "size": size, "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        small = size == "test"
        hub_ctx = tk.offline_hub(Path(tmp) / "hf", "tiny" if small else "default")
        with hub_ctx:
            patch = tk.tiny_pi_models() if small else _null()
            with patch:
                t = time.perf_counter()
                ckpt = tk.build_checkpoint(kind, Path(tmp) / kind, small=small)
                out["build_s"] = round(time.perf_counter() - t, 2)
                env = api.EnvInterface(observation=(), action=api.Feature("action", "action", (2,)),
                                       fps=10)
                t = time.perf_counter()
                policy = plugin.load(api.PolicyRequest(kind, str(ckpt), {}, env))
                out["load_s"] = round(time.perf_counter() - t, 2)
                params = sum(p.numel() for p in policy.policy.parameters())
                out["params_m"] = round(params / 1e6, 2)
                iface = policy.interface
                out["chunk"], out["n_action_steps"] = iface.chunk_size, iface.n_action_steps
                for b in batches:
                    batch = _batch(b, iface.n_obs_steps)

                    def chunk(batch: dict = batch) -> None:
                        policy.predict_action_chunk(batch)

                    chunk_ms, n = _timed(chunk, budget_s, max_repeats)
                    out[f"b{b}_chunk_ms"], out[f"b{b}_repeats"] = round(chunk_ms, 1), n
                    out[f"b{b}_step_ms"] = round(_native_step_ms(policy, batch), 1)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _native_step_ms(policy, batch: dict) -> float:
    """Mean ms per LeRobot ``select_action`` call over one cycle of ``n_action_steps`` calls."""
    import torch

    lerobot_policy = policy.policy
    steps = policy.interface.n_action_steps
    if policy.interface.n_obs_steps > 1:  # LeRobot keeps the history itself: latest frame
        batch = {k: v if k == "task" or v.ndim == 1 else v[:, -1] for k, v in batch.items()}
    obs = policy._observation(batch)
    lerobot_policy.reset()
    start = time.perf_counter()
    with torch.inference_mode():
        for _ in range(steps):
            action = lerobot_policy.select_action(policy.preprocessor(dict(obs)))
            policy.postprocessor(action)
    elapsed = time.perf_counter() - start
    lerobot_policy.reset()
    return 1000 * elapsed / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--types", default=",".join(KINDS))
    parser.add_argument("--sizes", default="test,default")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=10.0, help="timing budget per cell")
    parser.add_argument("--max-repeats", type=int, default=10)
    parser.add_argument("--include-default-pi", action="store_true",
                        help="also build default-size Pi0/Pi0.5 (4B params, ~18 GB RAM each)")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument("--worker", nargs=2, metavar=("TYPE", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        row = worker(*args.worker, batches, args.budget_s, args.max_repeats)
        print("ROW " + json.dumps(row), flush=True)
        return
    rows = []
    for size in args.sizes.split(","):
        for kind in args.types.split(","):
            if size == "default" and kind in ("pi0", "pi05") and not args.include_default_pi:
                print(f"{kind} default: skipped (needs --include-default-pi)", flush=True)
                continue
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
                   "MKL_NUM_THREADS": str(args.threads), "MUJOCO_GL": "egl"}
            cmd = [sys.executable, __file__, "--worker", kind, size, "--threads",
                   str(args.threads), "--batches", args.batches, "--budget-s",
                   str(args.budget_s), "--max-repeats", str(args.max_repeats)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("ROW ")), None)
            if line is None:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                print(f"{kind} {size}: failed: {' | '.join(tail)}", flush=True)
                continue
            row = json.loads(line[4:])
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    cols = ["type", "size", "params_m", "chunk", "n_action_steps", "b1_chunk_ms", "b1_step_ms",
            "b8_chunk_ms", "b8_step_ms", "load_s", "peak_rss_mb"]
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(str(row.get(c, "")) for c in cols) + " |")


if __name__ == "__main__":
    main()
