"""Reference policies trained here: record Meta-World expert demos, train ACT, sweep it.

Each step is a real subprocess of the project's or LeRobot's own command line:

1. ``record``: ``vlabench record metaworld-expert --suite metaworld_mt10 --task T ...
   --only-success`` (state-only: ``-E cameras=[]``; ``--images``: corner2 rendered at
   LeRobot's 480 px and written at ``--image-size`` with ``vlabench record --resize``, and
   only the inputs LeRobot's Meta-World env gives: ``observation.state`` (agent_pos) and
   the image);
2. ``train``: ``lerobot-train --policy.type=act`` on CPU with a small ACT
   (``--policy.dim_model``...), ``--num_workers=0``, checkpoints every ``--save-freq``;
   ``--policy diffusion``: a small state-only Diffusion Policy (DDIM, 10 steps) instead;
3. ``attach`` (``--images``): adds LeRobot's own ``image_crop_resize_processor`` step to
   every checkpoint's saved preprocessor, so the policy takes full-size 480 px frames (what
   ``lerobot-eval`` renders) and resizes them exactly as the dataset was;
4. ``sweep``: ``vlabench sweep`` over the run's checkpoints (the learning curve);
5. ``compare`` (``--images``): the last checkpoint through ``lerobot-eval`` and through
   ``vlabench run`` on the same tasks, seeds and batch size, episode by episode, and the
   ``random`` policy on the same episodes; writes ``OUT/compare.json``.

    .venv/bin/python benchmarks/train_reference.py record --out outputs/ref
    .venv/bin/python benchmarks/train_reference.py train --out outputs/ref --steps 3000
    .venv/bin/python benchmarks/train_reference.py sweep --out outputs/ref -n 20
    .venv/bin/python benchmarks/train_reference.py all --images --out outputs/ref_img
    .venv/bin/python benchmarks/train_reference.py train --policy diffusion --lr 3e-4 \
        --batch-size 32 --steps 6000 --save-freq 2000 --data outputs/ref/data --out outputs/dp

Every command it runs is printed first and written to ``OUT/commands.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TASKS = ("reach-v3", "button-press-topdown-v3")
IMAGE_TASKS = ("button-press-topdown-v3", "drawer-close-v3")
SPACES = (
    "{action_space: metaworld_ee_delta, state_space: metaworld_hand_xyz_gripper, "
    "environment_state_space: metaworld_obs39}"
)
IMAGE_SPACES = "{action_space: metaworld_ee_delta, state_space: metaworld_hand_xyz_gripper}"
CAMERA = "observation.images.corner2"
ACT_SMALL = {
    "dim_model": 64, "n_heads": 2, "dim_feedforward": 256, "n_encoder_layers": 2,
    "n_decoder_layers": 1, "chunk_size": 20, "n_action_steps": 10, "use_vae": "false",
}  # fmt: skip
DIFFUSION_SMALL = {
    "horizon": 16, "n_action_steps": 8, "n_obs_steps": 2, "drop_n_last_frames": 7,
    "down_dims": "[64,128,256]", "diffusion_step_embed_dim": 64,
    "noise_scheduler_type": "DDIM", "num_inference_steps": 10,
}  # fmt: skip


def run(cmd: list[str], out: Path, registry: Path | None = None) -> None:
    """Print ``cmd``, append it to ``out/commands.txt`` and run it (raises on failure);
    ``registry``: the registry file vlabench reads (``VLABENCH_REGISTRY``)."""
    line = shlex.join(cmd)
    print(line, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "commands.txt").open("a") as log:
        log.write(line + "\n")
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "HF_HUB_OFFLINE": "1"}
    if registry is not None:
        env["VLABENCH_REGISTRY"] = str(registry)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)


def record(args: argparse.Namespace) -> None:
    tasks = [x for t in args.tasks for x in ("--task", t)]
    cams = ["-E", "cameras=[]"]
    if args.images:
        cams = ["--resize", str(args.image_size), "--observation", "observation.state",
                "--observation", CAMERA]  # fmt: skip
    run([str(BIN / "vlabench"), "-q", "record", "metaworld-expert", "--suite", "metaworld_mt10",
         *tasks, "-n", str(args.demos), "--only-success", *cams,
         "--out", str(args.out / "data"), "--repo-id", "local/metaworld_ref"],
        args.out)  # fmt: skip


def train(args: argparse.Namespace) -> None:
    small = ACT_SMALL if args.policy == "act" else DIFFUSION_SMALL
    flags = [f"--policy.{k}={v}" for k, v in small.items()]
    # lerobot-train takes the optimizer from the policy's preset (--optimizer.lr is replaced
    # by it), so the rates are the policy's; the ResNet-18 of the image variant starts from
    # random weights and learns at the main rate
    flags.append(f"--policy.optimizer_lr={args.lr}")
    if args.policy == "act":
        flags.append(f"--policy.optimizer_lr_backbone={args.lr}")
    data = args.data or args.out / "data"
    start = time.perf_counter()
    run([str(BIN / "lerobot-train"), f"--policy.type={args.policy}", *flags,
         "--policy.device=cpu", "--policy.push_to_hub=false",
         "--policy.pretrained_backbone_weights=null",
         "--dataset.repo_id=local/metaworld_ref", f"--dataset.root={data}",
         "--dataset.video_backend=pyav", f"--batch_size={args.batch_size}",
         f"--steps={args.steps}", f"--save_freq={args.save_freq}", "--num_workers=0",
         "--log_freq=100", "--wandb.enable=false", f"--seed={args.seed}",
         f"--output_dir={args.out / 'train'}"], args.out)  # fmt: skip
    print(f"trained in {time.perf_counter() - start:.0f} s", flush=True)


def checkpoints(out: Path) -> list[Path]:
    """The run's ``checkpoints/<step>/pretrained_model`` directories, by step."""
    return sorted((out / "train" / "checkpoints").glob("[0-9]*/pretrained_model"))


