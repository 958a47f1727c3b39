"""The PAROL6 env against its fakes: the fake server speaks the real protocol over loopback UDP,
so what is asserted is what reached the wire."""

from __future__ import annotations

import json
import math
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from vlabench_plugins import parol6
from vlabench_plugins.parol6 import protocol as p
from vlabench_plugins.parol6 import safety
from vlabench_plugins.parol6.camera import CameraError, RealSenseCamera
from vlabench_plugins.parol6.driver import ArmTimeoutError
from vlabench_plugins.parol6.env import Parol6Env
from vlabench_plugins.parol6.fake import FakeArmServer, FakeCamera
from vlabench_plugins.parol6.operator import ConsoleOperator, ScriptedOperator, parse_label
from vlabench_plugins.parol6.options import parse_options
from vlabench_plugins.parol6.safety import (
    JOINT_LIMITS_DEG,
    STANDBY_DEG,
    EStopLatchedError,
    NotArmedError,
    SafeTarget,
    SafetyConfig,
    SafetyGate,
    UnsafeActionError,
    WatchdogError,
)

from vlabench import api

FAST = {"control_hz": 50, "episode_steps": 50, "camera": "none"}


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """Arming confirmations and per-arm latches are process-wide: each test starts clean."""
    safety._CONFIRMED.clear()
    safety._LATCHES.clear()
    yield
    safety._CONFIRMED.clear()
    safety._LATCHES.clear()


@pytest.fixture
def server():
    srv = FakeArmServer()
    yield srv
    srv.close()


def real_env(
    server: FakeArmServer, operator: Any, armed: bool = False, **options: Any
) -> Parol6Env:
    """The real-arm code path (fake=false), pointed at the fake server, a scripted operator."""
    opts = {"fake": False, "port": server.port, "server_version": p.SERVER_RELEASE, **FAST}
    opts.update(options)
    return Parol6Env("pick_place", parse_options(opts), operator=operator, armed=armed)


def fake_env(**options: Any) -> Parol6Env:
    return Parol6Env("pick_place", parse_options({**FAST, **options}))


