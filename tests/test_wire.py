"""The wire protocol: numpy inline, rejected dtypes, limits, versions, a fuzzed decoder."""

from __future__ import annotations

import io
import struct
import subprocess
import sys

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vlabench.isolation import wire, worker


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.zeros((2, 8, 8, 3), np.uint8),
        np.array([True, False]),
        np.arange(5, dtype=">i8"),  # big-endian arrives little-endian, same values
        np.arange(6, dtype=np.float64).reshape(2, 3)[:, ::2],  # non-contiguous
        np.zeros((0, 7), np.float16),
        np.array(["pick", "place"]),
        np.array(3.5, np.float32),  # 0-d
    ],
)
def test_arrays_round_trip_with_dtype_and_shape(array: np.ndarray) -> None:
    out = wire.unpack(wire.pack({"a": array, "nested": [array, {"b": array}]}))
    for got in (out["a"], out["nested"][0], out["nested"][1]["b"]):
        assert isinstance(got, np.ndarray)
        assert got.shape == array.shape
        assert got.dtype == array.dtype.newbyteorder("=")
        np.testing.assert_array_equal(got, array)
        assert got.flags.writeable


def test_scalars_and_plain_data_round_trip() -> None:
    msg = {"r": np.float32(1.5), "i": np.int64(-3), "b": np.bool_(True), "t": (1, "x", None)}
    out = wire.unpack(wire.pack(msg))
    assert out["r"] == np.float32(1.5) and out["r"].dtype == np.float32
    assert out["i"] == -3 and out["i"].dtype == np.int64
    assert out["b"] is np.True_ or out["b"] == np.True_
    assert out["t"] == [1, "x", None]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (np.array([object(), 1], dtype=object), "'O'"),
        (np.zeros(2, dtype=[("x", "f4")]), "'V'"),
        (np.zeros(2, dtype=np.complex64), "'c'"),
        (np.complex128(1j), "'c'"),
        (object(), "cannot encode"),
    ],
)
def test_object_void_complex_and_foreign_objects_are_rejected(value: object, kind: str) -> None:
    with pytest.raises(wire.WireError) as exc:
        wire.pack({"x": value})
    assert kind in str(exc.value)


def _ext_array(dtype: str, shape: list[int], raw: bytes) -> bytes:
    payload = msgpack.packb([dtype, shape, raw])
    return msgpack.packb({"a": msgpack.ExtType(1, payload)})


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (_ext_array("|O8", [1], b"\0" * 8), "object, void and complex"),
        (_ext_array("<c16", [1], b"\0" * 16), "object, void and complex"),
        (_ext_array("|V4", [1], b"\0" * 4), "object, void and complex"),
        (_ext_array("<f4", [3], b"\0" * 8), "do not fit"),
        (_ext_array("<f4", [-1], b""), "non-negative"),
        (_ext_array("nonsense", [1], b"\0"), "unknown dtype"),
        (msgpack.packb(msgpack.ExtType(9, b"")), "unknown extension"),
        (b"\xc1", "malformed"),  # never-used msgpack byte
        (b"\x92\x01", "malformed"),  # truncated array
        (b"", "malformed"),
    ],
)
def test_malformed_messages_are_rejected_clearly(data: bytes, needle: str) -> None:
    with pytest.raises(wire.WireError) as exc:
        wire.unpack(data)
    assert needle in str(exc.value)


def test_oversized_messages_are_rejected_on_both_sides() -> None:
    big = {"img": np.zeros(10_000, np.uint8)}
    with pytest.raises(wire.WireError, match="exceeds the limit of 1000 bytes"):
        wire.pack(big, max_bytes=1000)
    data = wire.pack(big)
    with pytest.raises(wire.WireError, match="exceeds the limit"):
        wire.unpack(data, max_bytes=1000)
    frame = io.BytesIO(struct.pack(">I", 2**31) + b"x")
    with pytest.raises(wire.WireError, match="frame of 2147483648 bytes exceeds"):
        wire.read_frame(frame, max_bytes=1 << 20)


