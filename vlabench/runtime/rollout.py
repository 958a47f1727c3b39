"""The episode loop: several episodes at once, one batched policy call per step.

The core, not the policy, owns each episode's observation history (``n_obs_steps``) and its
queue of chunked actions (``n_action_steps``), scheduled by the run's inference mode
(:mod:`vlabench.inference`: the world waits for the policy, or it does not). That lets a
finished slot take the next episode at once, without disturbing the others, and lets every
failure stay with its episode: a policy or env exception, a non-finite action or an action of
the wrong shape fails that episode with a recorded reason, never the run. Out-of-bounds
actions are clipped and counted. Every policy and env call is bracketed on the run's
:class:`~vlabench.runtime.deadlines.CallClock`, which bounds how long it may take.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vlabench.api import (
    CHUNK_OBSERVER,
    EPISODE_INDEX_KEY,
    EPISODE_LABELS_KEY,
    EPISODE_METRICS_KEY,
    EPISODE_STEP_KEY,
    TASK_KEY,
    EpisodeRecord,
    Observation,
    Policy,
)
from vlabench.runtime.adapters import AdapterPipeline
from vlabench.runtime.deadlines import NO_CLOCK, Bracket, CallClock, CallTimeout
from vlabench.runtime.inference import ActionSchedule, InferenceConfig


@dataclass(frozen=True)
class EpisodeSpec:
    """Which episode to run: the same seed and init state for every policy."""

    task: str
    episode_index: int
    seed: int
    init_state_id: int | None = None


@dataclass(frozen=True)
class RolloutSettings:
    """Protocol and interface facts the loop needs."""

    max_steps: int
    success: str = "ever"
    stop_on_success: bool = True
    settle_steps: int = 0
    noop_action: tuple[float, ...] | None = None
    action_low: np.ndarray | None = None
    action_high: np.ndarray | None = None
    action_dim: int | None = None
    n_obs_steps: int = 1
    n_action_steps: int = 1
    chunk_size: int = 1
    """Actions per predicted chunk (``async`` mode schedules over the whole chunk)."""
    batch_size: int = 1
    record_video: int = 0
    """Record the episodes with index < this as mp4 (see :mod:`vlabench.runtime.video`)."""
    video_dir: str | None = None
    fps: float = 10.0
    """The env's control rate: turns latencies into steps and steps into simulated seconds."""
    inference: InferenceConfig = field(default_factory=InferenceConfig)


def episode_specs(
    task: str, indices: Iterable[int], seed: int, n_init_states: int | None
) -> list[EpisodeSpec]:
    """Episode ``i`` gets seed ``seed + i`` and init state ``i mod n_init_states``."""
    return [
        EpisodeSpec(task, i, seed + i, i % n_init_states if n_init_states else None)
        for i in indices
    ]


@dataclass
class _Slot:
    """One env and the episode it is running."""

    env: Any = None
    observe: Any = None
    """The env's ``observe_chunk`` (None when it has none), looked up once per env."""
    spec: EpisodeSpec | None = None
    history: deque[Observation] = field(default_factory=deque)
    schedule: ActionSchedule | None = None
    step: int = 0
    success_step: int | None = None
    reward_sum: float = 0.0
    success_ever: bool = False
    success_last: bool = False
    latencies_ms: list[float] = field(default_factory=list)
    env_time_s: float = 0.0
    clipped: int = 0
    started: float = 0.0
    infos: list[dict[str, Any]] = field(default_factory=list)
    labels: Any = None
    """``info[EPISODE_LABELS_KEY]`` of the latest step (None when absent)."""
    env_metrics: Any = None
    """``info[EPISODE_METRICS_KEY]`` of the latest step (None when absent)."""
    video: Any = None
    """A :class:`vlabench.runtime.video.VideoWriter` while the episode is recorded."""


def _percentiles(values: Sequence[float]) -> tuple[float | None, float | None]:
    """The 50th and 95th percentiles (one numpy call: its fixed cost dominates)."""
    if not values:
        return None, None
    p50, p95 = np.percentile(values, (50, 95)).tolist()
    return p50, p95


def _labels(value: Any) -> dict[str, str]:
    """An info's episode labels as ``{str: str}``; anything but a mapping gives ``{}``."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _numbers(value: Any) -> dict[str, float]:
    """An info's episode metrics as ``{str: float}``; non-numbers and non-mappings are dropped."""
    if not isinstance(value, Mapping):
        return {}
    out = {}
    for key, number in value.items():
        with contextlib.suppress(TypeError, ValueError):
            out[str(key)] = float(number)
    return out


def _stack(observations: list[Observation], key: str) -> Any:
    if key == TASK_KEY:
        return [str(o[key]) for o in observations]
    return np.stack([np.asarray(o[key]) for o in observations])


