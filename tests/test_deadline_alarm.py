"""The inline executor's ``SIGALRM``: armed lazily, yet every call is cut at its deadline."""

from __future__ import annotations

import signal
import time

import pytest

from vlabench.runtime import deadlines
from vlabench.runtime.deadlines import CallClock, CallTimeout, CallTimeouts, alarms


def test_quick_calls_arm_the_timer_once(monkeypatch: pytest.MonkeyPatch) -> None:
    armed: list[float] = []
    real = signal.setitimer

    def counting(which: int, seconds: float, interval: float = 0.0) -> tuple[float, float]:
        if seconds:
            armed.append(seconds)
        return real(which, seconds, interval)

    monkeypatch.setattr(deadlines.signal, "setitimer", counting)
    clock = CallClock()
    clock.timeouts = CallTimeouts.resolve(None, 30, 20)
    with alarms(clock):
        for step in range(100):
            for kind in ("policy.predict", "env.step"):
                with deadlines.Bracket(clock, kind, [(0, step)]):
                    pass
        # the first policy call's, then the first env step's (sooner); every later
        # deadline comes after the armed one
        assert armed == [30.0, 20.0]
    left = signal.getitimer(signal.ITIMER_REAL)[0]  # ours is gone at the end (what is left
    assert left == 0 or left > 30  # is an alarm set before, e.g. pytest-timeout's, restored)


def test_an_earlier_calls_alarm_does_not_cut_a_later_call_short() -> None:
    clock = CallClock()
    clock.timeouts = CallTimeouts.resolve(None, None, 0.4)
    with alarms(clock):
        with deadlines.Bracket(clock, "env.step", [(0, 0)]):
            pass  # arms the timer for 0.4 s from now, and leaves it armed
        time.sleep(0.2)
        started = time.monotonic()
        with (
            pytest.raises(CallTimeout, match=r"timed out after 0\.4 s in env\.step"),
            deadlines.Bracket(clock, "env.step", [(1, 0)]),
        ):
            time.sleep(10)  # the first alarm comes 0.2 s in: re-armed, not raised
        took = time.monotonic() - started
        assert took >= 0.39, took
        assert took < 5
        time.sleep(0.5)  # nothing left armed: no alarm while idle raises
    assert clock.read() is None