def test_wrong_version_is_refused_naming_both_versions() -> None:
    bad = {"v": 99, "id": 1, "op": "hello", "args": None}
    with pytest.raises(wire.VersionMismatch) as exc:
        wire.check_request(bad, "env worker")
    assert "v1" in str(exc.value) and "v99" in str(exc.value)
    reply = wire.unpack(worker.answer(worker.EnvHost(lambda t, o: None), wire.pack(bad)))
    assert reply["ok"] is False and reply["error"]["type"] == "VersionMismatch"
    assert "version mismatch" in reply["error"]["message"]
    with pytest.raises(wire.VersionMismatch):  # a reply from a newer peer
        wire.result_of({"v": 2, "id": 1, "ok": True, "result": None}, "reply")


def test_a_real_worker_answers_bad_messages_with_errors_and_keeps_serving() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(worker.__file__), "--kind", "env", "--factory", "builtins:dict"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        frames = [
            b"\xc1garbage",
            msgpack.packb({"v": 7, "id": 1, "op": "hello"}),
            msgpack.packb({"v": 1, "id": 2}),
            wire.pack(wire.request(3, "hello")),
        ]
        for data in frames:
            wire.write_frame(proc.stdin, data)
        replies = [wire.unpack(wire.read_frame(proc.stdout)) for _ in frames]
        assert [r["ok"] for r in replies] == [False, False, False, True]
        assert "malformed" in replies[0]["error"]["message"]
        assert replies[1]["error"]["type"] == "VersionMismatch"
        assert "'op'" in replies[2]["error"]["message"]
        assert replies[3]["result"]["protocol"] == wire.PROTOCOL_VERSION
        # An oversized frame cannot be skipped: the worker says so and stops.
        proc.stdin.write(struct.pack(">I", wire.MAX_MESSAGE_BYTES + 1))
        proc.stdin.flush()
        last = wire.unpack(wire.read_frame(proc.stdout))
        assert last["ok"] is False and "exceeds the limit" in last["error"]["message"]
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


# -- fuzzing --------------------------------------------------------------------------------
_FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))


@_FUZZ
@given(st.binary(max_size=512))
def test_fuzz_random_bytes_decode_or_raise_wire_error(data: bytes) -> None:
    try:
        wire.unpack(data)
    except wire.WireError as exc:  # the only exception a peer can provoke
        assert str(exc)


_ARRAYS = st.builds(
    lambda dtype, shape, seed: np.random.default_rng(seed)
    .integers(0, 255, size=shape)
    .astype(dtype),
    st.sampled_from(["u1", "i4", "<f4", ">f8", "?", "i2"]),
    st.lists(st.integers(0, 4), max_size=3).map(tuple),
    st.integers(0, 10),
)
_PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text() | _ARRAYS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@_FUZZ
@given(_PLAIN, st.integers(0, 10_000), st.integers(0, 255))
def test_fuzz_mutated_valid_messages(obj: object, position: int, byte: int) -> None:
    data = bytearray(wire.pack(wire.request(1, "step", obj)))
    data[position % len(data)] = byte
    try:
        msg = wire.unpack(bytes(data))
        wire.check_request(msg, "fuzz")
    except wire.WireError as exc:
        assert str(exc)


@_FUZZ
@given(_PLAIN)
def test_fuzz_round_trip_of_valid_messages(obj: object) -> None:
    out = wire.unpack(wire.pack(obj))

    def same(a: object, b: object) -> None:
        if isinstance(a, np.ndarray):
            assert isinstance(b, np.ndarray) and a.shape == b.shape
            np.testing.assert_array_equal(a, b)
        elif isinstance(a, dict):
            assert isinstance(b, dict) and a.keys() == b.keys()
            for k in a:
                same(a[k], b[k])
        elif isinstance(a, list):
            assert isinstance(b, list) and len(a) == len(b)
            for x, y in zip(a, b, strict=True):
                same(x, y)
        else:
            assert a == b

    same(obj, out)
