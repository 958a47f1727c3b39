"""Fakes that speak the real interfaces: a PAROL6 server on loopback UDP, and a D405 camera.

:class:`FakeArmServer` decodes every datagram with :mod:`.protocol` and answers like
``parol6-server`` 0.4.0 (the contract test ``tests/test_parol6_contract.py`` holds it to the
recorded exchanges of ``tests/fixtures/parol6/``): it keeps simulated joint state (moving
towards its target at a speed-limited rate, and recording the fastest joint speed it moved),
refuses targets beyond the joint limits, latches ESTOP until RESET (motion answered ERROR 50),
and can add latency, go silent, or drop ESTOP datagrams on purpose. Every raw datagram it
receives is kept in :attr:`FakeArmServer.received`, so tests assert on the bytes that reached
the "wire". Like the server's simulator it reports PING ``hardware_connected`` 0 and STATUS
angles as whole motor steps converted back to degrees (:func:`reported_angles`). It computes
no kinematics: ``pose`` is :attr:`FakeArmServer.pose`, by default the server's pose at standby
(:data:`STANDBY_POSE`), whatever the joints. Unlike the server, which clamps a streamed SERVOJ
target to its joint limits and moves there, it refuses such a target (and records why).

:class:`FakeCamera` returns synthetic frames (a gradient and a marker that moves with the joint
state) with the same ``read``/``info`` interface as :class:`~.camera.RealSenseCamera`.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import protocol as p
from .safety import JOINT_LIMITS_DEG, STANDBY_DEG

MAX_JOINT_SPEED_DPS = 180.0
"""Joint speed at speed fraction 1.0."""
STANDBY_POSE = (
    -3.874380737769191e-15, -1.0, -6.844989274341798e-15, -9.01922533620712e-14,
    -1.2917732950546934e-05, 6.845039321986413e-15, -0.9999999999165661, 236.7701591218535,
    0.9999999999165661, -3.874292315702441e-15, -1.2917732950546934e-05, 334.0027559946956,
    0.0, 0.0, 0.0, 1.0,
)
"""The STATUS pose of parol6-server 0.4.0 at standby (tool NONE): the row-major 4x4 TCP pose,
translation in mm, as recorded in ``tests/fixtures/parol6/wire-0.4.0.json``."""
DEG_PER_STEP = 360.0 / (32 * 200)
"""One motor microstep (32 microsteps, 200 steps per revolution), in motor degrees."""
JOINT_RATIO = np.array([6.4, 20.0, 20.0 * (38.0 / 42.0), 4.0, 4.0, 10.0], dtype=np.float64)
"""Reduction ratio of each joint (motor turns per joint turn)."""


def reported_angles(joints: Sequence[float]) -> tuple[float, ...]:
    """Joint angles (deg) as the server reports them: the motors hold whole steps, and STATUS
    converts the step counts back to degrees (so a commanded 180.0 on J3 reads 180.00074...)."""
    steps = np.rint(np.asarray(joints, dtype=np.float64) / DEG_PER_STEP * JOINT_RATIO)
    return tuple(float(a) for a in steps * DEG_PER_STEP / JOINT_RATIO)


class FakeArmServer:
    """A loopback UDP server that behaves like ``parol6-server`` with a simulated arm."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float = 0.0,
        start_joints: Sequence[float] = (0.0, -60.0, 180.0, 0.0, 0.0, 180.0),
        home_time_s: float = 0.02,
    ) -> None:
        self.latency_s = latency_s
        self.home_time_s = home_time_s
        self.limits = np.asarray(JOINT_LIMITS_DEG, dtype=np.float64)
        self.joints = np.asarray(start_joints, dtype=np.float64)
        self.target = self.joints.copy()
        self.speed_dps = np.zeros(6)
        self.enabled = True
        """The server starts enabled; ESTOP latches it disabled until RESET."""
        self.disabled_reason = ""
        self.homed = False
        self.hardware_connected = 0
        """PING's answer: 0, as the server's simulator (no board) reports it."""
        self.pose: tuple[float, ...] = STANDBY_POSE
        """The STATUS pose (not computed from the joints)."""
        self.button = False
        """The physical e-stop is pressed (``io[4] == 0``)."""
        self._homing_until: float | None = None
        self._index = -1
        self.silent = False
        """When true the server reads but never answers (an arm that went quiet)."""
        self.drop_estops = 0
        """ESTOP datagrams still to drop unseen (a lossy link)."""
        self.peak_dps = 0.0
        """The fastest any joint moved (deg/s), over the whole session."""
        self.received: list[bytes] = []
        self.received_at: list[float] = []
        """``time.monotonic()`` of each datagram in :attr:`received`."""
        self.commands: list[p.Command] = []
        self.errors: list[str] = []
        self.estop_at: float | None = None
        """``time.monotonic()`` when the last ESTOP took effect."""
        self._sim_at = time.monotonic()
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, port))
        self._sock.settimeout(0.005)
        self.host, self.port = self._sock.getsockname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-parol6", daemon=True)
        self._thread.start()

    # -- simulation ----------------------------------------------------------------------
    def _advance(self) -> None:
        now = time.monotonic()
        dt, self._sim_at = now - self._sim_at, now
        if self._homing_until is not None and now >= self._homing_until:
            self.joints[:] = STANDBY_DEG
            self.target[:] = STANDBY_DEG
            self.homed, self._homing_until = True, None
        if not self.enabled or self._homing_until is not None or dt <= 0:
            return
        step = self.speed_dps * dt
        moved = np.clip(self.target - self.joints, -step, step)
        self.joints += moved
        if dt > 1e-4:
            self.peak_dps = max(self.peak_dps, float(np.max(np.abs(moved))) / dt)

    def _moving(self) -> bool:
        return self._homing_until is not None or not np.allclose(self.joints, self.target)

    def _status(self) -> p.Status:
        speeds = self.speed_dps * math.pi / 180 if self._moving() else np.zeros(6)
        return p.Status(
            pose=self.pose,
            angles=reported_angles(self.joints),
            speeds=tuple(float(v) for v in speeds),
            io=(0, 0, 0, 0, 0 if self.button else p.ESTOP_RELEASED),
        )

    def _disabled(self) -> p.Error:
        reason = self.disabled_reason or "Controller disabled"
        return p.Error(
            p.ERR_CONTROLLER_DISABLED,
            "Controller disabled",
            f"Motion command sent while controller is disabled. {reason}",
        )

    def _queued(self) -> p.Ok:
        self._index += 1
        return p.Ok(self._index)

    def _motion(self, c: p.Command) -> p.Reply | None:
        answer = c.code is not p.Cmd.SERVOJ
        if not self.enabled:
            return self._disabled() if answer else None
        if c.code is p.Cmd.HOME:
            self._homing_until = time.monotonic() + self.home_time_s
            return self._queued()
        target = np.asarray(c.joints) + (self.joints if c.rel else 0.0)
        if np.any(target < self.limits[:, 0]) or np.any(target > self.limits[:, 1]):
            self.errors.append(f"target beyond joint limits: {target.tolist()}")
            if not answer:
                return None
            joint = int(np.argmax((target < self.limits[:, 0]) | (target > self.limits[:, 1])))
            return p.Error(
                p.ERR_VALIDATION,
                "Command validation error",
                f"Invalid parameters. Joint {joint + 1} target ({target[joint]:.1f} deg) is out "
                "of range",
            )
        if c.code is p.Cmd.MOVEJ and c.duration > 0:
            self.speed_dps = np.abs(target - self.joints) / c.duration
        else:
            self.speed_dps = np.full(6, MAX_JOINT_SPEED_DPS * c.speed)
        self.target[:] = target
        return self._queued() if answer else None

    def handle(self, command: p.Command) -> p.Reply | None:
        """Apply one command; the reply (None for unanswered ones)."""
        self._advance()
        code = command.code
        if code is p.Cmd.PING:
            return p.Ping(self.hardware_connected)
        if code is p.Cmd.IS_SIMULATOR:
            return p.Simulator(True)
        if code is p.Cmd.STATUS:
            return self._status()
        if code in (p.Cmd.ESTOP, p.Cmd.STOP):
            self.target[:] = self.joints
            self._homing_until = None
            if code is p.Cmd.ESTOP:
                self.enabled, self.disabled_reason = False, "Protective stop (estop)"
                self.estop_at = time.monotonic()
            return p.Ok()
        if code is p.Cmd.RESET:
            self.enabled, self.disabled_reason = True, ""
            return p.Ok()
        return self._motion(command)

    def press_button(self, pressed: bool = True) -> None:
        """The physical e-stop: pressed, the controller is disabled until released."""
        with self._lock:
            self.button = pressed
            if pressed:
                self.enabled, self.disabled_reason = False, "E-stop active"
                self.target[:] = self.joints

    # -- transport -----------------------------------------------------------------------
    def _serve(self) -> None:
        while True:
            try:
                data, addr = self._sock.recvfrom(p.MAX_DATAGRAM)
            except (TimeoutError, OSError):
                if self._stop.is_set():
                    return  # only once nothing is pending: a last e-stop is still recorded
                with self._lock:
                    self._advance()
                continue
            with self._lock:
                self.received.append(data)
                self.received_at.append(time.monotonic())
                try:
                    command = p.decode_command(data)
                except p.ProtocolError as exc:
                    self.errors.append(str(exc))
                    reply: p.Reply | None = p.Error(
                        p.ERR_VALIDATION, "Command validation error", f"Invalid parameters. {exc}"
                    )
                else:
                    if command.code is p.Cmd.ESTOP and self.drop_estops > 0:
                        self.drop_estops -= 1
                        continue  # lost on the way: never seen
                    self.commands.append(command)
                    reply = self.handle(command)
                silent = self.silent
            if reply is None or silent:
                continue
            if self.latency_s:
                time.sleep(self.latency_s)
            with contextlib.suppress(OSError):
                self._sock.sendto(p.encode_reply(reply), addr)

    def decoded(self) -> list[p.Command]:
        """Every datagram received, decoded again from the raw bytes (the wire's view)."""
        return [p.decode_command(d) for d in list(self.received)]

    def motion_commands(self) -> list[p.Command]:
        return [c for c in self.decoded() if c.code in p.MOTION]

    def first_at(self, code: p.Cmd) -> float | None:
        """When the first ``code`` datagram arrived (monotonic), or None."""
        for data, at in zip(list(self.received), list(self.received_at), strict=False):
            if p.decode_command(data).code is code:
                return at
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        self._sock.close()


