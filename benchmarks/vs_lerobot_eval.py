"""vlabench vs `lerobot-eval`: the same checkpoint, env, episodes, seeds and batch size.

A random-weight ACT (and, with ``--smolvla``, a tiny SmolVLA) checkpoint for PushT's
features is saved with LeRobot's ``save_pretrained`` (tests/lerobot_testkit.py). Each side is
a fresh subprocess, start-up included, run round robin ``--repeats`` times (medians):

* ``lerobot-eval``: ``--env.type=pusht --eval.batch_size=B --eval.use_async_envs=false
  --seed=1000 --policy.device=cpu`` (a SyncVectorEnv of B envs, 96x96 pixels + agent
  position). It always renders videos of the first 10 episodes (``max_episodes_rendered``
  is fixed at 10 unless ``--eval.recording``, which records a dataset instead); its own
  ``eval_s`` is read from ``eval_info.json`` (its rollouts, videos included, no start-up).
  Seeds: episode k of batch b gets ``1000 + b * B + k``, i.e. episode i has seed 1000 + i.
* ``vlabench inline``: ``vlabench run --suite pusht -n N --max-steps S --batch-size B
  --executor inline``: one process, episode i reset with seed 1000 + i, no video.
* ``vlabench 2 workers``: the same with the default processes executor, ``-j 2``.
  For both, the rollouts' span in the store (first episode start to last episode written)
  is the counterpart of ``eval_s``.

Random weights rarely succeed, so both sides run every episode to ``--max-steps``.

    .venv/bin/python benchmarks/vs_lerobot_eval.py --episodes 8 --batch-size 4 --max-steps 100
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SPACES = "{action_space: pixel_xy_512, state_space: pixel_xy_512}"


def lerobot_eval_cmd(ckpt: Path, out: Path, episodes: int, batch: int, steps: int) -> list[str]:
    return [
        str(BIN / "lerobot-eval"),
        f"--policy.path={ckpt}",
        "--policy.device=cpu",
        "--env.type=pusht",
        f"--env.episode_length={steps}",
        f"--eval.n_episodes={episodes}",
        f"--eval.batch_size={batch}",
        "--eval.use_async_envs=false",
        "--seed=1000",
        f"--output_dir={out}",
        '--rename_map={"observation.image": "observation.images.top"}',
    ]


def vlabench_cmd(
    policy: str, db: Path, episodes: int, batch: int, steps: int, workers: int
) -> list[str]:
    executor = ["--executor", "inline"] if workers == 1 else ["-j", str(workers)]
    return [
        str(BIN / "vlabench"), "--db", f"sqlite:///{db}", "-q", "run", "--policy", policy,
        "--suite", "pusht", "-n", str(episodes), "--max-steps", str(steps),
        "--batch-size", str(batch), *executor,
    ]  # fmt: skip


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return elapsed


def run_seconds(db: Path) -> float:
    """The rollouts' span: from the first episode's start (its write time less its wall time)
    to the last episode's write, as the store recorded them. Like lerobot-eval's ``eval_s``
    it leaves out process start-up, imports and loading the policy."""
    from datetime import datetime

    from vlabench.store import open_store

    with open_store(f"sqlite:///{db}") as store:
        [run] = store.runs()
        episodes = store.episodes(run["id"])
    ends = [datetime.fromisoformat(e["created_at"]).timestamp() for e in episodes]
    starts = [end - e["wall_time_s"] for end, e in zip(ends, episodes, strict=True)]
    return max(ends) - min(starts)


def build(root: Path, kinds: list[str]) -> tuple[dict[str, Path], dict[str, str]]:
    """Checkpoints, a registry file naming them, and the environment for both subprocesses."""
    sys.path.insert(0, str(ROOT / "tests"))
    import contextlib

    import lerobot_testkit as tk

    stack = contextlib.ExitStack()
    env = dict(os.environ)
    if "smolvla" in kinds:
        env.update(stack.enter_context(tk.lerobot_offline(root / "hf")))
    ckpts = {kind: tk.build_checkpoint(kind, root / kind) for kind in kinds}
    lines = ["version: 1", "policies:"]
    lines += [f"  bench_{k}: {{type: {k}, checkpoint: {p}, options: {SPACES}}}"
              for k, p in ckpts.items()]  # fmt: skip
    (root / "registry.yaml").write_text("\n".join(lines) + "\n")
    env.update(
        VLABENCH_REGISTRY=str(root / "registry.yaml"), HF_HUB_OFFLINE="1", MUJOCO_GL="egl"
    )
    stack.pop_all()  # the offline hub cache stays on disk under root for the subprocesses
    return ckpts, env


def compare(kind: str, ckpt: Path, env: dict[str, str], args: Any, tmp: Path) -> dict[str, Any]:
    n, b, s = args.episodes, args.batch_size, args.max_steps
    times: dict[str, list[float]] = {"lerobot-eval": [], "vlabench inline": [],
                                     "vlabench 2 workers": []}  # fmt: skip
    eval_s: list[float] = []
    in_run: dict[str, list[float]] = {"vlabench inline": [], "vlabench 2 workers": []}
    for r in range(args.repeats):
        out = tmp / f"le-{kind}-{r}"
        times["lerobot-eval"].append(timed(lerobot_eval_cmd(ckpt, out, n, b, s), env))
        info = json.loads(next(out.rglob("eval_info.json")).read_text())
        eval_s.append(float(info.get("overall", info).get("eval_s", float("nan"))))
        for label, workers in (("vlabench inline", 1), ("vlabench 2 workers", 2)):
            db = tmp / f"v-{kind}-{workers}-{r}.db"
            times[label].append(timed(vlabench_cmd(f"bench_{kind}", db, n, b, s, workers), env))
            in_run[label].append(run_seconds(db))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "policy": kind, "episodes": n, "batch_size": b, "max_steps": s, "repeats": args.repeats,
        "seconds": med, "lerobot_eval_s_internal": statistics.median(eval_s),
        "vlabench_run_s": {k: statistics.median(v) for k, v in in_run.items()},
        "ratio_vs_lerobot_eval": {k: v / med["lerobot-eval"] for k, v in med.items()},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smolvla", action="store_true", help="also a tiny SmolVLA")
    args = parser.parse_args()
    kinds = ["act", "smolvla"] if args.smolvla else ["act"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpts, env = build(Path(tmp), kinds)
        for kind, ckpt in ckpts.items():
            rows.append(compare(kind, ckpt, env, args, Path(tmp)))
    print(f"PushT, {args.episodes} episodes x {args.max_steps} steps, batch {args.batch_size}, "
          f"seeds 1000.., median of {args.repeats}, subprocess wall time (start-up included)")
    for row in rows:
        print(f"{row['policy']}: lerobot-eval internal eval_s {row['lerobot_eval_s_internal']:.2f}"
              f", vlabench rollouts {row['vlabench_run_s']}")  # fmt: skip
        for side, seconds in row["seconds"].items():
            print(f"  {side:<20} {seconds:7.2f} s  ratio {row['ratio_vs_lerobot_eval'][side]:.3f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
