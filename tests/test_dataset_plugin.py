"""Open-loop evaluation on a LeRobotDataset written with LeRobot's own writer.

One small dataset (3 episodes of 5-7 frames, two 16 px cameras, H.264) is written per module
and copied for the corruption tests. Known errors: a replayed recording scores exactly zero,
a constant offset ``c`` scores ``c**2`` (MSE) and ``|c|`` (L1) per dimension in raw units and
the same divided by the dataset's action std in normalised units.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from vlabench import api

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from vlabench_plugins import dataset as dataset_plugin
from vlabench_plugins.dataset import env as denv
from vlabench_plugins.dataset import record, source
from vlabench_plugins.dataset.metrics import OpenLoopErrors

OFFSET = np.array([0.5, -1.0], dtype=np.float32)
LENGTHS = (5, 6, 7)
SPLIT = [1, 2]


def _episodes() -> list[list[dict]]:
    rng = np.random.default_rng(0)
    episodes = []
    for e, length in enumerate(LENGTHS):
        frames = []
        for i in range(length):
            frames.append({
                "observation.state": rng.normal(size=3).astype(np.float32),
                "action": rng.normal(size=2).astype(np.float32) * (1 + e),
                "observation.images.front": np.full((16, 16, 3), 20 * i, np.uint8),
                "observation.images.wrist": np.full((16, 16, 3), 40 * e, np.uint8),
                "task": f"task {e % 2}",
            })
        episodes.append(frames)
    return episodes


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[dict]]]:
    root = tmp_path_factory.mktemp("ds") / "so100_tiny"
    episodes = _episodes()
    features = record.features_for(3, 2, {"front": (16, 16), "wrist": (16, 16)})
    record.write_dataset(root, episodes, features, fps=10, repo_id="local/so100_tiny")
    return root, episodes


def _std(root: Path) -> np.ndarray:
    return np.asarray(json.loads((root / "meta/stats.json").read_text())["action"]["std"])


def _play(env: denv.DatasetReplayEnv, k: int, offset: np.ndarray) -> dict[str, float]:
    env.reset(seed=0, options={"init_state_id": k})
    done, info = False, {}
    while not done:
        _, _, terminated, done, info = env.step(env.actions[env.t] + offset)
        assert not terminated and info["is_success"] is False
    return info[api.EPISODE_METRICS_KEY]


# -- metrics (pure numpy) --------------------------------------------------------------------


def test_metrics_exact_per_dimension_and_horizon() -> None:
    errors = OpenLoopErrors(np.array([2.0, 0.0]))  # std 0 keeps raw units
    targets = np.zeros((4, 2))
    for t in range(3):
        errors.add_executed(np.array([1.0, 3.0]), targets[t])
    errors.add_chunk(np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]), targets[:3])
    errors.add_chunk(np.array([[1.0, 1.0], [9.0, 9.0]]), targets[3:])  # k=1 is past the end
    out = errors.summary()
    assert out["open_loop.mse.d0"] == 1.0 and out["open_loop.mse.d1"] == 9.0
    assert out["open_loop.mse_norm.d0"] == 0.25 and out["open_loop.mse_norm.d1"] == 9.0
    assert out["open_loop.l1_norm"] == (0.5 + 3.0) / 2
    assert out["open_loop.mse_norm.k0"] == (1 / 4 + 1) / 2  # two chunks at k=0, same error
    assert out["open_loop.mse_norm.k1"] == (4 / 4 + 4) / 2
    assert out["open_loop.mse_norm.k2"] == (9 / 4 + 9) / 2
    assert "open_loop.mse_norm.k3" not in out
    assert out["open_loop.frames"] == 3 and out["open_loop.chunks"] == 2


def test_split_option_parses_ints_and_ranges() -> None:
    assert denv.parse_split([3, "5:8"]) == [3, 5, 6, 7]
    assert denv.parse_split(None, 3) == [0, 1, 2]
    for bad in ([1, 1], ["x"], [-1], [True]):
        with pytest.raises(ValueError, match="split"):
            denv.parse_split(bad)


# -- the env on a real dataset -------------------------------------------------------------


def test_interface_from_info_json_without_decoding(recorded) -> None:
    root, _ = recorded
    spec = dataset_plugin.SPEC
    interface = spec.interface({"dataset": str(root)})
    assert interface.action.shape == (2,) and interface.action.space == "dataset:local/so100_tiny"
    names = {f.name: f for f in interface.observation}
    assert names["observation.images.front"].shape == (16, 16, 3)
    assert names[api.STATE_KEY].shape == (3,) and interface.fps == 10.0
    declared = spec.interface(
        {"dataset": str(root), "action_space": "so100_joint_pos", "cameras": ["wrist"]}
    )
    assert declared.action.space == "so100_joint_pos"
    assert "observation.images.front" not in {f.name for f in declared.observation}
    (task,) = spec.tasks({"dataset": str(root), "split": SPLIT, "task": "pick"})
    assert task.name == "pick" and task.n_init_states == 2
    assert spec.metric_columns == ("open_loop.mse_norm", "open_loop.l1_norm")


def test_recorded_actions_score_zero_and_offset_scores_exactly(recorded) -> None:
    root, _ = recorded
    env = dataset_plugin.SPEC.make("heldout", {"dataset": str(root), "split": SPLIT})
    zero = _play(env, 0, np.zeros(2, np.float32))
    assert zero["open_loop.frames"] == LENGTHS[1]
    assert all(v == 0.0 for k, v in zero.items() if k.startswith(("open_loop.mse", "open_loop.l1")))
    std = _std(root)
    for k in (1, 2):  # k=2 wraps to held-out episode 0 of the split (dataset episode 1)
        got = _play(env, k, OFFSET)
        for j, c in enumerate(OFFSET.astype(np.float64)):
            assert got[f"open_loop.mse.d{j}"] == pytest.approx(c**2, rel=1e-6)
            assert got[f"open_loop.l1.d{j}"] == pytest.approx(abs(c), rel=1e-6)
            assert got[f"open_loop.mse_norm.d{j}"] == pytest.approx(c**2 / std[j] ** 2, rel=1e-6)
            assert got[f"open_loop.l1_norm.d{j}"] == pytest.approx(abs(c) / std[j], rel=1e-6)
        assert got["open_loop.mse_norm"] == pytest.approx(np.mean(OFFSET**2 / std**2), rel=1e-6)
        assert got["open_loop.mse_norm.k0"] == pytest.approx(got["open_loop.mse_norm"], rel=1e-6)
    assert got["open_loop.frames"] == LENGTHS[1]


def test_observations_are_the_recorded_frames(recorded) -> None:
    root, episodes = recorded
    env = dataset_plugin.SPEC.make("heldout", {"dataset": str(root), "split": SPLIT})
    obs, info = env.reset(options={"init_state_id": 1})
    assert info["dataset.episode"] == 2
    recorded_ep = episodes[2]
    for t in range(LENGTHS[2]):
        np.testing.assert_array_equal(obs[api.STATE_KEY], recorded_ep[t]["observation.state"])
        for key in ("observation.images.front", "observation.images.wrist"):
            assert obs[key].dtype == np.uint8 and obs[key].shape == (16, 16, 3)
            assert np.abs(obs[key].astype(int) - recorded_ep[t][key].astype(int)).max() <= 2
        assert obs[api.TASK_KEY] == "task 0"
        obs, _, _, truncated, info = env.step(env.actions[env.t])
        assert truncated == (t == LENGTHS[2] - 1)
    with pytest.raises(RuntimeError, match="last frame"):
        env.step(np.zeros(2, np.float32))


def test_chunks_are_scored_over_their_horizon(recorded) -> None:
    root, _ = recorded
    env = dataset_plugin.SPEC.make("heldout", {"dataset": str(root), "split": SPLIT})
    env.reset(options={"init_state_id": 0})
    std = _std(root)
    horizon_offsets = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], np.float32)
    done = False
    while not done:
        t = env.t
        chunk = env.actions[t : t + 3] + horizon_offsets[: len(env.actions[t : t + 3])]
        env.observe_chunk(np.concatenate([chunk, np.zeros((3 - len(chunk), 2), np.float32)]))
        _, _, _, done, info = env.step(chunk[0])
    got = info[api.EPISODE_METRICS_KEY]
    assert got["open_loop.mse_norm"] == 0.0  # the executed action is each chunk's first
    for k in range(3):
        expected = np.mean((k**2) / std**2)
        assert got[f"open_loop.mse_norm.k{k}"] == pytest.approx(expected, rel=1e-6)
    assert got["open_loop.chunks"] == LENGTHS[1]


def test_replay_policy_through_the_runner_scores_zero(recorded) -> None:
    from vlabench_plugins.scripted import replay

    from vlabench.runtime.rollout import Rollout, RolloutSettings, episode_specs

    root, _ = recorded
    options = {"dataset": str(root), "split": SPLIT}
    interface = dataset_plugin.SPEC.interface(options)
    request = api.PolicyRequest(
        "replay", None, {"dataset": str(root), "dataset_episodes": SPLIT}, interface
    )
    policy = replay.load(request)
    records: list[api.EpisodeRecord] = []
    settings = RolloutSettings(max_steps=100, action_dim=2, fps=interface.fps, batch_size=2)
    Rollout(lambda: dataset_plugin.SPEC.make("heldout", options), policy, settings,
            records.append).run(episode_specs("heldout", range(4), 0, 2))
    assert len(records) == 4
    for episode in records:
        assert episode.failure_reason is None and not episode.success
        assert episode.steps == LENGTHS[SPLIT[episode.init_state_id]]
        assert episode.metrics["open_loop.mse"] == 0.0
        assert episode.metrics["open_loop.l1_norm"] == 0.0


# -- broken datasets: the error names the file ---------------------------------------------


@pytest.fixture
def broken(recorded, tmp_path: Path) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(recorded[0], root)
    return root


def _open_error(root: Path) -> str:
    with pytest.raises(source.DatasetError) as caught:
        dataset_plugin.SPEC.make("heldout", {"dataset": str(root), "split": SPLIT})
    return str(caught.value)


def test_truncated_parquet_is_named(broken: Path) -> None:
    data = broken / "data/chunk-000/file-000.parquet"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    message = _open_error(broken)
    assert str(data) in message and "truncated or corrupt" in message


def test_missing_video_is_named(broken: Path) -> None:
    video = broken / "videos/observation.images.wrist/chunk-000/file-000.mp4"
    video.unlink()
    assert f"{video}: missing (video)" in _open_error(broken)


def test_corrupt_video_is_named(broken: Path) -> None:
    video = broken / "videos/observation.images.front/chunk-000/file-000.mp4"
    video.write_bytes(b"\x00" * 64)
    assert str(video) in _open_error(broken)


def test_bad_info_json_is_named(broken: Path) -> None:
    info = broken / "meta/info.json"
    info.write_text("{not json")
    message = _open_error(broken)
    assert str(info) in message and "not valid JSON" in message
    with pytest.raises(source.DatasetError, match=r"info\.json"):
        dataset_plugin.SPEC.interface({"dataset": str(broken)})


def test_v21_dataset_names_the_conversion_script(broken: Path) -> None:
    info = broken / "meta/info.json"
    data = json.loads(info.read_text())
    info.write_text(json.dumps({**data, "codebase_version": "v2.1"}))
    message = _open_error(broken)
    assert "v2.1" in message and "lerobot.scripts.convert_dataset_v21_to_v30" in message
    assert f"--root={broken} --push-to-hub=false" in message


def test_missing_stats_and_unknown_episode_are_named(broken: Path) -> None:
    with pytest.raises(source.DatasetError, match="episode"):
        dataset_plugin.SPEC.make("heldout", {"dataset": str(broken), "split": [9]})
    (broken / "meta/stats.json").unlink()
    assert f"{broken / 'meta/stats.json'}: missing" in _open_error(broken)


def test_preflight_reports_a_missing_directory(tmp_path: Path) -> None:
    reason = dataset_plugin.SPEC.preflight("heldout", {"dataset": str(tmp_path / "nope")})
    assert reason is not None and "meta/info.json" in reason


def test_so100_asset_status_looks_in_lerobots_caches(tmp_path: Path) -> None:
    from vlabench_plugins.dataset import assets

    status = assets.status(str(tmp_path))
    assert not status.ready and set(status.missing) == set(assets.SO100)
    legacy = tmp_path / "lerobot/svla_so100_pickplace/meta/info.json"
    snapshot = tmp_path / "hub/datasets--lerobot--svla_so100_sorting/snapshots/abc/meta/info.json"
    for path in (legacy, snapshot):
        path.parent.mkdir(parents=True)
        path.write_text("{}")
    assert assets.status(str(tmp_path)).missing == ("lerobot/svla_so100_stacking",)


# -- the leaderboard -------------------------------------------------------------------------


def test_board_metric_columns_rank_lower_first_and_stay_out_of_the_mean() -> None:
    from vlabench.report import build_board
    from vlabench.report.formats import cell_text, to_csv

    def run(i: int, policy: str, suite: str, env: str, n: int, successes: int = 0) -> dict:
        # what the runner stores with a run of the dataset env: its metric columns
        metrics = [{"name": "open_loop.mse_norm", "lower_is_better": True}] * (env == "dataset")
        return {"id": i, "policy": policy, "suite": suite, "task": "t", "env": env,
                "protocol_hash": "h" + suite, "protocol": {"name": "p"}, "status": "finished",
                "n": n, "successes": successes, "errors": 0,
                "report_meta": {"inference_label": "", "metrics": metrics}}  # fmt: skip

    runs = [run(1, "a", "so100_x", "dataset", 4), run(2, "b", "so100_x", "dataset", 4),
            run(3, "a", "pusht", "pusht", 10, 9), run(4, "b", "pusht", "pusht", 10, 1)]
    values = {1: {"open_loop.mse_norm": [0.10, 0.11, 0.12, 0.13]},
              2: {"open_loop.mse_norm": [0.50, 0.55, 0.60, 0.52]}}
    board = build_board(runs, metric_values=values)
    labels = [c.label for c in board.columns]
    assert labels == ["pusht", "so100_x mse_norm"]
    cell_a, cell_b = board.cell("a", "so100_x mse_norm"), board.cell("b", "so100_x mse_norm")
    assert cell_a.value == pytest.approx(0.115) and cell_a.rate is None
    assert cell_a.rank == 1 and cell_b.rank == 2  # lower is better
    assert cell_a.ci_low <= 0.115 <= cell_a.ci_high < cell_b.ci_low
    assert cell_text(cell_a).startswith("0.115 [")
    assert board.row("a").mean_rate == pytest.approx(0.9)  # the success column only
    assert board.row("b").mean_rate == pytest.approx(0.1)
    csv_text = to_csv(board)
    assert csv_text.splitlines()[0].endswith(",metric,value")
    assert "so100_x mse_norm" in csv_text and "open_loop.mse_norm,0.115" in csv_text


def test_cli_run_stores_open_loop_errors_and_leaderboard_shows_them(recorded, cli) -> None:
    root, _ = recorded
    src = source.resolve({"dataset": str(root)})
    shifted = [(a + OFFSET).tolist() for a in source.episode_actions(src, SPLIT)]
    registry = cli.registry(json.dumps({
        "suites": {"so100_local": {
            "env": "dataset", "episodes": 2, "max_steps": 50, "protocol": "open_loop",
            "env_options": {"dataset": str(root), "split": SPLIT, "task": "tiny"}}},
        "policies": {
            "recorded": {"type": "replay",
                         "options": {"dataset": str(root), "dataset_episodes": SPLIT}},
            "offset": {"type": "replay", "options": {"episodes": shifted}}},
    }))  # fmt: skip
    cli.env["HF_HUB_OFFLINE"] = "1"
    for policy in ("offset", "recorded"):
        cli("--registry", str(registry), "run", "--policy", policy, "--suite", "so100_local",
            "--executor", "inline")
    board = json.loads(cli("leaderboard", "--format", "json").stdout)
    assert [c["column"] for c in board["columns"]] == [
        "so100_local mse_norm", "so100_local l1_norm"
    ]
    cells = {(c["policy"], c["metric"]): c for c in board["cells"]}
    std = _std(root)
    offset = cells[("offset", "open_loop.mse_norm")]
    assert offset["value"] == pytest.approx(np.mean(OFFSET**2 / std**2), rel=1e-5)
    assert offset["success_rate"] is None and offset["n"] == 2 and offset["rank"] == 2
    recorded_cell = cells[("recorded", "open_loop.mse_norm")]
    assert recorded_cell["value"] == 0.0 and recorded_cell["rank"] == 1
    assert all(r["mean_rate"] is None for r in board["rows"])  # no success rate anywhere
    table = cli("leaderboard").stdout
    assert "so100_local mse_norm" in table and "0 [0,0] n=2" in table
    with cli.store() as store:
        (run,) = [r for r in store.runs() if r["policy"] == "offset"]
        episodes = store.episodes(run["id"])
    assert {e["metrics"]["open_loop.frames"] for e in episodes} == {LENGTHS[1], LENGTHS[2]}


def test_board_prints_the_same_without_any_plugin(recorded, cli) -> None:
    """The board reads only the store: metric columns, inference labels and task groups were
    stored with the runs, so a machine without the plugins (or the registry) prints the same."""
    root, _ = recorded
    registry = cli.registry(json.dumps({
        "suites": {
            "so100_local": {
                "env": "dataset", "episodes": 2, "max_steps": 50, "protocol": "open_loop",
                "env_options": {"dataset": str(root), "split": SPLIT, "task": "tiny"}},
            "pusht_tiny": {"env": "pusht", "tasks": ["push_t"], "episodes": 2, "max_steps": 5,
                           "groups": ["pusht_push"]},
            "pusht_push": {"env": "pusht", "tasks": ["push_t"], "episodes": 1}},
        "policies": {
            "recorded": {"type": "replay",
                         "options": {"dataset": str(root), "dataset_episodes": SPLIT}}},
    }))  # fmt: skip
    cli.env["HF_HUB_OFFLINE"] = "1"
    cli.env["COLUMNS"] = "200"
    run = ("--registry", str(registry), "run", "--executor", "inline")
    cli(*run, "--policy", "recorded", "--suite", "so100_local")
    cli(*run, "--policy", "noop", "--suite", "pusht_tiny")
    cli(*run, "--policy", "noop", "--suite", "pusht_tiny", "--inference", "async",
        "--latency-ms", "100")  # fmt: skip
    reads = [
        ("leaderboard",),
        ("leaderboard", "--format", "json"),
        ("leaderboard", "--by", "group", "--format", "csv"),
        ("leaderboard", "--group", "pusht_push", "--format", "md"),
        ("leaderboard", "--by", "task", "--format", "latex"),
    ]
    with_plugins = [cli(*args).stdout for args in reads]
    cli.env["VLABENCH_PLUGINS"] = "no-such-plugin"  # an allow-list that loads nothing
    without = [cli(*args).stdout for args in reads]
    assert without == with_plugins
    board = json.loads(without[1])
    assert [c["column"] for c in board["columns"]] == [
        "pusht_tiny", "so100_local mse_norm", "so100_local l1_norm"
    ]
    assert {r["policy"] for r in board["rows"]} == {
        "recorded", "noop", "noop [async 100ms g=0.5 weighted]"
    }
    assert "pusht_tiny:pusht_push" in without[2] and "pusht_tiny:pusht_push" in without[3]
    listed = [line.split("│") for line in cli("plugins").stdout.splitlines()]
    status = {cells[1].strip(): cells[3].strip() for cells in listed if len(cells) > 4}
    assert status["dataset"] == status["pusht"] == status["scripted"] == "blocked"
