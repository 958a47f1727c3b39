"""The episode loop on the real PushT env: chunks, observation history, refills, success."""

from __future__ import annotations

import math

import numpy as np
import pytest
from vlabench_plugins.pusht import vlabench_envs

from vlabench import api
from vlabench.runtime.rollout import EpisodeSpec, Rollout, RolloutSettings, episode_specs

GOAL_START = [100, 100, 256 - 31.8198, 256 - 13.1802, math.pi / 4]


def pusht_factory(**options):
    [spec] = vlabench_envs()
    opts = {"render": False, **options}
    return lambda: spec.make("push_t", opts)


class RecordingPolicy:
    """Holds position; records every batch it is given. Optionally predicts chunks."""

    def __init__(self, chunk: int = 1, n_action_steps: int = 1, n_obs_steps: int = 1) -> None:
        state = api.Feature(api.STATE_KEY, "state", (2,), space="pixel_xy_512")
        action = api.Feature("action", "action", (2,), space="pixel_xy_512")
        self.interface = api.PolicyInterface((state,), action, n_obs_steps, chunk, n_action_steps)
        self.batches: list[dict] = []

    def reset(self) -> None:
        pass

    def select_action(self, batch):
        self.batches.append(batch)
        state = batch[api.STATE_KEY]
        return state[:, -1] if state.ndim == 3 else state

    def predict_action_chunk(self, batch):
        hold = self.select_action(batch)
        offsets = np.arange(self.interface.chunk_size, dtype=np.float32)[None, :, None]
        return hold[:, None, :] + offsets  # step k of a chunk moves k pixels


def settings(**kw) -> RolloutSettings:
    base = dict(
        max_steps=8,
        action_low=np.zeros(2, np.float32),
        action_high=np.full(2, 512, np.float32),
        action_dim=2,
    )
    return RolloutSettings(**{**base, **kw})


def run(policy, specs, factory=None, **kw) -> list[api.EpisodeRecord]:
    records: list[api.EpisodeRecord] = []
    Rollout(factory or pusht_factory(), policy, settings(**kw), records.append).run(specs)
    return sorted(records, key=lambda r: r.episode_index)


def test_episode_specs_are_deterministic_per_index() -> None:
    specs = episode_specs("t", [0, 1, 7], seed=1000, n_init_states=5)
    assert [(s.seed, s.init_state_id) for s in specs] == [(1000, 0), (1001, 1), (1007, 2)]
    assert [s.init_state_id for s in episode_specs("t", [3], 0, None)] == [None]


def test_chunks_execute_n_action_steps_per_inference() -> None:
    policy = RecordingPolicy(chunk=4, n_action_steps=3)
    [record] = run(policy, episode_specs("push_t", [0], 1000, None), max_steps=8, n_action_steps=3)
    assert record.steps == 8
    assert len(policy.batches) == 3  # ceil(8 / 3) inferences
    assert [int(b[api.EPISODE_STEP_KEY][0]) for b in policy.batches] == [0, 3, 6]


def test_observation_history_has_a_time_axis() -> None:
    policy = RecordingPolicy(n_obs_steps=2)
    run(
        policy,
        episode_specs("push_t", [0, 1], 1000, None),
        max_steps=3,
        n_obs_steps=2,
        batch_size=2,
    )
    first = policy.batches[0][api.STATE_KEY]
    assert first.shape == (2, 2, 2)
    np.testing.assert_array_equal(first[:, 0], first[:, 1])  # history starts as copies
    later = policy.batches[1][api.STATE_KEY]
    np.testing.assert_array_equal(later[:, 0], first[:, 1])  # and then slides
    assert (
        policy.batches[0][api.TASK_KEY] == ["Push the T-shaped block onto the T-shaped target."] * 2
    )


def test_finished_slot_takes_next_episode_while_others_continue() -> None:
    """Episode 0 succeeds at once (goal start); its slot runs episode 2 beside episode 1."""
    policy = RecordingPolicy()
    specs = [
        EpisodeSpec("push_t", 0, 1000),
        EpisodeSpec("push_t", 1, 1001),
        EpisodeSpec("push_t", 2, 1002),
    ]

    class GoalFirst:
        def __init__(self) -> None:
            self.inner = pusht_factory()()

        def reset(self, seed=None, options=None):
            start = GOAL_START if seed == 1000 else None
            return self.inner.reset(seed=seed, options={"reset_to_state": start})

        def step(self, action):
            if np.allclose(self.inner.inner.agent.position, (100, 100)):
                action = np.array([100, 100], np.float32)
            return self.inner.step(action)

        def close(self):
            self.inner.close()

    records = run(policy, specs, factory=GoalFirst, max_steps=6, batch_size=2)
    assert [r.success for r in records] == [True, False, False]
    assert [r.steps for r in records] == [1, 6, 6]
    assert policy.batches[1][api.EPISODE_INDEX_KEY].tolist() == [2, 1]


