"""A small synchronous UDP client for ``parol6-server`` (see :mod:`.protocol`).

Motion commands go through :class:`~.safety.Arming` and take only a
:class:`~.safety.SafeTarget`, so an unarmed or unchecked command cannot be encoded at all; the
arm's e-stop latch is checked inside the send, under the lock, for every motion code. The
e-stop has its own socket (never waits for another request's lock) and is resent until the
server confirms it (:meth:`Parol6Client.estop`). The client is thread-safe (the watchdog polls
status from its own thread).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Sequence

from . import protocol as p
from .safety import Arming, EStopLatch, SafeTarget, SafetyError

ESTOP_RESEND_S = 0.03
"""Resend period of an unconfirmed e-stop (20-50 ms)."""
ESTOP_BOUND_S = 1.0
"""How long an e-stop is resent before the client gives up and alerts."""


class ArmTimeoutError(TimeoutError):
    """The server did not answer within the deadline (a silent arm)."""


class ArmError(RuntimeError):
    """The server answered ERROR, or with a reply of the wrong kind."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class EStopUnconfirmedError(SafetyError):
    """The server never confirmed the e-stop: the operator must use the hardware e-stop."""


def _socket(address: tuple[str, int]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(address)
    return sock


class Parol6Client:
    """Request/response over one UDP socket; replies are decoded strictly and matched to
    their request (kind, query tag, and the increasing index of queued commands)."""

    def __init__(
        self, host: str, port: int, arming: Arming, latch: EStopLatch, timeout_s: float = 0.3
    ) -> None:
        self.address = (host, int(port))
        self.arming = arming
        self.latch = latch
        self.timeout_s = timeout_s
        self._sock = _socket(self.address)
        self._estop_sock = _socket(self.address)
        self._lock = threading.RLock()
        self._estop_lock = threading.Lock()
        self._last_index = -1
        self.last_status: p.Status | None = None
        self.last_status_at: float | None = None
        self.sent: list[p.Command] = []
        """Every command sent, in order (for logs and tests)."""
        self.estop_confirmed_s: float | None = None
        """Seconds from the first ESTOP datagram to its confirmation (last e-stop)."""
        self.estop_sends = 0
        """ESTOP datagrams sent for the last e-stop."""

    # -- transport ------------------------------------------------------------------------
    @staticmethod
    def _drain(sock: socket.socket) -> None:
        """Drop late replies of earlier requests so that replies are never mismatched."""
        sock.setblocking(False)
        try:
            while True:
                sock.recv(p.MAX_DATAGRAM)
        except (BlockingIOError, ConnectionRefusedError):
            pass
        finally:
            sock.setblocking(True)

    def _send(self, command: p.Command, sock: socket.socket | None = None) -> None:
        if command.code in p.MOTION:
            self.arming.require(command.code.name)
            if command.code is not p.Cmd.RESET:
                self.latch.check()  # under the caller's lock: nothing moves after an e-stop
        data = p.encode_command(command)
        self.sent.append(command)
        sock = sock or self._sock
        try:
            sock.send(data)
        except ConnectionRefusedError:  # an ICMP error from an earlier datagram
            sock.send(data)

    def request(self, command: p.Command) -> p.Reply:
        """Send ``command`` and return its decoded reply (Ok() for unanswered ones)."""
        with self._lock:
            self._drain(self._sock)
            self._send(command)
            if command.code in p.UNANSWERED:
                return p.Ok()
            deadline = time.monotonic() + self.timeout_s
            try:
                while True:  # no request ids on this wire: skip replies that are not ours
                    self._sock.settimeout(max(deadline - time.monotonic(), 1e-4))
                    reply = p.decode_reply(self._sock.recv(p.MAX_DATAGRAM))
                    if not p.answers(command.code, reply):
                        continue
                    if isinstance(reply, p.Ok) and reply.index is not None:
                        if reply.index <= self._last_index:
                            continue  # a late acknowledgement of an earlier queued command
                        self._last_index = reply.index
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
            raise ArmError(f"parol6-server refused {command.code.name}: {reply.message}",
                           reply.code)
        return reply

    # -- queries --------------------------------------------------------------------------
    def ping(self) -> int:
        """``hardware_connected`` (1 when the server talks to a board, 0 in simulation)."""
        reply = self.request(p.make_command(p.Cmd.PING))
        assert isinstance(reply, p.Ping)
        return reply.hardware_connected

    def is_simulator(self) -> bool:
        reply = self.request(p.make_command(p.Cmd.IS_SIMULATOR))
        assert isinstance(reply, p.Simulator)
        return reply.active

    def status(self) -> p.Status:
        reply = self.request(p.make_command(p.Cmd.STATUS))
        assert isinstance(reply, p.Status)
        self.last_status, self.last_status_at = reply, time.monotonic()
        return reply

    def handshake(self) -> str:
        """Check that the server speaks :data:`~.protocol.SERVER_RELEASE`'s protocol: 0.4.0
        has no version query, so its replies to PING, IS_SIMULATOR and STATUS must decode
        exactly (another release's codes or layouts raise ProtocolError or ArmError)."""
        connected = self.ping()
        simulator = self.is_simulator()
        self.status()
        mode = "simulator" if simulator else ("hardware" if connected else "no board")
        return f"{p.SERVER_RELEASE} ({mode})"

    # -- motion (armed only) ---------------------------------------------------------------
    def _expect_ok(self, command: p.Command) -> p.Ok:
        reply = self.request(command)
        assert isinstance(reply, p.Ok)
        return reply

    def home(self) -> None:
        self._expect_ok(p.make_command(p.Cmd.HOME))

    def move_joints(self, target: SafeTarget, duration_s: float) -> None:
        """A planned move to ``target`` (the start pose) taking ``duration_s``."""
        self._expect_ok(
            p.make_command(p.Cmd.MOVEJ, self._joints(target), duration=float(duration_s))
        )

    def servo_joints(self, target: SafeTarget, speed: float) -> None:
        """Stream one control-step target (not acknowledged); ``speed`` a fraction."""
        self.request(p.make_command(p.Cmd.SERVOJ, self._joints(target), speed=speed))

    def probe_latched(self) -> None:
        """Check that the controller refuses motion (after an e-stop): a zero relative move,
        which cannot move the arm, must be answered ERROR 50 (controller disabled)."""
        probe = p.make_command(p.Cmd.MOVEJ, [0.0] * p.N_JOINTS, duration=0.5, rel=True)
        try:
            self.request(probe)
        except ArmError as exc:
            if exc.code == p.ERR_CONTROLLER_DISABLED:
                return
            raise SafetyError(f"e-stop check: expected ERROR {p.ERR_CONTROLLER_DISABLED} "
                              f"(controller disabled), got {exc}") from None
        raise SafetyError(
            "e-stop check FAILED: after a confirmed ESTOP the server still accepts motion; "
            "the arm is not safe to run (wrong server version or protocol)"
        )

    @staticmethod
    def _joints(target: SafeTarget) -> Sequence[float]:
        if not isinstance(target, SafeTarget):
            raise TypeError(f"motion needs a SafeTarget from SafetyGate, got {type(target)}")
        return target.joints

    # -- stopping (always allowed) -----------------------------------------------------------
    def stop(self) -> None:
        self._expect_ok(p.make_command(p.Cmd.STOP))

    def reset(self) -> None:
        """RESET: clear the server's latched e-stop (motion is possible again)."""
        self._expect_ok(p.make_command(p.Cmd.RESET))

    def estop(self, bound_s: float = ESTOP_BOUND_S, every_s: float = ESTOP_RESEND_S) -> bool:
        """Latch the server's e-stop: send ESTOP on its own socket and resend it every
        ``every_s`` until the server confirms it (its OK comes once the stop took effect),
        for at most ``bound_s``. Unconfirmed: a STOP is sent as well and False returned (the
        caller alerts the operator: the hardware e-stop is the only stop left)."""
        data = p.encode_command(p.make_command(p.Cmd.ESTOP))
        sock = self._estop_sock
        with self._estop_lock:
            self._drain(sock)
            start = time.monotonic()
            self.estop_sends, self.estop_confirmed_s = 0, None
            while True:
                self.sent.append(p.Command(p.Cmd.ESTOP))
                self.estop_sends += 1
                with contextlib.suppress(OSError):
                    sock.send(data)
                wait_until = min(time.monotonic() + every_s, start + bound_s)
                if self._confirmed(sock, wait_until):
                    self.estop_confirmed_s = time.monotonic() - start
                    return True
                if time.monotonic() >= start + bound_s:
                    break
            with contextlib.suppress(OSError):
                self.sent.append(p.Command(p.Cmd.STOP))
                sock.send(p.encode_command(p.make_command(p.Cmd.STOP)))
            return False

    @staticmethod
    def _confirmed(sock: socket.socket, until: float) -> bool:
        """Whether an OK (a system command's acknowledgement) arrives before ``until``."""
        while (left := until - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                reply = p.decode_reply(sock.recv(p.MAX_DATAGRAM))
            except (TimeoutError, ConnectionRefusedError):
                return False
            except p.ProtocolError:
                continue
            finally:
                sock.settimeout(None)
            if isinstance(reply, p.Ok) and reply.index is None:
                return True
        return False

    def close(self) -> None:
        self._sock.close()
        self._estop_sock.close()