def estop_at(server: FakeArmServer, after: float, wait_s: float = 1.0) -> float | None:
    """When the fake received the first ESTOP after ``after`` (monotonic; the env also parks
    the arm with an e-stop before each episode)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for data, at in zip(list(server.received), list(server.received_at), strict=False):
            if at > after and p.decode_command(data).code is p.Cmd.ESTOP:
                return at
        time.sleep(0.01)
    return None


def servo_targets(server: FakeArmServer) -> np.ndarray:
    return np.array([c.joints for c in server.decoded() if c.code is p.Cmd.SERVOJ])


# -- safety gate -------------------------------------------------------------------------------
def test_gate_clamps_to_limits_with_margin_and_step() -> None:
    gate = SafetyGate(SafetyConfig(margin_deg=2, max_step_deg=3, max_speed_dps=60, control_hz=10))
    here = np.array(STANDBY_DEG)
    target = gate.filter(here + np.array([50, 0, 0, 0, 0, -1]), here)
    assert target.joints == pytest.approx(tuple(here + np.array([3, 0, 0, 0, 0, -1])))
    assert target.clamped
    # step limit is the tighter of max_step_deg and max_speed_dps / control_hz
    slow = SafetyGate(SafetyConfig(max_step_deg=3, max_speed_dps=10, control_hz=10))
    assert slow.filter(here + 5, here).joints == pytest.approx(tuple(here + 1))
    # with the time since the last command, the speed cap scales the step: 60 deg/s * 10 ms
    assert gate.filter(here + 50, here, dt=0.01).joints == pytest.approx(tuple(here + 0.6))
    # and a lagging arm cannot make the command stream jump: also within a step of the last one
    lagging = gate.filter(here + 50, here, previous=here - 2)
    assert lagging.joints == pytest.approx(tuple(here + 1))  # step limit 6 -> 3 (max_step)
    near_limit = np.array([120.5, -90, 180, 0, 0, 180])  # J1 limit 123.05, margin 2 -> 121.05
    assert gate.filter(near_limit + np.eye(6)[0] * 10, near_limit).joints[0] == 121.05
    for bad in ([math.nan] * 6, [0.0] * 5, "abc"):
        with pytest.raises(UnsafeActionError):
            gate.filter(bad, here)
    with pytest.raises(TypeError, match="SafetyGate"):
        SafeTarget((0.0,) * 6, False)


# -- unsafe commands never reach the wire ------------------------------------------------------
def test_unsafe_actions_never_reach_the_wire() -> None:
    env = fake_env(margin_deg=2, max_step_deg=1.5, max_speed_dps=60, max_limit_clamps=50)
    server = env.server
    assert server is not None
    try:
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        for i in range(20):
            wild = rng.uniform(-1000, 1000, 6) if i % 2 else np.array([1e9, -1e9, 0, 0, 0, 1e9])
            env.step(wild)
        with pytest.raises(UnsafeActionError):
            env.step(np.array([math.nan, 0, 0, 0, 0, 0]))
    finally:
        env.close()
    targets = servo_targets(server)
    assert len(targets) == 20
    limits = np.asarray(JOINT_LIMITS_DEG)
    assert np.all(targets >= limits[:, 0] + 2 - 1e-9) and np.all(targets <= limits[:, 1] - 2 + 1e-9)
    previous = np.vstack([STANDBY_DEG, targets[:-1]])
    assert np.max(np.abs(targets - previous)) <= 1.5 + 1e-6
    assert all(np.all(np.isfinite(c.joints)) for c in server.decoded())  # raw bytes re-decoded
    codes = [c.code for c in server.decoded()]
    last_servo = max(i for i, c in enumerate(codes) if c is p.Cmd.SERVOJ)
    assert p.Cmd.ESTOP in codes[last_servo:]  # the NaN action e-stopped after the last target
    assert server.errors == []  # the fake never saw a target beyond its limits


# -- arming ------------------------------------------------------------------------------------
def test_nothing_moves_without_arming(server: FakeArmServer) -> None:
    # the runner's preflight stops an unarmed real-arm run before its jobs (nothing stored)
    real = {"fake": False, "port": server.port, "server_version": p.SERVER_RELEASE}
    assert "--armed" in (parol6.preflight("pick_place", real) or "")
    assert parol6.interface(real).action.space == "parol6_joint_pos_deg"  # describing is free
    assert parol6.preflight("pick_place", {}) is None  # the fake arm needs no arming
    # armed by the runner's option, but no terminal to confirm on: still refused
    armed = {**real, api.ARMED_OPTION: True}
    assert "not confirmed" in (parol6.preflight("pick_place", armed) or "")
    env = parol6.make("pick_place", {**real, **FAST})  # no runner option: not armed
    assert not env.arming.requested
    env.close()
    env = parol6.make("pick_place", {**real, **FAST, api.ARMED_OPTION: True})
    assert env.arming.requested  # the option reaches the env (its operator still confirms)
    env.close()
    env = real_env(server, ScriptedOperator([]))
    with pytest.raises(NotArmedError):
        env.reset(seed=0)
    with pytest.raises(Exception, match="step\\(\\) before reset"):
        env.step(np.array(STANDBY_DEG))
    env.close()
    # --armed, but the confirmation is not typed
    env = real_env(server, ScriptedOperator(["yes"]), armed=True)
    with pytest.raises(NotArmedError, match="not confirmed"):
        env.reset(seed=0)
    env.close()
    # the console refuses to arm without a terminal
    console = ConsoleOperator("me", ask=lambda _: "ARM", say=lambda _: None, is_tty=lambda: False)
    assert not console.confirm_arming("ARM", "limits")
    assert server.motion_commands() == []
    assert p.Cmd.ESTOP not in [c.code for c in server.decoded()]
    # armed and confirmed: now it homes and moves
    env = real_env(server, ScriptedOperator(["ARM"]), armed=True)
    env.reset(seed=0)
    env.step(np.array(STANDBY_DEG) + 1)
    env.close()
    moved = {c.code for c in server.motion_commands()}
    assert moved >= {p.Cmd.RESET, p.Cmd.HOME, p.Cmd.MOVEJ, p.Cmd.SERVOJ}


# -- watchdog and e-stop -----------------------------------------------------------------------
def test_stalled_policy_triggers_estop_within_deadline() -> None:
    env = fake_env(policy_timeout_ms=150)
    server = env.server
    try:
        env.reset(seed=0)
        env.step(np.array(STANDBY_DEG))
        stalled_at = time.monotonic()
        time.sleep(0.5)  # the policy "thinks" too long
        stopped_at = estop_at(server, stalled_at)
        assert stopped_at is not None
        assert stopped_at - stalled_at < 0.15 + 0.25  # deadline + scheduling slack
        with pytest.raises((WatchdogError, EStopLatchedError)):
            env.step(np.array(STANDBY_DEG))
        n_servo = len(servo_targets(server))
        with pytest.raises(EStopLatchedError):
            env.step(np.array(STANDBY_DEG))
        assert len(servo_targets(server)) == n_servo  # latched: nothing more was sent
    finally:
        env.close()


def test_silent_arm_triggers_estop_within_deadline() -> None:
    env = fake_env(status_timeout_ms=150, reply_timeout_ms=50, policy_timeout_ms=5000)
    server = env.server
    try:
        env.reset(seed=0)
        env.step(np.array(STANDBY_DEG))
        server.silent = True
        silent_at = time.monotonic()
        time.sleep(0.5)
        stopped_at = estop_at(server, silent_at)
        assert stopped_at is not None and stopped_at - silent_at < 0.15 + 0.3
        with pytest.raises((WatchdogError, EStopLatchedError)):
            env.step(np.array(STANDBY_DEG))
    finally:
        env.close()


def test_silent_arm_during_a_step_raises_and_estops() -> None:
    env = fake_env(reply_timeout_ms=50, policy_timeout_ms=5000, status_timeout_ms=1000)
    server = env.server
    try:
        env.reset(seed=0)
        server.silent = True
        silent_at = time.monotonic()
        with pytest.raises(ArmTimeoutError, match="did not answer STATUS"):
            env.step(np.array(STANDBY_DEG))
        assert estop_at(server, silent_at) is not None
        assert env.last_estop is not None and not env.last_estop["confirmed"]
        assert any("PRESS THE HARDWARE E-STOP" in m for m in env.operator.messages)
    finally:
        env.close()


class _BrokenCamera(FakeCamera):
    def __init__(self, error: BaseException, after: int) -> None:
        super().__init__(640, 480, 60)
        self.error, self.after = error, after

    def read(self):
        if self.frames >= self.after:
            raise self.error
        return super().read()


@pytest.mark.parametrize("error", [RuntimeError("camera unplugged"), KeyboardInterrupt()])
def test_exception_or_ctrl_c_mid_episode_sends_estop(error: BaseException) -> None:
    options = parse_options({**FAST, "camera": "fake"})
    env = Parol6Env("pick_place", options, camera=_BrokenCamera(error, after=2))
    server = env.server
    try:
        env.reset(seed=0)
        env.step(np.array(STANDBY_DEG))
        t0 = time.monotonic()
        with pytest.raises(type(error)):
            env.step(np.array(STANDBY_DEG))
        assert estop_at(server, t0) is not None
        assert env.latch.engaged and type(error).__name__ in env.latch.reason
    finally:
        env.close()


def test_closing_mid_episode_sends_estop() -> None:
    env = fake_env()
    server = env.server
    env.reset(seed=0)
    env.step(np.array(STANDBY_DEG))
    t0 = time.monotonic()
    env.close()  # e.g. Ctrl-C while the policy was thinking: the runner closes the env
    assert estop_at(server, t0) is not None
    server.close()


def test_stale_camera_frames_stop_the_arm() -> None:
    options = parse_options({**FAST, "camera": "fake", "status_timeout_ms": 100})
    camera = FakeCamera(640, 480, 60)
    env = Parol6Env("pick_place", options, camera=camera)
    try:
        env.reset(seed=0)
        camera.stall()
        t0 = time.monotonic()
        time.sleep(0.15)
        with pytest.raises(WatchdogError, match="stale"):
            env.step(np.array(STANDBY_DEG))
        assert estop_at(env.server, t0) is not None
    finally:
        env.close()


def test_estop_stays_latched_until_an_explicit_reset(server: FakeArmServer) -> None:
    operator = ScriptedOperator(["ARM", "no", "RESET"])
    env = real_env(server, operator, armed=True)
    try:
        env.reset(seed=0)
        t0 = time.monotonic()
        with pytest.raises(UnsafeActionError):
            env.step(np.full(6, math.nan))
        assert estop_at(server, t0) is not None
        assert not server.enabled
        with pytest.raises(EStopLatchedError, match="declined"):
            env.reset(seed=1)  # the operator answered "no"
        assert not server.enabled
        env.reset(seed=2)  # "RESET"
        assert server.enabled and operator.prompts.count("estop_reset") == 2
        env.step(np.array(STANDBY_DEG))
    finally:
        env.close()
    codes = [c.code for c in server.decoded()]
    assert codes.index(p.Cmd.RESET) > codes.index(p.Cmd.ESTOP)


# -- labels ------------------------------------------------------------------------------------
def test_full_episode_with_scripted_operator_stores_labels(
    server: FakeArmServer, tmp_path: Path
) -> None:
    log = tmp_path / "labels.jsonl"
    operator = ScriptedOperator(["ARM", "n", "40", "1"], labeller="alice")
    env = real_env(
        server,
        operator,
        armed=True,
        episode_steps=5,
        failure_tags=["missed_grasp", "dropped"],
        labels_log=str(log),
        camera="fake",
        image_size=[48, 64],
    )
    try:
        obs, _ = env.reset(seed=7)
        assert obs["observation.images.wrist"].shape == (48, 64, 3)
        infos = []
        for _ in range(5):
            obs, _, terminated, _, info = env.step(obs[api.STATE_KEY] + 0.5)
            infos.append(info)
    finally:
        env.close()
    assert terminated and info["is_success"] is False
    metrics = infos[-1][api.EPISODE_METRICS_KEY]  # stored as the episode's metrics
    assert metrics["label_success"] == 0.0
    assert metrics["label_progress"] == 40.0
    assert metrics["label_failure_tag"] == 1.0
    assert metrics["control_hz"] == 50.0 and metrics["camera_fps"] == 60.0
    (line,) = log.read_text().splitlines()
    facts = json.loads(line)
    assert facts["labeller"] == "alice" and facts["failure_tag"] == "dropped"
    assert facts["server_version"].startswith(p.SERVER_RELEASE)
    assert facts["camera_serial"] == "FAKE-D405" and facts["seed"] == 7
    labels = info[api.EPISODE_LABELS_KEY]  # what the rollout stores as the episode's labels
    assert labels["labeller"] == "alice" and labels["failure_tag"] == "dropped"
    assert labels["server_version"] == facts["server_version"]
    assert labels["camera_serial"] == "FAKE-D405" and labels["camera_firmware"] == "fake"
    assert all(isinstance(v, str) for v in labels.values())
    kinds = [prompt.split()[0] for prompt in operator.prompts]
    assert [k for k in kinds if k != "motion"] == ["arm", "reset", "label"]
    assert any(prompt.startswith("motion HOME") for prompt in operator.prompts)
    assert "max_speed_dps=30" in operator.prompts[0]  # the ARM prompt shows the limits
    assert p.Cmd.STOP in [c.code for c in server.decoded()]


def test_parse_label() -> None:
    assert parse_label("y", "", "", []).progress == 100.0
    assert parse_label("n", "", "slipped", []).failure_tag == "slipped"
    with pytest.raises(ValueError, match="one of"):
        parse_label("n", "", "other", ["a", "b"])
    with pytest.raises(ValueError, match="0-100"):
        parse_label("n", "150", "", [])


def test_interface_matches_observations() -> None:
    options = {**FAST, "camera": "fake", "depth": True, "image_size": [24, 32]}
    iface = parol6.interface(options)
    names = [f.name for f in iface.observation]
    assert names == [
        "observation.state",
        "observation.images.wrist",
        "observation.images.wrist_depth",
        "task",
    ]
    assert iface.action.space == iface.feature(api.STATE_KEY).space == "parol6_joint_pos_deg"
    env = parol6.make("pick_place", options)
    try:
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains({k: v for k, v in obs.items() if k != "task"})
    finally:
        env.close()
    for feature in iface.observation:
        if feature.shape is not None:
            assert obs[feature.name].shape == feature.shape
            assert str(obs[feature.name].dtype) == feature.dtype
    with pytest.raises(ValueError, match="unknown option 'bogus'"):
        parol6.interface({"bogus": 1})
    with pytest.raises(ValueError, match="not supported"):
        parse_options({"fake": False, "camera_width": 1280, "camera_height": 720})
    for option in ({"operator": "scripted"}, {"operator": "auto"}):  # a human arms a real arm
        with pytest.raises(ValueError, match="needs a human"):
            parse_options({"fake": False, **option})
    # arming is the runner's option, never one of the parsed (hashed) options
    assert parse_options({api.ARMED_OPTION: True}) == parse_options({})


# -- camera recovery ---------------------------------------------------------------------------
class _FakeRS:
    """Just enough of pyrealsense2 for RealSenseCamera: the first frames fail."""

    class camera_info:
        serial_number, name, firmware_version = "serial", "name", "fw"

    class stream:
        color, depth = "color", "depth"

    class format:
        rgb8, z16 = "rgb8", "z16"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.resets = 0
        self.ts, self.frozen = 0.0, False
        rs = self

        class Device:
            def get_info(self, key: str) -> str:
                return {"serial": "123", "name": "Intel RealSense D405", "fw": "5.16"}[key]

            def hardware_reset(self) -> None:
                rs.resets += 1

        class Ctx:
            def query_devices(self):
                return [Device()]

        class Frame:
            def __bool__(self) -> bool:
                return True

            def get_data(self):
                return np.zeros((480, 640, 3), np.uint8)

            def get_timestamp(self) -> float:  # the frame's own clock (ms)
                if not rs.frozen:
                    rs.ts += 1000 / 60
                return rs.ts

        class Frames:
            def get_color_frame(self):
                return Frame()

        class Pipeline:
            def start(self, config) -> None:
                pass

            def stop(self) -> None:
                pass

            def wait_for_frames(self, timeout):
                if rs.failures:
                    rs.failures -= 1
                    raise RuntimeError("Frame didn't arrive within 1000")
                return Frames()

        class Config:
            def enable_device(self, serial) -> None:
                pass

            def enable_stream(self, *args) -> None:
                pass

        self.context, self.pipeline, self.config = Ctx, Pipeline, Config


def test_camera_recovers_with_a_hardware_reset() -> None:
    rs = _FakeRS(failures=1)
    cam = RealSenseCamera(reset_wait_s=0.01, rs=rs)
    cam.start()
    rgb, depth, _ = cam.read()
    assert rgb.shape == (480, 640, 3) and depth is None
    assert rs.resets == 1 and cam.info()["camera_recoveries"] == 1
    assert cam.info()["camera_serial"] == "123"
    # a frozen camera repeating one frame keeps the stamp of its last new frame
    _, _, fresh = cam.read()
    rs.frozen = True
    time.sleep(0.05)
    _, _, frozen = cam.read()
    assert frozen == fresh and time.monotonic() - frozen >= 0.05
    rs.frozen = False
    assert cam.read()[2] > fresh
    broken = RealSenseCamera(reset_wait_s=0.01, max_recoveries=2, rs=_FakeRS(failures=10))
    broken.start()
    with pytest.raises(CameraError, match="after 2 hardware reset"):
        broken.read()


# -- CLI ---------------------------------------------------------------------------------------
def test_cli_run_env_parol6_fake_end_to_end(cli) -> None:
    out = cli(
        "run", "--policy", "random", "--env", "parol6", "--fake", "-n", "1",
        "-E", "episode_steps=5", "--max-steps", "5",
        "-E", "operator=scripted", "-E", "operator_script=[n, 30, slipped]",
        "-E", "labeller=bob",
    )
    assert "1 new episode(s) stored" in out.stdout
    store = cli.store()
    (run,) = [r for r in store.runs() if r["suite"] == "parol6_fake"]
    assert run["config"]["env_options"]["labeller"] == "bob"
    (episode,) = store.episodes(run["id"])
    assert episode["success"] is False and episode["steps"] == 5
    assert episode["failure_reason"] is None  # a judged failure, not an error
    assert episode["metrics"]["label_success"] == 0.0
    assert episode["metrics"]["label_progress"] == 30.0
    # the operator's and the hardware's strings are on the stored episode row
    labels = episode["labels"]
    assert labels["labeller"] == "bob" and labels["failure_tag"] == "slipped"
    assert labels["server_version"] == f"{p.SERVER_RELEASE} (simulator)"
    shown = cli("show", str(run["id"])).stdout
    assert "labeller=bob" in shown and "failure_tag=slipped" in shown


def test_cli_refuses_the_real_arm_without_arming(cli) -> None:
    out = cli("run", "--policy", "noop", "--env", "parol6", "-n", "1", ok=False)
    assert out.returncode != 0
    assert "--armed" in out.stdout + out.stderr
    # --armed, but no terminal to type the confirmation on
    armed = subprocess.run(
        cli.command("run", "--policy", "noop", "--env", "parol6", "-n", "1", "--armed"),
        cwd=cli.cwd, env=cli.env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=120,
    )
    assert armed.returncode != 0
    assert "arming was not confirmed" in armed.stdout + armed.stderr
    store = cli.store()
    assert all(not store.episodes(r["id"]) for r in store.runs())  # nothing consumed
    # neither a registry file nor --env-option can arm: the planner refuses the runner's option
    cli.registry("suites:\n  my_arm:\n    env: parol6\n    env_options: {armed: true}\n")
    for args in (
        ("--registry", "extra.yaml", "run", "--policy", "noop", "--suite", "my_arm"),
        ("run", "--policy", "noop", "--env", "parol6", "--fake", "-E", "armed=true"),
    ):
        refused = cli(*args, "-n", "1", ok=False)
        assert refused.returncode != 0
        assert "set by the runner only" in refused.stdout + refused.stderr
