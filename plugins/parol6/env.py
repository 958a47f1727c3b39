"""The PAROL6 as a gymnasium-style env: joint-position control, a D405, a human judge.

One episode: arming check -> (e-stop reset if latched, with the operator's consent) -> the arm
is parked (server e-stop latched and confirmed; the first time, a refused zero move proves the
latch works) while the operator resets the scene -> RESET, homing once per arm (asked), a
planned move to the start pose at a speed capped by ``max_speed_dps`` (asked when long) ->
steps at ``control_hz``, each action passed through the safety gate -> after ``episode_steps``
the arm stops and is parked again while the operator labels success (optional progress and
failure tag), which becomes ``info["is_success"]`` of the last step (success semantics
``human``).

Any exception, SIGINT/SIGTERM/SIGHUP, a stale observation or status, a measured pose outside
the limits, persistent clamping or a stalled policy sends a confirmed e-stop (resent until the
server acknowledges it; if it never does, a loud alert), which stays latched, per arm, until an
explicit reset.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from vlabench import api

from . import protocol as p
from . import signals
from .driver import Parol6Client
from .fake import FakeArmServer, FakeCamera
from .operator import AutoOperator, ConsoleOperator, Label, Operator, ScriptedOperator
from .options import Parol6Options
from .safety import (
    STANDBY_DEG,
    Arming,
    EStopLatchedError,
    NotArmedError,
    OutOfLimitsError,
    SafeTarget,
    SafetyError,
    SafetyGate,
    Watchdog,
    WatchdogError,
    arm_latch,
    arming_key,
)

INFO_KEY = "parol6"
"""``info[INFO_KEY]`` of the last step holds the episode's labels and session facts."""
LABEL_FACTS = ("labeller", "failure_tag", "server_version", "server")
LOUD = "!" * 72
HOME_START_S = 0.5  # a HOME that shows no motion within this long is taken as done in place
"""Facts stored as the episode's string labels (with the camera's string facts)."""


def make_operator(options: Parol6Options) -> Operator:
    kind = options.operator_kind
    labeller = options.labeller or os.environ.get("USER", "unknown")
    if kind == "auto":
        return AutoOperator()
    if kind == "scripted":
        return ScriptedOperator(options.operator_script, labeller=options.labeller or "scripted")
    return ConsoleOperator(labeller)