def test_clipping_is_counted_and_success_at_end_differs_from_ever() -> None:
    class Overshoot(RecordingPolicy):
        def select_action(self, batch):
            super().select_action(batch)
            return np.full((len(batch[api.EPISODE_STEP_KEY]), 2), 600.0, np.float32)

    [record] = run(Overshoot(), [EpisodeSpec("push_t", 0, 5)], max_steps=4)
    assert record.clipped_actions == 4 and record.failure_reason is None

    class SuccessOnlyAtFirstStep:
        """Real PushT whose success flag is true only after the first step."""

        def __init__(self) -> None:
            self.inner, self.t = pusht_factory()(), 0

        def reset(self, seed=None, options=None):
            self.t = 0
            return self.inner.reset(seed=seed, options=options)

        def step(self, action):
            obs, reward, _, truncated, info = self.inner.step(action)
            self.t += 1
            return obs, reward, False, truncated, {**info, "is_success": self.t == 1}

        def close(self):
            self.inner.close()

    spec = [EpisodeSpec("push_t", 0, 0)]
    [ever] = run(
        RecordingPolicy(),
        spec,
        SuccessOnlyAtFirstStep,
        max_steps=3,
        success="ever",
        stop_on_success=False,
    )
    [at_end] = run(
        RecordingPolicy(),
        spec,
        SuccessOnlyAtFirstStep,
        max_steps=3,
        success="at_end",
        stop_on_success=False,
    )
    [stopped] = run(RecordingPolicy(), spec, SuccessOnlyAtFirstStep, max_steps=3)
    assert (ever.success, ever.steps) == (True, 3)
    assert (at_end.success, at_end.steps) == (False, 3)
    assert (stopped.success, stopped.steps) == (True, 1)


def test_env_exception_fails_episode_and_env_is_rebuilt() -> None:
    built = []

    class Flaky:
        def __init__(self) -> None:
            built.append(self)
            self.inner = pusht_factory()()

        def reset(self, seed=None, options=None):
            if seed == 1001:
                raise RuntimeError("simulator exploded")
            return self.inner.reset(seed=seed, options=options)

        def step(self, action):
            return self.inner.step(action)

        def close(self):
            self.inner.close()

    records = run(
        RecordingPolicy(), episode_specs("push_t", [0, 1, 2], 1000, None), Flaky, max_steps=2
    )
    assert [r.failure_reason for r in records] == [
        None,
        "env reset raised RuntimeError: simulator exploded",
        None,
    ]
    assert len(built) == 2


@pytest.mark.parametrize("bad", [np.zeros((1, 2, 2)), "not an array"])
def test_malformed_policy_output_fails_the_episode(bad) -> None:
    class Bad(RecordingPolicy):
        def select_action(self, batch):
            return bad

    [record] = run(Bad(), [EpisodeSpec("push_t", 0, 0)], max_steps=3)
    assert record.steps == 0 and not record.success
    assert record.failure_reason.startswith("policy returned")


def test_labels_come_from_the_last_steps_info() -> None:
    class Labelled:
        """Real PushT labelling its episodes from the info (seed 1001: not a dict)."""

        def __init__(self) -> None:
            self.inner, self.seed, self.t = pusht_factory()(), None, 0

        def reset(self, seed=None, options=None):
            self.seed, self.t = seed, 0
            return self.inner.reset(seed=seed, options=options)

        def step(self, action):
            obs, reward, terminated, truncated, info = self.inner.step(action)
            self.t += 1
            labels = {"labeller": f"at step {self.t}", "firmware": 7, 3: None}
            info = {**info, api.EPISODE_LABELS_KEY: "oops" if self.seed == 1001 else labels}
            if self.t == 1:
                info.pop(api.EPISODE_LABELS_KEY)
            return obs, reward, terminated, truncated, info

        def close(self):
            self.inner.close()

    records = run(
        RecordingPolicy(), episode_specs("push_t", [0, 1], 1000, None), Labelled, max_steps=3
    )
    assert records[0].labels == {"labeller": "at step 3", "firmware": "7", "3": "None"}
    assert records[1].labels == {} and records[1].failure_reason is None
    [short] = run(RecordingPolicy(), [EpisodeSpec("push_t", 0, 1000)], Labelled, max_steps=1)
    assert short.labels == {}  # only the final step's info counts
