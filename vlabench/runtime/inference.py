"""Inference modes: what the world does while the policy computes.

A simulator waits for the policy; a robot does not. The rollout asks an
:class:`ActionSchedule` per episode when to call the policy and which action to execute at
each control step, in one of three modes:

``sync``
    The world waits (simulators' default, and vlabench's): a chunk is requested when the
    queue is empty and its actions run from the next step on. Inference costs no
    simulated time.
``sync-realtime``
    The world does not wait: a chunk is requested when the queue is empty, and for the
    ``d`` control steps its latency spans the robot *holds* (repeats its last command, or
    sends the env's noop action with ``hold="noop"``); the chunk then runs from its first
    action, as in LeRobot's synchronous robot loop.
``async``
    LeRobot's asynchronous inference: a new chunk is requested as soon as the queue falls to
    ``chunk_threshold`` of a chunk (or below), while the robot keeps executing the queue;
    the whole predicted chunk is used (``chunk_size``, not ``n_action_steps``).
    Chunk actions are time-stamped with the step of the observation they were computed
    from; when a chunk arrives ``d`` steps later, actions whose step has passed are dropped
    and the ones that overlap the queue are merged with ``aggregate``. The robot holds only
    when the queue runs dry.

The latency of each call is the measured compute time of the policy on this machine, or a
user's latency model (fixed milliseconds or a distribution), so a CPU run can emulate a GPU
deployment and vice versa; ``d = ceil(latency * fps)`` control steps (a call that takes any
time at all misses the step it started in). The first call of an episode is always awaited:
the robot starts when its first chunk is there.

This module knows nothing about simulators or models.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np

MODES = ("sync", "sync-realtime", "async")
HOLDS = ("last", "noop")
AGGREGATES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "latest": lambda old, new: new,
    "average": lambda old, new: 0.5 * old + 0.5 * new,
    "weighted": lambda old, new: 0.3 * old + 0.7 * new,
    "conservative": lambda old, new: 0.7 * old + 0.3 * new,
}
"""How an arriving chunk's action merges with the queued action for the same step (LeRobot's
``latest_only``, ``average``, ``weighted_average`` and ``conservative``)."""
_AGGREGATE_ALIASES = {"latest_only": "latest", "weighted_average": "weighted"}

MEASURED = "measured"
_NUMBER = r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*"


# -- latency models ---------------------------------------------------------------------
@dataclass(frozen=True)
class LatencyModel:
    """Where each call's latency comes from: ``measured``, ``120`` (ms), ``normal:120,30``,
    ``uniform:80,160`` or ``lognormal:120,0.3`` (median ms, sigma of the log)."""

    kind: str = MEASURED
    params: tuple[float, ...] = ()

    @classmethod
    def parse(cls, spec: str | float | None) -> LatencyModel:
        """A model from its text form; ``None`` and ``"measured"`` mean measured."""
        if spec is None:
            return cls()
        if isinstance(spec, int | float):
            return cls._fixed(float(spec), str(spec))
        text = str(spec).strip().lower().removesuffix("ms").strip()
        if text in ("", MEASURED):
            return cls()
        if re.fullmatch(_NUMBER, text):
            return cls._fixed(float(text), spec)
        match = re.fullmatch(rf"(normal|uniform|lognormal):{_NUMBER},{_NUMBER}", text)
        if not match:
            raise ValueError(
                f"latency {spec!r} is not understood: give milliseconds (120), "
                "'measured', normal:MEAN,STD, uniform:LOW,HIGH or lognormal:MEDIAN,SIGMA (ms)"
            )
        kind, a, b = match.group(1), float(match.group(2)), float(match.group(3))
        if kind == "uniform" and b < a:
            raise ValueError(f"latency {spec!r}: uniform needs LOW <= HIGH")
        return cls(kind, (a, b))

    @classmethod
    def _fixed(cls, ms: float, spec: Any) -> LatencyModel:
        if not math.isfinite(ms) or ms < 0:
            raise ValueError(f"latency {spec!r} must be a non-negative number of milliseconds")
        return cls("fixed", (ms,))

    @property
    def measured(self) -> bool:
        return self.kind == MEASURED

    def text(self) -> str:
        """The canonical text form (what is stored in the run config)."""
        if self.kind == MEASURED:
            return MEASURED
        if self.kind == "fixed":
            return f"{self.params[0]:g}"
        return f"{self.kind}:{self.params[0]:g},{self.params[1]:g}"

    def sample(self, measured_ms: float, rng: np.random.Generator) -> float:
        """This call's latency in ms (``measured_ms`` is what the call really took)."""
        if self.kind == MEASURED:
            return measured_ms
        if self.kind == "fixed":
            return self.params[0]
        a, b = self.params
        if self.kind == "normal":
            return max(0.0, float(rng.normal(a, b)))
        if self.kind == "uniform":
            return float(rng.uniform(a, b))
        return float(a * math.exp(rng.normal(0.0, b)))  # lognormal: median a, log-sigma b


