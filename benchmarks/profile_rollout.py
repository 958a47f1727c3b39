"""Profile the runner's rollout loop (pyinstrument) and list where the time goes.

Runs the vlabench side of rollout_overhead.py (PushT noop/random, Meta-World expert; or a
tiny random-weight ACT on PushT with ``--act``) once to warm up, then once under
pyinstrument, and prints the functions with the most *self* time, grouped as simulator
(gym_pusht, pymunk, shapely, pygame, metaworld, mujoco), model (torch, lerobot) or
framework (everything else: vlabench, numpy glue, SQLAlchemy, ...).

    MUJOCO_GL=egl .venv/bin/python benchmarks/profile_rollout.py --case pusht-noop
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from rollout_overhead import Side, vlabench_side

SIMULATOR = ("gym_pusht", "pymunk", "shapely", "pygame", "metaworld", "mujoco", "cv2")
MODEL = ("torch", "torchvision", "lerobot", "transformers", "safetensors")


def group(path: str, parent: str = "framework") -> str:
    """simulator | model | framework, from a frame's file path.

    A builtin, or a library that is neither (numpy, scipy, ...), counts with its caller:
    numpy called by the simulator is simulator time."""
    if path.startswith("<"):
        return parent
    if "/vlabench/" in path or "/plugins/" in path or "/benchmarks/" in path:
        return "framework"
    if any(f"/{name}/" in path or f"{name}." in Path(path).name for name in SIMULATOR):
        return "simulator"
    if any(f"/{name}/" in path for name in MODEL):
        return "model"
    return parent


def act_side(episodes: int, max_steps: int) -> Side:
    """A tiny random-weight ACT on PushT through a registry file (VLABENCH_REGISTRY)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import lerobot_testkit as tk

    root = Path(tempfile.mkdtemp(prefix="vlabench-prof-"))
    ckpt = tk.build_checkpoint("act", root / "act")
    spaces = "{action_space: pixel_xy_512, state_space: pixel_xy_512}"
    registry = root / "registry.yaml"
    registry.write_text(
        f"version: 1\npolicies:\n  prof_act: {{type: act, checkpoint: {ckpt}, options: {spaces}}}\n"
    )
    os.environ["VLABENCH_REGISTRY"] = str(registry)
    return vlabench_side("pusht", episodes, max_steps, False, policy="prof_act")


CASES = {
    "pusht-noop": lambda n, s: vlabench_side("pusht", n, s, False),
    "pusht-noop-render": lambda n, s: vlabench_side("pusht", n, s, True),
    "pusht-random": lambda n, s: vlabench_side("pusht", n, s, False, policy="random"),
    "metaworld-expert": lambda n, s: vlabench_side(
        "metaworld_mt50", n, s, False, ["reach-v3"], "metaworld-expert"
    ),
    "pusht-act": act_side,
}


def profile(side: Side, top: int) -> dict[str, Any]:
    """Self time per function (and per group) of one call of ``side``."""
    from pyinstrument import Profiler

    side()  # warm: imports, caches
    profiler = Profiler(interval=0.0005)
    profiler.start()
    side()
    session = profiler.stop()
    self_time: dict[tuple[str, str, str], float] = defaultdict(float)
    groups: dict[str, float] = defaultdict(float)

    def is_self(frame: Any) -> bool:  # pyinstrument keeps self time in "[self]" children
        return str(frame.function).startswith("[")

    def walk(frame: Any, parent: str) -> None:
        real = [child for child in frame.children if not is_self(child)]
        own = frame.time - sum(child.time for child in real)
        path = frame.file_path or "<builtin>"
        kind = group(path, parent)
        self_time[frame.function, path, kind] += own
        groups[kind] += own
        for child in real:
            walk(child, kind)

    root = session.root_frame()
    walk(root, "framework")
    total = root.time
    items = sorted(self_time.items(), key=lambda kv: -kv[1])[:top]
    return {
        "total_s": total,
        "groups": {k: v / total for k, v in sorted(groups.items())},
        "top": [
            {"function": fn, "file": path.split("site-packages/")[-1].split("/work/main/")[-1],
             "group": kind, "self_s": t, "share": t / total}
            for (fn, path, kind), t in items
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), action="append")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    results = {}
    for case in args.case or ["pusht-noop", "metaworld-expert"]:
        result = profile(CASES[case](args.episodes, args.max_steps), args.top)
        results[case] = result
        shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in result["groups"].items())
        print(f"== {case}: {result['total_s']:.2f} s profiled ({shares})")
        for item in result["top"]:
            print(f"  {100 * item['share']:5.1f}%  {item['group']:<9} {item['function']:<32} "
                  f"{item['file']}")  # fmt: skip
    print(json.dumps(results))


if __name__ == "__main__":
    main()
