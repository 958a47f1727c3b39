"""Safety for the real arm, enforced here and not left to the policy.

* :class:`SafetyGate` turns a policy action into a :class:`SafeTarget`: non-finite values are
  rejected, every joint is clamped to its limits shrunk by a margin and to a maximum change per
  step (the tighter of ``max_step_deg`` and ``max_speed_dps / control_hz``). The driver's motion
  methods accept only a ``SafeTarget``, and only the gate can make one.
* :class:`Arming` says whether motion commands may be sent at all.
* :class:`EStopLatch` stays engaged after an e-stop until an explicit reset.
* :class:`Watchdog` calls ``trip(reason)`` (the env sends e-stop) when the policy has not asked
  for a step, or the arm has not reported status, within the configured deadline.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np

JOINT_LIMITS_DEG = (
    (-123.05, 123.05),
    (-145.01, -3.375),
    (107.87, 287.87),
    (-105.47, 105.47),
    (-90.0, 90.0),
    (0.0, 360.0),
)
"""PAROL6 joint limits in degrees (J1..J6), from the PAROL6 documentation."""
STANDBY_DEG = (90.0, -90.0, 180.0, 0.0, 0.0, 180.0)
"""The documented standby pose; the default start pose of every episode."""


class SafetyError(RuntimeError):
    """Base class: the env refused to move, or stopped the arm."""


class UnsafeActionError(SafetyError):
    """An action that cannot be made safe (NaN, wrong shape)."""


class NotArmedError(SafetyError):
    """A motion command was requested while the run is not armed."""


class EStopLatchedError(SafetyError):
    """The e-stop is latched; it needs an explicit reset."""


class WatchdogError(SafetyError):
    """The watchdog stopped the arm (stale status or stalled policy)."""


class OutOfLimitsError(SafetyError):
    """The measured pose is outside the hard limits, or clamping at the limits persists."""


CAPS: dict[str, tuple[float, float]] = {
    "margin_deg": (1.0, 10.0),
    "max_step_deg": (0.05, 5.0),
    "max_speed_dps": (1.0, 60.0),
    "speed_pct": (1.0, 50.0),
    "control_hz": (1.0, 100.0),
    "status_timeout_ms": (20.0, 1000.0),
    "policy_timeout_ms": (20.0, 5000.0),
    "max_limit_clamps": (1.0, 50.0),
    "confirm_move_deg": (1.0, 90.0),
}
"""Hard caps ``[low, high]`` of every safety option: options outside are refused when parsed
(an options file cannot relax the arm's limits without bound)."""


@dataclass(frozen=True)
class SafetyConfig:
    """Limits and deadlines; every number is an env option of the same name (see CAPS)."""

    margin_deg: float = 2.0
    max_step_deg: float = 2.0
    max_speed_dps: float = 30.0
    speed_pct: float = 20.0
    """Servo speed sent with every streamed target, percent of the server's joint speed."""
    control_hz: float = 10.0
    status_timeout_ms: float = 300.0
    policy_timeout_ms: float = 2000.0
    max_limit_clamps: int = 10
    """Consecutive steps clamped at the joint limits before the env e-stops (a policy in the
    wrong units, radians for degrees, is stopped instead of pinned at a limit)."""
    confirm_move_deg: float = 30.0
    """Planned moves (the start pose) longer than this on any joint ask the operator first."""

    def __post_init__(self) -> None:
        for name, (low, high) in CAPS.items():
            value = getattr(self, name)
            if not (isinstance(value, int | float) and low <= value <= high):
                raise ValueError(
                    f"safety option {name!r} must be in [{low:g}, {high:g}] (hard cap), "
                    f"got {value!r}"
                )
        if self.policy_timeout_ms <= 2 * 1000 / self.control_hz:
            raise ValueError(
                f"safety option 'policy_timeout_ms' must exceed two control periods "
                f"({2000 / self.control_hz:g} ms at control_hz {self.control_hz:g}), "
                f"got {self.policy_timeout_ms:g}"
            )

    @property
    def step_limit_deg(self) -> float:
        """Largest change of any joint in one control step."""
        return min(self.max_step_deg, self.max_speed_dps / self.control_hz)

    def describe(self) -> str:
        """The effective limits, one line (shown at the ARM prompt)."""
        return ", ".join(f"{f.name}={getattr(self, f.name):g}" for f in fields(self))


_TOKEN = object()


@dataclass(frozen=True, init=False)
class SafeTarget:
    """Joint angles (deg) that passed the gate; only :class:`SafetyGate` constructs one."""

    joints: tuple[float, ...]
    clamped: bool
    limited: bool
    """Clamped by the joint limits (not only by the step limit)."""

    def __init__(
        self, joints: tuple[float, ...], clamped: bool, limited: bool = False,
        _token: object = None,
    ) -> None:
        if _token is not _TOKEN:
            raise TypeError("a SafeTarget is made by SafetyGate.filter, not directly")
        object.__setattr__(self, "joints", joints)
        object.__setattr__(self, "clamped", clamped)
        object.__setattr__(self, "limited", limited)


class SafetyGate:
    """Clamps targets to the limits with a margin and to a maximum change per step."""

    def __init__(
        self, config: SafetyConfig, limits: Sequence[tuple[float, float]] = JOINT_LIMITS_DEG
    ) -> None:
        self.config = config
        arr = np.asarray(limits, dtype=np.float64)
        self.hard_low, self.hard_high = arr[:, 0], arr[:, 1]
        self.low = arr[:, 0] + config.margin_deg
        self.high = arr[:, 1] - config.margin_deg
        if np.any(self.low >= self.high):
            raise ValueError(f"margin {config.margin_deg} deg leaves no room within the limits")

    def filter(
        self,
        action: object,
        current: Sequence[float],
        previous: Sequence[float] | None = None,
        dt: float | None = None,
    ) -> SafeTarget:
        """A safe target towards ``action``: within the step limit of the measured ``current``
        joint angles and of the ``previous`` command (so the command stream itself never jumps,
        even while the arm lags behind it). With ``dt`` (seconds since the previous command)
        the limit is ``min(max_step_deg, max_speed_dps * dt)``, else :attr:`step_limit_deg`.
        The final target always lies within the hard joint limits; a measured pose outside
        them raises :class:`OutOfLimitsError` (the env e-stops)."""
        try:
            target = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise UnsafeActionError(f"action is not numeric: {exc}") from None
        if target.shape != self.low.shape:
            raise UnsafeActionError(
                f"action must be {self.low.size} joint angles (deg) of shape "
                f"{self.low.shape}, found shape {target.shape}"
            )
        if not np.all(np.isfinite(target)):
            raise UnsafeActionError(f"action has non-finite values: {target.tolist()}")
        here = np.asarray(current, dtype=np.float64)
        if here.shape != self.low.shape or not np.all(np.isfinite(here)):
            raise UnsafeActionError(f"current joint state is invalid: {here.tolist()}")
        self.check_measured(here)
        safe = np.clip(target, self.low, self.high)
        limited = not np.allclose(safe, target, rtol=0, atol=1e-9)
        step = self.config.step_limit_deg
        if dt is not None:
            step = min(self.config.max_step_deg, self.config.max_speed_dps * max(dt, 0.0))
        lo, hi = here - step, here + step
        if previous is not None:
            prev = np.asarray(previous, dtype=np.float64)
            lo2, hi2 = np.maximum(lo, prev - step), np.minimum(hi, prev + step)
            overlap = lo2 <= hi2
            lo, hi = np.where(overlap, lo2, lo), np.where(overlap, hi2, hi)
        safe = np.clip(safe, lo, hi)
        # a joint already outside the margin may only move back inside, never further out
        safe = np.where(here < self.low, np.maximum(safe, here), safe)
        safe = np.where(here > self.high, np.minimum(safe, here), safe)
        safe = np.clip(safe, self.hard_low, self.hard_high)  # whatever happened above
        clamped = not np.allclose(safe, target, rtol=0, atol=1e-9)
        return SafeTarget(tuple(float(v) for v in safe), clamped, limited, _TOKEN)

    def check_measured(self, joints: Sequence[float]) -> None:
        """OutOfLimitsError when a measured pose lies outside the hard joint limits."""
        here = np.asarray(joints, dtype=np.float64)
        bad = np.flatnonzero((here < self.hard_low) | (here > self.hard_high))
        if bad.size:
            j = int(bad[0])
            raise OutOfLimitsError(
                f"measured J{j + 1} = {here[j]:.2f} deg is outside its hard limits "
                f"[{self.hard_low[j]:g}, {self.hard_high[j]:g}] (wrong angle convention or a "
                f"fault): stopping"
            )

    def checked_pose(self, joints: Sequence[float]) -> SafeTarget:
        """A planned-move target (the start pose): finite and inside the margin, or an error."""
        arr = np.asarray(joints, dtype=np.float64)
        if arr.shape != self.low.shape or not np.all(np.isfinite(arr)) or not self.within(arr):
            raise UnsafeActionError(
                f"pose {arr.tolist()} is not 6 finite joint angles within the limits less "
                f"{self.config.margin_deg} deg margin (low {self.low.tolist()}, "
                f"high {self.high.tolist()})"
            )
        return SafeTarget(tuple(float(v) for v in arr), False, False, _TOKEN)

    def within(self, joints: Sequence[float]) -> bool:
        """Whether ``joints`` lie inside the limits shrunk by the margin."""
        arr = np.asarray(joints, dtype=np.float64)
        return bool(np.all(arr >= self.low) and np.all(arr <= self.high))


ARM_PHRASE = "ARM"
_CONFIRMED: set[str] = set()
"""Arming keys (:func:`arming_key`) the operator confirmed in this process."""


def arming_key(host: str, port: int, config: SafetyConfig, start: Sequence[float]) -> str:
    """What one confirmation covers: this arm, these limits and this start pose, together
    (a served env confirmed once does not accept another client's looser options)."""
    pose = ",".join(f"{float(v):g}" for v in start)
    return f"{host}:{port} | {config.describe()} | start_joints=[{pose}]"


def confirm_once(key: str, confirm: Callable[[str, str], bool]) -> bool:
    """Ask ``confirm(ARM_PHRASE, key)`` unless ``key`` was confirmed before in this process."""
    if key not in _CONFIRMED and confirm(ARM_PHRASE, key):
        _CONFIRMED.add(key)
    return key in _CONFIRMED


class Arming:
    """Whether motion may be commanded: fake runs always, real runs only when armed.

    A real run is armed when it was started with ``--armed`` (``requested``) *and* the operator
    typed the confirmation phrase on a terminal (``confirm``, asked once per process and
    :func:`arming_key`); both are checked at :meth:`arm`.
    """

    PHRASE = ARM_PHRASE

    def __init__(
        self, fake: bool, requested: bool, confirm: Callable[[str, str], bool], target: str = ""
    ) -> None:
        self.fake = fake
        self.requested = requested
        self._confirm = confirm
        self.target = target
        self.armed = fake

    def arm(self) -> None:
        if self.armed:
            return
        if not self.requested:
            raise NotArmedError(
                "the PAROL6 env is not armed: nothing moves unless the run is started with "
                "--armed (and confirmed at the terminal); use --fake for a dry run"
            )
        if not confirm_once(self.target, self._confirm):
            raise NotArmedError(f"arming was not confirmed (expected {self.PHRASE!r} typed)")
        self.armed = True

    def require(self, what: str) -> None:
        if not self.armed:
            raise NotArmedError(f"refusing to send {what}: the run is not armed")


class EStopLatch:
    """Engaged by any e-stop; released only by :meth:`release` (an explicit reset).

    One latch per arm (:func:`arm_latch`), shared by every env object of the process that
    drives it, so a rebuilt env finds the e-stop its predecessor latched."""

    def __init__(self) -> None:
        self.engaged = False
        self.reason = ""
        self.homed = False
        """Whether this process homed the arm (homing is asked for once per arm)."""
        self.verified = False
        """Whether the start-up e-stop check passed on this arm (once per process)."""
        self._lock = threading.Lock()

    def engage(self, reason: str) -> None:
        with self._lock:
            if not self.engaged:
                self.engaged, self.reason = True, reason

    def release(self) -> None:
        with self._lock:
            self.engaged, self.reason = False, ""

    def check(self) -> None:
        if self.engaged:
            raise EStopLatchedError(f"e-stop latched ({self.reason}); reset it before moving")


_LATCHES: dict[str, EStopLatch] = {}
_LATCHES_LOCK = threading.Lock()


def arm_latch(address: str) -> EStopLatch:
    """The process-wide e-stop latch of the arm at ``address`` (``host:port``)."""
    with _LATCHES_LOCK:
        return _LATCHES.setdefault(address, EStopLatch())


class Watchdog:
    """A thread that trips when ``policy`` or ``status`` heartbeats are older than their limit.

    ``poll`` (optional) asks the arm for its status every ``poll_period_s``; a poll that returns
    counts as a status heartbeat, so a slow policy does not look like a silent arm.
    """

    def __init__(
        self,
        policy_timeout_s: float,
        status_timeout_s: float,
        trip: Callable[[str], None],
        poll: Callable[[], None] | None = None,
        period_s: float = 0.01,
        poll_period_s: float = 0.05,
    ) -> None:
        self.policy_timeout_s = policy_timeout_s
        self.status_timeout_s = status_timeout_s
        self._trip = trip
        self._poll = poll
        self.period_s = period_s
        self.poll_period_s = poll_period_s
        self._polled_at = 0.0
        self.tripped: str | None = None
        self.tripped_at: float | None = None
        self._policy_at = self._status_at = time.monotonic()
        self._active = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="parol6-watchdog", daemon=True)
        self._thread.start()

    def arm(self) -> None:
        """Start watching (at the start of an episode)."""
        now = time.monotonic()
        self._policy_at = self._status_at = now
        self.tripped = self.tripped_at = None
        self._active = True

    def disarm(self) -> None:
        self._active = False

    def policy_alive(self) -> None:
        self._policy_at = time.monotonic()

    def status_alive(self) -> None:
        self._status_at = time.monotonic()

    def check(self) -> None:
        if self.tripped:
            raise WatchdogError(f"watchdog stopped the arm: {self.tripped}")

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            if not self._active or self.tripped:
                continue
            if self._poll is not None and time.monotonic() - self._polled_at > self.poll_period_s:
                self._polled_at = time.monotonic()
                try:  # asks the arm for status between steps (a slow policy is not a silent arm)
                    self._poll()
                    self.status_alive()
                except Exception:
                    pass  # staleness trips below
            now = time.monotonic()
            reason = None
            if now - self._policy_at > self.policy_timeout_s:
                reason = f"policy stalled for more than {1000 * self.policy_timeout_s:.0f} ms"
            elif now - self._status_at > self.status_timeout_s:
                reason = f"no arm status for more than {1000 * self.status_timeout_s:.0f} ms"
            if reason:
                self.tripped, self.tripped_at = reason, now
                self._active = False
                with contextlib.suppress(Exception):  # best effort from this thread
                    self._trip(reason)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
