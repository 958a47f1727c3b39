"""Fakes that speak the real interfaces: a PAROL6 server on loopback UDP, and a D405 camera.

:class:`FakeArmServer` decodes every datagram with the same :mod:`.protocol` as the client,
keeps simulated joint state (moving towards its target at a speed-limited rate), refuses
targets beyond the joint limits, latches e-stop until ``RESET_ESTOP``, and can add latency or go
silent. Every raw datagram it receives is kept in :attr:`FakeArmServer.received`, so tests
assert on the bytes that reached the "wire".

:class:`FakeCamera` returns synthetic frames (a gradient and a marker that moves with the joint
state) with the same ``read``/``info`` interface as :class:`~.camera.RealSenseCamera`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import protocol as p
from .safety import JOINT_LIMITS_DEG, STANDBY_DEG

FAKE_VERSION = "fake-parol6-server 1.0 (firmware fake)"
MAX_JOINT_SPEED_DPS = 180.0
"""Joint speed at 100 %; the fake moves at ``speed_pct`` of it."""


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
        self.speed_dps = 0.0
        self.enabled = False
        self.homed = False
        self._homing_until: float | None = None
        self.estop = False
        self.silent = False
        """When true the server reads but never answers (an arm that went quiet)."""
        self.received: list[bytes] = []
        self.received_at: list[float] = []
        """``time.monotonic()`` of each datagram in :attr:`received`."""
        self.commands: list[p.Command] = []
        self.errors: list[str] = []
        self._sim_at = time.monotonic()
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, port))
        self._sock.settimeout(0.02)
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
        if self.estop or not self.enabled or self._homing_until is not None:
            return
        step = self.speed_dps * dt
        self.joints += np.clip(self.target - self.joints, -step, step)

    def _status(self) -> p.Status:
        moving = self._homing_until is not None or not np.allclose(self.joints, self.target)
        return p.Status(
            pose=tuple([0.0] * 16),
            angles=tuple(float(a) for a in self.joints),
            speeds=tuple([self.speed_dps if moving else 0.0] * 6),
            io=(0, 0, 0, 0, p.ESTOP_ENGAGED if self.estop else 0),
            gripper=(0, 0, 0, 0, 0, 0),
            action_current="HOME" if self._homing_until is not None else "",
            action_state="ESTOP" if self.estop else ("EXECUTING" if moving else "IDLE"),
            joint_en=(1,) * 12,
            cart_en_wrf=(1,) * 12,
            cart_en_trf=(1,) * 12,
        )

    def _move(self, params: tuple[float, ...]) -> p.Reply | None:
        target, speed_pct = np.asarray(params[:6]), params[6]
        if self.estop:
            return p.Error("e-stop latched")
        if not self.enabled or not self.homed:
            return p.Error("not enabled and homed")
        if np.any(target < self.limits[:, 0]) or np.any(target > self.limits[:, 1]):
            self.errors.append(f"target beyond joint limits: {target.tolist()}")
            return p.Error("target beyond joint limits")
        if not 0 < speed_pct <= 100:
            return p.Error("speed percentage must be in (0, 100]")
        self.target[:] = target
        self.speed_dps = MAX_JOINT_SPEED_DPS * speed_pct / 100
        return p.Ok()

    def handle(self, command: p.Command) -> p.Reply | None:
        """Apply one command; the reply (None for unacknowledged commands)."""
        self._advance()
        code = command.code
        if code is p.Cmd.PING:
            return p.Ok()
        if code is p.Cmd.GET_STATUS:
            return self._status()
        if code is p.Cmd.GET_VERSION:
            return p.Response(code, FAKE_VERSION)
        if code is p.Cmd.GET_HOMED:
            return p.Response(code, [self.homed] * 6)
        if code is p.Cmd.ESTOP:
            self.estop, self.enabled = True, False
            self.target[:] = self.joints
            return p.Ok()
        if code is p.Cmd.RESET_ESTOP:
            self.estop = False
            return p.Ok()
        if code in (p.Cmd.STOP, p.Cmd.DISABLE):
            self.target[:] = self.joints
            self.enabled = self.enabled and code is p.Cmd.STOP
            return p.Ok()
        if self.estop:
            return p.Error("e-stop latched")
        if code is p.Cmd.ENABLE:
            self.enabled = True
            return p.Ok()
        if code is p.Cmd.HOME:
            if not self.enabled:
                return p.Error("not enabled")
            self._homing_until = time.monotonic() + self.home_time_s
            return p.Ok()
        reply = self._move(command.params)
        return reply if code is p.Cmd.MOVE_JOINT else None

    # -- transport -----------------------------------------------------------------------
    def _serve(self) -> None:
        while True:
            try:
                data, addr = self._sock.recvfrom(p.MAX_DATAGRAM)
            except (TimeoutError, OSError):
                if self._stop.is_set():
                    return  # only once nothing is pending: a last e-stop is still recorded
                continue
            with self._lock:
                self.received.append(data)
                self.received_at.append(time.monotonic())
                try:
                    command = p.decode_command(data)
                except p.ProtocolError as exc:
                    self.errors.append(str(exc))
                    reply: p.Reply | None = p.Error(f"malformed command: {exc}")
                else:
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
