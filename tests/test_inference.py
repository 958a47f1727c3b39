"""Inference modes: the executed action sequence equals a hand-worked one in each mode.

The policy's chunk predicted at step ``t`` is ``[100 t, 100 t + 1, ...]``, so every executed
action says which chunk (its step) and which index of it was taken. The env is a recorder.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from vlabench import api
from vlabench.plan.configs import stable_hash
from vlabench.runtime.inference import ActionSchedule, InferenceConfig, LatencyModel, delay_steps
from vlabench.runtime.rollout import Rollout, RolloutSettings, episode_specs

NOOP = -1.0


class RecorderEnv:
    """A 1-d env that records the actions it is given."""

    def __init__(self) -> None:
        self.actions: list[float] = []

    def reset(self, seed=None, options=None):
        self.actions = []
        return {api.STATE_KEY: np.zeros(1, np.float32), api.TASK_KEY: ""}, {}

    def step(self, action):
        self.actions.append(float(np.asarray(action)[0]))
        return {api.STATE_KEY: np.zeros(1, np.float32), api.TASK_KEY: ""}, 0.0, False, False, {}

    def close(self) -> None:
        pass


class StepChunkPolicy:
    """Chunk ``k`` of a call at step ``t`` is ``100 t + k``; optionally sleeps per call."""

    def __init__(self, chunk: int, sleep_s: float = 0.0) -> None:
        feature = api.Feature(api.STATE_KEY, "state", (1,))
        action = api.Feature(api.ACTION_KEY, "action", (1,))
        self.interface = api.PolicyInterface((feature,), action, 1, chunk, chunk)
        self.sleep_s = sleep_s
        self.calls: list[int] = []

    def reset(self) -> None:
        pass

    def select_action(self, batch):
        return self.predict_action_chunk(batch)[:, 0]

    def predict_action_chunk(self, batch):
        time.sleep(self.sleep_s)
        steps = np.asarray(batch[api.EPISODE_STEP_KEY], dtype=np.float32)
        self.calls += [int(s) for s in steps]
        k = np.arange(self.interface.chunk_size, dtype=np.float32)
        return (100 * steps[:, None] + k[None, :])[:, :, None]


def rollout(
    inference: InferenceConfig, chunk: int, steps: int, fps: float = 10.0, sleep_s: float = 0.0
) -> tuple[list[float], api.EpisodeRecord, StepChunkPolicy]:
    env, policy = RecorderEnv(), StepChunkPolicy(chunk, sleep_s)
    records: list[api.EpisodeRecord] = []
    settings = RolloutSettings(
        max_steps=steps,
        n_action_steps=chunk,
        chunk_size=chunk,
        noop_action=(NOOP,),
        action_dim=1,
        fps=fps,
        inference=inference,
    )
    Rollout(lambda: env, policy, settings, records.append).run(episode_specs("t", [0], 7, None))
    [record] = records
    assert record.failure_reason is None
    return env.actions, record, policy


# -- hand-worked sequences -------------------------------------------------------------------
def test_sync_executes_whole_chunks_and_the_world_waits() -> None:
    actions, record, policy = rollout(InferenceConfig("sync"), chunk=4, steps=12)
    assert actions == [0, 1, 2, 3, 400, 401, 402, 403, 800, 801, 802, 803]
    assert policy.calls == [0, 4, 8]
    assert record.metrics["inference.idle_steps"] == 0
    assert record.metrics["inference.calls"] == 3


@pytest.mark.parametrize(("hold", "held"), [("last", None), ("noop", NOOP)])
def test_sync_realtime_holds_for_the_latency_then_runs_the_chunk_from_its_start(
    hold: str, held: float | None
) -> None:
    # 250 ms at 10 fps spans 3 control steps; the first chunk of an episode is awaited
    config = InferenceConfig("sync-realtime", latency="250", hold=hold)
    actions, record, policy = rollout(config, chunk=4, steps=12)
    a, b = (3, 403) if held is None else (held, held)
    assert actions == [0, 1, 2, 3, a, a, a, 400, 401, 402, 403, b]
    assert policy.calls == [0, 4, 11]
    assert record.metrics["inference.idle_steps"] == 4
    assert record.metrics["inference.latency_ms"] == 250
    assert record.metrics["chunk.discontinuity"] == pytest.approx(397)  # 3 -> 400


@pytest.mark.parametrize(
    ("aggregate", "first_merge", "second_merge"),
    [
        ("latest", 302, 602),
        ("average", (5 + 302) / 2, (305 + 602) / 2),
        ("weighted", 0.3 * 5 + 0.7 * 302, 0.3 * 305 + 0.7 * 602),
        ("conservative", 0.7 * 5 + 0.3 * 302, 0.7 * 305 + 0.3 * 602),
    ],
)
def test_async_requests_at_the_threshold_drops_stale_actions_and_merges_overlaps(
    aggregate: str, first_merge: float, second_merge: float
) -> None:
    # chunk 6, 150 ms at 10 fps = 2 steps, threshold 0.5: a request when 3 actions remain.
    # Step 3 asks (origin 3); the chunk lands at step 5, its actions for steps 3 and 4 are
    # dropped, its action for step 5 (302) merges with the queued 5, the rest follow.
    config = InferenceConfig("async", latency="150", chunk_threshold=0.5, aggregate=aggregate)
    actions, record, policy = rollout(config, chunk=6, steps=9)
    expected = [0, 1, 2, 3, 4, first_merge, 303, 304, second_merge]
    assert actions == pytest.approx(expected)
    assert policy.calls == [0, 3, 6]
    assert record.metrics["inference.idle_steps"] == 0
    jumps = [abs(first_merge - 4), abs(second_merge - 304)]
    assert record.metrics["chunk.discontinuity"] == pytest.approx(np.mean(jumps))


def test_async_robot_holds_when_the_chunk_arrives_after_the_queue_ran_dry() -> None:
    # chunk 4, 350 ms = 4 steps, threshold 0.25: ask with 1 action left (step 3, origin 3);
    # steps 4-6 hold 3, the chunk lands at step 7 with index 4 onwards: only stale actions
    # of a 4-chunk, so nothing is left; the next request at step 7 lands at step 11.
    config = InferenceConfig("async", latency="350", chunk_threshold=0.25, aggregate="latest")
    actions, record, _ = rollout(config, chunk=4, steps=8)
    assert actions == [0, 1, 2, 3, 3, 3, 3, 3]
    assert record.metrics["inference.idle_steps"] == 4


def test_zero_latency_realtime_modes_equal_sync() -> None:
    sync, _, _ = rollout(InferenceConfig("sync"), chunk=4, steps=10)
    realtime, _, _ = rollout(InferenceConfig("sync-realtime", latency="0"), chunk=4, steps=10)
    assert realtime == sync


def test_measured_latency_is_what_the_call_took() -> None:
    config = InferenceConfig("sync-realtime")  # latency measured
    _, record, _ = rollout(config, chunk=3, steps=9, fps=10.0, sleep_s=0.03)
    latency = record.metrics["inference.latency_ms"]
    assert latency >= 30
    calls = int(record.metrics["inference.calls"])
    # every call but the awaited first one costs ceil(latency * fps) steps of holding
    assert record.metrics["inference.idle_steps"] >= (calls - 1) * delay_steps(30, 10.0)
    assert record.latency_p50_ms is not None and record.latency_p50_ms >= 30


def test_a_latency_distribution_is_sampled_per_call_and_reproducible() -> None:
    config = InferenceConfig("sync-realtime", latency="uniform:50,350")
    first, record, _ = rollout(config, chunk=2, steps=30)
    again, _, _ = rollout(config, chunk=2, steps=30)
    assert first == again  # seeded by the episode's seed
    assert 50 <= record.metrics["inference.latency_ms"] <= 350
    assert record.metrics["inference.latency_ms_max"] > record.metrics["inference.latency_ms"]


# -- units ---------------------------------------------------------------------------------
def test_delay_steps_is_the_ceiling_of_latency_times_fps() -> None:
    assert [delay_steps(ms, 10.0) for ms in (0, 1, 100, 101, 250)] == [0, 1, 1, 2, 3]
    assert delay_steps(120, 80.0) == 10  # 9.6 control periods at Meta-World's 80 Hz


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        (None, "measured"),
        ("measured", "measured"),
        ("120", "120"),
        ("120ms", "120"),
        (35.5, "35.5"),
        ("normal:120,30", "normal:120,30"),
        ("uniform:80, 160", "uniform:80,160"),
        ("lognormal:100,0.25", "lognormal:100,0.25"),
    ],
)
def test_latency_models_parse_to_canonical_text(spec, text) -> None:
    assert LatencyModel.parse(spec).text() == text


@pytest.mark.parametrize("spec", ["fast", "-5", "normal:1", "uniform:9,3", "gamma:1,2"])
def test_bad_latency_models_are_refused_with_the_accepted_forms(spec) -> None:
    with pytest.raises(ValueError, match="latency"):
        LatencyModel.parse(spec)


def test_inference_config_validates_and_hashes_only_what_matters() -> None:
    with pytest.raises(ValueError, match="inference mode"):
        InferenceConfig("turbo")
    with pytest.raises(ValueError, match="aggregate"):
        InferenceConfig("async", aggregate="median")
    with pytest.raises(ValueError, match="threshold"):
        InferenceConfig("async", chunk_threshold=1.5)
    assert InferenceConfig("sync", latency="120").options() == {}
    assert InferenceConfig("async", aggregate="weighted_average").aggregate == "weighted"
    assert InferenceConfig("sync-realtime", "120").options() == {"latency": "120", "hold": "last"}
    assert InferenceConfig("async", "120").label() == "async 120ms g=0.5 weighted"


def test_hold_noop_needs_a_noop_action() -> None:
    with pytest.raises(ValueError, match="noop"):
        ActionSchedule(InferenceConfig("sync-realtime", hold="noop"), 10.0, 4, None)


def test_sync_config_hash_is_unchanged_by_inference_modes(tmp_path) -> None:
    """Stores written before inference modes existed must still resume their sync runs."""
    from dataclasses import asdict, replace

    from vlabench.plan.configs import EvalProtocol, PolicyChoice, RunConfig

    protocol = EvalProtocol("p", 5, 100, 0, "ever", True, 0)
    config = RunConfig(PolicyChoice("noop", "noop", "scripted"), "s", "pusht", "pusht", {},
                       "push_t", protocol, [])
    old = asdict(config)
    old.pop("env_options_given")  # only for the legacy hash: never stored nor hashed
    old["protocol"].pop("episodes")
    old.pop("env_isolation")
    old["policy"].pop("isolation")
    old.pop("env_call_timeout_s")  # how long a call may take: never stored nor hashed
    old["policy"].pop("call_timeout_s")
    old.pop("inference_options")  # the field did not exist
    for how in ("resources", "max_batch", "batch_wait_ms"):  # where and how a run executes
        old["policy"].pop(how)
    old["protocol"].pop("perturbation")  # absent when unperturbed
    assert config.config_hash() == stable_hash(old)
    realtime = replace(config, inference_mode="async", inference_options={"latency": "120"})
    other = replace(config, inference_mode="async", inference_options={"latency": "60"})
    assert len({config.config_hash(), realtime.config_hash(), other.config_hash()}) == 3


def test_cli_refuses_a_bad_inference_setting_with_the_accepted_forms(cli) -> None:
    base = ("run", "--policy", "noop", "--suite", "pusht_quick", "-n", "1")
    out = cli(*base, "--inference", "async", "--latency-ms", "fast", ok=False)
    assert out.returncode == 2 and "normal:MEAN,STD" in out.stderr + out.stdout
    out = cli(*base, "--inference", "turbo", ok=False)
    assert out.returncode == 2 and "sync-realtime" in out.stderr + out.stdout
    # PushT declares no noop action: holding with it cannot run, and says why
    out = cli(*base, "--inference", "sync-realtime", "--hold", "noop", ok=False)
    assert "declares no noop action" in out.stdout + out.stderr


def _run_batch(policy, settings: RolloutSettings, episodes: int) -> list[api.EpisodeRecord]:
    records: list[api.EpisodeRecord] = []
    Rollout(RecorderEnv, policy, settings, records.append).run(
        episode_specs("t", range(episodes), 0, None)
    )
    return sorted(records, key=lambda r: r.episode_index)


@pytest.mark.parametrize("bounded", [True, False])
def test_a_non_finite_action_fails_only_its_episode(bounded: bool) -> None:
    class NaNForOddEpisodes(StepChunkPolicy):
        def predict_action_chunk(self, batch):
            out = super().predict_action_chunk(batch)
            out[np.asarray(batch[api.EPISODE_INDEX_KEY]) % 2 == 1, 1] = np.nan
            return out

    bounds = dict(action_low=np.array([-1e9], np.float32), action_high=np.array([1e9], np.float32))
    settings = RolloutSettings(
        max_steps=6, n_action_steps=3, chunk_size=3, batch_size=2, action_dim=1,
        **(bounds if bounded else {}),
    )
    even, odd = _run_batch(NaNForOddEpisodes(3), settings, 2)
    assert even.failure_reason is None and even.steps == 6
    assert odd.failure_reason == "policy returned a non-finite action at step 0"


def test_out_of_bounds_actions_are_clipped_and_counted_once_executed() -> None:
    settings = RolloutSettings(
        max_steps=12, n_action_steps=4, chunk_size=4, action_dim=1,
        action_low=np.array([0.0], np.float32), action_high=np.array([150.0], np.float32),
    )
    env = RecorderEnv()
    records: list[api.EpisodeRecord] = []
    Rollout(lambda: env, StepChunkPolicy(4), settings, records.append).run(
        episode_specs("t", [0], 0, None)
    )
    assert env.actions == [0, 1, 2, 3, *[150.0] * 8]
    assert records[0].clipped_actions == 8


def test_async_counts_chunks_that_arrive_entirely_stale() -> None:
    # chunk 4 at 10 fps, 500 ms = 5 steps: every chunk after the first lands too late
    config = InferenceConfig("async", latency="500", chunk_threshold=0.5, aggregate="latest")
    actions, record, _ = rollout(config, chunk=4, steps=16)
    assert actions[:3] == [0, 1, 2] and set(actions[3:]) == {3}
    assert record.metrics["inference.stale_chunks"] >= 2
    _, synced, _ = rollout(InferenceConfig("sync"), chunk=4, steps=8)
    assert "inference.stale_chunks" not in synced.metrics
