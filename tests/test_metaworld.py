"""The Meta-World env plugin and its expert against the real metaworld / MuJoCo (EGL)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
pytest.importorskip("metaworld")

from vlabench_plugins import metaworld as mw
from vlabench_plugins.metaworld import expert, tasks
from vlabench_plugins.metaworld.features import ENV_STATE_KEY, TASK_NAME_KEY

from vlabench import api

STATE_ONLY = {api.REQUESTED_FEATURES_OPTION: [ENV_STATE_KEY, TASK_NAME_KEY]}
CORNER2 = "observation.images.corner2"


def _as_batch(observations: list[dict]) -> dict:
    return {
        key: [o[key] for o in observations]
        if isinstance(observations[0][key], str)
        else np.stack([o[key] for o in observations])
        for key in observations[0]
    }


def test_every_v3_task_with_lerobots_instruction() -> None:
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    infos = mw.SPEC.tasks({})
    assert [t.name for t in infos] == list(ALL_V3_ENVIRONMENTS) and len(infos) == 50
    path = tasks.lerobot_config_path()
    assert path is not None and path.name == "metaworld_config.json"
    lerobot = json.loads(path.read_text())["TASK_DESCRIPTIONS"]
    assert {t.name: t.instruction for t in infos} == lerobot
    by_name = {t.name: t.instruction for t in infos}
    assert by_name["reach-v3"] != by_name["pick-place-v3"]
    assert all(t.instruction and t.n_init_states is None for t in infos)
    assert mw.SPEC.max_episode_steps == 500 and mw.SPEC.success == "ever"


def test_interface_features_and_option_errors() -> None:
    iface = mw.SPEC.interface({"cameras": ["corner2", "topview"], "image_size": [48, 64]})
    names = [f.name for f in iface.observation]
    assert names == [
        "observation.state",
        ENV_STATE_KEY,
        CORNER2,
        "observation.images.topview",
        "task",
        TASK_NAME_KEY,
        "observation.sim_state",
    ]
    state, env_state = iface.feature("observation.state"), iface.feature(ENV_STATE_KEY)
    assert state is not None and env_state is not None
    assert (state.shape, env_state.shape) == ((4,), (39,))
    assert iface.feature(CORNER2).shape == (48, 64, 3)  # type: ignore[union-attr]
    action = iface.action
    assert (action.shape, action.space, action.low, action.high) == (
        (4,),
        "metaworld_ee_delta",
        (-1.0,) * 4,
        (1.0,) * 4,
    )
    assert iface.fps == 80 and iface.noop_action == (0.0,) * 4
    default = mw.SPEC.interface({})
    assert default.feature(CORNER2).shape == (480, 480, 3)  # type: ignore[union-attr]
    for bad, match in [
        ({"cameras": ["nope"]}, "unknown"),
        ({"image_size": 0}, "positive"),
        ({"shadows": "yes"}, "true or false"),
        ({"camera_pos": {"corner2": [1, 2]}}, r"\[x, y, z\]"),
        ({"resolution": 64}, "unknown option"),
    ]:
        with pytest.raises(ValueError, match=match):
            mw.SPEC.interface(bad)
    with pytest.raises(ValueError, match="no v3 task 'reach-v2'"):
        mw.SPEC.make("reach-v2", STATE_ONLY)


def test_state_only_env_renders_nothing_and_steps() -> None:
    env = mw.SPEC.make("reach-v3", STATE_ONLY)
    try:
        obs, info = env.reset(seed=1000)
        assert set(obs) == {"observation.state", ENV_STATE_KEY, "task", TASK_NAME_KEY}
        assert env._renderer is None and info == {"is_success": False}
        assert obs[ENV_STATE_KEY].dtype == np.float32 and obs[ENV_STATE_KEY].shape == (39,)
        np.testing.assert_array_equal(obs["observation.state"], obs[ENV_STATE_KEY][:4])
        assert obs["task"] == "Reach a goal position" and obs[TASK_NAME_KEY] == "reach-v3"
        assert np.any(obs[ENV_STATE_KEY][-3:] != 0)  # MT1 setting: the goal is observed
        _, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
        assert isinstance(reward, float) and not terminated and not truncated
        assert info["is_success"] is False and "near_object" in info
        assert env._renderer is None
        with pytest.raises(ValueError, match="shape"):
            env.step(np.zeros(3, np.float32))
    finally:
        env.close()


def test_seed_reproduces_the_initial_state_for_every_policy() -> None:
    env = mw.SPEC.make("pick-place-v3", STATE_ONLY)
    other = mw.SPEC.make("pick-place-v3", {"cameras": [], "image_size": 32})
    try:
        first, _ = env.reset(seed=7)
        rng = np.random.default_rng(0)
        for _ in range(20):
            env.step(rng.uniform(-1, 1, 4).astype(np.float32))
        moved, _ = env.reset(seed=8)
        again, _ = env.reset(seed=7)
        fresh, _ = other.reset(seed=7)
        np.testing.assert_array_equal(first[ENV_STATE_KEY], again[ENV_STATE_KEY])
        np.testing.assert_array_equal(first["observation.state"], fresh["observation.state"])
        # the object (4:7) and goal (-3:) move with the seed
        assert not np.allclose(first[ENV_STATE_KEY][4:7], moved[ENV_STATE_KEY][4:7])
        assert not np.allclose(first[ENV_STATE_KEY][-3:], moved[ENV_STATE_KEY][-3:])
        assert set(fresh) == {"observation.state", ENV_STATE_KEY, "task", TASK_NAME_KEY}
    finally:
        env.close()
        other.close()


def test_same_start_as_lerobots_metaworld_procedure() -> None:
    """Mirrors lerobot/envs/metaworld.py: MT1 task 0, unfrozen seeded goals, seed() + reset()."""
    import metaworld

    mt1 = metaworld.MT1("push-v3", seed=42)
    ref = mt1.train_classes["push-v3"]()
    ref.set_task(mt1.train_tasks[0])
    ref._freeze_rand_vec, ref.seeded_rand_vec = False, True
    ref.seed(1003)
    raw, _ = ref.reset()
    env = mw.SPEC.make("push-v3", STATE_ONLY)
    try:
        obs, _ = env.reset(seed=1003)
        np.testing.assert_allclose(obs[ENV_STATE_KEY], raw, rtol=0, atol=1e-6)
        np.testing.assert_allclose(obs["observation.state"], raw[:4], rtol=0, atol=1e-6)
    finally:
        env.close()
        ref.close()


def test_camera_images_are_upright() -> None:
    env = mw.SPEC.make(
        "drawer-open-v3",
        {"cameras": ["corner2", "topview"], "image_size": [48, 64], "shadows": False},
    )
    try:
        obs, _ = env.reset(seed=1000)
        image, top = obs[CORNER2], obs["observation.images.topview"]
        assert image.shape == (48, 64, 3) and image.dtype == np.uint8 and top.shape == image.shape
        assert image.flags["C_CONTIGUOUS"]
        # Known regions: upright, the grey wall (red ~ blue) fills the top right and the wooden
        # table (red well above blue) the bottom right; the raw corner2 frame is rotated 180 deg.
        warm = image[..., 0].astype(int) - image[..., 2].astype(int)
        assert warm[:12, 40:].max() <= 10 and warm[32:, 36:56].mean() > 25
        renderer = env._ensure_renderer()
        renderer.update_scene(env.inner.data, camera="corner2")
        np.testing.assert_array_equal(image, renderer.render()[::-1, ::-1])
        renderer.update_scene(env.inner.data, camera="topview")
        np.testing.assert_array_equal(top, renderer.render())  # topview is not flipped
    finally:
        env.close()


def test_only_requested_cameras_are_rendered_and_shadows_are_an_option() -> None:
    options = {"cameras": ["corner2", "corner3"], "image_size": 40}
    requested = {api.REQUESTED_FEATURES_OPTION: [CORNER2, "observation.state"]}
    env = mw.SPEC.make("reach-v3", {**options, **requested, "shadows": False})
    lit = mw.SPEC.make("reach-v3", {**options, "shadows": True, "reflections": True})
    try:
        obs, _ = env.reset(seed=3)
        assert set(obs) == {"observation.state", "task", CORNER2}
        lit_obs, _ = lit.reset(seed=3)
        assert "observation.images.corner3" in lit_obs and ENV_STATE_KEY in lit_obs
        assert obs[CORNER2].shape == lit_obs[CORNER2].shape == (40, 40, 3)
        assert not np.array_equal(obs[CORNER2], lit_obs[CORNER2])  # shadows change pixels
    finally:
        env.close()
        lit.close()


def test_two_envs_render_independently() -> None:
    """Batched slots: several envs (one GL context each) interleaved in one process."""
    options = {"cameras": ["corner2"], "image_size": 32, "shadows": False, "reflections": False}
    a, b = mw.SPEC.make("reach-v3", options), mw.SPEC.make("door-open-v3", options)
    try:
        obs_a, _ = a.reset(seed=1)
        obs_b, _ = b.reset(seed=1)
        again_a, _ = a.reset(seed=1)
        np.testing.assert_array_equal(obs_a[CORNER2], again_a[CORNER2])
        assert not np.array_equal(obs_a[CORNER2], obs_b[CORNER2])
    finally:
        a.close()
        b.close()


@pytest.mark.filterwarnings("ignore:Constant:UserWarning")
def test_expert_dispatches_each_row_to_its_task() -> None:
    from metaworld.policies import ENV_POLICY_MAP

    request = api.PolicyRequest("metaworld-expert", None, {}, mw.SPEC.interface({}))
    described = expert.describe(request)
    assert [f.name for f in described.inputs] == [ENV_STATE_KEY, TASK_NAME_KEY]
    policy = expert.load(request)
    envs = [mw.SPEC.make(t, STATE_ONLY) for t in ("reach-v3", "drawer-open-v3")]
    try:
        observations = [env.reset(seed=5)[0] for env in envs]
        actions = policy.select_action(_as_batch(observations))
        assert actions.shape == (2, 4) and actions.dtype == np.float32
        for row, obs in zip(actions, observations, strict=True):
            scripted = ENV_POLICY_MAP[obs[TASK_NAME_KEY]]()
            want = np.clip(scripted.get_action(obs[ENV_STATE_KEY].astype(np.float64)), -1, 1)
            np.testing.assert_allclose(row, want, rtol=0, atol=1e-6)
        with pytest.raises(ValueError, match="task_name"):
            policy.select_action({ENV_STATE_KEY: np.zeros((1, 39), np.float32)})
    finally:
        for env in envs:
            env.close()


def test_task_is_set_with_mt1_settings() -> None:
    """Goal observed (MT1), a new seeded goal/object placement per reset, 500-step horizon."""
    env = mw.SPEC.make("reach-v3", STATE_ONLY)
    try:
        assert env.inner._partially_observable is False
        assert env.inner._freeze_rand_vec is False and env.inner.seeded_rand_vec is True
        assert env.inner.max_path_length == 500
    finally:
        env.close()