# -- the run-config part -------------------------------------------------------------------
@dataclass(frozen=True)
class InferenceConfig:
    """An inference mode and its parameters, as stored in a run's config."""

    mode: str = "sync"
    latency: str = MEASURED
    """A :class:`LatencyModel` text form; ignored in ``sync`` mode."""
    chunk_threshold: float = 0.5
    """``async``: request a chunk when ``queue / chunk <= chunk_threshold`` (LeRobot's g)."""
    aggregate: str = "weighted"
    """``async``: how overlapping actions merge (see :data:`AGGREGATES`)."""
    hold: str = "last"
    """What the robot does while it has no action: repeat its ``last`` command, or ``noop``."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"inference mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        object.__setattr__(self, "latency", LatencyModel.parse(self.latency).text())
        aggregate = _AGGREGATE_ALIASES.get(self.aggregate, self.aggregate)
        if aggregate not in AGGREGATES:
            raise ValueError(
                f"aggregate must be one of {', '.join(AGGREGATES)}, got {self.aggregate!r}"
            )
        object.__setattr__(self, "aggregate", aggregate)
        if not 0.0 <= float(self.chunk_threshold) <= 1.0:
            raise ValueError(f"chunk threshold must be in [0, 1], got {self.chunk_threshold}")
        if self.hold not in HOLDS:
            raise ValueError(f"hold must be one of {', '.join(HOLDS)}, got {self.hold!r}")

    @classmethod
    def from_options(cls, mode: str, options: dict[str, Any] | None) -> InferenceConfig:
        return cls(mode, **(options or {}))

    def options(self) -> dict[str, Any]:
        """The parameters that matter in this mode (empty for ``sync``): hashed with the run."""
        if self.mode == "sync":
            return {}
        out: dict[str, Any] = {"latency": self.latency, "hold": self.hold}
        if self.mode == "async":
            out |= {"chunk_threshold": float(self.chunk_threshold), "aggregate": self.aggregate}
        return out

    def label(self) -> str:
        """Short form for tables (``async 120ms g=0.5 weighted``); empty for ``sync``."""
        if self.mode == "sync":
            return ""
        fixed = LatencyModel.parse(self.latency).kind == "fixed"
        latency = f"{self.latency}ms" if fixed else self.latency
        parts = [self.mode, latency]
        if self.mode == "async":
            parts += [f"g={float(self.chunk_threshold):g}", self.aggregate]
        if self.hold != "last":
            parts.append(f"hold={self.hold}")
        return " ".join(parts)


def delay_steps(latency_ms: float, fps: float) -> int:
    """Control steps that pass while a call of ``latency_ms`` runs: ``ceil(latency * fps)``."""
    if latency_ms <= 0:
        return 0
    return max(1, math.ceil(latency_ms * fps / 1000.0 - 1e-9))


# -- the per-episode schedule ---------------------------------------------------------------
_Entry = tuple[np.ndarray, int, bool]
"""A queued action: the action, the id of the chunk it came from, whether it was clipped."""


@dataclass
class _InFlight:
    ready_at: int
    origin: int
    chunk: np.ndarray
    clipped: np.ndarray
    chunk_id: int


@dataclass
class ActionSchedule:
    """One episode's action queue under an inference mode, in control steps.

    Per step the rollout asks :meth:`wants_chunk`; if so it calls the policy on the current
    observation and hands the chunk to :meth:`submit` with the call's measured latency; then
    it executes :meth:`next_action` and calls :meth:`advance`. :meth:`metrics` summarises the
    episode (calls, idle steps, latencies, chunk-boundary jumps). Every call is O(1) but the
    arrival of a chunk, so ``sync`` costs next to nothing per step.
    """

    config: InferenceConfig
    fps: float
    chunk_length: int
    """Actions of each chunk that are used (``n_action_steps``; async: the chunk size)."""
    noop: np.ndarray | None = None
    seed: int = 0
    step: int = 0
    calls: int = 0
    idle_steps: int = 0
    stale_chunks: int = 0
    """``async``: chunks that landed with every action already past (latency >= chunk)."""
    latencies_ms: list[float] = field(default_factory=list)
    delays: list[int] = field(default_factory=list)
    jumps: list[float] = field(default_factory=list)
    _queue: deque[_Entry] = field(default_factory=deque)
    _in_flight: _InFlight | None = None
    _last: _Entry | None = None
    _latency: LatencyModel = field(default_factory=LatencyModel)
    _rng: np.random.Generator | None = None

    def __post_init__(self) -> None:
        self._latency = LatencyModel.parse(self.config.latency)
        self._sync = self.config.mode == "sync"
        self._async = self.config.mode == "async"
        self._track_jumps = self.chunk_length > 1  # per-step policies have no chunk boundary
        self.chunk_length = max(1, int(self.chunk_length))
        if self.config.hold == "noop" and self.noop is None and not self._sync:
            raise ValueError("hold='noop' needs an env that declares a noop action")

    # -- when to call the policy ---------------------------------------------------------
    def wants_chunk(self) -> bool:
        """Whether the policy should be called on this step's observation."""
        if self._in_flight is not None:
            self._deliver()
            if self._in_flight is not None:
                return False
        if self._async:
            return len(self._queue) <= self.config.chunk_threshold * self.chunk_length
        return not self._queue

    def submit(self, chunk: np.ndarray, clipped: np.ndarray, measured_ms: float) -> None:
        """A chunk ``(H, A)`` computed from this step's observation (``clipped``: ``(H,)``,
        which actions were out of bounds); ``measured_ms``: what the call took."""
        self.calls += 1
        chunk, clipped = chunk[: self.chunk_length], clipped[: self.chunk_length]
        self.chunk_length = max(1, len(chunk))  # the threshold is a fraction of real chunks
        if self._sync:  # the world waits: the chunk runs from now, nothing to schedule
            self.latencies_ms.append(measured_ms)
            self.delays.append(0)
            if len(chunk) == 1:  # a per-step policy: one action, no iterators
                self._queue.append((chunk[0], self.calls, bool(clipped[0])))
            else:
                self._queue.extend(zip(chunk, repeat(self.calls), clipped.tolist(), strict=False))
            return
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        latency = self._latency.sample(measured_ms, self._rng)
        # every episode awaits its first chunk: the robot starts when it is there
        delay = 0 if self.calls == 1 else delay_steps(latency, self.fps)
        self.latencies_ms.append(latency)
        self.delays.append(delay)
        self._in_flight = _InFlight(self.step + delay, self.step, chunk, clipped, self.calls)
        self._deliver()

    def _deliver(self) -> None:
        flight = self._in_flight
        if flight is None or flight.ready_at > self.step:
            return
        self._in_flight = None
        entries = zip(flight.chunk, repeat(flight.chunk_id), flight.clipped.tolist(), strict=False)
        if not self._async:  # runs from its first action, whatever the delay
            self._queue.extend(entries)
            return
        fresh = list(entries)[self.step - flight.origin :]  # actions for passed steps: dropped
        self.stale_chunks += not fresh
        merge = AGGREGATES[self.config.aggregate]
        queued = list(self._queue)
        merged = [
            (merge(old, new), chunk_id, old_clipped or new_clipped)
            for (old, _, old_clipped), (new, chunk_id, new_clipped) in zip(
                queued, fresh, strict=False
            )
        ]
        self._queue = deque(merged + queued[len(fresh) :] + fresh[len(queued) :])

    # -- what to execute ------------------------------------------------------------------
    def next_action(self) -> tuple[np.ndarray, bool]:
        """This step's action and whether it was clipped (a held action counts as not)."""
        if self._in_flight is not None:
            self._deliver()
        if self._queue:
            entry = self._queue.popleft()
            last = self._last
            if self._track_jumps and last is not None and entry[1] != last[1]:
                jump = entry[0] - last[0]
                self.jumps.append(math.sqrt(float(np.dot(jump, jump))))
            self._last = entry
            return entry[0], entry[2]
        self.idle_steps += 1
        if self.config.hold == "noop" and self.noop is not None:
            return self.noop, False
        if self._last is None:
            raise RuntimeError("nothing to hold before the first chunk")  # cannot happen
        return self._last[0], False

    def advance(self) -> None:
        """The control step was executed."""
        self.step += 1

    def metrics(self) -> dict[str, float]:
        """Per-episode numbers (``inference.*``; ``chunk.discontinuity`` for chunking
        policies with at least one chunk boundary)."""
        out = {
            "inference.calls": float(self.calls),
            "inference.idle_steps": float(self.idle_steps),
        }
        if self._async:
            out["inference.stale_chunks"] = float(self.stale_chunks)
        if self.latencies_ms:
            latencies = np.asarray(self.latencies_ms)  # once: numpy's cost is per call
            out["inference.latency_ms"] = float(latencies.mean())
            out["inference.latency_ms_max"] = float(latencies.max())
            out["inference.delay_steps"] = float(np.asarray(self.delays).mean())
        if self.jumps:
            out["chunk.discontinuity"] = float(np.mean(self.jumps))
        return out
