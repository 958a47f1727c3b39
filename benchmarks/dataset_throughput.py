"""Open-loop evaluation throughput on CPU: frames/second of decoding, and of decoding + inference.

Writes a 2-camera LeRobotDataset (random frames, H.264, LeRobot's writer) and a tiny random ACT
checkpoint (tests/lerobot_testkit.py), then plays the held-out episodes through the ``dataset``
env and the real episode loop (:class:`vlabench.rollout.Rollout`):

* ``decode``: the recorded actions replayed (the ``replay`` policy), so only the env's work
  counts: parquet rows + both cameras decoded by LeRobot's ``decode_video_frames`` (pyav);
* ``decode+act``: the tiny ACT (chunk 8, 4 actions per chunk) reads both cameras and the state.

    .venv/bin/python benchmarks/dataset_throughput.py --episodes 2 --frames 100 --size 96 128
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
CAMERAS = ("front", "wrist")
STATE_DIM = ACTION_DIM = 6


def _write(root: Path, episodes: int, frames: int, size: tuple[int, int]) -> float:
    from vlabench_plugins.dataset import record

    rng = np.random.default_rng(0)
    data = [
        [
            {
                "observation.state": rng.normal(size=STATE_DIM).astype(np.float32),
                "action": rng.normal(size=ACTION_DIM).astype(np.float32),
                **{
                    f"observation.images.{cam}": rng.integers(0, 255, (*size, 3), dtype=np.uint8)
                    for cam in CAMERAS
                },
                "task": "pick the cube",
            }
            for _ in range(frames)
        ]
        for _ in range(episodes)
    ]
    start = time.perf_counter()
    features = record.features_for(STATE_DIM, ACTION_DIM, dict.fromkeys(CAMERAS, size))
    record.write_dataset(root, data, features, fps=30, repo_id="local/bench", crf=23)
    return time.perf_counter() - start


def _play(options: dict, policy, episodes: int, batch: int) -> tuple[float, int]:
    from vlabench_plugins import dataset

    from vlabench.runtime.rollout import Rollout, RolloutSettings, episode_specs

    interface = dataset.SPEC.interface(options)
    settings = RolloutSettings(
        max_steps=100_000,
        action_dim=ACTION_DIM,
        fps=interface.fps,
        batch_size=batch,
        n_action_steps=policy.interface.n_action_steps,
        chunk_size=policy.interface.chunk_size,
    )
    records = []
    start = time.perf_counter()
    Rollout(lambda: dataset.SPEC.make("heldout", options), policy, settings, records.append).run(
        episode_specs("heldout", range(episodes), 0, episodes)
    )
    wall = time.perf_counter() - start
    failures = [r.failure_reason for r in records if r.failure_reason]
    if failures:
        raise RuntimeError(f"episodes failed: {failures}")
    return wall, sum(r.steps for r in records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", type=int, nargs=2, default=(96, 128), metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "tests"))
    import lerobot_testkit as tk
    from vlabench_plugins.lerobot import spec as lerobot_spec
    from vlabench_plugins.scripted import replay

    from vlabench import api

    size = tuple(args.size)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bench"
        write_s = _write(root, args.episodes, args.frames, size)
        split = list(range(args.episodes))
        options = {"dataset": str(root), "split": split}
        interface = __import__("vlabench_plugins.dataset", fromlist=["SPEC"]).SPEC.interface(
            options
        )
        results = {"episodes": args.episodes, "frames_per_episode": args.frames,
                   "size": list(size), "cameras": len(CAMERAS), "write_s": round(write_s, 2)}

        request = api.PolicyRequest(
            "replay", None, {"dataset": str(root), "dataset_episodes": split}, interface
        )
        wall, steps = _play(options, replay.load(request), args.episodes, 1)
        results["decode_fps"] = round(steps / wall, 1)

        ckpt = tk.build_checkpoint(
            "act", Path(tmp) / "act", action_dim=ACTION_DIM, state_dim=STATE_DIM,
            cameras=CAMERAS, image_size=size[0],
        )
        act_request = api.PolicyRequest("act", str(ckpt), {}, interface)
        policy = lerobot_spec("act").load(act_request)
        wall, steps = _play(options, policy, args.episodes, 1)
        results["decode_act_fps"] = round(steps / wall, 1)
        results["torch_threads"] = args.threads
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
