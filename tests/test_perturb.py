"""Each perturbation changes what it claims and nothing else, seeded per episode, and its
severity 0 equals the control exactly — on real Meta-World observations at small sizes."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
pytest.importorskip("metaworld")

from vlabench_plugins import metaworld, perturb

from vlabench import api

ENV_STATE = "observation.environment_state"
IMAGE = "observation.images.corner2"
OPTIONS = {"cameras": ["corner2"], "image_size": 24, "camera_pos": {"corner2": [0.75, 0.075, 0.7]}}
BUILD = {s.name: s.build for s in perturb.vlabench_adapters()}
DATA_KEYS = (api.STATE_KEY, ENV_STATE, IMAGE, api.TASK_KEY)


def _make(options=OPTIONS, task="reach-v3"):
    (spec,) = metaworld.vlabench_envs()
    return spec.make(task, options)


@pytest.fixture(scope="module")
def frames() -> list[dict]:
    """Six consecutive real observations of one episode (seed 1000)."""
    env = _make()
    obs, _ = env.reset(seed=1000)
    out = [obs]
    rng = np.random.default_rng(0)
    for _ in range(5):
        obs, *_ = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
        out.append(obs)
    env.close()
    return out


def _batch(rows: list[tuple[dict, int, int]]) -> dict:
    """A batch as the rollout builds it: (observation, episode index, step) per row."""
    batch = {k: np.stack([np.asarray(o[k]) for o, _, _ in rows]) for k in DATA_KEYS[:3]}
    batch[api.TASK_KEY] = [o[api.TASK_KEY] for o, _, _ in rows]
    batch[api.EPISODE_INDEX_KEY] = np.array([e for _, e, _ in rows], np.int64)
    batch[api.EPISODE_STEP_KEY] = np.array([t for _, _, t in rows], np.int64)
    return batch


def _step(name: str, **params):
    return BUILD[f"perturb.{name}"]({**params, "seed": 1000, "axis": name})


def _same(a, b, key) -> bool:
    return a[key] == b[key] if key == api.TASK_KEY else np.array_equal(a[key], b[key])


ZERO = {
    "state_noise": {"std": 0.0, "keys": [api.STATE_KEY, ENV_STATE]},
    "observation_delay": {"frames": 0},
    "dropped_frames": {"p": 0.0},
    "image_noise": {"std": 0.0},
    "brightness": {"brightness": 1.0, "contrast": 1.0},
    "blur": {"radius": 0},
    "occlusion": {"size": 0.0},
    "instruction_typo": {"rate": 0.0},
}
ON = {
    "state_noise": ({"std": 0.01, "keys": [api.STATE_KEY, ENV_STATE]}, {api.STATE_KEY, ENV_STATE}),
    "image_noise": ({"std": 20.0}, {IMAGE}),
    "brightness": ({"brightness": 0.5, "contrast": 0.7}, {IMAGE}),
    "blur": ({"radius": 2}, {IMAGE}),
    "occlusion": ({"size": 0.3}, {IMAGE}),
    "instruction_typo": ({"rate": 1.0}, {api.TASK_KEY}),
}


@pytest.mark.parametrize("name", sorted(ZERO))
def test_severity_zero_is_the_control_array_for_array(frames, name) -> None:
    step = _step(name, **ZERO[name])
    for t, obs in enumerate(frames):
        batch = _batch([(obs, 0, t)])
        out = step.observation(batch)
        for key in DATA_KEYS:
            assert _same(out, batch, key), (name, key, t)
    actions = np.ones((3, 4), np.float32) * 0.25
    np.testing.assert_array_equal(_step("action_noise", std=0.0).action(actions), actions)


@pytest.mark.parametrize("name", sorted(ON))
def test_each_perturbation_changes_only_what_it_claims(frames, name) -> None:
    params, changed = ON[name]
    step = _step(name, **params)
    batch = _batch([(frames[3], 0, 3), (frames[4], 1, 3)])
    out = step.observation(batch)
    for key in DATA_KEYS:
        if key in changed:
            assert not _same(out, batch, key), (name, key)
        else:
            assert _same(out, batch, key), (name, key)
    for key in DATA_KEYS[:3]:
        assert np.asarray(out[key]).dtype == np.asarray(batch[key]).dtype
        assert np.asarray(out[key]).shape == np.asarray(batch[key]).shape
    if name == "instruction_typo":  # swaps keep the letters and the words
        for a, b in zip(out[api.TASK_KEY], batch[api.TASK_KEY], strict=True):
            assert sorted(a) == sorted(b) and len(a.split()) == len(b.split())


@pytest.mark.parametrize("name", ["state_noise", "image_noise", "occlusion"])
def test_draws_are_seeded_per_episode_not_per_batch(frames, name) -> None:
    params, changed = ON[name]
    (key,) = sorted(changed)[:1]
    together = _step(name, **params).observation(_batch([(frames[2], 5, 2), (frames[2], 6, 2)]))
    alone = _step(name, **params).observation(_batch([(frames[2], 6, 2)]))
    np.testing.assert_array_equal(together[key][1], alone[key][0])  # batching changes nothing
    assert not np.array_equal(together[key][0], together[key][1])  # episodes differ
    other_axis = BUILD[f"perturb.{name}"]({**params, "seed": 1000, "axis": "other"})
    again = other_axis.observation(_batch([(frames[2], 6, 2)]))
    assert not np.array_equal(again[key][0], alone[key][0])  # the axis salts the draw


def test_state_noise_has_the_asked_spread() -> None:
    step = _step("state_noise", std=0.05)
    rows = [({api.STATE_KEY: np.zeros(4, np.float32), api.TASK_KEY: "t"}, e, 0) for e in range(500)]
    batch = {api.STATE_KEY: np.zeros((500, 4), np.float32), api.TASK_KEY: ["t"] * 500,
             api.EPISODE_INDEX_KEY: np.arange(500), api.EPISODE_STEP_KEY: np.zeros(500, int)}
    assert len(rows) == 500
    noise = step.observation(batch)[api.STATE_KEY]
    assert abs(float(noise.std()) - 0.05) < 0.004 and abs(float(noise.mean())) < 0.005


def test_observation_delay_shows_the_frame_k_steps_ago(frames) -> None:
    step = _step("observation_delay", frames=2)
    for t, obs in enumerate(frames):
        out = step.observation(_batch([(obs, 0, t)]))
        seen = frames[max(t - 2, 0)]
        for key in DATA_KEYS:
            assert _same(out, {k: [v] if k == api.TASK_KEY else np.asarray(v)[None]
                               for k, v in seen.items()}, key), (t, key)
        np.testing.assert_array_equal(out[api.EPISODE_STEP_KEY], [t])  # bookkeeping kept
    # a new episode starts from its own first frame, not the previous episode's
    out = step.observation(_batch([(frames[5], 0, 0)]))
    np.testing.assert_array_equal(out[IMAGE][0], frames[5][IMAGE])


def test_dropped_frames_repeat_the_last_frame_seen(frames) -> None:
    step = _step("dropped_frames", p=0.5)
    shown, shown_image, dropped = None, None, 0
    for t, obs in enumerate(frames * 4):  # 24 steps of one episode
        out = step.observation(_batch([(obs, 2, t)]))
        if t and not np.array_equal(out[ENV_STATE][0], obs[ENV_STATE]):
            dropped += 1
            np.testing.assert_array_equal(out[ENV_STATE][0], shown)  # the previous one
            np.testing.assert_array_equal(out[IMAGE][0], shown_image)
        shown, shown_image = out[ENV_STATE][0].copy(), out[IMAGE][0].copy()
    assert 4 <= dropped <= 20


def test_action_noise_follows_each_episode_and_chunk_row() -> None:
    step = _step("action_noise", std=0.1)
    zeros = np.zeros((3, 4), np.float32)  # 3 rows of a batch of 3 (no chunks)
    step.observation({api.EPISODE_INDEX_KEY: np.array([0, 1, 2]),
                      api.EPISODE_STEP_KEY: np.array([7, 7, 7])})
    flat = step.action(zeros)
    assert flat.dtype == np.float32 and not np.array_equal(flat, zeros)
    assert len({tuple(r) for r in flat.tolist()}) == 3
    chunked = _step("action_noise", std=0.1)  # episode 1 alone, a chunk of 2 from step 6
    chunked.observation({api.EPISODE_INDEX_KEY: np.array([1]),
                         api.EPISODE_STEP_KEY: np.array([6])})
    rows = chunked.action(np.zeros((2, 4), np.float32))
    np.testing.assert_array_equal(rows[1], flat[1])  # step 7 of episode 1, whatever the path
    step.observation({api.EPISODE_INDEX_KEY: np.array([0, 1]),
                      api.EPISODE_STEP_KEY: np.array([0, 0])})
    with pytest.raises(ValueError, match="3 actions for 2 episodes"):
        step.action(np.zeros((3, 4), np.float32))


def test_bad_params_are_refused_with_the_name() -> None:
    with pytest.raises(ValueError, match=r"state_noise.*unknown param"):
        _step("state_noise", sigma=1.0)
    with pytest.raises(ValueError, match=r"dropped_frames.*'p'"):
        _step("dropped_frames", p=2.0)
    with pytest.raises(ValueError, match=r"observation_delay.*frames"):
        _step("observation_delay", frames=-1)


# -- simulator side: Meta-World camera pose, field of view, lighting ---------------------


def _first(options) -> dict:
    env = _make(options)
    obs, _ = env.reset(seed=1001)
    nxt, *_ = env.step(np.array([0.5, -0.2, 0.1, 0.3], np.float32))
    env.close()
    return {"reset": obs, "step": nxt}


@pytest.fixture(scope="module")
def control() -> dict:
    return _first(OPTIONS)


SIM_ZERO = {
    "metaworld.camera_shift": {"offset": [0.0, 0.0, 0.0]},
    "metaworld.camera_fov": {"fovy": 60.0},  # corner2's own
    "metaworld.lighting": {"scale": 1.0},
}
SIM_ON = {
    "metaworld.camera_shift": {"offset": [0.05, 0.0, 0.03]},
    "metaworld.camera_fov": {"fovy": 40.0},
    "metaworld.lighting": {"scale": 0.4},
}


@pytest.mark.parametrize("name", sorted(SIM_ON))
def test_metaworld_axes_change_the_image_and_nothing_else(control, name) -> None:
    specs = {s.name: s for s in metaworld.vlabench_perturbations()}
    zero = _first({**OPTIONS, **specs[name].env_options(SIM_ZERO[name], OPTIONS)})
    moved = _first({**OPTIONS, **specs[name].env_options(SIM_ON[name], OPTIONS)})
    for when in ("reset", "step"):
        for key in (api.STATE_KEY, ENV_STATE, api.TASK_KEY, IMAGE):
            assert _same(zero[when], control[when], key), (name, when, key)
        for key in (api.STATE_KEY, ENV_STATE, api.TASK_KEY):
            assert _same(moved[when], control[when], key), (name, when, key)
        difference = np.abs(moved[when][IMAGE].astype(int) - control[when][IMAGE]).mean()
        assert difference > 2.0, (name, when, difference)
    if name == "metaworld.lighting":  # darker, not just different
        assert moved["reset"][IMAGE].mean() < control["reset"][IMAGE].mean() - 5


def test_metaworld_axes_refuse_a_state_only_suite() -> None:
    specs = {s.name: s for s in metaworld.vlabench_perturbations()}
    with pytest.raises(ValueError, match="no camera"):
        specs["metaworld.lighting"].env_options({"scale": 0.5}, {**OPTIONS, "cameras": []})
