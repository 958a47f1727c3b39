"""PAROL6 safety on the fake arm: terminating signals e-stop a real subprocess, a lost e-stop is
resent until confirmed, hard caps on every limit, a capped start move, confirmation keyed on
the settings, one latch per arm, and no motion after an e-stop."""

from __future__ import annotations

import math
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import msgpack
import numpy as np
import pytest
from vlabench_plugins.parol6 import protocol as p
from vlabench_plugins.parol6 import safety
from vlabench_plugins.parol6.driver import Parol6Client
from vlabench_plugins.parol6.env import Parol6Env
from vlabench_plugins.parol6.fake import FakeArmServer
from vlabench_plugins.parol6.operator import ConsoleOperator, Label, ScriptedOperator
from vlabench_plugins.parol6.options import parse_options
from vlabench_plugins.parol6.safety import (
    CAPS,
    STANDBY_DEG,
    Arming,
    EStopLatchedError,
    OutOfLimitsError,
    SafetyConfig,
    SafetyError,
    SafetyGate,
    UnsafeActionError,
    arming_key,
    confirm_once,
)

FAST = {"control_hz": 50, "episode_steps": 1000, "camera": "none"}


@pytest.fixture(autouse=True)
def _fresh_process_state():
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


def real_env(server: FakeArmServer, operator: Any, **options: Any) -> Parol6Env:
    opts = {"fake": False, "port": server.port, "server_version": p.SERVER_RELEASE, **FAST}
    opts.update(options)
    return Parol6Env("pick_place", parse_options(opts), operator=operator, armed=True)


def estops_after(server: FakeArmServer, t0: float) -> list[float]:
    return [
        at
        for data, at in zip(list(server.received), list(server.received_at), strict=False)
        if at > t0 and p.decode_command(data).code is p.Cmd.ESTOP
    ]


