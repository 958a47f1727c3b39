"""The wire protocol between vlabench and ``parol6-server``: msgpack over UDP, in one place.

We talk to the official controller process (``parol6-server``, port 5001), not to the board's
serial frame: the server owns homing, the 100 Hz control loop, the firmware's own safety and
the serial timing (3 Mbaud, 56-byte frames), so vlabench stays a thin, testable client.

What comes from the PAROL6 Python API documentation (module docs of its wire protocol and its
README; no code was copied, the API is GPL-3.0):

* transport: one msgpack message per UDP datagram, commands to port 5001;
* a command is a msgpack array ``[command_code, *params]`` with an integer code;
* replies: ``OK`` (the bare integer code), ``[ERROR, message]``,
  ``[STATUS, pose, angles, speeds, io, gripper, action_current, action_state, joint_en,
  cart_en_wrf, cart_en_trf]`` and ``[RESPONSE, query_type, value]``;
* joints in degrees; ``io`` is ``[in1, in2, out1, out2, estop]``; the gripper is
  ``[id, position, speed, current, status, object]``; e-stop is latched until reset;
  commands: home, enable, disable, stop, move/servo joints (degrees, a speed percentage), ...

What is **assumed** here (the documentation found does not pin it; correct it in this file):

* the integer values of :class:`MsgType` and :class:`Cmd` below;
* which commands the server acknowledges (:data:`ACKED`): we assume every command except the
  streamed ``SERVO_JOINT`` gets an ``OK``/``ERROR``/``RESPONSE``/``STATUS`` reply;
* ``io[4] == 1`` means the e-stop is engaged (:data:`ESTOP_ENGAGED`);
* the queries ``GET_VERSION`` (a str) and ``GET_HOMED`` (6 bools) answered as ``RESPONSE``;
* ``RESET_ESTOP`` releases a latched software e-stop; ``ESTOP`` latches one.

Every decoder is strict: a reply that is not exactly one of the shapes above (wrong type,
wrong length, non-finite joint angle, trailing bytes, a truncated msgpack value) raises
:class:`ProtocolError` saying what was expected and what was found.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import msgpack

DEFAULT_PORT = 5001
N_JOINTS = 6
MAX_DATAGRAM = 65507
ESTOP_ENGAGED = 1
"""Value of ``io[4]`` when the e-stop is engaged (assumed)."""


class ProtocolError(ValueError):
    """A datagram that does not follow the protocol; the message says what and where."""


class MsgType(IntEnum):
    """Reply type codes (assumed values)."""

    OK = 0
    ERROR = 1
    STATUS = 2
    RESPONSE = 3


class Cmd(IntEnum):
    """Command codes (assumed values) and their parameters (see :data:`PARAMS`)."""

    PING = 10
    GET_STATUS = 11
    GET_VERSION = 12
    GET_HOMED = 13
    HOME = 20
    ENABLE = 21
    DISABLE = 22
    STOP = 23
    ESTOP = 24
    RESET_ESTOP = 25
    MOVE_JOINT = 30
    SERVO_JOINT = 31


PARAMS: dict[Cmd, tuple[str, ...]] = {
    Cmd.PING: (),
    Cmd.GET_STATUS: (),
    Cmd.GET_VERSION: (),
    Cmd.GET_HOMED: (),
    Cmd.HOME: (),
    Cmd.ENABLE: (),
    Cmd.DISABLE: (),
    Cmd.STOP: (),
    Cmd.ESTOP: (),
    Cmd.RESET_ESTOP: (),
    Cmd.MOVE_JOINT: ("j1", "j2", "j3", "j4", "j5", "j6", "speed_pct"),
    Cmd.SERVO_JOINT: ("j1", "j2", "j3", "j4", "j5", "j6", "speed_pct"),
}
"""Parameter names of every command, in wire order (all floats)."""

MOTION = frozenset({Cmd.HOME, Cmd.ENABLE, Cmd.MOVE_JOINT, Cmd.SERVO_JOINT})
"""Commands that can make the arm move: only sent when the run is armed (or fake)."""
ACKED = frozenset(set(Cmd) - {Cmd.SERVO_JOINT})
"""Commands the server answers (assumed)."""
QUERIES = {Cmd.GET_VERSION: "version", Cmd.GET_HOMED: "homed"}


@dataclass(frozen=True)
class Command:
    """One command: its code and its float parameters (``PARAMS[code]`` of them)."""

    code: Cmd
    params: tuple[float, ...] = ()


@dataclass(frozen=True)
class Status:
    """The server's STATUS reply, validated."""

    pose: tuple[float, ...]
    angles: tuple[float, ...]
    speeds: tuple[float, ...]
    io: tuple[int, ...]
    gripper: tuple[int, ...]
    action_current: str
    action_state: str
    joint_en: tuple[int, ...] = ()
    cart_en_wrf: tuple[int, ...] = ()
    cart_en_trf: tuple[int, ...] = ()

    @property
    def estop(self) -> bool:
        """True while the e-stop is engaged (``io[4]``)."""
        return len(self.io) > 4 and self.io[4] == ESTOP_ENGAGED


