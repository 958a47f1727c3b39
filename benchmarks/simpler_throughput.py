"""Steps per second of the ``simpler`` env (ManiSkill3/SAPIEN): build time, reset, step.

Runs the vlabench wrapper (numpy out, camera rendered each step unless ``--no-image``) with
random actions and reports, per configuration, the env build time, reset time and steps/s
(median of ``--repeats`` runs of ``--steps`` steps). Without CUDA SAPIEN renders through
Vulkan on the CPU (Mesa lavapipe), which dominates the step time at camera resolution.

    .venv/bin/python benchmarks/simpler_throughput.py                     # offline PickCube
    .venv/bin/python benchmarks/simpler_throughput.py --task put_carrot_on_plate --task-set bridge

Bridge tasks need `vlabench assets simpler` first. Prints one JSON object per configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def measure(task: str, options: dict, steps: int, repeats: int, seed: int = 0) -> dict:
    """Build the env once, then time ``repeats`` x (reset + ``steps`` random steps)."""
    import numpy as np
    from vlabench_plugins import simpler

    start = time.perf_counter()
    env = simpler.make(task, options)
    build_s = time.perf_counter() - start
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    resets, rates = [], []
    try:
        for r in range(repeats):
            start = time.perf_counter()
            env.reset(seed=seed + r)
            resets.append(time.perf_counter() - start)
            start = time.perf_counter()
            for _ in range(steps):
                env.step(rng.uniform(low, high).astype(np.float32) * 0.2)
            rates.append(steps / (time.perf_counter() - start))
    finally:
        env.close()
    return {
        "task": task,
        "options": {k: v for k, v in options.items() if k != "requested_features"},
        "image": "requested_features" not in options,
        "build_s": round(build_s, 2),
        "reset_s": round(statistics.median(resets), 3),
        "steps_per_s": round(statistics.median(rates), 1),
        "render_backend": options.get("render_backend") or "auto",
    }


def _size(text: str) -> int | list[int]:
    """``N`` or ``HxW`` as the env option ``image_size``."""
    if "x" in text:
        height, width = text.split("x")
        return [int(height), int(width)]
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="pick_cube")
    parser.add_argument("--task-set", default="offline", choices=["offline", "bridge"])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--image-size",
        action="append",
        help="Camera sizes for offline tasks: N or HxW, repeatable (default 64, 128, 480x640).",
    )
    parser.add_argument("--render-backend", default=None, help="cpu | gpu (default: auto)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("MS_SKIP_ASSET_DOWNLOAD_PROMPT", "1")
    base = {"task_set": args.task_set}
    if args.render_backend:
        base["render_backend"] = args.render_backend
    configs = [{**base, "requested_features": ["observation.state"]}]
    if args.task_set == "offline":
        sizes = args.image_size or ["64", "128", "480x640"]
        configs += [{**base, "image_size": _size(size)} for size in sizes]
    else:
        configs.append(dict(base))
    for options in configs:
        print(json.dumps(measure(args.task, options, args.steps, args.repeats)), flush=True)


if __name__ == "__main__":
    main()