# -- 2. terminating signals, sent to a real subprocess -----------------------------------------
CHILD = f"""
import sys, numpy as np
from vlabench_plugins.parol6.env import Parol6Env
from vlabench_plugins.parol6.operator import ScriptedOperator
from vlabench_plugins.parol6.options import parse_options
o = parse_options({{"fake": False, "port": int(sys.argv[1]), "server_version": "{p.SERVER_RELEASE}",
                   "control_hz": 50, "episode_steps": 10**6, "camera": "none"}})
env = Parol6Env("pick_place", o, operator=ScriptedOperator(["ARM"]), armed=True)
obs, _ = env.reset(seed=0)
print("READY", flush=True)
while True:
    obs, *_ = env.step(np.array({list(STANDBY_DEG)!r}))
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_terminating_signals_estop_the_arm(server: FakeArmServer, sig: signal.Signals) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(server.port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "READY"
        time.sleep(0.2)  # mid-episode: targets are streaming
        assert server.enabled
        sent_at = time.monotonic()
        child.send_signal(sig)
        code = child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    stops = estops_after(server, sent_at)
    assert stops, child.stderr.read() if child.stderr else ""
    latency = stops[0] - sent_at
    print(f"{sig.name}: e-stop {1000 * latency:.1f} ms after the signal")
    assert latency < 1.0
    assert not server.enabled  # confirmed: the controller is latched disabled
    assert code == {signal.SIGTERM: 143, signal.SIGHUP: 129, signal.SIGINT: 1}[sig] or (
        sig is signal.SIGINT and code == -signal.SIGINT
    )


# -- 3. a lost e-stop is resent until the server confirms it -----------------------------------
def test_lost_estops_are_resent_until_confirmed(server: FakeArmServer) -> None:
    client = Parol6Client(server.host, server.port, Arming(True, False, lambda *a: False),
                          safety.EStopLatch())
    try:
        server.drop_estops = 3
        assert client.estop()
        assert client.estop_sends == 4 and not server.enabled
        assert client.estop_confirmed_s is not None and client.estop_confirmed_s < 0.5
        print(f"3 dropped: confirmed after {1000 * client.estop_confirmed_s:.0f} ms, 4 sent")
    finally:
        client.close()


def test_an_estop_never_confirmed_alerts_loudly(server: FakeArmServer) -> None:
    operator = ScriptedOperator(["ARM"])
    env = real_env(server, operator)
    try:
        env.reset(seed=0)
        env.step(np.array(STANDBY_DEG))
        server.drop_estops = 10**6  # every e-stop lost
        t0 = time.monotonic()
        with pytest.raises(UnsafeActionError):
            env.step(np.full(6, math.nan))
        took = time.monotonic() - t0
    finally:
        env.close()
    assert env.last_estop is not None and not env.last_estop["confirmed"]
    sends = env.last_estop["sends"]
    assert 20 <= sends <= 50 and 0.9 < took < 2.0  # every ~30 ms for 1 s
    assert any("PRESS THE HARDWARE E-STOP" in m for m in operator.messages)
    assert p.Cmd.STOP in [c.code for c in server.decoded()[-3:]]  # STOP sent as well


# -- 4. the start move: validated when parsed, capped speed, asked when long -------------------
def test_start_joints_outside_the_limits_are_refused_when_parsed() -> None:
    with pytest.raises(ValueError, match="start_joints"):
        parse_options({"start_joints": [200, -90, 180, 0, 0, 180]})
    with pytest.raises(ValueError, match="start_joints"):
        parse_options({"start_joints": [122, -90, 180, 0, 0, 180]})  # inside, but not the margin


def test_the_start_move_is_capped_by_max_speed_and_asked_when_long(server: FakeArmServer) -> None:
    # homing ends at standby (J1 = 90); the start pose has J1 = 30: a 60 deg move
    start = [30.0, -90.0, 180.0, 0.0, 0.0, 180.0]
    operator = ScriptedOperator(["ARM"])
    env = real_env(server, operator, max_speed_dps=60, start_joints=start)
    try:
        env.reset(seed=0)
        assert np.allclose(server.joints, start, atol=0.5)
    finally:
        env.close()
    print(f"start move: peak {server.peak_dps:.1f} deg/s (cap 60)")
    assert 20 < server.peak_dps <= 60 + 1e-6
    assert any(m.startswith("motion move up to 60 deg") for m in operator.prompts)
    moves = [c for c in server.decoded() if c.code is p.Cmd.MOVEJ and not c.rel]
    assert moves[0].duration >= 2 * 60 / 60 and moves[0].speed == 0.0
    # declined: nothing is sent
    safety._LATCHES.clear()
    declining = ScriptedOperator(["ARM"])
    declining.decline_motion = True
    env = real_env(server, declining, start_joints=start)
    before = len(server.motion_commands())
    try:
        with pytest.raises(SafetyError, match="homing was declined"):
            env.reset(seed=0)
    finally:
        env.close()
    assert [c.code for c in server.motion_commands()[before:]] == [p.Cmd.MOVEJ, p.Cmd.RESET]


# -- 5. hard caps, and confirmation keyed on the settings --------------------------------------
@pytest.mark.parametrize("name", sorted(CAPS))
def test_every_safety_option_has_a_hard_cap(name: str) -> None:
    low, high = CAPS[name]
    with pytest.raises(ValueError, match=f"'{name}' must be in"):
        parse_options({name: high * 2 + 1})
    with pytest.raises(ValueError, match=f"'{name}' must be in"):
        parse_options({name: low / 2 if low > 0 else -1})
    with pytest.raises(ValueError, match="reply_timeout_ms"):
        parse_options({"reply_timeout_ms": 1e9})
    with pytest.raises(ValueError, match="two control periods"):
        parse_options({"control_hz": 10, "policy_timeout_ms": 150})


def test_confirmation_covers_host_port_limits_and_start_pose() -> None:
    asked: list[str] = []

    def confirm(phrase: str, details: str) -> bool:
        asked.append(details)
        return True

    base = arming_key("10.0.0.2", 5001, SafetyConfig(), STANDBY_DEG)
    assert confirm_once(base, confirm) and confirm_once(base, confirm) and len(asked) == 1
    for other in (
        arming_key("10.0.0.3", 5001, SafetyConfig(), STANDBY_DEG),
        arming_key("10.0.0.2", 5002, SafetyConfig(), STANDBY_DEG),
        arming_key("10.0.0.2", 5001, SafetyConfig(max_speed_dps=60), STANDBY_DEG),
        arming_key("10.0.0.2", 5001, SafetyConfig(), (0.0, -90.0, 180.0, 0.0, 0.0, 180.0)),
    ):
        assert confirm_once(other, confirm)
    assert len(asked) == 5  # each changed setting asked again, showing the effective limits
    assert "max_speed_dps=60" in asked[3] and "start_joints=[0,-90" in asked[4]


# -- 6. latch in the send, per arm, limits, clamping -------------------------------------------
def test_no_motion_after_an_estop_even_from_a_direct_call(server: FakeArmServer) -> None:
    env = real_env(server, ScriptedOperator(["ARM"]))
    try:
        env.reset(seed=0)
        env.latch.engage("test")  # as the watchdog thread does, between check and send
        target = env.gate.filter(STANDBY_DEG, STANDBY_DEG)
        n = len(server.motion_commands())
        with pytest.raises(EStopLatchedError):
            env.client.servo_joints(target, 0.2)
        with pytest.raises(EStopLatchedError):
            env.client.move_joints(target, 1.0)
        assert len(server.motion_commands()) == n
    finally:
        env.close()


def test_the_latch_belongs_to_the_arm_not_the_env_object(server: FakeArmServer) -> None:
    first = real_env(server, ScriptedOperator(["ARM"]))
    first.reset(seed=0)
    with pytest.raises(UnsafeActionError):
        first.step(np.full(6, math.nan))
    first.close()  # the runner rebuilds a broken env
    operator = ScriptedOperator(["no"])
    second = real_env(server, operator)
    try:
        assert second.latch is first.latch and second.latch.engaged
        with pytest.raises(EStopLatchedError, match="declined"):
            second.reset(seed=1)
        assert "estop_reset" in operator.prompts
    finally:
        second.close()


def test_a_measured_pose_outside_the_limits_stops_the_arm(server: FakeArmServer) -> None:
    env = real_env(server, ScriptedOperator(["ARM"]))
    try:
        env.reset(seed=0)
        with server._lock:
            server.joints[5] = server.target[5] = -179.0  # J6 in a +-180 convention
        t0 = time.monotonic()
        with pytest.raises(OutOfLimitsError, match=r"J6 = -17\d\.\d\d deg is outside"):
            env.step(np.array(STANDBY_DEG))
        assert estops_after(server, t0) and env.latch.engaged
    finally:
        env.close()
    gate = SafetyGate(SafetyConfig())
    with pytest.raises(OutOfLimitsError):
        gate.filter(STANDBY_DEG, [90, -90, 180, 0, 0, -179])


def test_persistent_clamping_at_the_limits_stops_the_arm(server: FakeArmServer) -> None:
    env = real_env(server, ScriptedOperator(["ARM"]), max_limit_clamps=5)
    radians = np.deg2rad(STANDBY_DEG)  # a policy in the wrong units
    try:
        env.reset(seed=0)
        with pytest.raises(OutOfLimitsError, match="6 steps in a row"):
            for _ in range(10):
                env.step(radians)
        assert env.latch.engaged
    finally:
        env.close()
    assert len([c for c in server.decoded() if c.code is p.Cmd.SERVOJ]) == 5


# -- 7. shapes, matching replies, parked while labelling, TTY ----------------------------------
def test_actions_of_the_wrong_shape_are_rejected() -> None:
    gate = SafetyGate(SafetyConfig())
    for bad in (np.zeros((6, 1)), np.zeros((1, 6)), np.zeros((2, 3)), np.zeros(7), 5.0):
        with pytest.raises(UnsafeActionError, match="shape"):
            gate.filter(bad, STANDBY_DEG)


def test_replies_are_matched_to_their_request() -> None:
    """Late and stray replies are skipped: a queued OK must carry a newer index."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    client = Parol6Client(*srv.getsockname(), Arming(True, False, lambda *a: False),
                          safety.EStopLatch(), timeout_s=1.0)
    replies = {
        p.Cmd.HOME: [[1, None], [4, [1, 1]], [1, 5]],  # a system OK, a PING answer, then ours
        p.Cmd.MOVEJ: [[1, 5], [1, 6]],  # a duplicate of the previous index, then ours
        p.Cmd.STATUS: [  # stray answers of other requests, then ours
            [4, [1, 1]],
            [1, 7],
            [4, [2, [0.0] * 16, list(STANDBY_DEG), [0.0] * 6, [0, 0, 0, 0, 1],
                 ["", 0, False, False, 0, [], []]]],
        ],
    }

    def serve() -> None:
        for _ in replies:
            data, addr = srv.recvfrom(p.MAX_DATAGRAM)
            for r in replies[p.decode_command(data).code]:
                srv.sendto(msgpack.packb(r), addr)

    import threading

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        gate = SafetyGate(SafetyConfig())
        client.home()
        assert client._last_index == 5
        client.move_joints(gate.checked_pose(STANDBY_DEG), 1.0)
        assert client._last_index == 6
        assert client.status().angles == STANDBY_DEG
    finally:
        thread.join(timeout=5)
        client.close()
        srv.close()