@dataclass(frozen=True)
class Ok:
    pass


@dataclass(frozen=True)
class Error:
    message: str


@dataclass(frozen=True)
class Response:
    query: Cmd
    value: Any


Reply = Ok | Error | Status | Response


# -- encoding ----------------------------------------------------------------------------------
def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"{what}: expected a number, found {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ProtocolError(f"{what}: expected a finite number, found {number!r}")
    return number


def make_command(code: Cmd, params: Sequence[float] = ()) -> Command:
    """A validated :class:`Command` (right number of finite parameters)."""
    names = PARAMS[Cmd(code)]
    if len(params) != len(names):
        raise ProtocolError(
            f"command {Cmd(code).name}: expected {len(names)} parameter(s) {names}, "
            f"found {len(params)}"
        )
    values = tuple(
        _finite(v, f"command {Cmd(code).name} parameter {n}")
        for n, v in zip(names, params, strict=True)
    )
    return Command(Cmd(code), values)


def encode_command(command: Command) -> bytes:
    """``[code, *params]`` as msgpack (validated again: nothing malformed leaves)."""
    checked = make_command(command.code, command.params)
    return msgpack.packb([int(checked.code), *checked.params], use_bin_type=True)


def encode_reply(reply: Reply) -> bytes:
    """A reply as the server sends it (used by the fake server)."""
    if isinstance(reply, Ok):
        return msgpack.packb(int(MsgType.OK))
    if isinstance(reply, Error):
        return msgpack.packb([int(MsgType.ERROR), reply.message])
    if isinstance(reply, Response):
        return msgpack.packb([int(MsgType.RESPONSE), int(reply.query), reply.value])
    s = reply
    return msgpack.packb(
        [
            int(MsgType.STATUS),
            list(s.pose),
            list(s.angles),
            list(s.speeds),
            list(s.io),
            list(s.gripper),
            s.action_current,
            s.action_state,
            list(s.joint_en),
            list(s.cart_en_wrf),
            list(s.cart_en_trf),
        ]
    )


# -- decoding ----------------------------------------------------------------------------------
def _unpack(data: bytes, what: str) -> Any:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError(f"{what}: expected bytes, found {type(data).__name__}")
    if len(data) == 0:
        raise ProtocolError(f"{what}: empty datagram")
    if len(data) > MAX_DATAGRAM:
        raise ProtocolError(f"{what}: datagram of {len(data)} bytes exceeds {MAX_DATAGRAM}")
    try:
        return msgpack.unpackb(bytes(data), raw=False, strict_map_key=True, max_bin_len=0)
    except msgpack.ExtraData as exc:
        raise ProtocolError(f"{what}: trailing bytes after the msgpack value ({exc})") from None
    except (ValueError, msgpack.UnpackException, TypeError) as exc:
        # OutOfData (truncated), FormatError, StackError, invalid UTF-8 are ValueErrors
        raise ProtocolError(
            f"{what}: not a complete msgpack value ({type(exc).__name__}: {exc}); "
            f"first bytes {bytes(data[:16]).hex()}"
        ) from None


