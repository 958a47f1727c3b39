"""Parity with ``lerobot-eval``: the same checkpoint, seeds and batch size give the same
per-episode success and reward sum (tolerance 1e-6) in vlabench as in LeRobot's own
``eval_info.json``. Both sides are real subprocesses (``lerobot-eval`` and ``vlabench run``)
on a tiny random-weight ACT checkpoint (tests/lerobot_testkit.py).

Each side's pipeline is exercised end to end: image orientation and camera names (a flipped
or renamed camera changes the random network's actions, so the rewards), the state's order and
the normalisation from the checkpoint's stats. Random weights never succeed, so every episode
runs to the step limit and the reward sums carry the comparison.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lerobot")

from parity_testkit import (
    assert_parity,
    lerobot_episodes,
    lerobot_eval,
    run_both,
    vlabench_episodes,
    vlabench_run,
)
from vlabench_plugins.lerobot.resize import add_resize_step

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Both checkpoints (one LeRobot import), a registry naming them, the subprocess env."""
    sys.path.insert(0, str(ROOT / "tests"))
    import lerobot_testkit as tk

    root = tmp_path_factory.mktemp("parity")
    pusht = tk.build_checkpoint("act", root / "act_pusht", seed=1)
    metaworld = tk.build_checkpoint(
        "act", root / "act_metaworld", action_dim=4, state_dim=4, image_size=32, seed=2,
        chunk_size=50, n_action_steps=50,
    )  # fmt: skip
    _metaworld_stats(metaworld)
    # trained at 32 px, it takes the 480 px renders through LeRobot's own resize step, as the
    # image reference policy of benchmarks/train_reference.py does
    add_resize_step(metaworld, 32)
    (root / "registry.yaml").write_text(
        "version: 1\npolicies:\n"
        f"  parity_pusht: {{type: act, checkpoint: {pusht}, options: "
        "{action_space: pixel_xy_512, state_space: pixel_xy_512}}\n"
        f"  parity_metaworld: {{type: act, checkpoint: {metaworld}, options: "
        "{action_space: metaworld_ee_delta, state_space: metaworld_hand_xyz_gripper, "
        "rename_map: {observation.images.corner2: observation.images.top}}}\n"
    )
    env = {**os.environ, "VLABENCH_REGISTRY": str(root / "registry.yaml"),
           "HF_HUB_OFFLINE": "1", "MUJOCO_GL": "egl"}  # fmt: skip
    return {"root": root, "pusht": pusht, "metaworld": metaworld, "env": env}


def _metaworld_stats(ckpt: Path) -> None:
    """Give the Meta-World checkpoint stats in its own units (state ~ hand xyz, action [-1, 1]),
    so normalisation matters and actions are not all clipped to the bounds."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    for path in ckpt.glob("*.safetensors"):
        if path.name == "model.safetensors":
            continue
        tensors = load_file(path)
        for key in list(tensors):
            if key.startswith("observation.state."):
                stat = key.rsplit(".", 1)[-1]
                tensors[key] = np.asarray(
                    {"mean": [0.0, 0.6, 0.2, 0.5], "std": [0.1, 0.1, 0.1, 0.5],
                     "min": [-0.5, 0.4, 0.0, -1.0], "max": [0.5, 0.9, 0.3, 1.0],
                     "q01": [-0.5, 0.4, 0.0, -1.0], "q99": [0.5, 0.9, 0.3, 1.0]}[stat],
                    np.float32,
                )  # fmt: skip
            elif key.startswith("action."):
                stat = key.rsplit(".", 1)[-1]
                value = {"mean": 0.0, "std": 0.5, "min": -1.0, "max": 1.0, "q01": -1.0,
                         "q99": 1.0}[stat]  # fmt: skip
                tensors[key] = np.full_like(tensors[key], value)
        save_file(tensors, path)


def test_pusht_matches_lerobot_eval(setup: dict[str, Any]) -> None:
    root, env = setup["root"], setup["env"]
    n, batch, steps = 4, 2, 25
    le_out, db = root / "le_pusht", root / "pusht.db"
    run_both(
        [
            lerobot_eval(setup["pusht"], le_out,
                         ["--env.type=pusht", f"--env.episode_length={steps}"], n, batch,
                         {"observation.image": "observation.images.top"}),
            vlabench_run(db, "parity_pusht", "pusht", n, batch, steps, []),
        ],
        env,
    )  # fmt: skip
    assert_parity(vlabench_episodes(db), lerobot_episodes(le_out))


@pytest.mark.timeout(1800)
def test_metaworld_matches_lerobot_eval(setup: dict[str, Any]) -> None:
    """LeRobot's Meta-World env always runs 500 steps (``episode_length`` is not used), at
    480x480 (corner2, flipped), and writes a video: one episode, chunks of 50 keep it short.
    The checkpoint resizes the frames to 32 px in its preprocessor (LeRobot's step).
    Meta-World's dense reward summed over 500 steps fingerprints the whole trajectory."""
    root, env = setup["root"], setup["env"]
    n, batch, steps = 1, 1, 500
    le_out, db = root / "le_mw", root / "mw.db"
    run_both(
        [
            lerobot_eval(setup["metaworld"], le_out,
                         ["--env.type=metaworld", "--env.task=reach-v3",
                          f"--env.episode_length={steps}"], n, batch,
                         {"observation.image": "observation.images.top"}),
            vlabench_run(db, "parity_metaworld", "metaworld_mt1_reach-v3", n, batch, steps, []),
        ],
        env,
    )  # fmt: skip
    assert_parity(vlabench_episodes(db), lerobot_episodes(le_out))
