"""Reference policies trained here: record Meta-World expert demos, train ACT, sweep it.

Three steps, each a real subprocess of the project's or LeRobot's own command line:

1. ``vlabench record metaworld-expert --suite metaworld_mt10 --task T ... --only-success``
   (state-only: ``-E cameras=[]``; the image variant keeps corner2 at ``--image-size``);
2. ``lerobot-train --policy.type=act`` on CPU with a small ACT (``--policy.dim_model``...),
   ``--num_workers=0`` and a small batch, checkpoints every ``--save-freq`` steps;
3. ``vlabench sweep`` over the run's checkpoints on the same tasks (the learning curve).

    .venv/bin/python benchmarks/train_reference.py record --out outputs/ref
    .venv/bin/python benchmarks/train_reference.py train --out outputs/ref --steps 3000
    .venv/bin/python benchmarks/train_reference.py sweep --out outputs/ref -n 20

Every command it runs is printed first and written to ``OUT/commands.txt``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TASKS = ("reach-v3", "button-press-topdown-v3")
SPACES = (
    "{action_space: metaworld_ee_delta, state_space: metaworld_hand_xyz_gripper, "
    "environment_state_space: metaworld_obs39}"
)
ACT_SMALL = {
    "dim_model": 64, "n_heads": 2, "dim_feedforward": 256, "n_encoder_layers": 2,
    "n_decoder_layers": 1, "chunk_size": 20, "n_action_steps": 10, "use_vae": "false",
}  # fmt: skip


def run(cmd: list[str], out: Path) -> None:
    """Print ``cmd``, append it to ``out/commands.txt`` and run it (raises on failure)."""
    line = shlex.join(cmd)
    print(line, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "commands.txt").open("a") as log:
        log.write(line + "\n")
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "HF_HUB_OFFLINE": "1"}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)


def record(args: argparse.Namespace) -> None:
    tasks = [x for t in args.tasks for x in ("--task", t)]
    cams = ["-E", "cameras=[]"] if not args.images else ["--image-size", str(args.image_size)]
    run([str(BIN / "vlabench"), "-q", "record", "metaworld-expert", "--suite", "metaworld_mt10",
         *tasks, "-n", str(args.demos), "--only-success", *cams,
         "--out", str(args.out / "data"), "--repo-id", "local/metaworld_ref"],
        args.out)  # fmt: skip


def train(args: argparse.Namespace) -> None:
    act = [f"--policy.{k}={v}" for k, v in ACT_SMALL.items()]
    start = time.perf_counter()
    run([str(BIN / "lerobot-train"), "--policy.type=act", *act,
         "--policy.device=cpu", "--policy.push_to_hub=false",
         "--policy.pretrained_backbone_weights=null",
         "--dataset.repo_id=local/metaworld_ref", f"--dataset.root={args.out / 'data'}",
         "--dataset.video_backend=pyav", f"--batch_size={args.batch_size}",
         f"--steps={args.steps}", f"--save_freq={args.save_freq}", "--num_workers=0",
         "--log_freq=100", "--wandb.enable=false", f"--seed={args.seed}",
         f"--optimizer.lr={args.lr}", f"--output_dir={args.out / 'train'}"], args.out)  # fmt: skip
    print(f"trained in {time.perf_counter() - start:.0f} s", flush=True)


def sweep(args: argparse.Namespace) -> None:
    tasks = [x for t in args.tasks for x in ("--task", t)]
    cams = [] if args.images else ["-E", "cameras=[]"]
    run([str(BIN / "vlabench"), "--db", f"sqlite:///{args.out / 'sweep.db'}", "sweep",
         str(args.out / "train"), "--suite", "metaworld_mt10", *tasks, "-n", str(args.episodes),
         "--options", SPACES, *cams, "--png", str(args.out / "curve.png")], args.out)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["record", "train", "sweep", "all"])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "ref")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--demos", type=int, default=30, help="expert episodes per task")
    parser.add_argument("--images", action="store_true", help="train from corner2 images")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--save-freq", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--episodes", "-n", type=int, default=20, help="sweep episodes per task")
    args = parser.parse_args()
    args.out = args.out.resolve()
    steps = ["record", "train", "sweep"] if args.step == "all" else [args.step]
    for step in steps:
        {"record": record, "train": train, "sweep": sweep}[step](args)


if __name__ == "__main__":
    main()
