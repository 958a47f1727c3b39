"""``--record-video N``: mp4 files for the first N episodes per task, paths on the episodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import CLI

from vlabench.api import EpisodeRecord, PolicyInterface
from vlabench.runtime import video
from vlabench.runtime.rollout import Rollout, RolloutSettings, episode_specs


@pytest.mark.parametrize("executor", ["processes", "inline"])
def test_record_video_on_a_short_pusht_run(cli: CLI, executor: str) -> None:
    videos = cli.cwd / "clips"
    cli(
        "run", "--policy", "noop", "--suite", "pusht_quick", "-n", "2", "--max-steps", "12",
        "--record-video", "1", "--video-dir", str(videos), "--executor", executor,
    )
    with cli.store() as store:
        [run] = store.runs()
        episodes = store.episodes(run["id"])
    first, second = episodes
    assert second["video_path"] is None  # only the first episode of the task
    path = Path(first["video_path"])
    assert path.is_file() and path.suffix == ".mp4"
    assert path.parent == videos.resolve() / run["config_hash"]
    assert video.count_frames(path) == first["steps"] + 1 == 13  # the reset frame + each step
    # the drill-downs link it: the HTML report (format from the suffix) and `show`
    cli("leaderboard", "-o", "board.html")
    assert path.as_uri() in (cli.cwd / "board.html").read_text()
    shown = cli("show", "noop", "--task", "push_t").stdout
    assert f"video of episode 0: {path}" in shown
    refused = cli("leaderboard", "--format", "png", ok=False)
    assert refused.returncode == 2 and "--output" in refused.stderr
    negative = cli("run", "--policy", "noop", "--suite", "pusht_quick", "--record-video", "-1",
                   ok=False)
    assert negative.returncode != 0 and ">= 0" in negative.stdout + negative.stderr


def test_default_directory_is_next_to_the_store(tmp_path: Path) -> None:
    assert video.default_directory(f"sqlite:///{tmp_path / 'a.db'}") == tmp_path / "videos"
    assert video.default_directory("postgresql://h/db").name == "vlabench-videos"


def test_writer_pads_odd_sizes_and_frames_are_normalised(tmp_path: Path) -> None:
    writer = video.VideoWriter(tmp_path / "odd.mp4", fps=5)
    rng = np.random.default_rng(0)
    for _ in range(4):
        writer.add(rng.integers(0, 255, (33, 47, 3), dtype=np.uint8))
    path = writer.close()
    assert path is not None and video.count_frames(path) == 4
    assert video.VideoWriter(tmp_path / "none.mp4", fps=5).close() is None
    chw_float = np.ones((3, 8, 10), dtype=np.float32) * 0.5
    frame = video.frame_of(None, {"observation.images.top": chw_float})
    assert frame is not None and frame.shape == (8, 10, 3) and frame.dtype == np.uint8
    assert frame[0, 0, 0] == 127
    assert video.frame_of(None, {"observation.state": np.zeros(2)}) is None
    assert video.file_name("<a b>/../c", 3) == "a_b_.._c_ep0003.mp4"  # no "/": stays put


class _BlindEnv:
    """An env that neither renders nor observes an image: videos are dropped, not episodes."""

    def reset(self, seed: int | None = None, options: Any = None) -> tuple[dict, dict]:
        return {"observation.state": np.zeros(2, np.float32), "task": "t"}, {}

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        return self.reset()[0], 0.0, False, False, {"is_success": False}

    def render(self) -> None:
        raise RuntimeError("no renderer")

    def close(self) -> None:
        pass


class _Zero:
    interface = PolicyInterface(inputs=(), action=None)  # type: ignore[arg-type]

    def reset(self) -> None:
        pass

    def select_action(self, batch: dict) -> np.ndarray:
        return np.zeros((len(batch["task"]), 2), np.float32)


@pytest.mark.parametrize("batch_size", [1, 2])
def test_a_failing_frame_source_never_fails_the_episode(tmp_path: Path, batch_size: int) -> None:
    records: list[EpisodeRecord] = []
    settings = RolloutSettings(
        max_steps=3, batch_size=batch_size, record_video=2, video_dir=str(tmp_path)
    )
    Rollout(_BlindEnv, _Zero(), settings, records.append).run(
        episode_specs("t", range(3), 0, None)
    )
    assert [(r.steps, r.failure_reason, r.video_path) for r in records] == [(3, None, None)] * 3
    assert list(tmp_path.iterdir()) == []
