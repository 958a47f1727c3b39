"""The wire protocol for policies and envs in another process or on another host.

One message is one msgpack map. numpy arrays travel inline as an extension value holding
their dtype, shape and raw little-endian bytes; numpy scalars likewise. Only boolean, integer,
unsigned, floating and fixed-width string dtypes are accepted: object, void (structured) and
complex arrays are rejected on both sides, and nothing is ever pickled. Every message carries
the protocol version ``v``; a peer that speaks another version is refused with a message that
names both versions.

Requests are ``{"v", "id", "op", "args"}``; replies ``{"v", "id", "ok": true, "result", "ms"}``
(``ms``: time spent inside the call on the serving side) or ``{"v", "id", "ok": false,
"error": {"type", "message"}}``. Over a pipe or socket each message is framed by a 4-byte
big-endian length; over a WebSocket one message is one binary frame.

This module needs only numpy and msgpack, so that a worker interpreter without vlabench's
other dependencies can import it (see ``vlabench/isolation/worker.py``).
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

import msgpack
import numpy as np

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
"""Default limit of one encoded message (a few uint8 camera frames fit easily)."""
MAX_NDIM = 32

_EXT_ARRAY = 1
_EXT_SCALAR = 2
_ALLOWED_KINDS = "biufUS"
_HEADER = struct.Struct(">I")


class WireError(ValueError):
    """A message could not be encoded or decoded; the text says what and where."""


class VersionMismatch(WireError):
    """The peer speaks another protocol version."""


class RemoteError(RuntimeError):
    """The serving side raised; ``type`` names the remote exception class."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type = type_name
        self.message = message


class PeerGone(ConnectionError):
    """The peer (worker process or server) went away mid-call."""


# -- numpy <-> msgpack ------------------------------------------------------------------------
def _check_dtype(dtype: np.dtype, where: str) -> None:
    if dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise WireError(
            f"{where}: dtype {dtype.str!r} (kind {dtype.kind!r}) cannot travel on the wire; "
            "expected bool, int, uint, float or fixed-width str/bytes (object, void and "
            "complex dtypes are rejected)"
        )


def _little(arr: np.ndarray) -> np.ndarray:
    dtype = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    return np.asarray(arr).astype(dtype, order="C", copy=False)  # keeps 0-d arrays 0-d


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        _check_dtype(obj.dtype, "array")
        arr = _little(obj)
        payload = msgpack.packb([arr.dtype.str, list(arr.shape), arr.tobytes()])
        return msgpack.ExtType(_EXT_ARRAY, payload)
    if isinstance(obj, np.generic):
        _check_dtype(obj.dtype, "scalar")
        arr = _little(np.asarray(obj))
        return msgpack.ExtType(_EXT_SCALAR, msgpack.packb([arr.dtype.str, arr.tobytes()]))
    if isinstance(obj, tuple | set | frozenset):
        return list(obj)
    raise WireError(
        f"cannot encode a {type(obj).__module__}.{type(obj).__qualname__}: expected None, bool, "
        "int, float, str, bytes, list, dict or a numpy array/scalar"
    )


def _dtype_of(text: Any, where: str) -> np.dtype:
    if not isinstance(text, str) or len(text) > 16:
        raise WireError(f"{where}: dtype must be a short string, got {text!r}")
    try:
        dtype = np.dtype(text)
    except (TypeError, ValueError) as exc:
        raise WireError(f"{where}: unknown dtype {text!r}: {exc}") from None
    _check_dtype(dtype, where)
    return dtype


def _ext_hook(code: int, data: bytes) -> Any:
    if code not in (_EXT_ARRAY, _EXT_SCALAR):
        raise WireError(f"unknown extension type {code} (this side knows 1=array, 2=scalar)")
    try:
        fields = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:
        raise WireError(f"corrupt numpy extension value: {exc}") from None
    if code == _EXT_ARRAY:
        if not (isinstance(fields, list) and len(fields) == 3):
            raise WireError("array extension: expected [dtype, shape, bytes]")
        dtype = _dtype_of(fields[0], "array")
        shape, raw = fields[1], fields[2]
        if (
            not isinstance(shape, list)
            or len(shape) > MAX_NDIM
            or not all(type(n) is int and 0 <= n < 2**40 for n in shape)
        ):
            raise WireError(f"array: shape must be a list of non-negative ints, got {shape!r}")
        if not isinstance(raw, bytes):
            raise WireError("array: data must be bytes")
        count = int(np.prod(shape, dtype=object)) if shape else 1
        if count * dtype.itemsize != len(raw):
            raise WireError(
                f"array: {len(raw)} bytes do not fit dtype {dtype.str} and shape {tuple(shape)} "
                f"(expected {count * dtype.itemsize})"
            )
        return np.frombuffer(raw, dtype=dtype).reshape(tuple(shape)).copy()
    if code == _EXT_SCALAR:
        if not (isinstance(fields, list) and len(fields) == 2 and isinstance(fields[1], bytes)):
            raise WireError("scalar extension: expected [dtype, bytes]")
        dtype = _dtype_of(fields[0], "scalar")
        if len(fields[1]) != dtype.itemsize:
            raise WireError(f"scalar: {len(fields[1])} bytes for dtype {dtype.str}")
        return np.frombuffer(fields[1], dtype=dtype)[0]
    raise AssertionError("unreachable")


