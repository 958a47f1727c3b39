"""Per-call deadlines: how long one policy call, env step or env reset may take.

The episode loop brackets every call it makes into a policy or an env on a :class:`CallClock`
(``start(kind, entries)`` ... ``end()``): which call is running, since when, until when, and
for which episodes (index and step). Writing it costs two ``struct.pack_into`` per call.
Who reads it decides what a deadline means:

* a worker process's clock lives in memory shared with the parent (:meth:`CallClock.shared`),
  which reads it while it waits for episodes: past the deadline it kills the worker, stores
  the episodes of that call as failed (``timed out after 30 s in policy.predict``) and starts
  a fresh worker for the rest of the job; a call past half its timeout is reported as slow.
  The parent needs nothing from the worker to do it, so a call hung in C code, holding the
  GIL, is bounded too;
* a Ray actor watches its own clock from the thread that streams the episodes;
* the inline executor has no one to watch it: in the main thread the clock arms ``SIGALRM``
  (:func:`alarms`), whose handler raises :class:`CallTimeout` in the hung call, which the loop
  records like any failure (a call hung in C code is not interrupted there). The timer is
  armed lazily: a call arms it only when it would fire after that call's deadline, and a call
  that returns leaves it armed (calls end long before their deadlines, and a deadline only
  grows from one call to the next), so a stream of quick calls makes no system call at all.
  When it fires, the handler raises in the call in progress if that call is past its
  deadline, else re-arms for that call's deadline (or for none when no call is running): every
  call is still interrupted at its deadline, at the cost of at most one early alarm per
  shortest timeout (``env.step``: 2 minutes by default) while calls run.

Which limit applies (:class:`CallTimeouts`): ``--call-timeout S`` (every call; 0: none) over
a policy preset's / suite's ``call_timeout_s`` (its policy calls / its env calls) over the
defaults below. Loading a policy or building an env (``policy.load``, ``env.make``: imports,
downloads, assets) is not bounded, only reported as slow after a minute.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import signal
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_POLICY_S = 300.0
"""A policy call (``policy.predict``, ``policy.reset``): a first GPU call may compile."""
DEFAULT_ENV_RESET_S = 300.0
"""Resetting the env (``env.reset``, with the settle steps), ``env.close``."""
DEFAULT_ENV_STEP_S = 120.0
"""One env step (``env.step``, ``env.observe_chunk``)."""
UNBOUNDED_SLOW_S = 60.0
"""A call without a timeout (``policy.load``, ``env.make``) is reported as slow after this
long."""

KINDS = (
    "",
    "policy.load",
    "policy.reset",
    "policy.predict",
    "env.make",
    "env.reset",
    "env.step",
    "env.close",
)
"""Call kinds; the index is the code on the clock (0: no call running)."""

MAX_ENTRIES = 256
"""Episodes named per call (a larger batch names its first 256)."""
_HEAD = struct.Struct("<QIIddd")  # seq, kind code, entries, started, deadline, timeout
_ENTRY = struct.Struct("<qq")  # episode index, step
_SEQ = struct.Struct("<Q")
_IDLE = struct.Struct("<QI")  # seq, kind code 0
SIZE = _HEAD.size + MAX_ENTRIES * _ENTRY.size


class CallTimeout(BaseException):
    """Raised in the hung call by the inline executor's alarm (a BaseException: a policy's
    ``except Exception`` must not swallow it)."""

    def __init__(self, kind: str, timeout_s: float) -> None:
        super().__init__(timed_out(kind, timeout_s))
        self.kind = kind
        self.timeout_s = timeout_s


def timed_out(kind: str, timeout_s: float) -> str:
    """The failure reason of an episode whose call hit its deadline."""
    return f"timed out after {timeout_s:g} s in {kind}"


@dataclass(frozen=True)
class CallTimeouts:
    """The limit of each kind of call (None: no limit)."""

    policy_s: float | None = DEFAULT_POLICY_S
    env_reset_s: float | None = DEFAULT_ENV_RESET_S
    env_step_s: float | None = DEFAULT_ENV_STEP_S

    @classmethod
    def resolve(
        cls, override: float | None, policy: float | None, env: float | None
    ) -> CallTimeouts:
        """``override`` (``--call-timeout``; 0: no limit) for every call, else the preset's
        ``policy`` limit and the suite's ``env`` limit (reset and step), else the defaults."""
        if override is not None:
            limit = float(override) or None
            return cls(limit, limit, limit)
        return cls(
            float(policy) if policy else DEFAULT_POLICY_S,
            float(env) if env else DEFAULT_ENV_RESET_S,
            float(env) if env else DEFAULT_ENV_STEP_S,
        )

    def of(self, kind: str) -> float | None:
        if kind in ("policy.load", "env.make"):
            return None
        if kind.startswith("policy."):
            return self.policy_s
        if kind == "env.step":
            return self.env_step_s
        return self.env_reset_s