class Rollout:
    """Runs a list of episodes of one task with one policy; calls ``on_episode`` for each."""

    def __init__(
        self,
        make_env: Callable[[], Any],
        policy: Policy,
        settings: RolloutSettings,
        on_episode: Callable[[EpisodeRecord], None],
        adapters: AdapterPipeline | None = None,
        metrics: Sequence[Callable[[list[dict[str, Any]]], dict[str, float]]] = (),
        clock: CallClock | None = None,
        on_start: Callable[[EpisodeSpec], None] | None = None,
    ) -> None:
        self.make_env = make_env
        self.clock = clock
        """Every policy and env call is bracketed on it (see :mod:`~vlabench.runtime.deadlines`)."""
        self.on_start = on_start
        """Told of each episode as it starts (before its env is reset)."""
        self.policy = policy
        self.settings = settings
        self.on_episode = on_episode
        self.adapters = adapters or AdapterPipeline([])
        self.metrics = list(metrics)
        self.chunked = callable(getattr(policy, "predict_action_chunk", None)) and (
            policy.interface.chunk_size > 1
        )
        low, high = settings.action_low, settings.action_high
        self._bounds = ([], []) if low is None or high is None else (low.tolist(), high.tolist())
        if not self.chunked:
            self.chunk_length = 1
        elif settings.inference.mode == "async":  # LeRobot's async uses the whole chunk
            self.chunk_length = max(settings.chunk_size, settings.n_action_steps)
        else:
            self.chunk_length = settings.n_action_steps

    def _call(self, kind: str, slots: Sequence[_Slot]) -> Any:
        """The bracket of one call on the clock, naming the slots' episodes and steps."""
        if self.clock is None:
            return NO_CLOCK
        entries = [(s.spec.episode_index, s.step) for s in slots if s.spec is not None]
        return Bracket(self.clock, kind, entries)

    def _close(self, env: Any) -> None:
        with contextlib.suppress(CallTimeout), self._call("env.close", ()):
            _close_quietly(env)

    # -- episode lifecycle -------------------------------------------------------------
    def _start(self, slot: _Slot, spec: EpisodeSpec) -> bool:
        """Reset the slot's env for ``spec``; on failure the episode is recorded as failed."""
        if self.on_start is not None:
            self.on_start(spec)
        slot.spec, slot.step, slot.reward_sum = spec, 0, 0.0
        slot.success_ever = slot.success_last = False
        slot.success_step = None
        slot.latencies_ms, slot.env_time_s, slot.clipped = [], 0.0, 0
        settings = self.settings
        slot.schedule = ActionSchedule(
            settings.inference,
            settings.fps,
            self.chunk_length,
            None if settings.noop_action is None else np.asarray(settings.noop_action, np.float32),
            seed=spec.seed,
        )
        slot.history.clear()
        slot.infos = []
        slot.labels = slot.env_metrics = None
        slot.started = time.perf_counter()
        options = {} if spec.init_state_id is None else {"init_state_id": spec.init_state_id}
        try:
            if slot.env is None:
                with self._call("env.make", (slot,)):
                    slot.env = self.make_env()
                observe = getattr(slot.env, CHUNK_OBSERVER, None)
                slot.observe = observe if callable(observe) else None
            with self._call("env.reset", (slot,)):
                obs, _ = slot.env.reset(seed=spec.seed, options=options)
                noop = self.settings.noop_action
                for _ in range(self.settings.settle_steps):
                    obs, *_ = slot.env.step(np.asarray(noop, dtype=np.float32))
        except CallTimeout as exc:
            self._finish(slot, str(exc), broken_env=True)
            return False
        except Exception as exc:
            self._finish(slot, f"env reset raised {type(exc).__name__}: {exc}", broken_env=True)
            return False
        slot.history.extend([obs] * self.settings.n_obs_steps)
        self._video_start(slot, spec, obs)
        return True

    def _finish(self, slot: _Slot, failure: str | None = None, broken_env: bool = False) -> None:
        spec = slot.spec
        assert spec is not None
        success = slot.success_ever if self.settings.success == "ever" else slot.success_last
        metrics = _numbers(slot.env_metrics)
        if slot.schedule is not None:
            metrics.update(slot.schedule.metrics())
        if slot.success_step is not None:
            metrics["time_to_success_s"] = slot.success_step / self.settings.fps
        for fn in self.metrics:
            try:
                metrics.update(fn(slot.infos))
            except Exception as exc:  # a broken metric plugin must not lose the episode
                metrics[f"error.{getattr(fn, '__name__', 'metric')}"] = float("nan")
                failure = failure or f"metric raised {type(exc).__name__}: {exc}"
        p50, p95 = _percentiles(slot.latencies_ms)
        record = EpisodeRecord(
            task=spec.task,
            episode_index=spec.episode_index,
            seed=spec.seed,
            init_state_id=spec.init_state_id,
            success=bool(success) and failure is None,
            steps=slot.step,
            reward_sum=float(slot.reward_sum),
            wall_time_s=time.perf_counter() - slot.started,
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            env_step_ms=1000 * slot.env_time_s / slot.step if slot.step else None,
            clipped_actions=slot.clipped,
            failure_reason=failure,
            metrics=metrics,
            video_path=self._video_close(slot),
            labels=_labels(slot.labels),
        )
        slot.spec = None
        if broken_env and slot.env is not None:
            self._close(slot.env)
            slot.env = None
        self.on_episode(record)

    # -- videos ------------------------------------------------------------------------
    def _video_start(self, slot: _Slot, spec: EpisodeSpec, obs: Observation) -> None:
        settings = self.settings
        if not settings.video_dir or spec.episode_index >= settings.record_video:
            return
        from pathlib import Path

        from vlabench.runtime import video

        path = Path(settings.video_dir) / video.file_name(spec.task, spec.episode_index)
        slot.video = video.VideoWriter(path, settings.fps)
        self._video_frame(slot, obs)

    def _video_frame(self, slot: _Slot, obs: Observation) -> None:
        from vlabench.runtime import video

        try:
            frame = video.frame_of(slot.env, obs)
            if frame is None:
                raise ValueError("the env neither renders nor observes an image")
            slot.video.add(frame)
        except Exception:  # a video must never cost the episode
            slot.video.discard()
            slot.video = None

    def _video_close(self, slot: _Slot) -> str | None:
        writer, slot.video = slot.video, None
        if writer is None:
            return None
        try:
            return writer.close()
        except Exception:
            writer.discard()
            return None

    # -- policy and env steps ----------------------------------------------------------
    def _batch(self, slots: list[_Slot]) -> dict[str, Any]:
        """Stack the latest observation (or the history, with a time axis) of each slot."""
        n_obs = self.settings.n_obs_steps
        first = slots[0].history[-1]
        batch: dict[str, Any] = {}
        if n_obs == 1 and len(slots) == 1:  # the common case: views, no copies
            for key, value in first.items():
                batch[key] = [value] if key == TASK_KEY else np.asarray(value)[None]
        else:
            for key in first:
                if n_obs == 1 or key == TASK_KEY:
                    batch[key] = _stack([s.history[-1] for s in slots], key)
                else:
                    batch[key] = np.stack([_stack(list(s.history), key) for s in slots])
        batch[EPISODE_INDEX_KEY] = np.array([s.spec.episode_index for s in slots], np.int64)
        batch[EPISODE_STEP_KEY] = np.array([s.step for s in slots], np.int64)
        return self.adapters.observation(batch)

    def _infer(self, slots: list[_Slot]) -> None:
        """One policy call for every slot whose schedule wants a chunk now."""
        try:
            batch = self._batch(slots)
            start = time.perf_counter()
            with self._call("policy.predict", slots):
                if self.chunked:
                    out = self.policy.predict_action_chunk(batch)
                else:
                    out = self.policy.select_action(batch)
            elapsed_ms = 1000 * (time.perf_counter() - start)
            actions = _as_chunks(out, len(slots), self.chunked)
        except (_ShapeError, CallTimeout) as exc:
            for slot in slots:
                self._finish(slot, str(exc))
            return
        except Exception as exc:
            for slot in slots:
                self._finish(slot, f"policy raised {type(exc).__name__}: {exc}")
            return
        b, h, a = actions.shape
        try:
            env_actions = actions
            if self.adapters.adapters:
                env_actions = self.adapters.action(actions.reshape(b * h, a)).reshape(b, h, -1)
        except Exception as exc:
            for slot in slots:
                self._finish(slot, f"action adapter raised {type(exc).__name__}: {exc}")
            return
        dim = self.settings.action_dim
        if dim is not None and env_actions.shape[-1] != dim:
            for slot in slots:
                self._finish(
                    slot,
                    f"policy returned actions of dimension {env_actions.shape[-1]} "
                    f"(output shape {tuple(np.shape(out))}), the env expects {dim}",
                )
            return
        used = env_actions[:, : self.chunk_length]
        executable, clipped, outside = self._clip(used)
        finite = not outside or bool(np.isfinite(used).all())  # NaN counts as outside
        for slot, chunk, action, flags in zip(slots, env_actions, executable, clipped, strict=True):
            slot.latencies_ms.append(elapsed_ms)
            if not finite and not np.isfinite(action).all():
                self._finish(slot, f"policy returned a non-finite action at step {slot.step}")
                continue
            if slot.observe is not None:
                try:
                    with self._call("env.step", (slot,)):
                        slot.observe(chunk)
                except CallTimeout as exc:
                    self._finish(slot, str(exc), broken_env=True)
                    continue
                except Exception as exc:
                    self._finish(slot, f"env {CHUNK_OBSERVER} raised {type(exc).__name__}: {exc}")
                    continue
            assert slot.schedule is not None
            slot.schedule.submit(action, flags, elapsed_ms)

    def _clip(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """``(B, H, A)`` actions within the env's bounds, ``(B, H)``: which were outside, and
        whether any was (non-finite actions always count as outside)."""
        low, high = self.settings.action_low, self.settings.action_high
        if low is None or high is None:
            outside = ~np.isfinite(actions).all(axis=-1)
            return actions, outside, bool(outside.any())
        if actions.size <= 32:  # a few numbers: Python floats beat numpy's per-call cost
            lows, highs = self._bounds
            rows = actions.reshape(-1, actions.shape[-1]).tolist()
            pairs = (zip(row, lows, highs, strict=True) for row in rows)
            if all(lo <= x <= hi for row in pairs for x, lo, hi in row):
                return actions, np.zeros(actions.shape[:2], dtype=bool), False  # NaN fails <=
        inside = np.minimum(np.maximum(actions, low), high)  # np.clip's overhead is 2x
        outside = (inside != actions).any(axis=-1)
        return inside, outside, bool(outside.any())

    def _act(self, slot: _Slot) -> None:
        """Execute this step's action of ``slot`` and close the episode when it ends."""
        assert slot.schedule is not None
        action, clipped = slot.schedule.next_action()
        slot.clipped += clipped
        start = time.perf_counter()
        try:
            with self._call("env.step", (slot,)):
                obs, reward, terminated, truncated, info = slot.env.step(action)
        except CallTimeout as exc:
            self._finish(slot, str(exc), broken_env=True)
            return
        except Exception as exc:
            self._finish(slot, f"env step raised {type(exc).__name__}: {exc}", broken_env=True)
            return
        slot.env_time_s += time.perf_counter() - start
        if slot.video is not None:
            self._video_frame(slot, obs)
        slot.schedule.advance()
        slot.step += 1
        slot.reward_sum += float(reward)
        success = bool(info.get("is_success", False))
        if success and slot.success_step is None:
            slot.success_step = slot.step
        slot.success_ever |= success
        slot.success_last = success
        slot.labels = info.get(EPISODE_LABELS_KEY)
        slot.env_metrics = info.get(EPISODE_METRICS_KEY)
        if self.metrics:
            slot.infos.append(info)
        done = (
            terminated
            or truncated
            or slot.step >= self.settings.max_steps
            or (success and self.settings.stop_on_success)
        )
        if done:
            self._finish(slot)
        else:
            slot.history.append(obs)
            while len(slot.history) > self.settings.n_obs_steps:
                slot.history.popleft()

    # -- main loop ---------------------------------------------------------------------
    def run(self, episodes: Sequence[EpisodeSpec]) -> None:
        """Run every episode; each record reaches ``on_episode`` as soon as it finishes."""
        pending = deque(episodes)
        slots = [_Slot() for _ in range(max(1, min(self.settings.batch_size, len(pending))))]
        try:
            while True:
                for slot in slots:
                    while slot.spec is None and pending:
                        self._start(slot, pending.popleft())
                active = [s for s in slots if s.spec is not None]
                if not active:
                    break
                hungry = [s for s in active if s.schedule.wants_chunk()]  # type: ignore[union-attr]
                if hungry:
                    self._infer(hungry)
                for slot in active:
                    if slot.spec is not None:
                        self._act(slot)
        finally:
            for slot in slots:
                if slot.env is not None:
                    self._close(slot.env)


class _ShapeError(ValueError):
    pass


def _as_chunks(out: Any, batch: int, chunked: bool) -> np.ndarray:
    """Policy output as float32 ``(B, H, A)``; a wrong shape raises :class:`_ShapeError`."""
    try:
        arr = np.asarray(out, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise _ShapeError(f"policy returned something that is not an array: {exc}") from exc
    expected = "(B, H, A)" if chunked else "(B, A)"
    if arr.ndim != (3 if chunked else 2) or arr.shape[0] != batch:
        raise _ShapeError(
            f"policy returned an action of shape {arr.shape}, expected {expected} with B={batch}"
        )
    return arr if chunked else arr[:, None, :]


def _close_quietly(env: Any) -> None:
    with contextlib.suppress(Exception):
        env.close()
