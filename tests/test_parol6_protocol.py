"""PAROL6 wire protocol: round-trips, and strict rejection of malformed or truncated datagrams."""

from __future__ import annotations

import contextlib
import math

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vlabench_plugins.parol6 import protocol as p

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
text = st.text(max_size=20)
small_ints = st.integers(-1000, 1000)


fraction = st.floats(0.001, 1.0)
joints = st.lists(finite, min_size=6, max_size=6)


@st.composite
def commands(draw: st.DrawFn) -> p.Command:
    code = draw(st.sampled_from(list(p.Cmd)))
    if code is p.Cmd.SERVOJ:
        return p.make_command(code, draw(joints), speed=draw(fraction), accel=draw(fraction))
    if code is p.Cmd.MOVEJ:
        timed = draw(st.booleans())
        return p.make_command(
            code,
            draw(joints),
            duration=draw(st.floats(0.01, 100)) if timed else 0.0,
            speed=0.0 if timed else draw(fraction),
            accel=draw(fraction),
            rel=draw(st.booleans()),
        )
    return p.make_command(code)


statuses = st.builds(
    p.Status,
    pose=st.lists(finite, min_size=16, max_size=16).map(tuple),
    angles=st.lists(finite, min_size=6, max_size=6).map(tuple),
    speeds=st.lists(finite, min_size=6, max_size=6).map(tuple),
    io=st.lists(st.integers(0, 1), min_size=5, max_size=5).map(tuple),
    tool=st.tuples(
        text, small_ints, st.booleans(), st.booleans(), small_ints,
        st.lists(finite, max_size=3).map(tuple), st.lists(finite, max_size=3).map(tuple),
    ),
)
replies = st.one_of(
    st.builds(p.Ok, st.none() | st.integers(0, 10**6)),
    st.builds(p.Error, small_ints, text, text, small_ints),
    st.builds(p.Ping, st.integers(0, 1)),
    st.builds(p.Simulator, st.booleans()),
    statuses,
)


def _normal(reply: p.Reply) -> p.Reply:
    return reply


@settings(max_examples=150, deadline=None)
@given(commands())
def test_command_round_trip(command: p.Command) -> None:
    assert p.decode_command(p.encode_command(command)) == command


@settings(max_examples=150, deadline=None)
@given(replies)
def test_reply_round_trip(reply: p.Reply) -> None:
    assert p.decode_reply(p.encode_reply(reply)) == _normal(reply)


@settings(max_examples=150, deadline=None)
@given(replies, st.data())
def test_truncated_replies_are_rejected(reply: p.Reply, data: st.DataObject) -> None:
    encoded = p.encode_reply(reply)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(p.ProtocolError):
        p.decode_reply(encoded[:cut])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_decode_or_raise_protocol_error(blob: bytes) -> None:
    for decode in (p.decode_reply, p.decode_command):
        with contextlib.suppress(p.ProtocolError):  # the only exception allowed
            decode(blob)


@settings(max_examples=150, deadline=None)
@given(st.recursive(st.none() | st.booleans() | small_ints | finite | text, st.lists, max_leaves=8))
def test_arbitrary_msgpack_values_decode_or_raise_protocol_error(value: object) -> None:
    blob = msgpack.packb(value)
    for decode in (p.decode_reply, p.decode_command):
        with contextlib.suppress(p.ProtocolError):
            decode(blob)


STATUS = p.Status((0.0,) * 16, (90.0, -90.0, 180.0, 0.0, 0.0, 180.0), (0.0,) * 6, (0, 0, 0, 0, 1))
R, S = p.MsgType.RESPONSE, p.QueryType.STATUS


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([R, [S, [0.0] * 16, [1.0] * 5]], "expected 6 values, found 3"),
        (
            [R, [S, [0.0] * 16, [1.0] * 5, [0.0] * 6, [0, 0, 0, 0, 1], ["", 0, 0, 0, 0, [], []]]],
            "STATUS angles: expected 6 values, found 5",
        ),
        (
            [R, [S, [0.0] * 16, [math.nan, 1, 1, 1, 1, 1], [0.0] * 6, [0, 0, 0, 0, 1],
                 ["", 0, 0, 0, 0, [], []]]],
            "STATUS angles[0]: expected a finite number",
        ),
        (
            [R, [S, [0.0] * 16, ["x"] * 6, [0.0] * 6, [0] * 5, ["", 0, 0, 0, 0, [], []]]],
            "expected a number, found str",
        ),
        ([p.MsgType.ERROR, ["x"]], "expected 6 values, found 1"),
        ([99, None], "unknown code 99"),
        ([R, [99]], "RESPONSE query type: unknown code 99"),
        ([R, [p.QueryType.IS_SIMULATOR, 1]], "expected a bool"),
        ([p.MsgType.STATUS, []], "STATUS broadcast arrived on the command socket"),
        ({"a": 1}, "expected an array [type, body]"),
        (1, "expected an array [type, body]"),
        ([p.MsgType.OK, "x"], "OK index: expected an integer"),
    ],
)
def test_malformed_replies_say_what_was_expected(obj: object, message: str) -> None:
    with pytest.raises(p.ProtocolError, match=_escape(message)):
        p.decode_reply(msgpack.packb(obj))


def _escape(text: str) -> str:
    import re

    return re.escape(text)


def test_trailing_bytes_and_empty_datagrams_are_rejected() -> None:
    with pytest.raises(p.ProtocolError, match="trailing bytes"):
        p.decode_reply(p.encode_reply(STATUS) + b"\x00")
    with pytest.raises(p.ProtocolError, match="empty datagram"):
        p.decode_reply(b"")
    with pytest.raises(p.ProtocolError, match="not a complete msgpack value"):
        p.decode_reply(p.encode_reply(STATUS)[:-3])


def test_commands_with_bad_parameters_cannot_be_encoded() -> None:
    with pytest.raises(p.ProtocolError, match="expected 6 joint angles"):
        p.make_command(p.Cmd.SERVOJ, [0.0] * 5, speed=0.2)
    with pytest.raises(p.ProtocolError, match="finite"):
        p.make_command(p.Cmd.SERVOJ, [math.nan] + [0.0] * 5, speed=0.2)
    with pytest.raises(p.ProtocolError, match="finite"):
        p.encode_command(p.Command(p.Cmd.SERVOJ, (math.inf,) + (0.0,) * 5, speed=0.2))
    # speed is a fraction of the joint speed, never a percentage (20 is refused)
    with pytest.raises(p.ProtocolError, match=r"fraction in \(0, 1\]"):
        p.make_command(p.Cmd.SERVOJ, [0.0] * 6, speed=20)
    with pytest.raises(p.ProtocolError, match="exactly one of duration"):
        p.make_command(p.Cmd.MOVEJ, [0.0] * 6, duration=1.0, speed=0.5)
    with pytest.raises(p.ProtocolError, match="takes no parameters"):
        p.make_command(p.Cmd.ESTOP, [0.0] * 6)
    with pytest.raises(p.ProtocolError, match="unknown code"):
        p.decode_command(msgpack.packb([999]))