def _code(value: Any, enum: type[IntEnum], what: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{what}: expected an integer code, found {value!r}")
    try:
        return enum(value)
    except ValueError:
        known = ", ".join(f"{m.name}={m.value}" for m in enum)
        raise ProtocolError(f"{what}: unknown code {value} (known: {known})") from None


def decode_command(data: bytes) -> Command:
    """Parse a command datagram (the server side; the fake uses it)."""
    obj = _unpack(data, "command")
    if not isinstance(obj, list) or not obj:
        raise ProtocolError(f"command: expected a non-empty array [code, ...], found {obj!r}")
    code = _code(obj[0], Cmd, "command")
    return make_command(code, obj[1:])


def _numbers(value: Any, what: str, length: int | None = None) -> tuple[float, ...]:
    if not isinstance(value, list):
        raise ProtocolError(f"{what}: expected an array, found {type(value).__name__}")
    if length is not None and len(value) != length:
        raise ProtocolError(f"{what}: expected {length} values, found {len(value)}")
    return tuple(_finite(v, f"{what}[{i}]") for i, v in enumerate(value))


def _ints(value: Any, what: str, length: int | None = None) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise ProtocolError(f"{what}: expected an array, found {type(value).__name__}")
    if length is not None and len(value) != length:
        raise ProtocolError(f"{what}: expected {length} values, found {len(value)}")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ProtocolError(f"{what}[{i}]: expected an integer, found {v!r}")
    return tuple(value)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"{what}: expected a string, found {value!r}")
    return value


STATUS_FIELDS = 11


def decode_reply(data: bytes) -> Reply:
    """Parse a reply datagram from the server; anything malformed raises ProtocolError."""
    obj = _unpack(data, "reply")
    if isinstance(obj, int) and not isinstance(obj, bool):
        if _code(obj, MsgType, "reply") is not MsgType.OK:
            raise ProtocolError(f"reply: a bare integer must be OK={int(MsgType.OK)}, found {obj}")
        return Ok()
    if not isinstance(obj, list) or not obj:
        raise ProtocolError(f"reply: expected OK or a non-empty array, found {obj!r}")
    kind = _code(obj[0], MsgType, "reply type")
    if kind is MsgType.ERROR:
        if len(obj) != 2:
            raise ProtocolError(f"ERROR reply: expected [ERROR, message], found {len(obj)} items")
        return Error(_text(obj[1], "ERROR reply message"))
    if kind is MsgType.RESPONSE:
        if len(obj) != 3:
            raise ProtocolError(
                f"RESPONSE reply: expected [RESPONSE, query, value], found {len(obj)} items"
            )
        query = _code(obj[1], Cmd, "RESPONSE query")
        return Response(query, _query_value(query, obj[2]))
    if kind is MsgType.STATUS:
        if len(obj) != STATUS_FIELDS:
            raise ProtocolError(
                f"STATUS reply: expected {STATUS_FIELDS} items [STATUS, pose, angles, speeds, io, "
                f"gripper, action_current, action_state, joint_en, cart_en_wrf, cart_en_trf], "
                f"found {len(obj)}"
            )
        return Status(
            pose=_numbers(obj[1], "STATUS pose"),
            angles=_numbers(obj[2], "STATUS angles", N_JOINTS),
            speeds=_numbers(obj[3], "STATUS speeds", N_JOINTS),
            io=_ints(obj[4], "STATUS io", 5),
            gripper=_ints(obj[5], "STATUS gripper", 6),
            action_current=_text(obj[6], "STATUS action_current"),
            action_state=_text(obj[7], "STATUS action_state"),
            joint_en=_ints(obj[8], "STATUS joint_en"),
            cart_en_wrf=_ints(obj[9], "STATUS cart_en_wrf"),
            cart_en_trf=_ints(obj[10], "STATUS cart_en_trf"),
        )
    raise ProtocolError(f"reply: a {kind.name} must be a bare integer, found an array")


def _query_value(query: Cmd, value: Any) -> Any:
    if query is Cmd.GET_VERSION:
        return _text(value, "RESPONSE version")
    if query is Cmd.GET_HOMED:
        if not isinstance(value, list) or len(value) != N_JOINTS:
            raise ProtocolError(f"RESPONSE homed: expected {N_JOINTS} booleans, found {value!r}")
        if not all(isinstance(v, bool) for v in value):
            raise ProtocolError(f"RESPONSE homed: expected booleans, found {value!r}")
        return tuple(value)
    raise ProtocolError(f"RESPONSE: {query.name} is not a query")