@dataclass(frozen=True)
class Call:
    """The call running on a clock, as read from it."""

    seq: int
    kind: str
    started: float
    """``time.monotonic()`` at its start (the same clock in every process of the host)."""
    deadline: float
    """``started + timeout``; ``inf`` without a timeout."""
    timeout_s: float | None
    entries: tuple[tuple[int, int], ...]
    """``(episode index, step)`` of each episode the call is for (none for a job's calls)."""

    @property
    def episodes(self) -> list[int]:
        return [index for index, _ in self.entries]

    def slow_at(self) -> float:
        """When the call is reported as slow: half its timeout, or after a minute."""
        return self.started + (self.timeout_s / 2 if self.timeout_s else UNBOUNDED_SLOW_S)

    def describe(self, now: float) -> str:
        """``policy.predict of episode 3 has run for 31 s (timeout 60 s)``."""
        which = ""
        if self.entries:
            shown = ", ".join(str(i) for i in self.episodes[:8])
            more = " ..." if len(self.entries) > 8 else ""
            which = f" of episode{'s' if len(self.entries) > 1 else ''} {shown}{more}"
        limit = f"timeout {self.timeout_s:g} s" if self.timeout_s else "no timeout"
        took = now - self.started
        return f"{self.kind}{which} has run for {took:.{1 if took < 10 else 0}f} s ({limit})"