def pack(obj: Any, max_bytes: int = MAX_MESSAGE_BYTES) -> bytes:
    """Encode ``obj`` (plain data and numpy arrays) as msgpack; too large or odd types raise."""
    try:
        data = msgpack.packb(obj, default=_default, use_bin_type=True)
    except WireError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise WireError(f"cannot encode message: {exc}") from None
    if len(data) > max_bytes:
        raise WireError(f"message of {len(data)} bytes exceeds the limit of {max_bytes} bytes")
    return data


def unpack(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Any:
    """Decode one msgpack message; anything malformed raises :class:`WireError`."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WireError(f"expected a binary message, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise WireError(f"message of {len(data)} bytes exceeds the limit of {max_bytes} bytes")
    try:
        return msgpack.unpackb(
            bytes(data),
            raw=False,
            ext_hook=_ext_hook,
            strict_map_key=False,
        )
    except WireError:
        raise
    except Exception as exc:  # msgpack raises many types for garbage
        raise WireError(f"malformed message ({type(exc).__name__}: {exc})") from None


# -- envelopes -------------------------------------------------------------------------------
def request(msg_id: int, op: str, args: Any = None) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "id": msg_id, "op": op, "args": args}


def reply(msg_id: Any, result: Any, ms: float) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "id": msg_id, "ok": True, "result": result, "ms": ms}


def error_reply(msg_id: Any, exc: BaseException) -> dict[str, Any]:
    return {
        "v": PROTOCOL_VERSION,
        "id": msg_id,
        "ok": False,
        "error": {"type": type(exc).__name__, "message": str(exc)},
    }


def check_message(msg: Any, where: str) -> dict[str, Any]:
    """``msg`` as a dict of this protocol version, else a clear :class:`WireError`."""
    if not isinstance(msg, dict):
        raise WireError(f"{where}: expected a message map, got {type(msg).__name__}")
    version = msg.get("v")
    if version != PROTOCOL_VERSION:
        raise VersionMismatch(
            f"{where}: protocol version mismatch: this side speaks v{PROTOCOL_VERSION}, "
            f"the message is v{version!r}; use the same vlabench wire version on both sides"
        )
    return msg


def check_request(msg: Any, where: str) -> tuple[Any, str, Any]:
    """(id, op, args) of a request, validated."""
    msg = check_message(msg, where)
    op = msg.get("op")
    if not isinstance(op, str):
        raise WireError(f"{where}: a request needs a string 'op', got {op!r}")
    return msg.get("id"), op, msg.get("args")


def result_of(msg: Any, where: str) -> tuple[Any, float]:
    """(result, serving-side ms) of a reply; a remote error raises :class:`RemoteError`."""
    msg = check_message(msg, where)
    if msg.get("ok") is True:
        ms = msg.get("ms")
        return msg.get("result"), float(ms) if isinstance(ms, int | float) else 0.0
    error = msg.get("error")
    if isinstance(error, dict):
        raise RemoteError(str(error.get("type", "Error")), str(error.get("message", "")))
    raise WireError(f"{where}: reply is neither ok nor an error: {msg!r:.200}")


# -- length-prefixed framing (pipes, Unix sockets) ------------------------------------------
def write_frame(stream: BinaryIO, data: bytes) -> None:
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise PeerGone(f"stream closed after {n - left} of {n} bytes")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: BinaryIO, max_bytes: int = MAX_MESSAGE_BYTES) -> bytes:
    """One framed message; the length is checked before anything is read."""
    (size,) = _HEADER.unpack(_read_exact(stream, _HEADER.size))
    if size > max_bytes:
        raise WireError(f"frame of {size} bytes exceeds the limit of {max_bytes} bytes")
    return _read_exact(stream, size)
