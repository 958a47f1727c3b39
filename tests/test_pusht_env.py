"""The PushT env plugin against the real gym-pusht simulator."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from vlabench import api

pytest.importorskip("gym_pusht")

from vlabench_plugins import pusht

SOLVED_START = [100.0, 100.0, 256 - 31.8198, 256 - 13.1802, math.pi / 4]


def _spec() -> api.EnvSpec:
    (spec,) = pusht.vlabench_envs()
    return spec


def test_spec_metadata() -> None:
    spec = _spec()
    assert spec.name == "pusht"
    assert spec.max_episode_steps == 300
    assert spec.success == "ever"
    assert spec.requires == ("gym_pusht",)
    assert spec.packages == ("gym-pusht", "pymunk", "gymnasium")
    (task,) = spec.tasks({})
    assert task == api.TaskInfo("push_t", "Push the T-shaped block onto the T-shaped target.")


def test_interface_features() -> None:
    iface = _spec().interface({"image_size": 64})
    assert [f.name for f in iface.observation] == [
        "observation.state",
        "observation.images.top",
        "task",
    ]
    state = iface.feature("observation.state")
    assert state is not None
    assert (state.shape, state.space, state.low, state.high) == (
        (2,),
        "pixel_xy_512",
        (0, 0),
        (512, 512),
    )
    image = iface.feature("observation.images.top")
    assert image is not None
    assert (image.kind, image.shape, image.dtype, image.space) == (
        "image",
        (64, 64, 3),
        "uint8",
        "rgb",
    )
    task = iface.feature("task")
    assert task is not None and (task.kind, task.shape, task.dtype) == ("language", None, "str")
    action = iface.action
    assert (action.name, action.kind, action.shape, action.dtype) == (
        "action",
        "action",
        (2,),
        "float32",
    )
    assert (action.space, action.low, action.high) == ("pixel_xy_512", (0, 0), (512, 512))
    assert iface.fps == 10 and iface.noop_action is None


@pytest.mark.parametrize("options", [{}, {"image_size": 32}, {"render": False}])
def test_interface_matches_what_make_emits(options: dict) -> None:
    spec = _spec()
    iface = spec.interface(options)
    env = spec.make("push_t", options)
    obs, _ = env.reset(seed=3)
    obs2, *_ = env.step(np.array([256.0, 256.0], dtype=np.float32))
    for o in (obs, obs2):
        assert set(o) == {f.name for f in iface.observation}
        for feature in iface.observation:
            value = o[feature.name]
            if feature.kind == "language":
                assert isinstance(value, str) and value == pusht.INSTRUCTION
            else:
                assert value.shape == feature.shape
                assert value.dtype == np.dtype(feature.dtype)
        assert env.observation_space.contains(o)
    env.close()


def test_state_only_variant_has_no_image() -> None:
    iface = _spec().interface({"render": False})
    assert iface.feature("observation.images.top") is None
    env = _spec().make("push_t", {"render": False})
    obs, _ = env.reset(options={"reset_to_state": SOLVED_START})
    np.testing.assert_array_equal(obs["observation.state"], np.array([100, 100], np.float32))


def test_solved_start_succeeds_in_one_step() -> None:
    env = _spec().make("push_t", {})
    env.reset(options={"reset_to_state": SOLVED_START})
    obs, reward, terminated, _, info = env.step(np.array([100.0, 100.0], dtype=np.float32))
    assert info["coverage"] == pytest.approx(1.0, abs=1e-3)
    assert info["is_success"] is True
    assert reward == pytest.approx(1.0)
    assert terminated is True
    np.testing.assert_allclose(obs["observation.state"], [100, 100], atol=1e-3)


def test_random_start_with_far_action_fails() -> None:
    env = _spec().make("push_t", {})
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.array([10.0, 10.0], dtype=np.float32))
    assert info["is_success"] is False
    assert info["coverage"] < 0.95
    assert reward < 1.0


def test_reset_to_state_as_env_option_pins_every_episode() -> None:
    env = _spec().make("push_t", {"reset_to_state": SOLVED_START, "render": False})
    for seed in (0, 1):
        obs, info = env.reset(seed=seed)
        np.testing.assert_array_equal(obs["observation.state"], [100, 100])
        assert info["coverage"] > 0.95
    override = [200.0, 300.0, 256.0, 256.0, 0.0]
    obs, _ = env.reset(seed=0, options={"reset_to_state": override})
    np.testing.assert_array_equal(obs["observation.state"], [200, 300])


def test_reset_is_deterministic_by_seed() -> None:
    env_a, env_b = _spec().make("push_t", {}), _spec().make("push_t", {})
    obs_a, info_a = env_a.reset(seed=7)
    obs_b, info_b = env_b.reset(seed=7)
    np.testing.assert_array_equal(obs_a["observation.state"], obs_b["observation.state"])
    np.testing.assert_array_equal(obs_a["observation.images.top"], obs_b["observation.images.top"])
    np.testing.assert_array_equal(info_a["block_pose"], info_b["block_pose"])
    obs_c, info_c = env_a.reset(seed=8)
    assert not np.array_equal(info_a["block_pose"], info_c["block_pose"])
    assert not np.array_equal(obs_a["observation.images.top"], obs_c["observation.images.top"])


def test_bad_options_raise_clear_errors() -> None:
    spec = _spec()
    with pytest.raises(ValueError, match="image_size"):
        spec.interface({"image_size": 0})
    with pytest.raises(ValueError, match="render"):
        spec.interface({"render": "no"})
    with pytest.raises(ValueError, match="push_t"):
        spec.make("push_x", {})
    with pytest.raises(ValueError, match="reset_to_state"):
        spec.make("push_t", {"reset_to_state": [1, 2, 3]})
    env = spec.make("push_t", {"render": False})
    with pytest.raises(ValueError, match="reset_to_state"):
        env.reset(options={"reset_to_state": [1, 2, 3, 4, float("nan")]})
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        env.step(np.zeros(3, dtype=np.float32))


def test_importing_the_plugin_does_not_import_the_simulator() -> None:
    code = (
        "import sys, vlabench_plugins.pusht as p; p.vlabench_envs()[0].interface({}); "
        "print(sorted(m for m in ('gym_pusht', 'pygame', 'pymunk', 'cv2', 'gymnasium') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_coverage_metrics_come_with_every_step() -> None:
    env = pusht.make("push_t", {"render": False})
    env.reset(options={"reset_to_state": SOLVED_START})
    infos = [env.step(np.array(a, np.float32))[-1] for a in ([100, 100], [500, 500])]
    first, last = (info[api.EPISODE_METRICS_KEY] for info in infos)
    assert first["max_coverage"] == pytest.approx(1.0, abs=1e-3)
    assert last["max_coverage"] == first["max_coverage"]  # the best so far
    assert last["final_coverage"] == pytest.approx(infos[-1]["coverage"])
    env.reset(seed=0)  # a new episode starts from nothing
    (info,) = [env.step(np.array([100, 100], np.float32))[-1]]
    assert info[api.EPISODE_METRICS_KEY]["max_coverage"] == info["coverage"]
