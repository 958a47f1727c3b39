"""The Intel RealSense D405 through ``pyrealsense2``: colour, optional depth, USB reset recovery.

The D405 has no separate RGB sensor: colour comes from the stereo imager, and its documented
colour modes for evaluation are 640x480 @ 60 fps and 1280x720 @ 30 fps (the only profiles
accepted here). A D405 on USB often stops delivering frames; :meth:`RealSenseCamera.read`
then hardware-resets the device, waits for it to come back and restarts the pipeline (at most
``max_recoveries`` times per camera).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np

PROFILES = {(640, 480): 60, (1280, 720): 30}
"""Accepted (width, height) -> fps."""


def check_profile(width: int, height: int, fps: int) -> None:
    """Raise ValueError unless (width, height, fps) is one of :data:`PROFILES`."""
    if PROFILES.get((width, height)) != fps:
        known = ", ".join(f"{w}x{h}@{f}" for (w, h), f in PROFILES.items())
        raise ValueError(f"D405 colour profile {width}x{height}@{fps} is not supported ({known})")


class CameraError(RuntimeError):
    """The camera could not deliver frames, even after a hardware reset."""


class RealSenseCamera:
    """One D405 by serial (or the first one found); ``rs`` is injectable for tests."""

    def __init__(
        self,
        serial: str | None = None,
        width: int = 640,
        height: int = 480,
        fps: int = 60,
        depth: bool = False,
        timeout_ms: int = 1000,
        max_recoveries: int = 2,
        reset_wait_s: float = 5.0,
        rs: Any = None,
    ) -> None:
        check_profile(width, height, fps)
        if rs is None:
            import pyrealsense2 as rs
        self.rs = rs
        self.serial = serial
        self.width, self.height, self.fps, self.depth = width, height, fps, depth
        self.timeout_ms = timeout_ms
        self.max_recoveries = max_recoveries
        self.reset_wait_s = reset_wait_s
        self.recoveries = 0
        self.pipeline: Any = None
        self._info: dict[str, Any] = {}
        self._frame_ts: float | None = None
        self._advanced_at = 0.0

    def _device(self) -> Any:
        devices = list(self.rs.context().query_devices())
        for dev in devices:
            serial = dev.get_info(self.rs.camera_info.serial_number)
            if self.serial is None or serial == self.serial:
                return dev
        found = [d.get_info(self.rs.camera_info.serial_number) for d in devices]
        raise CameraError(f"no RealSense camera with serial {self.serial!r} (found {found})")

    def start(self) -> None:
        """Find the device, record its identity and start colour (+ depth) streaming."""
        dev = self._device()
        info = self.rs.camera_info
        self.serial = dev.get_info(info.serial_number)
        self._info = {
            "camera_serial": self.serial,
            "camera_model": dev.get_info(info.name),
            "camera_firmware": dev.get_info(info.firmware_version),
            "camera_width": self.width,
            "camera_height": self.height,
            "camera_fps": self.fps,
            "camera_depth": self.depth,
        }
        config = self.rs.config()
        config.enable_device(self.serial)
        config.enable_stream(
            self.rs.stream.color, self.width, self.height, self.rs.format.rgb8, self.fps
        )
        if self.depth:
            config.enable_stream(
                self.rs.stream.depth, self.width, self.height, self.rs.format.z16, self.fps
            )
        self.pipeline = self.rs.pipeline()
        self.pipeline.start(config)

    def _recover(self, error: Exception) -> None:
        """Hardware-reset the device and restart; CameraError when out of recoveries."""
        if self.recoveries >= self.max_recoveries:
            raise CameraError(
                f"D405 {self.serial}: no frames after {self.recoveries} hardware reset(s): {error}"
            ) from error
        self.recoveries += 1
        self._stop_pipeline()
        with contextlib.suppress(CameraError):  # already gone from the bus: wait below
            self._device().hardware_reset()
        deadline = time.monotonic() + self.reset_wait_s
        while True:
            time.sleep(min(0.5, self.reset_wait_s / 10))
            try:
                self.start()
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise CameraError(
                        f"D405 {self.serial} did not come back within {self.reset_wait_s} s "
                        f"after a hardware reset: {exc}"
                    ) from exc

    def read(self) -> tuple[np.ndarray, np.ndarray | None, float]:
        """``(rgb uint8 HxWx3, depth uint16 HxW or None, capture time monotonic s)``; one wait
        lasts at most ``timeout_ms`` (the env passes its status deadline)."""
        while True:
            try:
                frames = self.pipeline.wait_for_frames(self.timeout_ms)
                color = frames.get_color_frame()
                if not color:
                    raise RuntimeError("frame set without a colour frame")
                rgb = np.asanyarray(color.get_data()).copy()
                depth = None
                if self.depth:
                    dframe = frames.get_depth_frame()
                    if not dframe:
                        raise RuntimeError("frame set without a depth frame")
                    depth = np.asanyarray(dframe.get_data()).copy()
                return rgb, depth, self._stamp(color.get_timestamp())
            except RuntimeError as exc:
                self._recover(exc)

    def _stamp(self, frame_ts_ms: float) -> float:
        """The capture time (monotonic s) from the frame's OWN timestamp: when that timestamp
        last advanced. A frozen camera repeating one frame keeps its old stamp, so the env's
        staleness check sees it age (arrival time would always look fresh)."""
        if self._frame_ts is None or frame_ts_ms != self._frame_ts:
            self._frame_ts, self._advanced_at = frame_ts_ms, time.monotonic()
        return self._advanced_at

    def info(self) -> dict[str, Any]:
        return dict(self._info, camera_recoveries=self.recoveries)

    def _stop_pipeline(self) -> None:
        if self.pipeline is not None:
            with contextlib.suppress(Exception):
                self.pipeline.stop()
            self.pipeline = None

    def close(self) -> None:
        self._stop_pipeline()