class Parol6Env:
    """The env; ``server``/``camera``/``operator`` may be injected (tests)."""

    def __init__(
        self,
        task: str,
        options: Parol6Options,
        *,
        camera: Any = None,
        operator: Operator | None = None,
        requested: list[str] | None = None,
        armed: bool = False,
    ) -> None:
        """``armed``: the run was started with ``--armed`` (the runner's ``api.ARMED_OPTION``;
        the operator still confirms); ``operator`` defaults to the one the options name (tests
        inject a scripted one)."""
        if task not in options.tasks:
            raise ValueError(f"parol6: unknown task {task!r} (tasks: {', '.join(options.tasks)})")
        self.task, self.instruction, self.options = task, options.tasks[task], options
        self.safety = options.safety
        self.gate = SafetyGate(self.safety)
        self.operator = operator or make_operator(options)
        self.server: FakeArmServer | None = None
        host, port = options.host, options.port
        if options.fake:
            self.server = FakeArmServer(latency_s=options.fake_latency_ms / 1000)
            host, port = self.server.host, self.server.port
        self.arming = Arming(
            options.fake,
            armed,
            self.operator.confirm_arming,
            target=arming_key(options.host, options.port, self.safety, options.start_joints),
        )
        self.latch = arm_latch(f"{host}:{port}")
        self.client = Parol6Client(
            host, port, self.arming, self.latch, options.reply_timeout_ms / 1000
        )
        self.last_estop: dict[str, Any] | None = None
        self.watchdog = Watchdog(
            self.safety.policy_timeout_ms / 1000,
            self.safety.status_timeout_ms / 1000,
            trip=self._emergency,
            poll=self.client.status,
        )
        self.camera_key = api.IMAGE_PREFIX + options.camera_name
        self.depth_key = self.camera_key + "_depth"
        wanted = requested is None or self.camera_key in requested
        self.render = options.camera_kind != "none" and wanted
        self.camera = camera
        self._spaces()
        self.status: p.Status | None = None
        self.active = False
        self.steps = 0
        self.clamped = 0
        self.estops = 0
        self.limit_streak = 0
        self.episode_started = 0.0
        self.seed: int | None = None
        self._next_tick = self._last_sent = 0.0
        try:
            self.server_version = self.client.handshake()
            if options.server_version not in (None, p.SERVER_RELEASE):
                raise RuntimeError(
                    f"parol6: this plugin speaks parol6-server {p.SERVER_RELEASE}'s protocol "
                    f"only, the options name {options.server_version!r} (option server_version)"
                )
            signals.register(self)
            if self.camera is None and self.render:
                self.camera = self._make_camera()
            if self.camera is not None:
                self.camera.start()
        except BaseException:
            self.close()
            raise

    def _spaces(self) -> None:
        """gymnasium spaces matching the observations and actions (for gymnasium tooling)."""
        from gymnasium import spaces

        low, high = self.gate.low.astype(np.float32), self.gate.high.astype(np.float32)
        self.action_space = spaces.Box(low, high, dtype=np.float32)
        obs: dict[str, Any] = {api.STATE_KEY: spaces.Box(low, high, dtype=np.float32)}
        h, w = self.options.image_shape
        if self.render:
            obs[self.camera_key] = spaces.Box(0, 255, (h, w, 3), np.uint8)
            if self.options.depth:
                obs[self.depth_key] = spaces.Box(0, 65535, (h, w, 1), np.uint16)
        self.observation_space = spaces.Dict(obs)

    def _make_camera(self) -> Any:
        o = self.options
        if o.camera_kind == "fake":
            return FakeCamera(
                o.camera_width,
                o.camera_height,
                o.camera_fps,
                o.depth,
                joints=lambda: self.status.angles if self.status else o.start_joints,
            )
        from .camera import RealSenseCamera

        return RealSenseCamera(
            o.camera_serial, o.camera_width, o.camera_height, o.camera_fps, o.depth,
            timeout_ms=int(self.safety.status_timeout_ms),
        )

    # -- safety -------------------------------------------------------------------------
    def _emergency(self, reason: str) -> None:
        """E-stop now (any thread): latched for this arm until an explicit reset; the e-stop
        is resent until the server confirms it, else the operator is alerted loudly."""
        self.latch.engage(reason)
        self.watchdog.disarm()
        self.active = False
        self.estops += 1
        confirmed = self.client.estop()
        self.last_estop = {
            "reason": reason,
            "confirmed": confirmed,
            "seconds": self.client.estop_confirmed_s,
            "sends": self.client.estop_sends,
        }
        if confirmed:
            self.operator.notify(f"E-STOP: {reason}")
            return
        self.operator.notify(
            f"{LOUD}\nE-STOP NOT CONFIRMED by parol6-server ({self.client.estop_sends} sent "
            f"in 1 s; STOP sent too). PRESS THE HARDWARE E-STOP NOW.\nReason: {reason}\n{LOUD}"
        )

    def emergency_on_signal(self, name: str) -> None:
        """A terminating signal (see :mod:`.signals`): e-stop if this env may have moved."""
        if self.arming.armed and not self.latch.engaged:
            self._emergency(f"signal {name}")

    def _park(self) -> None:
        """Disable the arm while a human is in the workspace: a confirmed server e-stop that
        is ours (no operator consent needed to leave it)."""
        if not self.client.estop():
            self._emergency("parking: the server did not confirm the e-stop")
            raise EStopLatchedError("the server did not confirm the e-stop (see the alert)")

    def _guarded(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except NotArmedError:
            raise  # nothing was commanded: there is nothing to stop
        except BaseException as exc:
            if self.arming.armed and not self.latch.engaged:  # unarmed: this env moved nothing
                self._emergency(f"{type(exc).__name__}: {exc}")
            raise

    # -- observation ---------------------------------------------------------------------
    def _read_status(self) -> p.Status:
        status = self.client.status()
        self.watchdog.status_alive()
        if status.estop:  # the physical button: _guarded latches and sends e-stop as well
            raise EStopLatchedError("the arm reports its e-stop button pressed")
        self.gate.check_measured(status.angles)
        self.status = status
        return status

    def _observation(self) -> api.Observation:
        assert self.status is not None
        obs: api.Observation = {
            api.STATE_KEY: np.asarray(self.status.angles, dtype=np.float32),
            api.TASK_KEY: self.instruction,
        }
        if self.render and self.camera is not None:
            rgb, depth, captured = self.camera.read()
            age_ms = 1000 * (time.monotonic() - captured)
            if self.active and age_ms > self.safety.status_timeout_ms:
                raise WatchdogError(f"camera frame is stale ({age_ms:.0f} ms old)")
            obs[self.camera_key] = self._resize(rgb)
            if self.options.depth and depth is not None:
                obs[self.depth_key] = self._resize(depth[..., None])
        return obs

    def _resize(self, image: np.ndarray) -> np.ndarray:
        h, w = self.options.image_shape
        if image.shape[:2] == (h, w):
            return np.ascontiguousarray(image)
        import cv2

        out = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        return out.reshape(h, w, image.shape[2])

    # -- episode -------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[api.Observation, dict[str, Any]]:
        """Release a latched e-stop (operator consent), arm, reset the scene, home, go to start."""
        return self._guarded(self._reset, seed, options or {})

    def _reset(self, seed: int | None, options: dict[str, Any]) -> Any:
        if self.active:
            self._stop_quietly()
        self.watchdog.disarm()
        self.seed = seed
        self.episode_steps = int(options.get("max_steps") or self.options.episode_steps)
        self.arming.arm()  # before anything is sent that changes the arm's state
        status = self.client.status()
        if status.estop:
            raise EStopLatchedError("the arm's e-stop button is pressed: release it first")
        if self.latch.engaged:
            reason = self.latch.reason
            if not self.operator.confirm_estop_reset(reason):
                raise EStopLatchedError(f"e-stop latched ({reason}) and the reset was declined")
            self.latch.release()
            self.watchdog.tripped = None
        self._park()
        if not self.latch.verified:  # once per arm: a wrong ESTOP code is caught here
            self.client.probe_latched()
            self.latch.verified = True
        self.operator.reset_scene(self.task, self.instruction, seed)
        self.client.reset()
        if not self.latch.homed:
            self._home()
        start = self.gate.checked_pose(self.options.start_joints)
        here = np.asarray(self._read_status().angles)
        distance = float(np.max(np.abs(np.asarray(start.joints) - here)))
        if distance > self.safety.confirm_move_deg and not self.operator.confirm_motion(
            f"move up to {distance:.0f} deg to the start pose {list(start.joints)}"
        ):
            raise SafetyError("the move to the start pose was declined")
        duration = max(0.5, 2 * distance / self.safety.max_speed_dps)  # a peak <= the cap
        self.client.move_joints(start, duration)
        self._wait(
            lambda: np.allclose(self._read_status().angles, start.joints, atol=0.5),
            max(self.options.move_timeout_s, 2 * duration + 1),
            "the move to the start pose",
        )
        self._read_status()
        self.last_target: tuple[float, ...] | None = start.joints
        self.steps = self.clamped = self.limit_streak = 0
        self.active = True
        self.episode_started = self._next_tick = self._last_sent = time.monotonic()
        self.watchdog.arm()
        obs = self._observation()
        return obs, {"is_success": False}

    def _home(self) -> None:
        """HOME once per arm, after the operator agreed; the pose is checked afterwards."""
        if not self.operator.confirm_motion(f"HOME the arm (it ends at standby {STANDBY_DEG})"):
            raise SafetyError("homing was declined")
        self.client.home()
        # An arm already at standby satisfies "at standby and still" before homing starts;
        # so first give the motion a moment to begin, then wait for it to end at standby.
        with contextlib.suppress(TimeoutError):  # never moved: a simulator homes in place
            self._wait(self._moving, HOME_START_S, "homing")
        self._wait(
            lambda: np.allclose(self._read_status().angles, STANDBY_DEG, atol=1.0)
            and not self._moving(fresh=False),
            self.options.home_timeout_s,
            "homing",
        )
        self.gate.check_measured(self._read_status().angles)
        self.latch.homed = True

    def _moving(self, fresh: bool = True) -> bool:
        """Whether any joint reports a speed (reads a new status unless ``fresh`` is False)."""
        status = self._read_status() if fresh else self.status
        return any(status.speeds)  # type: ignore[union-attr]

    def _wait(self, done: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"parol6: {what} did not finish within {timeout_s} s")
            time.sleep(0.01)

    def step(self, action: Any) -> tuple[api.Observation, float, bool, bool, dict[str, Any]]:
        """One control step towards the (clamped) joint target ``action`` (degrees)."""
        return self._guarded(self._step, action)

    def _step(self, action: Any) -> Any:
        self.latch.check()
        self.watchdog.check()
        if not self.active or self.status is None:
            raise SafetyError("step() before reset(): no episode is running")
        self.watchdog.policy_alive()
        period = 1.0 / self.safety.control_hz
        self._next_tick += period  # a fixed schedule, so the rate does not drift with step work
        delay = self._next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -period:  # far behind (a slow policy): restart the schedule
            self._next_tick = time.monotonic()
        now = time.monotonic()
        # the step limit follows the time since the last command: the speed cap holds even
        # when a late step is followed by an early one
        target: SafeTarget = self.gate.filter(
            action, self.status.angles, self.last_target, dt=now - self._last_sent
        )
        self.last_target = target.joints
        self.clamped += target.clamped
        self.limit_streak = self.limit_streak + 1 if target.limited else 0
        if self.limit_streak > self.safety.max_limit_clamps:
            raise OutOfLimitsError(
                f"{self.limit_streak} steps in a row clamped at the joint limits (actions in "
                f"the wrong units, radians for degrees?): stopping"
            )
        self.client.servo_joints(target, self.safety.speed_pct / 100)
        self._last_sent = now
        self._read_status()
        self.watchdog.check()
        self.steps += 1
        obs = self._observation()
        self.watchdog.policy_alive()
        info: dict[str, Any] = {"is_success": False, "clamped": target.clamped}
        if self.steps >= self.episode_steps:
            self.watchdog.disarm()
            self.active = False
            self.client.stop()
            self._park()  # disabled while the operator labels (and resets the scene)
            label = self.operator.label(self.task, self.options.failure_tags)
            info.update(self._episode_info(label))
            return obs, 0.0, True, False, info
        return obs, 0.0, False, False, info

    def _episode_info(self, label: Label) -> dict[str, Any]:
        o = self.options
        elapsed = time.monotonic() - self.episode_started
        camera = self.camera.info() if self.camera is not None else {}
        facts = {
            "task": self.task,
            "seed": self.seed,
            "success": label.success,
            "progress": label.progress,
            "failure_tag": label.failure_tag,
            "labeller": self.operator.labeller,
            "server_version": self.server_version,
            "server": f"{o.host}:{o.port}" if not o.fake else "fake",
            "control_hz": self.safety.control_hz,
            "control_hz_measured": self.steps / elapsed if elapsed > 0 else None,
            "clamped_steps": self.clamped,
            "time": time.time(),
            **camera,
        }
        metrics = {
            "label_success": float(label.success),
            "control_hz": float(self.safety.control_hz),
            "clamped_steps": float(self.clamped),
        }
        if label.progress is not None:
            metrics["label_progress"] = float(label.progress)
        if label.failure_tag is not None and label.failure_tag in o.failure_tags:
            metrics["label_failure_tag"] = float(o.failure_tags.index(label.failure_tag))
        if facts["control_hz_measured"] is not None:
            metrics["control_hz_measured"] = float(facts["control_hz_measured"])
        for key in ("camera_width", "camera_height", "camera_fps"):
            if key in camera:
                metrics[key] = float(camera[key])
        labels = {k: str(facts[k]) for k in LABEL_FACTS if facts.get(k) is not None}
        labels.update({k: v for k, v in camera.items() if isinstance(v, str)})
        if o.labels_log:  # optional export of every fact, one JSON line per episode
            path = Path(o.labels_log).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as fh:
                fh.write(json.dumps(facts, sort_keys=True, default=str) + "\n")
        return {
            "is_success": label.success,
            INFO_KEY: facts,
            api.EPISODE_METRICS_KEY: metrics,
            api.EPISODE_LABELS_KEY: labels,
        }

    def _stop_quietly(self) -> None:
        self.watchdog.disarm()
        self.active = False
        if not self.latch.engaged:
            try:
                self.client.stop()
            except Exception:
                self._emergency("stop was not acknowledged")

    def close(self) -> None:
        """Release everything; closing mid-episode (Ctrl-C in the policy, a crash in the
        runner) is an emergency: e-stop."""
        signals.unregister(self)
        watchdog = getattr(self, "watchdog", None)
        if watchdog is not None:
            watchdog.close()
        if getattr(self, "active", False):
            self._emergency("the env was closed mid-episode")
        for part in ("camera", "client", "server"):
            obj = getattr(self, part, None)
            if obj is not None:
                with contextlib.suppress(Exception):
                    obj.close()


__all__ = ["Parol6Env", "WatchdogError"]