class CallClock:
    """The call in progress, in a fixed-layout buffer (see the module docstring).

    A writer (the worker's loop) and any number of readers; a reader retries while the
    sequence number is odd (a write in progress) or changed under it.
    """

    def __init__(self, buffer: Any = None) -> None:
        self.buffer = buffer if buffer is not None else bytearray(SIZE)
        self.timeouts = CallTimeouts()
        self.alarm = False
        """Bound the calls with ``SIGALRM`` (the inline executor, main thread: :func:`alarms`)."""
        self._seq = 0
        self._alarm_at = math.inf
        """When the armed ``SIGALRM`` fires (``time.monotonic()``; inf: not armed)."""

    @property
    def timeouts(self) -> CallTimeouts:
        """The limits of the calls started from now on."""
        return self._timeouts

    @timeouts.setter
    def timeouts(self, timeouts: CallTimeouts) -> None:
        self._timeouts = timeouts
        self._limits = {kind: (code, timeouts.of(kind)) for code, kind in enumerate(KINDS)}

    @classmethod
    def shared(cls, fd: int) -> CallClock:
        """A clock in the file ``fd`` (at least :data:`SIZE` bytes), mapped shared: a worker
        writes it, its parent reads it."""
        return cls(mmap.mmap(fd, SIZE))

    def start(self, kind: str, entries: Sequence[tuple[int, int]] = ()) -> None:
        """A call of ``kind`` starts, for ``entries`` ``(episode index, step)``."""
        code, timeout = self._limits[kind]
        now = time.monotonic()
        buffer, seq = self.buffer, self._seq + 2
        n = min(len(entries), MAX_ENTRIES)
        deadline = now + timeout if timeout else math.inf
        _HEAD.pack_into(buffer, 0, seq - 1, code, n, now, deadline, timeout or 0.0)
        offset = _HEAD.size  # the sequence number is odd while the clock is written
        for index, step in entries[:n] if n < len(entries) else entries:
            _ENTRY.pack_into(buffer, offset, index, step)
            offset += _ENTRY.size
        _SEQ.pack_into(buffer, 0, seq)
        self._seq = seq
        if self.alarm and deadline < self._alarm_at:  # else the armed alarm fires first
            signal.setitimer(signal.ITIMER_REAL, timeout)
            self._alarm_at = deadline

    def end(self) -> None:
        """The call returned (or raised)."""
        buffer, seq = self.buffer, self._seq + 2
        _IDLE.pack_into(buffer, 0, seq - 1, 0)
        _SEQ.pack_into(buffer, 0, seq)
        self._seq = seq

    def on_alarm(self) -> None:
        """``SIGALRM`` fired (see the module docstring): raise :class:`CallTimeout` in the
        call in progress if it is past its deadline, else re-arm for its deadline."""
        call, now = self.read(), time.monotonic()
        self._alarm_at = math.inf
        if call is None or not call.timeout_s:
            return  # no call, or an unbounded one: the next bounded call arms it
        if now >= call.deadline - 0.01:
            raise CallTimeout(call.kind, call.timeout_s)
        signal.setitimer(signal.ITIMER_REAL, max(call.deadline - now, 0.001))
        self._alarm_at = call.deadline

    def disarm(self) -> None:
        """Stop bounding calls with ``SIGALRM`` (the end of :func:`alarms`)."""
        self.alarm = False
        self._alarm_at = math.inf
        signal.setitimer(signal.ITIMER_REAL, 0)

    def read(self) -> Call | None:
        """The call in progress, or None (no call, or the writer died in the middle of
        writing the clock)."""
        buffer = self.buffer
        for _ in range(100):
            seq, code, n, started, deadline, timeout = _HEAD.unpack_from(buffer, 0)
            entries = tuple(
                _ENTRY.unpack_from(buffer, _HEAD.size + i * _ENTRY.size)
                for i in range(min(n, MAX_ENTRIES))
            )
            if seq % 2 == 0 and _SEQ.unpack_from(buffer, 0)[0] == seq:
                if not code or code >= len(KINDS):
                    return None
                return Call(seq, KINDS[code], started, deadline, timeout or None, entries)
        return None

    def close(self) -> None:
        if isinstance(self.buffer, mmap.mmap):
            with contextlib.suppress(BufferError, ValueError):
                self.buffer.close()


class Bracket:
    """``with clock_call(clock, kind, entries):`` without a generator's cost per step."""

    __slots__ = ("clock", "entries", "kind")

    def __init__(self, clock: CallClock, kind: str, entries: Sequence[tuple[int, int]]) -> None:
        self.clock, self.kind, self.entries = clock, kind, entries

    def __enter__(self) -> None:
        self.clock.start(self.kind, self.entries)

    def __exit__(self, *exc: object) -> None:
        self.clock.end()


NO_CLOCK = contextlib.nullcontext()


@contextlib.contextmanager
def alarms(clock: CallClock) -> Iterator[None]:
    """Bound this thread's calls on ``clock`` with ``SIGALRM`` (main thread only; elsewhere
    nothing changes): a call past its deadline raises :class:`CallTimeout` where it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        clock.on_alarm()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    pending, _ = signal.setitimer(signal.ITIMER_REAL, 0)  # someone else's alarm: kept aside
    since = time.monotonic()
    clock.alarm = True
    clock._alarm_at = math.inf
    try:
        yield
    finally:
        clock.disarm()
        signal.signal(signal.SIGALRM, previous)
        if pending:  # re-armed for what is left of it (due now if it is past)
            left = pending - (time.monotonic() - since)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))
