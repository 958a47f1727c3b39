"""Reference policies: noop, random, replay — on PushT's real interface and synthetic ones."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from vlabench_plugins import pusht, scripted

from vlabench import api

DELTA_ENV = api.EnvInterface(  # LIBERO-like: ee delta + gripper, a declared no-op
    observation=(api.Feature(api.STATE_KEY, "state", (8,), space="eef_pos_quat_gripper"),),
    action=api.Feature(
        "action", "action", (7,), space="ee_delta_xyz_rpy_gripper", low=(-1,) * 7, high=(1,) * 7
    ),
    fps=20,
    noop_action=(0, 0, 0, 0, 0, 0, -1),
)
UNBOUNDED_ENV = api.EnvInterface(
    observation=(api.Feature(api.STATE_KEY, "state", (3,), space="joint_pos"),),
    action=api.Feature("action", "action", (3,), space="joint_vel", low=(0, -math.inf, 5)),
    fps=10,
)


def _specs() -> dict[str, api.PolicySpec]:
    return {spec.name: spec for spec in scripted.vlabench_policies()}


def _request(name: str, env: api.EnvInterface, **options: object) -> api.PolicyRequest:
    return api.PolicyRequest(type=name, checkpoint=None, options=options, env=env)


def _load(name: str, env: api.EnvInterface, **options: object) -> api.Policy:
    return _specs()[name].load(_request(name, env, **options))


def _batch(index: list[int], step: list[int], **extra: object) -> api.Batch:
    return {
        api.EPISODE_INDEX_KEY: np.asarray(index, dtype=np.int64),
        api.EPISODE_STEP_KEY: np.asarray(step, dtype=np.int64),
        **extra,
    }


PUSHT = pusht.interface({"render": False})


def test_specs_are_listed_without_requirements() -> None:
    specs = _specs()
    assert sorted(specs) == ["noop", "random", "replay"]
    assert all(spec.requires == () for spec in specs.values())


@pytest.mark.parametrize("name", ["noop", "random"])
@pytest.mark.parametrize("env", [PUSHT, DELTA_ENV, UNBOUNDED_ENV])
def test_action_feature_is_the_envs(name: str, env: api.EnvInterface) -> None:
    iface = _specs()[name].describe(_request(name, env))
    assert iface.action == env.action
    policy = _load(name, env)
    assert isinstance(policy, api.Policy)
    state = np.zeros((2, *env.observation[0].shape), np.float32)
    out = policy.select_action(_batch([0, 1], [0, 0], **{api.STATE_KEY: state}))
    assert out.shape == (2, env.action.shape[0]) and out.dtype == np.float32


def test_noop_holds_position_on_pusht() -> None:
    iface = _specs()["noop"].describe(_request("noop", PUSHT))
    assert iface.inputs == (PUSHT.feature(api.STATE_KEY),)
    policy = _load("noop", PUSHT)
    env = pusht.make("push_t", {"render": False})
    obs, info = env.reset(seed=4)
    start_state, start_block = obs[api.STATE_KEY].copy(), info["block_pose"].copy()
    for step in range(5):
        batch = _batch([0], [step], **{api.STATE_KEY: obs[api.STATE_KEY][None]})
        action = policy.select_action(batch)
        np.testing.assert_array_equal(action[0], obs[api.STATE_KEY])
        obs, _, _, _, info = env.step(action[0])
    np.testing.assert_allclose(obs[api.STATE_KEY], start_state, atol=1e-3)
    np.testing.assert_allclose(info["block_pose"], start_block, atol=1e-6)


def test_noop_takes_the_latest_state_of_a_history() -> None:
    policy = _load("noop", PUSHT)
    history = np.array([[[1, 2], [3, 4]], [[5, 6], [7, 8]]], np.float32)  # (B=2, T=2, D=2)
    out = policy.select_action(_batch([0, 1], [3, 3], **{api.STATE_KEY: history}))
    np.testing.assert_array_equal(out, [[3, 4], [7, 8]])


def test_noop_emits_the_envs_noop_action() -> None:
    assert _specs()["noop"].describe(_request("noop", DELTA_ENV)).inputs == ()
    out = _load("noop", DELTA_ENV).select_action(_batch([0, 1, 2], [0, 5, 9]))
    np.testing.assert_array_equal(out, np.tile([0, 0, 0, 0, 0, 0, -1], (3, 1)))


def test_noop_falls_back_to_zeros() -> None:
    out = _load("noop", UNBOUNDED_ENV).select_action(_batch([0, 1], [0, 0]))
    np.testing.assert_array_equal(out, np.zeros((2, 3)))


def test_noop_rejects_a_noop_action_of_the_wrong_length() -> None:
    env = api.EnvInterface(DELTA_ENV.observation, DELTA_ENV.action, 20, noop_action=(0.0, 1.0))
    with pytest.raises(ValueError, match="noop_action"):
        _specs()["noop"].describe(_request("noop", env))


def test_random_stays_in_bounds() -> None:
    policy = _load("random", PUSHT, seed=3)
    out = policy.select_action(_batch(list(range(64)), [7] * 64))
    assert out.min() >= 0 and out.max() <= 512
    assert out.std() > 50  # spread over the range, not a constant


def test_random_falls_back_to_unit_range_when_unbounded() -> None:
    out = _load("random", UNBOUNDED_ENV).select_action(_batch(list(range(200)), [0] * 200))
    # no high at all: every entry falls back to [-1, 1], whatever its low says
    assert np.all((out >= -1) & (out <= 1))
    assert np.all(out.min(axis=0) < -0.8) and np.all(out.max(axis=0) > 0.8)
    bounded = api.EnvInterface(
        UNBOUNDED_ENV.observation,
        api.Feature("action", "action", (2,), low=(0, -math.inf), high=(10, 1)),
        10,
    )
    out = _load("random", bounded).select_action(_batch(list(range(200)), [0] * 200))
    assert out[:, 0].min() >= 0 and out[:, 0].max() <= 10 and out[:, 0].max() > 5
    assert out[:, 1].min() >= -1 and out[:, 1].max() <= 1


def test_random_is_deterministic_per_episode_and_step() -> None:
    a = _load("random", PUSHT, seed=1).select_action(_batch([0, 1, 2], [4, 4, 9]))
    b = _load("random", PUSHT, seed=1).select_action(_batch([2, 1], [9, 4]))
    np.testing.assert_array_equal(a[1:][::-1], b)  # independent of batch composition
    c = _load("random", PUSHT, seed=2).select_action(_batch([0, 1, 2], [4, 4, 9]))
    assert not np.array_equal(a, c)
    d = _load("random", PUSHT, seed=1).select_action(_batch([0], [5]))
    assert not np.array_equal(a[0], d[0])


def test_random_rejects_a_bad_seed_or_bounds() -> None:
    with pytest.raises(ValueError, match="'seed'"):
        _specs()["random"].describe(_request("random", PUSHT, seed=-1))
    env = api.EnvInterface((), api.Feature("action", "action", (1,), low=(2,), high=(1,)), 10)
    with pytest.raises(ValueError, match="low > high"):
        _specs()["random"].describe(_request("random", env))


def test_replay_one_list_for_every_episode_holds_the_last_action() -> None:
    actions = [[10, 20], [30, 40], [50, 60]]
    policy = _load("replay", PUSHT, actions=actions)
    out = policy.select_action(_batch([0, 7, 3], [0, 1, 99]))
    np.testing.assert_array_equal(out, [[10, 20], [30, 40], [50, 60]])
    assert out.dtype == np.float32


def test_replay_episodes_cycle_by_episode_index() -> None:
    episodes = [[[1, 1], [2, 2]], [[5, 5]]]
    policy = _load("replay", PUSHT, episodes=episodes)
    out = policy.select_action(_batch([0, 1, 2, 3], [1, 1, 0, 4]))
    np.testing.assert_array_equal(out, [[2, 2], [5, 5], [1, 1], [5, 5]])


def test_replay_reads_npy_and_json(tmp_path) -> None:
    actions = np.array([[1.5, 2.5], [3.5, 4.5]], np.float32)
    np.save(tmp_path / "a.npy", actions)
    np.save(tmp_path / "e.npy", np.stack([actions, actions + 1]))
    (tmp_path / "a.json").write_text(json.dumps(actions.tolist()))
    (tmp_path / "e.json").write_text(json.dumps({"episodes": [actions.tolist(), [[9, 9]]]}))
    batch = _batch([0, 1], [1, 0])
    for name, expected in [
        ("a.npy", [[3.5, 4.5], [1.5, 2.5]]),
        ("a.json", [[3.5, 4.5], [1.5, 2.5]]),
        ("e.npy", [[3.5, 4.5], [2.5, 3.5]]),
        ("e.json", [[3.5, 4.5], [9, 9]]),
    ]:
        out = _load("replay", PUSHT, path=str(tmp_path / name)).select_action(batch)
        np.testing.assert_array_equal(out, expected, err_msg=name)


def test_replay_fingerprint_hashes_the_actions(tmp_path) -> None:
    fingerprint = _specs()["replay"].fingerprint
    assert fingerprint is not None
    actions = [[1.0, 2.0], [3.0, 4.0]]
    np.save(tmp_path / "a.npy", np.array(actions, np.float32))
    first = fingerprint(_request("replay", PUSHT, actions=actions))
    assert len(first) == 64 and int(first, 16) >= 0
    assert fingerprint(_request("replay", PUSHT, path=str(tmp_path / "a.npy"))) == first
    assert fingerprint(_request("replay", PUSHT, actions=[[1.0, 2.0], [3.0, 4.5]])) != first
    assert fingerprint(_request("replay", PUSHT, actions=[[1.0, 2.0]])) != first


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({}, "exactly one of"),
        ({"actions": [[1, 2]], "path": "x.npy"}, "exactly one of"),
        ({"actions": [[1, 2, 3]]}, r"option 'actions' must have shape \(T, 2\)"),
        ({"actions": []}, "option 'actions'"),
        ({"actions": [[1, "a"]]}, "option 'actions'"),
        ({"actions": [[1, float("nan")]]}, "NaN"),
        ({"episodes": [[[1, 2]], [[1, 2, 3]]]}, r"option 'episodes'\[1\]"),
        ({"episodes": []}, "option 'episodes'"),
        ({"path": "/nonexistent/a.npy"}, "option 'path'.*no such file"),
    ],
)
def test_replay_validates_options(options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _specs()["replay"].describe(_request("replay", PUSHT, **options))


def test_replay_rejects_a_file_of_the_wrong_shape(tmp_path) -> None:
    np.save(tmp_path / "bad.npy", np.zeros((4, 3), np.float32))
    (tmp_path / "bad.txt").write_text("1 2")
    with pytest.raises(ValueError, match=r"option 'path'.*shape \(T, 2\)"):
        _load("replay", PUSHT, path=str(tmp_path / "bad.npy"))
    with pytest.raises(ValueError, match=r"\.npy or \.json"):
        _load("replay", PUSHT, path=str(tmp_path / "bad.txt"))


def test_policies_need_a_flat_env_action() -> None:
    env = api.EnvInterface((), api.Feature("action", "action", (2, 3)), 10)
    for name in ("noop", "random", "replay"):
        with pytest.raises(ValueError, match=rf"{name} policy: env expected an action of shape"):
            _specs()[name].describe(_request(name, env, actions=[[0] * 6]))