def attach(args: argparse.Namespace) -> None:
    """Add LeRobot's resize step (to ``--image-size``) to every checkpoint's preprocessor."""
    from vlabench_plugins.lerobot.resize import add_resize_step

    for ckpt in checkpoints(args.out):
        path = add_resize_step(ckpt, args.image_size)
        print(f"{path}: resize to {args.image_size} px before normalising", flush=True)


def sweep(args: argparse.Namespace) -> None:
    tasks = [x for t in args.tasks for x in ("--task", t)]
    cams, spaces = (["--batch-size", "10"], IMAGE_SPACES) if args.images else (
        ["-E", "cameras=[]"], SPACES)  # fmt: skip
    run([str(BIN / "vlabench"), "--db", f"sqlite:///{args.out / 'sweep.db'}", "sweep",
         str(args.out / "train"), "--suite", "metaworld_mt10", *tasks, "-n", str(args.episodes),
         "--options", spaces, *cams, "--png", str(args.out / "curve.png")], args.out)  # fmt: skip


def _episodes_lerobot(out: Path) -> list[tuple[bool, float]]:
    info = json.loads(next(out.rglob("eval_info.json")).read_text())
    [task] = info["per_task"]
    m = task["metrics"]
    return [(bool(s), float(r)) for s, r in zip(m["successes"], m["sum_rewards"], strict=True)]


def _episodes_vlabench(db: Path, policy: str) -> list[tuple[bool, float]]:
    from vlabench.store import open_store

    with open_store(f"sqlite:///{db}") as store:
        [run_row] = [r for r in store.runs() if r["policy"] == policy]
        rows = sorted(store.episodes(run_row["id"]), key=lambda e: e["episode_index"])
    return [(bool(e["success"]), float(e["reward_sum"] or 0.0)) for e in rows]


