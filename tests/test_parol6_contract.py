"""The recorded exchanges of parol6-server 0.4.0 (tests/fixtures/parol6/wire-0.4.0.json,
captured from the server in simulation mode by record_wire.py --live): the driver must put
exactly those request bytes on the wire, and the fake must answer them with exactly those reply
bytes, so a fake that drifted from the server fails here."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from vlabench_plugins.parol6 import protocol as p
from vlabench_plugins.parol6 import safety
from vlabench_plugins.parol6.driver import ArmError, Parol6Client
from vlabench_plugins.parol6.fake import FakeArmServer, reported_angles
from vlabench_plugins.parol6.safety import STANDBY_DEG, Arming, SafetyConfig, SafetyGate

FIXTURE = Path(__file__).parent / "fixtures" / "parol6" / f"wire-{p.SERVER_RELEASE}.json"
RECORD = json.loads(FIXTURE.read_text())
WIRE = {e["name"]: e for e in RECORD["exchanges"]}


def req(name: str) -> bytes:
    return bytes.fromhex(WIRE[name]["request"])


def rep(name: str) -> bytes:
    return bytes.fromhex(WIRE[name]["reply"])


@pytest.fixture
def server():
    srv = FakeArmServer(start_joints=STANDBY_DEG)
    yield srv
    srv.close()


def ask(server: FakeArmServer, data: bytes, wait: bool = True) -> bytes | None:
    """Send raw bytes to the fake and return its raw reply."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        sock.sendto(data, (server.host, server.port))
        if not wait:
            return None
        return sock.recv(p.MAX_DATAGRAM)


def test_the_fixture_names_the_pinned_release_and_covers_every_command() -> None:
    assert p.SERVER_RELEASE in json.loads(FIXTURE.read_text())["server"]
    sent = {p.decode_command(req(name)).code for name in WIRE}
    assert sent == set(p.Cmd)  # every command the plugin can send has a recorded exchange


def test_the_fake_answers_the_recorded_requests_with_the_recorded_bytes(
    server: FakeArmServer,
) -> None:
    for name in ("ping", "status", "is_simulator", "stop"):
        assert ask(server, req(name)) == rep(name), name
    assert ask(server, req("home")) == rep("home")  # queued: index 0
    server.home_time_s = 0.0
    assert ask(server, req("movej")) == rep("movej")  # queued: index 1
    assert ask(server, req("estop")) == rep("estop") and not server.enabled
    assert ask(server, req("probe_disabled")) == rep("probe_disabled")  # refused, not moved
    assert ask(server, req("reset")) == rep("reset") and server.enabled
    before = len(server.commands)
    ask(server, req("servoj"), wait=False)
    assert ask(server, req("ping")) == rep("ping")  # servoj was answered by nothing
    assert server.commands[before].code is p.Cmd.SERVOJ
    server.joints[:] = STANDBY_DEG  # the state the status was recorded in
    server.target[:] = STANDBY_DEG
    server.press_button()
    assert ask(server, req("status")) == rep("status_estop_pressed")


def test_the_driver_sends_the_recorded_bytes_and_reads_the_recorded_replies(
    server: FakeArmServer,
) -> None:
    latch = safety.EStopLatch()
    client = Parol6Client(server.host, server.port, Arming(True, False, lambda *a: False), latch)
    gate = SafetyGate(SafetyConfig())
    try:
        assert client.handshake() == f"{p.SERVER_RELEASE} (simulator)"
        client.stop()
        client.home()
        client.move_joints(gate.checked_pose(STANDBY_DEG), 12.5)
        assert client.estop()
        client.probe_latched()
        client.reset()
        target = gate.filter([91.0, -90.0, 180.0, 0.0, 0.0, 180.0], STANDBY_DEG, dt=1.0)
        client.servo_joints(target, 0.2)
        client.ping()
    finally:
        client.close()
    expected = [req(n) for n in ("ping", "is_simulator", "status", "stop", "home", "movej",
                                 "estop", "probe_disabled", "reset", "servoj", "ping")]
    assert server.received == expected
    # and the driver decodes every recorded reply as the fake's own reply decodes
    for name, entry in WIRE.items():
        if entry["reply"] is not None:
            assert p.decode_reply(rep(name)) is not None
    status = p.decode_reply(rep("status"))
    assert isinstance(status, p.Status) and not status.estop
    # standby as whole motor steps: within a step of STANDBY_DEG, exactly what the fake reports
    assert status.angles == reported_angles(STANDBY_DEG)
    assert max(abs(a - b) for a, b in zip(status.angles, STANDBY_DEG, strict=True)) < 0.01
    assert status.tool == ("NONE", 0, False, False, 0, (), ())
    assert p.decode_reply(rep("ping")) == p.Ping(0)  # the simulator has no board
    assert p.decode_reply(rep("status_estop_pressed")).estop  # type: ignore[union-attr]
    refused = p.decode_reply(rep("probe_disabled"))
    assert isinstance(refused, p.Error) and refused.code == p.ERR_CONTROLLER_DISABLED


def test_the_fake_homes_and_servoes_to_where_the_server_did(server: FakeArmServer) -> None:
    """HOME ends at standby (recorded from elsewhere), and a SERVOJ to 91 deg on J1 reads back
    as the server's whole-step angle."""
    facts = RECORD["facts"]
    assert tuple(facts["home_ends_deg"]) == reported_angles(STANDBY_DEG)
    assert tuple(facts["servoj_91_reads_deg"]) == reported_angles(
        [91.0, -90.0, 180.0, 0.0, 0.0, 180.0]
    )
    server.home_time_s = 0.0
    server.joints[:] = [91.0, -90.0, 180.0, 0.0, 0.0, 180.0]
    server.target[:] = server.joints
    assert ask(server, req("home")) == rep("home")
    status = p.decode_reply(ask(server, req("status")) or b"")
    assert isinstance(status, p.Status) and list(status.angles) == facts["home_ends_deg"]


def test_a_server_whose_estop_does_not_latch_fails_the_startup_check() -> None:
    """A wrong ESTOP code (the e-stop that stops nothing) is caught before any motion."""

    class NoLatch(FakeArmServer):
        def handle(self, command: p.Command) -> p.Reply | None:
            if command.code is p.Cmd.ESTOP:
                return p.Ok()  # acknowledged, but nothing latched
            return super().handle(command)

    srv = NoLatch()
    client = Parol6Client(srv.host, srv.port, Arming(True, False, lambda *a: False),
                          safety.EStopLatch())
    try:
        assert client.estop()
        with pytest.raises(safety.SafetyError, match="check FAILED"):
            client.probe_latched()
        with pytest.raises(ArmError):  # and a probe answered with another error is no pass
            client.request(p.make_command(p.Cmd.MOVEJ, [500.0] * 6, duration=1.0))
    finally:
        client.close()
        srv.close()
    moves = [c for c in srv.decoded() if c.code is p.Cmd.MOVEJ]
    assert moves[0].rel and moves[0].joints == (0.0,) * 6  # the probe could not move the arm
