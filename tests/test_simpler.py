"""The SimplerEnv plugin: Bridge task facts against the installed ManiSkill, the missing-asset
error, and the whole env code path on ManiSkill's bundled PickCube-v1 (obs mapping, camera,
batched torch tensors to numpy, success reported every step and judged at the last one).

One env is built per module (ManiSkill's import and a Vulkan renderer cost seconds on CPU);
images are 32x32.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from vlabench_plugins import simpler
from vlabench_plugins.simpler import assets, tasks

from vlabench import api
from vlabench.runtime.rollout import EpisodeSpec, Rollout, RolloutSettings

pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")
OFFLINE = {"task_set": "offline", "image_size": 32}
IMAGE = api.IMAGE_PREFIX + "base_camera"


@pytest.fixture(scope="module")
def env():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    built = simpler.make("pick_cube", OFFLINE)
    yield built
    built.close()


def test_bridge_interface_and_protocol() -> None:
    iface = simpler.interface({})
    assert iface.fps == 5.0
    assert iface.action.shape == (7,) and iface.action.space == "widowx_ee_delta"
    assert iface.noop_action == (0, 0, 0, 0, 0, 0, 1.0)  # hold still, gripper open (+1)
    assert "+1 = open" in iface.action.description
    assert iface.feature(api.IMAGE_PREFIX + "3rd_view_camera").shape == (480, 640, 3)
    listed = {t.name: t for t in simpler.list_tasks({})}
    assert set(listed) == set(tasks.TASKS["bridge"])
    assert all(t.n_init_states == 24 for t in listed.values())
    assert listed["put_carrot_on_plate"].instruction == "put carrot on plate"
    assert simpler.SPEC.success == "at_end" and simpler.SPEC.max_episode_steps == 120


def test_bridge_env_ids_match_installed_maniskill(env) -> None:
    from mani_skill.utils.registration import REGISTERED_ENVS

    for task in tasks.TASKS["bridge"].values():
        spec = REGISTERED_ENVS[task.env_id]
        assert spec.max_episode_steps == task.max_steps, task.env_id
        assert set(spec.asset_download_ids) <= set(task.assets)
        assert spec.cls.get_language_instruction.__qualname__.startswith(spec.cls.__name__)


def test_missing_assets_error_is_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(assets.ENV_VAR, str(tmp_path))
    with pytest.raises(assets.AssetsMissing) as err:
        simpler.make("put_eggplant_in_basket", {})
    message = str(err.value)
    assert "\n" not in message
    assert "`vlabench assets simpler`" in message and str(tmp_path) in message
    assert "bridge_v2_real2sim, widowx250s" in message
    # with the packs in place the check passes (the folders ManiSkill's downloader creates)
    for rel in assets.PACK_PATHS.values():
        (tmp_path / rel).mkdir(parents=True)
        (tmp_path / rel / "file").write_text("x")
    assets.require("put_eggplant_in_basket", tasks.BRIDGE_ASSETS)
    assert assets.status(None).ready


def test_assets_cli(cli, tmp_path: Path) -> None:
    missing = cli("assets", "simpler", "--check", "--dir", str(tmp_path), ok=False)
    assert missing.returncode == 1
    assert "missing bridge_v2_real2sim, widowx250s" in missing.stdout
    listing = cli("assets").stdout
    assert "simpler" in listing


def test_offline_observation_mapping(env) -> None:
    obs, info = env.reset(seed=3)
    assert set(obs) == {api.STATE_KEY, IMAGE, api.TASK_KEY}
    state, image = obs[api.STATE_KEY], obs[IMAGE]
    assert type(state) is np.ndarray and state.dtype == np.float32 and state.shape == (9,)
    assert type(image) is np.ndarray and image.dtype == np.uint8 and image.shape == (32, 32, 3)
    assert image.std() > 0  # a rendered scene, not a blank buffer
    assert obs[api.TASK_KEY] == tasks.TASKS["offline"]["pick_cube"].instruction
    assert info["is_success"] is False
    declared = simpler.interface(OFFLINE)
    assert declared.feature(IMAGE).shape == image.shape
    assert declared.feature(api.STATE_KEY).shape == state.shape
    assert env.observation_space.contains(obs)

    obs2, reward, terminated, truncated, info = env.step(np.asarray(declared.noop_action))
    assert isinstance(reward, float) and terminated is False and truncated is False
    assert isinstance(info["is_success"], bool)
    with pytest.raises(ValueError, match=r"shape \(7,\)"):
        env.step(np.zeros(6, np.float32))
    assert env.render() is obs2[IMAGE]  # videos show what the policy saw
    # same seed, same start: seeding reaches ManiSkill
    again, _ = env.reset(seed=3)
    np.testing.assert_array_equal(again[api.STATE_KEY], state)


def test_truncates_at_task_steps(env) -> None:
    env.reset(seed=0)
    env._t = tasks.TASKS["offline"]["pick_cube"].max_steps - 1
    *_, terminated, truncated, _ = env.step(np.zeros(7, np.float32))
    assert truncated is True and terminated is False


def test_unrequested_camera_is_not_rendered() -> None:
    stateonly = simpler.make("pick_cube", {**OFFLINE, api.REQUESTED_FEATURES_OPTION: []})
    try:
        assert stateonly.inner.unwrapped.obs_mode == "state_dict"
        obs, _ = stateonly.reset(seed=0)
        assert IMAGE not in obs and obs[api.STATE_KEY].shape == (9,)
        frame = stateonly.render()  # no camera image: the human-render camera, on demand
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[-1] == 3
    finally:
        stateonly.close()


class _Noop:
    interface = api.PolicyInterface(
        inputs=(), action=api.Feature(api.ACTION_KEY, "action", (7,), space="any")
    )

    def reset(self) -> None:
        pass

    def select_action(self, batch: api.Batch) -> np.ndarray:
        return np.tile(np.array([0, 0, 0, 0, 0, 0, 1], np.float32), (len(batch["task"]), 1))


class _GoalMover:
    """Moves PickCube's goal onto the cube before step ``on`` and away before step ``off``,
    so ManiSkill itself reports success for a while; closing is left to the fixture."""

    def __init__(self, env, on: int, off: int | None) -> None:
        self.env, self.on, self.off, self.t = env, on, off, 0

    def reset(self, **kwargs):
        self.t = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        import torch

        u = self.env.inner.unwrapped
        if self.t == self.on:
            u.goal_site.set_pose(u.cube.pose)
        if self.off is not None and self.t == self.off:
            lifted = u.cube.pose.p + torch.tensor([0.0, 0.0, 0.3])
            u.goal_site.set_pose(type(u.cube.pose).create_from_pq(p=lifted))
        self.t += 1
        return self.env.step(action)

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("success", "off", "expected"),
    [("at_end", 3, False), ("ever", 3, True), ("at_end", None, True)],
)
def test_success_judged_at_last_step(env, success: str, off: int | None, expected: bool) -> None:
    records, infos = [], []
    mover = _GoalMover(env, on=1, off=off)
    settings = RolloutSettings(max_steps=5, success=success, stop_on_success=False)
    metrics = [lambda history: infos.append([i["is_success"] for i in history]) or {}]
    Rollout(lambda: mover, _Noop(), settings, records.append, metrics=metrics).run(
        [EpisodeSpec("pick_cube", 0, 7)]
    )
    (record,) = records
    assert record.failure_reason is None and record.steps == 5
    assert record.success is expected
    steps = infos[0]
    assert steps[1] is True and steps[-1] is (off is None)  # reported at every step


def test_grasp_metric_is_ever_grasped_and_reported_by_the_env() -> None:
    from types import SimpleNamespace

    from vlabench_plugins.simpler.env import SimplerEnv

    env = SimpleNamespace(_grasped=False)  # _info only needs the running flag
    infos = [SimplerEnv._info(env, {"is_src_obj_grasped": v}) for v in (False, True, False)]
    assert [i[api.EPISODE_METRICS_KEY]["grasped"] for i in infos] == [0.0, 1.0, 1.0]
    assert api.EPISODE_METRICS_KEY not in SimplerEnv._info(env, {"success": True})


def test_option_validation() -> None:
    with pytest.raises(ValueError, match="task_set"):
        simpler.list_tasks({"task_set": "nope"})
    with pytest.raises(ValueError, match="image_size"):
        simpler.interface({"image_size": [0, 3]})
    with pytest.raises(ValueError, match=r"unknown option\(s\) imagesize"):
        simpler.interface({"imagesize": 64})
    with pytest.raises(ValueError, match="render_backend"):
        simpler.interface({"render_backend": "vulkan"})
    with pytest.raises(ValueError, match="fixed real intrinsics"):
        simpler.make("put_carrot_on_plate", {"image_size": 64})
    with pytest.raises(ValueError, match="has no task"):
        simpler.make("pick_cube", {})


def test_offline_suite_runs_through_the_cli(cli) -> None:
    suite = "simpler_offline_pickcube"
    cli("run", "--policy", "noop", "--suite", suite, "-n", "1", "--max-steps", "3")
    (run,) = cli.store().runs(suite="simpler_offline_pickcube")
    assert run["status"] == "finished"
    assert run["protocol"]["success"] == "at_end" and run["protocol"]["stop_on_success"] is False
    (episode,) = cli.store().episodes(run["id"])
    assert episode["steps"] == 3 and episode["failure_reason"] is None


def test_preflight_reports_missing_assets_before_the_job(tmp_path: Path, monkeypatch) -> None:
    from vlabench.catalog import load_catalog
    from vlabench.plan.compat import unavailable
    from vlabench.plan.jobs import plan
    from vlabench.registry import load_registry

    monkeypatch.setenv(assets.ENV_VAR, str(tmp_path))
    catalog, registry = load_catalog(), load_registry()
    assert catalog.envs["simpler"].preflight is simpler.preflight
    [pair] = plan(["random"], ["simpler_put_carrot_on_plate"], registry, catalog)
    reason = unavailable(pair.runs[0], catalog)
    assert reason == assets.missing_message("put_carrot_on_plate", list(tasks.BRIDGE_ASSETS))
    assert pair.status == "failed" and pair.reason == reason and not pair.runnable
    assert simpler.preflight("pick_cube", OFFLINE) is None  # bundled assets: nothing to check
    for rel in assets.PACK_PATHS.values():
        (tmp_path / rel).mkdir(parents=True)
        (tmp_path / rel / "file").write_text("x")
    assert unavailable(pair.runs[0], catalog) is None


def test_run_with_missing_assets_fails_the_job_up_front(cli, tmp_path: Path) -> None:
    empty = tmp_path / "no-assets"
    empty.mkdir()
    cli.env[assets.ENV_VAR] = str(empty)
    out = cli(
        "run", "--policy", "random", "--suite", "simpler_put_carrot_on_plate", "--episodes", "1",
        ok=False,
    )
    assert out.returncode != 0
    message = assets.missing_message("put_carrot_on_plate", list(tasks.BRIDGE_ASSETS), empty)
    assert message in " ".join((out.stdout + out.stderr).split())  # rich may wrap the line
    (run,) = cli.store().runs(suite="simpler_put_carrot_on_plate")
    assert run["status"] == "failed" and run["error"] == message
    assert cli.store().episodes(run["id"]) == []


def test_bridge_without_assets_says_each_task_once(cli, tmp_path: Path) -> None:
    """Every task's preflight runs for its own run: its own name, each failure printed once,
    runs and episodes counted apart (issue 25)."""
    empty = tmp_path / "no-assets"
    empty.mkdir()
    cli.env[assets.ENV_VAR] = str(empty)
    out = cli("run", "--policy", "noop", "--suite", "simpler_bridge", "-n", "1", ok=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    names = [
        "put_spoon_on_tablecloth", "put_carrot_on_plate", "stack_green_block_on_yellow_block",
        "put_eggplant_in_basket",
    ]
    flat = " ".join(text.split())
    for name in names:
        message = assets.missing_message(name, list(tasks.BRIDGE_ASSETS), empty)
        assert flat.count(message) == 1, (name, text)  # once, and naming its own task
        assert f"noop × simpler_bridge/{name}: {message}" in flat
    assert "4 run(s), 0 new episode(s) stored, 4 failed run(s), 0 failed episode(s)" in flat
    runs = cli.store().runs(suite="simpler_bridge")
    assert {r["task"]: r["error"] for r in runs} == {
        n: assets.missing_message(n, list(tasks.BRIDGE_ASSETS), empty) for n in names
    }
    dry = cli("matrix", "--policy", "noop", "--suite", "simpler_bridge", "--dry-run")
    flat = " ".join(dry.stdout.split())
    for name in names:
        assert flat.count(f"simpler task {name!r} needs") == 1, dry.stdout
