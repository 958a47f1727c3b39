"""The wire protocol between vlabench and ``parol6-server``: msgpack over UDP, in one place.

We talk to the official controller process (``parol6-server``, port 5001), not to the board's
serial frame: the server owns homing, the 100 Hz control loop, the firmware's own safety and
the serial timing, so vlabench stays a thin, testable client.

Every code, field and unit here follows ONE release of the official PAROL6 Python API
(:data:`SERVER_RELEASE` of :data:`SERVER_PROJECT`, its ``parol6/protocol/wire.py``,
``parol6/ack_policy.py`` and server command handlers; facts only, no code: it is GPL-3.0).
``tests/fixtures/parol6/wire-0.4.0.json`` holds the request/reply bytes of every command sent
here, captured from that release's server in simulation mode; the driver and the fake must
both reproduce them.

* one msgpack array per UDP datagram: a command is ``[CmdType, *fields]`` (codes from 1);
* replies: ``[OK, index|None]`` (``index``: the queued command's number),
  ``[ERROR, [command_index, code, title, cause, effect, remedy]]`` and
  ``[RESPONSE, [QueryType, *fields]]``; ``[STATUS, ...]`` is the multicast broadcast, never a
  reply on this socket;
* system commands (``RESET``, ``ESTOP``, ``STOP``) and queued ones (``HOME``, ``MOVEJ``) are
  answered OK/ERROR after they took effect; queries by a RESPONSE; ``SERVOJ`` never;
* joints in degrees; STATUS angles are the motors' whole step counts converted back to
  degrees (a commanded 180.0 on J3 reads 180.00074...), its pose the row-major 4x4 TCP pose
  with translation in mm, its speeds in rad/s; ``io`` is ``[in1, in2, out1, out2, estop]`` with
  ``estop == 0`` while the physical button is pressed; ``tool_status`` is ``[key, state,
  engaged, part_detected, fault_code, positions, channels]`` (no tool: ``["NONE", 0, false,
  false, 0, [], []]``); speed and accel are fractions in (0, 1];
* PING's ``hardware_connected`` is 1 with a board on the serial link, 0 in simulation;
* ``ESTOP`` is a protective stop: motion cancelled, motors holding, the controller latched
  disabled (motion commands answered ERROR 50) until ``RESET``. There is no separate
  enable/disable command, no version query and no servo/heartbeat deadman in this release.

Every decoder is strict: a reply that is not exactly one of the shapes above raises
:class:`ProtocolError` saying what was expected and what was found.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import msgpack

SERVER_PROJECT = "parol6-server (PCrnjak/PAROL6-python-API)"
SERVER_RELEASE = "0.4.0"
"""The one release whose wire protocol this module speaks."""
DEFAULT_PORT = 5001
N_JOINTS = 6
MAX_DATAGRAM = 65507
ESTOP_RELEASED = 1
"""Value of ``io[4]`` while the physical e-stop is released (0 = pressed)."""
ERR_CONTROLLER_DISABLED = 50
"""ERROR code of a motion command refused because the controller is latched disabled."""
ERR_ESTOP_ACTIVE = 51
ERR_VALIDATION = 43
"""ERROR code of a command whose parameters the server refused (e.g. a target beyond limits)."""


class ProtocolError(ValueError):
    """A datagram that does not follow the protocol; the message says what and where."""


class MsgType(IntEnum):
    """Reply type codes (0.4.0)."""

    OK = 1
    ERROR = 2
    STATUS = 3
    RESPONSE = 4


class QueryType(IntEnum):
    """Tags of RESPONSE results (0.4.0), only those used here."""

    PING = 1
    STATUS = 2
    IS_SIMULATOR = 16


class Cmd(IntEnum):
    """Command codes (0.4.0), only those sent here."""

    PING = 1
    STATUS = 2
    RESET = 16
    ESTOP = 17
    STOP = 18
    HOME = 25
    MOVEJ = 26
    SERVOJ = 37
    IS_SIMULATOR = 44


QUERIES = {Cmd.PING: QueryType.PING, Cmd.STATUS: QueryType.STATUS,
           Cmd.IS_SIMULATOR: QueryType.IS_SIMULATOR}
"""Query commands and the RESPONSE tag that answers each."""
MOTION = frozenset({Cmd.RESET, Cmd.HOME, Cmd.MOVEJ, Cmd.SERVOJ})
"""Commands that can make the arm move (RESET re-enables motion): armed runs only, and never
while the arm's e-stop latch is engaged."""
UNANSWERED = frozenset({Cmd.SERVOJ})
"""Fire-and-forget commands (the server sends neither OK nor ERROR)."""


@dataclass(frozen=True)
class Command:
    """One command. ``joints`` (deg) for MOVEJ/SERVOJ; MOVEJ takes exactly one of
    ``duration`` (s) and ``speed``; ``speed``/``accel`` are fractions in (0, 1]."""

    code: Cmd
    joints: tuple[float, ...] = ()
    duration: float = 0.0
    speed: float = 0.0
    accel: float = 1.0
    rel: bool = False


