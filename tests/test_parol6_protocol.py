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


@st.composite
def commands(draw: st.DrawFn) -> p.Command:
    code = draw(st.sampled_from(list(p.Cmd)))
    params = draw(st.lists(finite, min_size=len(p.PARAMS[code]), max_size=len(p.PARAMS[code])))
    return p.make_command(code, params)


statuses = st.builds(
    p.Status,
    pose=st.lists(finite, max_size=16).map(tuple),
    angles=st.lists(finite, min_size=6, max_size=6).map(tuple),
    speeds=st.lists(finite, min_size=6, max_size=6).map(tuple),
    io=st.lists(st.integers(0, 1), min_size=5, max_size=5).map(tuple),
    gripper=st.lists(small_ints, min_size=6, max_size=6).map(tuple),
    action_current=text,
    action_state=text,
    joint_en=st.lists(st.integers(0, 1), max_size=12).map(tuple),
    cart_en_wrf=st.lists(st.integers(0, 1), max_size=12).map(tuple),
    cart_en_trf=st.lists(st.integers(0, 1), max_size=12).map(tuple),
)
replies = st.one_of(
    st.just(p.Ok()),
    st.builds(p.Error, text),
    st.builds(p.Response, st.just(p.Cmd.GET_VERSION), text),
    st.builds(
        p.Response, st.just(p.Cmd.GET_HOMED), st.lists(st.booleans(), min_size=6, max_size=6)
    ),
    statuses,
)


def _normal(reply: p.Reply) -> p.Reply:
    if isinstance(reply, p.Response) and isinstance(reply.value, list):
        return p.Response(reply.query, tuple(reply.value))
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


STATUS = p.Status((), (90.0, -90.0, 180.0, 0.0, 0.0, 180.0), (0.0,) * 6, (0,) * 5, (0,) * 6, "", "")


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([p.MsgType.STATUS, [], [1.0] * 5], "expected 11 items"),
        (
            [p.MsgType.STATUS, [], [1.0] * 5, [0.0] * 6, [0] * 5, [0] * 6, "", "", [], [], []],
            "STATUS angles: expected 6 values, found 5",
        ),
        (
            [p.MsgType.STATUS, [], [math.nan, 1, 1, 1, 1, 1], [0.0] * 6, [0] * 5, [0] * 6,
             "", "", [], [], []],
            "STATUS angles[0]: expected a finite number",
        ),
        (
            [p.MsgType.STATUS, [], ["x"] * 6, [0.0] * 6, [0] * 5, [0] * 6, "", "", [], [], []],
            "expected a number, found str",
        ),
        ([p.MsgType.ERROR], "expected [ERROR, message]"),
        ([99, "x"], "unknown code 99"),
        ([p.MsgType.RESPONSE, p.Cmd.HOME, 1], "HOME is not a query"),
        ([p.MsgType.RESPONSE, p.Cmd.GET_HOMED, [1] * 6], "expected booleans"),
        ({"a": 1}, "expected OK or a non-empty array"),
        (7, "unknown code 7"),
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
    with pytest.raises(p.ProtocolError, match="expected 7 parameter"):
        p.make_command(p.Cmd.SERVO_JOINT, [0.0] * 6)
    with pytest.raises(p.ProtocolError, match="finite"):
        p.make_command(p.Cmd.SERVO_JOINT, [math.nan] + [0.0] * 6)
    with pytest.raises(p.ProtocolError, match="finite"):
        p.encode_command(p.Command(p.Cmd.SERVO_JOINT, (math.inf,) + (0.0,) * 6))
    with pytest.raises(p.ProtocolError, match="unknown code"):
        p.decode_command(msgpack.packb([999]))
