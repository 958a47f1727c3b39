"""LIBERO's simulator-side axes (agentview position, lighting) change the agentview image and
nothing else; at severity 0 the observations equal the control's array for array."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
pytest.importorskip("libero")

from vlabench_plugins import libero

from vlabench import api

TASK = "libero_goal/open_the_middle_drawer_of_the_cabinet"
BASE = {"suite": "libero_goal", "image_size": 32}
AGENTVIEW, WRIST = "observation.images.image", "observation.images.image2"
SPECS = {s.name: s for s in libero.vlabench_perturbations()}
NOOP = np.asarray(libero.NOOP_ACTION, np.float32)


def _episodes(env) -> list[dict]:
    out = []
    for k in (0, 1):  # two episodes: the change is applied again after each reset
        obs, _ = env.reset(seed=1000 + k, options={"init_state_id": k})
        nxt, *_ = env.step(NOOP)
        out += [obs, nxt]
    return out


def _observe(extra: dict) -> list[dict]:
    env = libero.make(TASK, {**BASE, **extra})
    try:
        return _episodes(env)
    finally:
        env.close()


@pytest.fixture(scope="module")
def plain():
    env = libero.make(TASK, BASE)
    yield env
    env.close()


@pytest.fixture(scope="module")
def control(plain) -> list[dict]:
    return _episodes(plain)


def test_severity_zero_of_the_scene_axes_is_the_control(control) -> None:
    zero = {**SPECS["libero.camera_shift"].env_options({"offset": [0, 0, 0]}, BASE),
            **SPECS["libero.lighting"].env_options({"scale": 1.0}, BASE),
            **SPECS["libero.object_noise"].env_options({"std": 0.0}, BASE)}
    assert zero == {"camera_offset": [0.0, 0.0, 0.0], "light_scale": 1.0, "object_noise": 0.0}
    for c, z in zip(control, _observe(zero), strict=True):
        for key in (api.STATE_KEY, "observation.proprio", AGENTVIEW, WRIST, api.TASK_KEY):
            assert (z[key] == c[key]) if key == api.TASK_KEY else np.array_equal(z[key], c[key])


@pytest.mark.parametrize(
    ("name", "on"),
    [
        ("libero.camera_shift", {"offset": [0.0, 0.1, 0.05]}),
        ("libero.lighting", {"scale": 0.3}),
    ],
)
def test_libero_axes_change_agentview_only(control, name, on) -> None:
    moved = _observe(SPECS[name].env_options(on, BASE))
    for c, m in zip(control, moved, strict=True):
        for key in (api.STATE_KEY, "observation.proprio"):
            np.testing.assert_array_equal(m[key], c[key])
        assert np.abs(m[AGENTVIEW].astype(int) - c[AGENTVIEW]).mean() > 2.0
        if name == "libero.camera_shift":  # the wrist camera did not move
            np.testing.assert_array_equal(m[WRIST], c[WRIST])
    if name == "libero.lighting":
        assert moved[0][AGENTVIEW].mean() < control[0][AGENTVIEW].mean() - 5


def test_libero_options_are_absent_by_default_and_checked() -> None:
    from vlabench.plan.options import complete_options

    complete = complete_options(libero.LiberoOptions, BASE)  # the control's options
    assert not {"camera_offset", "light_scale", "pro", "object_noise"} & set(complete)
    with pytest.raises(ValueError, match="camera_offset"):
        SPECS["libero.camera_shift"].env_options({"offset": [1, 2]}, BASE)
    with pytest.raises(ValueError, match="light_scale"):
        SPECS["libero.lighting"].env_options({"scale": -1}, BASE)


def test_libero_pro_lan_changes_only_the_instruction(control) -> None:
    lan = _observe(SPECS["libero.pro"].env_options({"variant": "lan"}, BASE))
    for c, p in zip(control, lan, strict=True):
        for key in (api.STATE_KEY, "observation.proprio", AGENTVIEW, WRIST):
            np.testing.assert_array_equal(p[key], c[key])
        assert p[api.TASK_KEY] != c[api.TASK_KEY]
    assert lan[0][api.TASK_KEY] == "open the cabinet’s middle drawer"  # LIBERO-PRO's bddl


def test_libero_pro_swap_moves_objects_keeps_the_instruction(control) -> None:
    swap = _observe(SPECS["libero.pro"].env_options({"variant": "swap"}, BASE))
    for c, p in zip(control, swap, strict=True):
        assert p[api.TASK_KEY] == c[api.TASK_KEY]
        assert p[AGENTVIEW].shape == c[AGENTVIEW].shape
        assert np.abs(p[AGENTVIEW].astype(int) - c[AGENTVIEW]).mean() > 2.0
    with pytest.raises(ValueError, match="'pro' must be one of"):
        SPECS["libero.pro"].env_options({"variant": "mirror"}, BASE)


def test_libero_pro_axes_resolve_to_the_pro_option() -> None:
    from vlabench.catalog import catalog
    from vlabench.plan.resolve import resolve_policy, resolve_suite
    from vlabench.registry import load_registry

    reg, cat = load_registry(), catalog()
    noop = resolve_policy("noop", reg, cat)
    (control,) = resolve_suite("libero_goal", noop, reg, cat, tasks=[TASK])
    (lan,) = resolve_suite("libero_goal@libero_pro_lan:1", noop, reg, cat, tasks=[TASK])
    assert "pro" not in control.env_options
    assert lan.env_options == {**control.env_options, "pro": "lan"}
    assert lan.protocol.perturbation["perturbation"] == "libero.pro"


def test_libero_object_noise_moves_objects_only_seeded_per_episode(plain) -> None:
    spec = SPECS["libero.object_noise"]
    env = libero.make(TASK, {**BASE, **spec.env_options({"std": 0.03}, BASE)})
    try:
        model = env.inner.sim.model
        free = np.flatnonzero(np.asarray(model.jnt_type) == 0)
        moved = sorted(1 + int(model.jnt_qposadr[j]) + i for j in free for i in (0, 1))
        a, _ = env.reset(seed=1000, options={"init_state_id": 2})
        state_a = env.sim_state()
        c, _ = plain.reset(seed=1000, options={"init_state_id": 2})
        control = plain.sim_state()
        changed = np.flatnonzero(state_a != control)
        assert set(changed) <= set(moved) and len(changed) >= len(moved) - 1
        assert np.abs(state_a - control).max() < 0.2
        np.testing.assert_array_equal(a[api.STATE_KEY], c[api.STATE_KEY])  # the robot stays
        assert not np.array_equal(a[AGENTVIEW], c[AGENTVIEW])
        env.reset(seed=1001, options={"init_state_id": 2})  # another episode, another draw
        assert not np.array_equal(env.sim_state(), state_a)
        env.reset(seed=1000, options={"init_state_id": 2})  # the same episode, the same draw
        np.testing.assert_array_equal(env.sim_state(), state_a)
    finally:
        env.close()