@dataclass(frozen=True)
class Ok:
    index: int | None = None


@dataclass(frozen=True)
class Error:
    code: int
    title: str
    cause: str = ""
    command_index: int = -1

    @property
    def message(self) -> str:
        return f"{self.title} (code {self.code}): {self.cause}".rstrip(": ")


@dataclass(frozen=True)
class Status:
    """The STATUS query's RESPONSE, validated."""

    pose: tuple[float, ...]
    """Row-major 4x4 TCP pose, translation in mm."""
    angles: tuple[float, ...]
    """deg, as whole motor steps converted back to degrees"""
    speeds: tuple[float, ...]
    """rad/s"""
    io: tuple[int, ...]
    tool: tuple[Any, ...] = ("NONE", 0, False, False, 0, (), ())
    """tool_status: key, state (0 = OFF), engaged, part_detected, fault_code, positions,
    channels."""

    @property
    def estop(self) -> bool:
        """True while the physical e-stop is pressed (``io[4] == 0``)."""
        return self.io[4] != ESTOP_RELEASED


@dataclass(frozen=True)
class Ping:
    hardware_connected: int
    """1: the server talks to a board; 0: it does not (always 0 in simulation)."""


@dataclass(frozen=True)
class Simulator:
    active: bool


Reply = Ok | Error | Status | Ping | Simulator


# -- encoding ----------------------------------------------------------------------------------
def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"{what}: expected a number, found {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ProtocolError(f"{what}: expected a finite number, found {number!r}")
    return number


def _fraction(value: float, what: str, zero_ok: bool = False) -> float:
    v = _finite(value, what)
    if not (0.0 <= v <= 1.0 if zero_ok else 0.0 < v <= 1.0):
        raise ProtocolError(f"{what}: expected a fraction in (0, 1], found {v}")
    return v


def make_command(
    code: Cmd,
    joints: Sequence[float] = (),
    *,
    duration: float = 0.0,
    speed: float = 0.0,
    accel: float = 1.0,
    rel: bool = False,
) -> Command:
    """A validated :class:`Command` (ProtocolError when it could not be encoded)."""
    code = Cmd(code)
    name = code.name
    if code in (Cmd.MOVEJ, Cmd.SERVOJ):
        if len(joints) != N_JOINTS:
            raise ProtocolError(f"{name}: expected {N_JOINTS} joint angles, found {len(joints)}")
        j = tuple(_finite(v, f"{name} joint {i + 1}") for i, v in enumerate(joints))
        accel = _fraction(accel, f"{name} accel")
        if code is Cmd.SERVOJ:
            return Command(code, j, speed=_fraction(speed, "SERVOJ speed"), accel=accel)
        duration = _finite(duration, "MOVEJ duration")
        speed = _fraction(speed, "MOVEJ speed", zero_ok=True)
        if (duration > 0) == (speed > 0) or duration < 0:
            raise ProtocolError("MOVEJ: expected exactly one of duration > 0 and speed > 0")
        return Command(code, j, duration, speed, accel, bool(rel))
    if joints or duration or speed or rel:
        raise ProtocolError(f"command {name} takes no parameters")
    return Command(code)


def _fields(c: Command) -> list[Any]:
    if c.code is Cmd.MOVEJ:
        return [int(c.code), list(c.joints), c.duration, c.speed, c.accel, 0.0, c.rel]
    if c.code is Cmd.SERVOJ:
        return [int(c.code), list(c.joints), c.speed, c.accel]
    return [int(c.code)]


def encode_command(command: Command) -> bytes:
    """The command's datagram (validated again: nothing malformed leaves)."""
    c = command
    checked = make_command(
        c.code, c.joints, duration=c.duration, speed=c.speed, accel=c.accel, rel=c.rel
    )
    return msgpack.packb(_fields(checked), use_bin_type=True)


def encode_reply(reply: Reply) -> bytes:
    """A reply as the server sends it (used by the fake server)."""
    if isinstance(reply, Ok):
        body: list[Any] = [int(MsgType.OK), reply.index]
    elif isinstance(reply, Error):
        body = [int(MsgType.ERROR), [reply.command_index, reply.code, reply.title, reply.cause,
                                     "Command rejected.", _REMEDY.get(reply.code, "")]]
    elif isinstance(reply, Ping):
        body = [int(MsgType.RESPONSE), [int(QueryType.PING), reply.hardware_connected]]
    elif isinstance(reply, Simulator):
        body = [int(MsgType.RESPONSE), [int(QueryType.IS_SIMULATOR), reply.active]]
    else:
        s = reply
        body = [int(MsgType.RESPONSE), [int(QueryType.STATUS), list(s.pose), list(s.angles),
                                        list(s.speeds), list(s.io), _plain(s.tool)]]
    return msgpack.packb(body, use_bin_type=True)


