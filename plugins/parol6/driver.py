"""A small synchronous UDP client for ``parol6-server`` (see :mod:`.protocol`).

Motion commands go through :class:`~.safety.Arming` and take only a
:class:`~.safety.SafeTarget`, so an unarmed or unchecked command cannot be encoded at all.
E-stop and stop are always allowed and are sent even when a reply is not expected.
The client is thread-safe (the watchdog polls status from its own thread).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Sequence

from . import protocol as p
from .safety import Arming, SafeTarget


class ArmTimeoutError(TimeoutError):
    """The server did not answer within the deadline (a silent arm)."""


class ArmError(RuntimeError):
    """The server answered ERROR, or with a reply of the wrong kind."""


def _answers(code: p.Cmd, reply: p.Reply) -> bool:
    """Whether ``reply`` is the kind of answer ``code`` gets."""
    if code is p.Cmd.GET_STATUS:
        return isinstance(reply, p.Status)
    if code in p.QUERIES:
        return isinstance(reply, p.Response) and reply.query is code
    return isinstance(reply, p.Ok)


class Parol6Client:
    """Request/response over one UDP socket; replies are decoded strictly."""

    def __init__(
        self, host: str, port: int, arming: Arming, timeout_s: float = 0.3
    ) -> None:
        self.address = (host, int(port))
        self.arming = arming
        self.timeout_s = timeout_s
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.connect(self.address)
        self._lock = threading.RLock()
        self.last_status: p.Status | None = None
        self.last_status_at: float | None = None
        self.sent: list[p.Command] = []
        """Every command sent, in order (for logs and tests)."""

    # -- transport ------------------------------------------------------------------------
    def _drain(self) -> None:
        """Drop late replies of earlier requests so that replies are never mismatched."""
        self._sock.setblocking(False)
        try:
            while True:
                self._sock.recv(p.MAX_DATAGRAM)
        except (BlockingIOError, ConnectionRefusedError):
            pass
        finally:
            self._sock.setblocking(True)

    def _send(self, command: p.Command) -> None:
        if command.code in p.MOTION:
            self.arming.require(command.code.name)
        data = p.encode_command(command)
        self.sent.append(command)
        try:
            self._sock.send(data)
        except ConnectionRefusedError:  # an ICMP error from an earlier datagram
            self._sock.send(data)

    def request(self, command: p.Command) -> p.Reply:
        """Send ``command`` and return its decoded reply (or None for unacknowledged ones)."""
        with self._lock:
            self._drain()
            self._send(command)
            if command.code not in p.ACKED:
                return p.Ok()
            deadline = time.monotonic() + self.timeout_s
            try:
                while True:  # replies carry no request id: skip late ones of another kind
                    self._sock.settimeout(max(deadline - time.monotonic(), 1e-4))
                    reply = p.decode_reply(self._sock.recv(p.MAX_DATAGRAM))
                    if isinstance(reply, p.Error) or _answers(command.code, reply):
                        break
            except (TimeoutError, ConnectionRefusedError) as exc:
                raise ArmTimeoutError(
                    f"parol6-server at {self.address[0]}:{self.address[1]} did not answer "
                    f"{command.code.name} within {1000 * self.timeout_s:.0f} ms "
                    f"({exc or 'timeout'})"
                ) from None
            finally:
                self._sock.settimeout(None)
        if isinstance(reply, p.Error):
            raise ArmError(f"parol6-server refused {command.code.name}: {reply.message}")
        return reply

    def _expect_ok(self, code: p.Cmd, params: Sequence[float] = ()) -> None:
        reply = self.request(p.make_command(code, params))
        if not isinstance(reply, p.Ok):
            raise ArmError(f"{code.name}: expected OK, got {reply}")

    # -- queries --------------------------------------------------------------------------
    def ping(self) -> None:
        self._expect_ok(p.Cmd.PING)

    def status(self) -> p.Status:
        reply = self.request(p.make_command(p.Cmd.GET_STATUS))
        if not isinstance(reply, p.Status):
            raise ArmError(f"GET_STATUS: expected a STATUS reply, got {reply}")
        self.last_status, self.last_status_at = reply, time.monotonic()
        return reply

    def _query(self, code: p.Cmd) -> object:
        reply = self.request(p.make_command(code))
        if not isinstance(reply, p.Response) or reply.query is not code:
            raise ArmError(f"{code.name}: expected a RESPONSE to it, got {reply}")
        return reply.value

    def version(self) -> str:
        return str(self._query(p.Cmd.GET_VERSION))

    def homed(self) -> bool:
        return all(self._query(p.Cmd.GET_HOMED))  # type: ignore[arg-type]

    # -- motion (armed only) ---------------------------------------------------------------
    def enable(self) -> None:
        self._expect_ok(p.Cmd.ENABLE)

    def home(self) -> None:
        self._expect_ok(p.Cmd.HOME)

    def move_joints(self, target: SafeTarget, speed_pct: float) -> None:
        """A planned move to ``target`` (the episode's start pose)."""
        self._expect_ok(p.Cmd.MOVE_JOINT, self._params(target, speed_pct))

    def servo_joints(self, target: SafeTarget, speed_pct: float) -> None:
        """Stream one control-step target (not acknowledged)."""
        self.request(p.make_command(p.Cmd.SERVO_JOINT, self._params(target, speed_pct)))

    @staticmethod
    def _params(target: SafeTarget, speed_pct: float) -> list[float]:
        if not isinstance(target, SafeTarget):
            raise TypeError(f"motion needs a SafeTarget from SafetyGate, got {type(target)}")
        return [*target.joints, float(speed_pct)]

    # -- stopping (always allowed) -----------------------------------------------------------
    def stop(self) -> None:
        self._expect_ok(p.Cmd.STOP)

    def disable(self) -> None:
        self._expect_ok(p.Cmd.DISABLE)

    def estop(self) -> None:
        """Latch the e-stop; sent twice and without waiting, so a lost datagram is covered."""
        data = p.encode_command(p.make_command(p.Cmd.ESTOP))
        for _ in range(2):
            self.sent.append(p.Command(p.Cmd.ESTOP))
            with contextlib.suppress(OSError):
                self._sock.send(data)

    def reset_estop(self) -> None:
        self._expect_ok(p.Cmd.RESET_ESTOP)

    def close(self) -> None:
        self._sock.close()