class FakeCamera:
    """Synthetic colour (and optional depth) frames; ``stall()`` freezes them (stale frames)."""

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: int = 60,
        depth: bool = False,
        joints: Callable[[], Sequence[float]] | None = None,
        serial: str = "FAKE-D405",
    ) -> None:
        self.width, self.height, self.fps, self.depth = width, height, fps, depth
        self.serial = serial
        self._joints = joints or (lambda: STANDBY_DEG)
        self.frames = 0
        self.stalled = False
        yy, xx = np.mgrid[0:height, 0:width]
        self._base = np.stack(
            [(xx * 255 // max(width - 1, 1)), (yy * 255 // max(height - 1, 1)), xx * 0 + 64], -1
        ).astype(np.uint8)
        self._last: tuple[np.ndarray, np.ndarray | None, float] | None = None

    def start(self) -> None:
        self.frames = 0

    def read(self) -> tuple[np.ndarray, np.ndarray | None, float]:
        """``(rgb uint8 HxWx3, depth uint16 HxW or None, capture time monotonic s)``."""
        if self.stalled and self._last is not None:
            return self._last
        self.frames += 1
        rgb = self._base.copy()
        joints = np.asarray(self._joints(), dtype=np.float64)
        x = int((joints[0] + 123.05) / 246.1 * (self.width - 20))
        y = int((joints[1] + 145.01) / 141.635 * (self.height - 20))
        x, y = min(max(x, 0), self.width - 20), min(max(y, 0), self.height - 20)
        rgb[y : y + 20, x : x + 20] = (255, 255, 255)
        depth = None
        if self.depth:
            depth = np.full((self.height, self.width), 300, dtype=np.uint16)
            depth[y : y + 20, x : x + 20] = 200
        self._last = (rgb, depth, time.monotonic())
        return self._last

    def stall(self) -> None:
        self.stalled = True

    def info(self) -> dict[str, Any]:
        return {
            "camera_serial": self.serial,
            "camera_model": "fake D405",
            "camera_firmware": "fake",
            "camera_width": self.width,
            "camera_height": self.height,
            "camera_fps": self.fps,
            "camera_depth": self.depth,
        }

    def close(self) -> None:
        pass
