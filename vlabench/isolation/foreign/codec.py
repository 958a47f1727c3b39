"""The two foreign encodings: openpi's msgpack-numpy and vla-eval's protocol v1 messages.

Both put one msgpack map in each binary WebSocket frame and carry arrays inline:

* openpi: ``{b"__ndarray__": True, b"data", b"dtype", b"shape"}`` with *bin* keys, numpy
  scalars as ``{b"__npgeneric__": True, b"data", b"dtype"}``; object, void and complex dtypes
  are refused.
* vla-eval: an envelope ``{type, payload, seq, timestamp}``; arrays as
  ``{"__ndarray__": True, "data", "dtype", "shape"}`` with *str* keys (bool/int/uint/float
  only), numpy scalars as plain numbers, images optionally as
  ``{"__image__": True, "format": "png"|"jpeg"|"raw", ...}``.
"""

from __future__ import annotations

import io
import time
from typing import Any

import msgpack
import numpy as np

VLAEVAL_PROTOCOL_VERSION = 1
VLAEVAL_TYPES = ("hello", "observation", "action", "episode_start", "episode_end", "error")
_ALLOWED_KINDS = frozenset("biuf")


# -- openpi -----------------------------------------------------------------------------------
def _openpi_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray | np.generic) and obj.dtype.kind in ("V", "O", "c"):
        raise ValueError(f"Unsupported dtype: {obj.dtype}")
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str,
                b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


def _openpi_hook(obj: dict) -> Any:
    if b"__ndarray__" in obj:
        return np.ndarray(buffer=obj[b"data"], dtype=np.dtype(obj[b"dtype"]),
                          shape=obj[b"shape"])
    if b"__npgeneric__" in obj:
        return np.dtype(obj[b"dtype"]).type(obj[b"data"])
    return obj


def openpi_pack(obj: Any) -> bytes:
    """One openpi frame (msgpack with openpi's numpy extension)."""
    return msgpack.packb(obj, default=_openpi_default)


def openpi_unpack(data: bytes) -> Any:
    """Decode one openpi frame."""
    return msgpack.unpackb(data, object_hook=_openpi_hook)


# -- vla-eval ---------------------------------------------------------------------------------
def _vlaeval_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _ALLOWED_KINDS:
            raise ValueError(f"vla-eval carries bool/int/uint/float arrays only, not {obj.dtype}")
        return {"__ndarray__": True, "data": obj.tobytes(), "dtype": obj.dtype.str,
                "shape": list(obj.shape)}
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj


def _decode_image(obj: dict) -> np.ndarray:
    if obj["format"] == "raw":
        return np.frombuffer(obj["data"], dtype=np.dtype(obj["dtype"])).reshape(obj["shape"])
    from PIL import Image

    return np.array(Image.open(io.BytesIO(obj["data"])))


def _vlaeval_hook(obj: dict) -> Any:
    if "__image__" in obj:
        return _decode_image(obj)
    if "__ndarray__" not in obj:
        return obj
    dtype = np.dtype(obj["dtype"])
    if dtype.kind not in _ALLOWED_KINDS:
        raise ValueError(f"disallowed numpy dtype {dtype} (bool/int/uint/float only)")
    return np.frombuffer(obj["data"], dtype=dtype).reshape(obj["shape"])


def vlaeval_pack(kind: str, payload: dict[str, Any], seq: int = 0) -> bytes:
    """One vla-eval message ``{type, payload, seq, timestamp}``."""
    envelope = {"type": kind, "payload": payload, "seq": seq, "timestamp": time.time()}
    return msgpack.packb(envelope, default=_vlaeval_default, use_bin_type=True)


def vlaeval_unpack(data: bytes) -> tuple[str, Any, int]:
    """``(type, payload, seq)`` of one vla-eval message; a malformed one raises ValueError."""
    try:
        raw = msgpack.unpackb(data, object_hook=_vlaeval_hook, raw=False)
    except Exception as exc:
        raise ValueError(f"Failed to decode msgpack data ({len(data)} bytes): {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"Expected msgpack dict, got {type(raw).__name__}")
    missing = [k for k in ("type", "payload", "seq", "timestamp") if k not in raw]
    if missing:
        raise ValueError(f"Message missing required fields: {missing}. Got keys: {list(raw)}")
    if raw["type"] not in VLAEVAL_TYPES:
        raise ValueError(f"Unknown message type: {raw['type']!r}")
    return raw["type"], raw["payload"], raw["seq"]


def vlaeval_hello(**extra: Any) -> dict[str, Any]:
    """A HELLO payload: protocol version 1, vlabench's version as the harness version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        mine = version("vlabench")
    except PackageNotFoundError:
        mine = "0"
    return {"harness_version": f"vlabench-{mine}", "protocol_version": VLAEVAL_PROTOCOL_VERSION,
            **extra}
