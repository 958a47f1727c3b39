"""Who runs a run: the process that marked it ``running``, noted on the run while it runs.

A run is ``running`` only while the process running it lives. While it is, its ``error`` is
this process's note (:meth:`Owner.note`)::

    running in pid 4242 on host lab-3 [5d1c0e2a:81234567] with the inline executor;
    in flight: episode 1 (seed 1001, init state 1)

(the bracket tells the process apart from a later one with the same pid: boot and start
time). An executor that runs episodes in this process (``inline``) has the runner keep the
episodes in flight in the note, so that when a policy ends the process (``os._exit``, a
segfault) the next command on the store finds the run ``running`` with its owner dead
(:meth:`Owner.alive` is False) and stores those episodes as failed, with
:func:`died_reason`; the run becomes ``interrupted``. The episodes in flight of another
executor's dead runner are run again: its workers, not its policies, ran them.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from functools import cache

_NOTE = re.compile(
    r"^running in pid (?P<pid>\d+) on host (?P<host>\S+) \[(?P<token>[^\]]*)\] "
    r"with the (?P<executor>[\w-]+) executor(?:; in flight: (?P<flight>.*))?$"
)
_EPISODE = re.compile(r"episode (\d+) \(seed (-?\d+), init state (none|-?\d+)\)")


@dataclass(frozen=True)
class InFlight:
    """An episode started and not finished: its index, seed and init state."""

    index: int
    seed: int
    init_state_id: int | None


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()[:8]
    except OSError:
        return ""


def process_token(pid: int) -> str | None:
    """``boot:start`` of process ``pid`` (Linux), ``""`` where it cannot be read, or None
    when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20:
        return ""
    if fields[0] == "Z":  # a zombie: it died, its parent has not reaped it yet
        return None
    return f"{_boot_id()}:{fields[19]}"


@cache
def _own_token() -> str:
    return process_token(os.getpid()) or ""


@dataclass(frozen=True)
class Owner:
    """A runner process: pid, host, identity token, its executor, the episodes in flight."""

    pid: int
    host: str
    token: str
    executor: str
    in_flight: tuple[InFlight, ...] = ()

    @classmethod
    def me(cls, executor: str, in_flight: tuple[InFlight, ...] = ()) -> Owner:
        return cls(os.getpid(), socket.gethostname(), _own_token(), executor, in_flight)

    def note(self) -> str:
        text = (
            f"running in pid {self.pid} on host {self.host} [{self.token}] "
            f"with the {self.executor} executor"
        )
        if self.in_flight:
            text += "; in flight: " + ", ".join(
                f"episode {e.index} (seed {e.seed}, init state "
                f"{'none' if e.init_state_id is None else e.init_state_id})"
                for e in self.in_flight
            )
        return text

    @classmethod
    def parse(cls, text: str | None) -> Owner | None:
        """The owner a ``running`` run's note names, or None (no note of this module)."""
        match = _NOTE.match(text or "")
        if match is None:
            return None
        episodes = tuple(
            InFlight(int(i), int(seed), None if init == "none" else int(init))
            for i, seed, init in _EPISODE.findall(match["flight"] or "")
        )
        return cls(
            int(match["pid"]), match["host"], match["token"], match["executor"], episodes
        )

    def alive(self) -> bool | None:
        """Whether the owner still runs; None when this host cannot tell (another host)."""
        if self.host != socket.gethostname():
            return None
        token = process_token(self.pid)
        if token is None:
            return False
        if token and self.token:
            return token == self.token
        try:  # no /proc: is the pid there at all
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def died_reason(owner: Owner) -> str:
    """The failure reason of an episode in flight when its in-process runner died."""
    return (
        f"the vlabench process (pid {owner.pid}) died during this episode "
        f"({owner.executor} executor)"
    )