def test_the_arm_is_parked_while_the_operator_labels(server: FakeArmServer) -> None:
    seen: list[bool] = []

    class Watching(ScriptedOperator):
        def label(self, task: str, failure_tags: Any) -> Label:
            seen.append(server.enabled)
            return super().label(task, failure_tags)

        def reset_scene(self, task: str, instruction: str, seed: int | None) -> None:
            seen.append(server.enabled)

    env = real_env(server, Watching(["ARM", "y", "", ""]), episode_steps=3)
    try:
        env.reset(seed=0)
        for _ in range(3):
            env.step(np.array(STANDBY_DEG))
    finally:
        env.close()
    assert seen == [False, False]  # disabled (a confirmed e-stop) whenever a human is there


def test_console_prompts_need_a_terminal() -> None:
    said: list[str] = []
    console = ConsoleOperator("me", ask=lambda _: "RESET", say=said.append, is_tty=lambda: False)
    assert not console.confirm_estop_reset("test")
    assert not console.confirm_motion("HOME the arm")
    assert not console.confirm_arming("ARM", "limits")
    assert sum("not a TTY" in s for s in said) == 3
    tty = ConsoleOperator("me", ask=lambda _: "GO", say=said.append, is_tty=lambda: True)
    assert tty.confirm_motion("HOME the arm") and not tty.confirm_estop_reset("x")


def test_signal_handlers_are_restored_after_the_last_env() -> None:
    before = signal.getsignal(signal.SIGTERM)
    env = Parol6Env("pick_place", parse_options(dict(FAST)))
    assert signal.getsignal(signal.SIGTERM) is not before
    env.close()
    assert signal.getsignal(signal.SIGTERM) is before
