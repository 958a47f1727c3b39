"""A LIBERO rollout recorded into a LeRobotDataset and replayed into LIBERO by ``replay``.

The recording is written with LeRobot's own writer; the ``replay`` policy reads its actions
back through the dataset source and the real episode loop (:class:`vlabench.rollout.Rollout`,
same settle steps and init state) plays them into a fresh reset of the same task. LIBERO is
deterministic, so every replayed ``observation.state`` equals the recorded one: a check of the
env and the dataset together.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from vlabench import api

pytest.importorskip("libero")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from vlabench_plugins import libero
from vlabench_plugins.dataset import record
from vlabench_plugins.scripted import replay

TASK = "libero_goal/open_the_middle_drawer_of_the_cabinet"
OPTIONS = {"suite": "libero_goal", "image_size": 32}
INIT_STATE = 3
SETTLE = 10
STEPS = 20
NOOP = np.array(libero.NOOP_ACTION, dtype=np.float32)


class _Recorder:
    """Passes calls to a LIBERO env and keeps every observation it returns."""

    def __init__(self, env) -> None:
        self.env = env
        self.observations: list[dict] = []

    def reset(self, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.observations = [obs]
        return obs, info

    def step(self, action):
        out = self.env.step(action)
        self.observations.append(out[0])
        return out

    def close(self) -> None:  # the test closes the env
        pass


def test_replayed_libero_states_match_the_recording(tmp_path: Path) -> None:
    from vlabench.runtime.rollout import EpisodeSpec, Rollout, RolloutSettings

    (spec,) = libero.vlabench_envs()
    env = spec.make(TASK, OPTIONS)
    try:
        obs, _ = env.reset(seed=0, options={"init_state_id": INIT_STATE})
        for _ in range(SETTLE):
            obs, *_ = env.step(NOOP)
        rng = np.random.default_rng(0)
        frames = []
        for _ in range(STEPS):
            action = np.concatenate([rng.uniform(-0.6, 0.6, 6), [rng.choice([-1.0, 1.0])]])
            action = action.astype(np.float32)
            frames.append({
                api.STATE_KEY: obs[api.STATE_KEY].astype(np.float32),
                "observation.images.image": obs["observation.images.image"],
                "action": action,
                "task": "open the middle drawer of the cabinet",
            })  # fmt: skip
            obs, *_ = env.step(action)
        root = tmp_path / "libero_recording"
        features = record.features_for(8, 7, {"image": (32, 32)})
        record.write_dataset(root, [frames], features, fps=20, repo_id="local/libero_recording")

        interface = spec.interface(OPTIONS)
        request = api.PolicyRequest(
            "replay", None, {"dataset": str(root), "dataset_episodes": [0]}, interface
        )
        policy = replay.load(request)
        recorder = _Recorder(env)
        records: list[api.EpisodeRecord] = []
        settings = RolloutSettings(
            max_steps=STEPS, success="ever", stop_on_success=False, settle_steps=SETTLE,
            noop_action=tuple(NOOP), action_dim=7, fps=20.0,
        )  # fmt: skip
        Rollout(lambda: recorder, policy, settings, records.append).run(
            [EpisodeSpec(TASK, 0, 0, INIT_STATE)]
        )
    finally:
        env.close()
    (episode,) = records
    assert episode.failure_reason is None and episode.steps == STEPS
    replayed = recorder.observations[SETTLE : SETTLE + STEPS]
    recorded = np.stack([f[api.STATE_KEY] for f in frames])
    got = np.stack([o[api.STATE_KEY] for o in replayed])
    np.testing.assert_allclose(got, recorded, atol=1e-5)
    assert np.abs(np.diff(recorded[:, :3], axis=0)).max() > 1e-3  # the arm did move
