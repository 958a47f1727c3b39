"""`vlabench record`: Meta-World expert episodes written as a LeRobotDataset v3.0 that loads
with LeRobotDataset, replays in the ``dataset`` env at zero error and trains with
``lerobot-train`` (two steps of a tiny ACT, a real subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("lerobot")
pytest.importorskip("metaworld")

BIN = Path(sys.executable).parent
TASK = "reach-v3"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vlabench.cli import app

    os.environ.setdefault("MUJOCO_GL", "egl")
    out = tmp_path_factory.mktemp("rec") / "reach"
    result = CliRunner().invoke(
        app,
        ["-q", "record", "metaworld-expert", "--suite", "metaworld_mt10", "--task", TASK,
         "-n", "2", "--only-success", "--image-size", "32", "--out", str(out),
         "--repo-id", "local/reach"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "2 episodes" in said and "(2/2 succeeded)" in said and str(out) in said
    return out


def test_record_loads_with_lerobot_keys_task_and_fps(recorded: Path) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/reach", root=recorded, video_backend="pyav")
    assert ds.meta.info.codebase_version == "v3.0"
    assert ds.num_episodes == 2 and ds.fps == 80  # Meta-World's control rate
    features = ds.meta.features
    assert tuple(features["observation.images.corner2"]["shape"]) == (32, 32, 3)
    assert features["observation.images.corner2"]["dtype"] == "video"
    assert tuple(features["observation.state"]["shape"]) == (4,)
    assert tuple(features["observation.environment_state"]["shape"]) == (39,)
    assert tuple(features["action"]["shape"]) == (4,)
    assert "task_name" not in features and "observation.sim_state" not in features
    frame = ds[0]
    assert frame["task"] == "Reach a goal position"  # LeRobot's instruction for reach-v3
    assert tuple(frame["observation.images.corner2"].shape) == (3, 32, 32)
    # actions are the expert's, inside Meta-World's bounds, and not all alike
    actions = np.stack([ds[i]["action"].numpy() for i in range(0, ds.num_frames, 7)])
    assert np.all(np.abs(actions) <= 1.0) and actions.std() > 0.01


def test_record_replays_in_the_dataset_env_at_zero_error(recorded: Path) -> None:
    from vlabench_plugins import dataset as dataset_plugin
    from vlabench_plugins.scripted import replay

    from vlabench import api
    from vlabench.runtime.rollout import Rollout, RolloutSettings, episode_specs

    options = {"dataset": str(recorded), "split": [0, 1]}
    interface = dataset_plugin.SPEC.interface(options)
    request = api.PolicyRequest(
        "replay", None, {"dataset": str(recorded), "dataset_episodes": [0, 1]}, interface
    )
    records: list[api.EpisodeRecord] = []
    settings = RolloutSettings(max_steps=600, action_dim=4, fps=interface.fps)
    Rollout(lambda: dataset_plugin.SPEC.make(TASK, options), replay.load(request), settings,
            records.append).run(episode_specs(TASK, range(2), 0, 2))  # fmt: skip
    assert len(records) == 2
    for episode in records:
        assert episode.failure_reason is None, episode.failure_reason
        assert episode.steps > 10
        assert episode.metrics["open_loop.mse"] == 0.0
        assert episode.metrics["open_loop.l1_norm"] == 0.0


def test_record_trains_with_lerobot_train(recorded: Path, tmp_path: Path) -> None:
    out = tmp_path / "train"
    cmd = [
        str(BIN / "lerobot-train"), "--policy.type=act", "--policy.device=cpu",
        "--policy.push_to_hub=false", "--policy.pretrained_backbone_weights=null",
        "--policy.dim_model=32", "--policy.n_heads=2", "--policy.dim_feedforward=64",
        "--policy.n_encoder_layers=1", "--policy.n_decoder_layers=1",
        "--policy.chunk_size=8", "--policy.n_action_steps=4",
        "--dataset.repo_id=local/reach", f"--dataset.root={recorded}",
        "--dataset.video_backend=pyav", "--batch_size=2", "--steps=2", "--save_freq=2",
        "--num_workers=0", "--wandb.enable=false", f"--output_dir={out}",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    model = out / "checkpoints" / "000002" / "pretrained_model"
    import json

    config = json.loads((model / "config.json").read_text())
    assert set(config["input_features"]) == {
        "observation.state",
        "observation.environment_state",
        "observation.images.corner2",
    }
    assert config["input_features"]["observation.images.corner2"]["shape"] == [3, 32, 32]
    assert (model / "model.safetensors").stat().st_size > 0


def test_record_resize_and_observation_choice(tmp_path: Path) -> None:
    """``--resize`` writes the cameras downsampled as LeRobot's resize step does, and
    ``--observation`` keeps only the inputs LeRobot's own Meta-World env gives."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from vlabench.cli import app

    out = tmp_path / "small"
    args = ["-q", "record", "metaworld-expert", "--suite", "metaworld_mt10", "--task", TASK,
            "-n", "1", "--image-size", "64", "--resize", "16", "--out", str(out),
            "--observation", "observation.state", "--observation", "observation.images.corner2"]
    result = CliRunner().invoke(app, args)  # fmt: skip
    assert result.exit_code == 0, result.output
    ds = LeRobotDataset("local/recorded", root=out, video_backend="pyav")
    assert set(ds.meta.features) - {"timestamp", "frame_index", "episode_index", "index",
                                    "task_index"} == {
        "observation.state", "observation.images.corner2", "action"}  # fmt: skip
    assert tuple(ds.meta.features["observation.images.corner2"]["shape"]) == (16, 16, 3)
    assert tuple(ds[0]["observation.images.corner2"].shape) == (3, 16, 16)
    bad = CliRunner().invoke(app, [*args[:-4], "--out", str(tmp_path / "bad"),
                                   "--observation", "observation.nope"])  # fmt: skip
    assert bad.exit_code != 0 and "no recorded feature observation.nope" in bad.output
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


def test_resize_images_is_lerobots_resize_step() -> None:
    import torch
    from lerobot.processor.hil_processor import ImageCropResizeProcessorStep
    from vlabench_plugins.dataset.record import resize_images

    frames = np.random.default_rng(3).integers(0, 256, (3, 120, 120, 3), dtype=np.uint8)
    ours = resize_images(list(frames), 24)
    key = "observation.images.top"
    floats = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    step = ImageCropResizeProcessorStep(resize_size=(24, 24))
    theirs = step.observation({key: floats})[key]
    expected = (theirs * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert ours.shape == (3, 24, 24, 3) and ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, expected)
    assert not np.array_equal(ours, frames[:, ::5, ::5])  # antialiased, not subsampled