def compare(args: argparse.Namespace) -> None:
    """The last checkpoint through lerobot-eval and vlabench, and ``random`` in vlabench."""
    ckpt = checkpoints(args.out)[-1]
    registry = args.out / "compare_registry.yaml"
    registry.write_text(
        "version: 1\npolicies:\n"
        f"  ref_img: {{type: act, checkpoint: {ckpt}, options: {IMAGE_SPACES}}}\n"
    )
    n, batch, results = str(args.episodes), str(args.eval_batch), {}
    rename = json.dumps({"observation.image": CAMERA})
    for task in args.tasks:
        db, le_out = args.out / f"compare_{task}.db", args.out / f"lerobot_eval_{task}"
        db.unlink(missing_ok=True)
        for policy in ("ref_img", "random"):
            run([str(BIN / "vlabench"), "--db", f"sqlite:///{db}", "-q", "run", "--policy",
                 policy, "--suite", "metaworld_mt10", "--task", task, "-n", n, "-b", batch,
                 "--executor", "inline"], args.out, registry)  # fmt: skip
        if not le_out.exists():
            run([str(BIN / "lerobot-eval"), f"--policy.path={ckpt}", "--policy.device=cpu",
                 "--env.type=metaworld", f"--env.task={task}", f"--eval.n_episodes={n}",
                 f"--eval.batch_size={batch}", "--eval.use_async_envs=false", "--seed=1000",
                 f"--output_dir={le_out}", f"--rename_map={rename}"], args.out)  # fmt: skip
        ours, theirs = _episodes_vlabench(db, "ref_img"), _episodes_lerobot(le_out)
        results[task] = {
            "checkpoint_step": int(ckpt.parent.name), "vlabench": ours, "lerobot_eval": theirs,
            "random": _episodes_vlabench(db, "random"),
            "same_success": [a[0] == b[0] for a, b in zip(ours, theirs, strict=True)],
            "max_reward_diff": max(abs(a[1] - b[1]) for a, b in zip(ours, theirs, strict=True)),
        }  # fmt: skip
        r = results[task]
        print(f"{task}: vlabench {sum(s for s, _ in ours)}/{len(ours)}, lerobot-eval "
              f"{sum(s for s, _ in theirs)}/{len(theirs)}, random "
              f"{sum(s for s, _ in r['random'])}/{len(r['random'])}; same success "
              f"{sum(r['same_success'])}/{len(ours)}, max reward diff "
              f"{r['max_reward_diff']:.2e}", flush=True)  # fmt: skip
    path = args.out / "compare.json"  # merged: tasks may be compared by separate processes
    merged = {**(json.loads(path.read_text()) if path.exists() else {}), **results}
    path.write_text(json.dumps(merged, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["record", "train", "attach", "sweep", "compare", "all"])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "ref")
    parser.add_argument("--tasks", nargs="+", help="Meta-World tasks (default: by variant)")
    parser.add_argument("--demos", type=int, default=30, help="expert episodes per task")
    parser.add_argument("--images", action="store_true", help="train from corner2 images")
    parser.add_argument("--policy", choices=["act", "diffusion"], default="act",
                        help="train: a small ACT or Diffusion Policy (state-only)")
    parser.add_argument("--data", type=Path, help="train: the dataset (default: OUT/data)")
    parser.add_argument("--image-size", type=int, default=96, help="training image size")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--save-freq", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4, help="the policy's optimizer_lr")
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--episodes", "-n", type=int, default=20, help="eval episodes per task")
    parser.add_argument("--eval-batch", type=int, default=1, help="compare: batch size")
    args = parser.parse_args()
    args.out = args.out.resolve()
    args.tasks = args.tasks or list(IMAGE_TASKS if args.images else TASKS)
    every = ["record", "train", "attach", "sweep", "compare"] if args.images else [
        "record", "train", "sweep"]  # fmt: skip
    steps = every if args.step == "all" else [args.step]
    for step in steps:
        {"record": record, "train": train, "attach": attach, "sweep": sweep,
         "compare": compare}[step](args)  # fmt: skip


if __name__ == "__main__":
    main()