_REMEDY = {
    ERR_CONTROLLER_DISABLED: "Call reset() to re-enable the controller.",
    ERR_VALIDATION: "Check parameter ranges and types.",
}


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, list | tuple) else value


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


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{what}: expected an integer, found {value!r}")
    return value


def _list(value: Any, what: str, length: int | None = None) -> list[Any]:
    if not isinstance(value, list):
        raise ProtocolError(f"{what}: expected an array, found {type(value).__name__}")
    if length is not None and len(value) != length:
        raise ProtocolError(f"{what}: expected {length} values, found {len(value)}")
    return value


def _numbers(value: Any, what: str, length: int) -> tuple[float, ...]:
    return tuple(_finite(v, f"{what}[{i}]") for i, v in enumerate(_list(value, what, length)))


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"{what}: expected a string, found {value!r}")
    return value


def decode_command(data: bytes) -> Command:
    """Parse a command datagram (the server side; the fake uses it)."""
    obj = _unpack(data, "command")
    if not isinstance(obj, list) or not obj:
        raise ProtocolError(f"command: expected a non-empty array [code, ...], found {obj!r}")
    code = _code(obj[0], Cmd, "command")
    rest = obj[1:]
    if code is Cmd.MOVEJ:
        _list(rest, "MOVEJ fields", 6)
        if not isinstance(rest[5], bool):
            raise ProtocolError(f"MOVEJ rel: expected a bool, found {rest[5]!r}")
        joints = _numbers(rest[0], "MOVEJ angles", N_JOINTS)
        if _finite(rest[4], "MOVEJ r") != 0.0:
            raise ProtocolError("MOVEJ r: blending is not used here, expected 0.0")
        return make_command(code, joints, duration=rest[1], speed=rest[2], accel=rest[3],
                            rel=rest[5])
    if code is Cmd.SERVOJ:
        _list(rest, "SERVOJ fields", 3)
        joints = _numbers(rest[0], "SERVOJ angles", N_JOINTS)
        return make_command(code, joints, speed=rest[1], accel=rest[2])
    if rest:
        raise ProtocolError(f"command {code.name}: expected no fields, found {rest!r}")
    return Command(code)


def decode_reply(data: bytes) -> Reply:
    """Parse a reply datagram from the server; anything malformed raises ProtocolError."""
    obj = _unpack(data, "reply")
    if not isinstance(obj, list) or len(obj) != 2:
        raise ProtocolError(f"reply: expected an array [type, body], found {obj!r}")
    kind = _code(obj[0], MsgType, "reply type")
    body = obj[1]
    if kind is MsgType.OK:
        if body is not None:
            _int(body, "OK index")
        return Ok(body)
    if kind is MsgType.ERROR:
        err = _list(body, "ERROR body [command_index, code, title, cause, effect, remedy]", 6)
        return Error(
            _int(err[1], "ERROR code"),
            _text(err[2], "ERROR title"),
            _text(err[3], "ERROR cause"),
            _int(err[0], "ERROR command_index"),
        )
    if kind is MsgType.STATUS:
        raise ProtocolError("reply: a STATUS broadcast arrived on the command socket")
    result = _list(body, "RESPONSE body")
    if not result:
        raise ProtocolError("RESPONSE body: expected [query_type, ...], found []")
    query = _code(result[0], QueryType, "RESPONSE query type")
    if query is QueryType.PING:
        _list(result, "PING response", 2)
        return Ping(_int(result[1], "PING hardware_connected"))
    if query is QueryType.IS_SIMULATOR:
        _list(result, "IS_SIMULATOR response", 2)
        if not isinstance(result[1], bool):
            raise ProtocolError(f"IS_SIMULATOR active: expected a bool, found {result[1]!r}")
        return Simulator(result[1])
    _list(result, "STATUS response [2, pose, angles, speeds, io, tool_status]", 6)
    io = tuple(_int(v, f"STATUS io[{i}]") for i, v in enumerate(_list(result[4], "io", 5)))
    return Status(
        pose=_numbers(result[1], "STATUS pose", 16),
        angles=_numbers(result[2], "STATUS angles", N_JOINTS),
        speeds=_numbers(result[3], "STATUS speeds", N_JOINTS),
        io=io,
        tool=_tool(_list(result[5], "STATUS tool_status", 7)),
    )


def _tool(value: list[Any]) -> tuple[Any, ...]:
    """tool_status, kept but not interpreted (the plugin drives no tool)."""
    return tuple(tuple(v) if isinstance(v, list) else v for v in value)


def answers(code: Cmd, reply: Reply) -> bool:
    """Whether ``reply`` is the kind of answer ``code`` gets (ERROR answers anything)."""
    if isinstance(reply, Error):
        return True
    if code is Cmd.STATUS:
        return isinstance(reply, Status)
    if code is Cmd.PING:
        return isinstance(reply, Ping)
    if code is Cmd.IS_SIMULATOR:
        return isinstance(reply, Simulator)
    if code in (Cmd.HOME, Cmd.MOVEJ):
        return isinstance(reply, Ok) and reply.index is not None
    return isinstance(reply, Ok) and reply.index is None
