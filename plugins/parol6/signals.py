"""SIGTERM, SIGHUP and SIGINT e-stop the arm at once, then do what they did before.

A dropped SSH session (SIGHUP), a ``kill`` (SIGTERM) and Ctrl-C (SIGINT) must not leave the
arm enabled with nobody watching. Every live env registers here; the handler, installed in the
main thread only, calls each env's ``emergency`` (which sends the confirmed e-stop) and then
chains to the handler that was there before: the runner's (which raises its own interrupt),
Python's default for SIGINT (KeyboardInterrupt), or exit status ``128 + signal``.
What no process can catch (SIGKILL, a crash, a cut cable) needs the hardware e-stop: the
pinned server has no servo/heartbeat deadman of its own.
"""

from __future__ import annotations

import signal
import threading
import weakref
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
_ENVS: weakref.WeakSet[Any] = weakref.WeakSet()
_PREVIOUS: dict[int, Any] = {}
_LOCK = threading.Lock()


def _handler(signum: int, frame: Any) -> None:
    name = signal.Signals(signum).name
    for env in list(_ENVS):
        env.emergency_on_signal(name)
    previous = _PREVIOUS.get(signum)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    elif signum == signal.SIGINT:
        raise KeyboardInterrupt
    else:
        raise SystemExit(128 + signum)


def register(env: Any) -> None:
    """Watch ``env`` (it has ``emergency_on_signal(name)``); installs the handlers once."""
    with _LOCK:
        _ENVS.add(env)
        if _PREVIOUS or threading.current_thread() is not threading.main_thread():
            return
        for sig in SIGNALS:
            _PREVIOUS[sig] = signal.getsignal(sig)
            signal.signal(sig, _handler)


def unregister(env: Any) -> None:
    """Stop watching ``env``; the last one restores the previous handlers (if still ours)."""
    with _LOCK:
        _ENVS.discard(env)
        if _ENVS or not _PREVIOUS:
            return
        if threading.current_thread() is threading.main_thread():
            for sig, previous in _PREVIOUS.items():
                if signal.getsignal(sig) is _handler:
                    signal.signal(sig, previous)
            _PREVIOUS.clear()


