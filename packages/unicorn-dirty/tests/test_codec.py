"""The payload codec and the frame splitter: round trips, limits, and garbage."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unicorn_dirty import protocol as P
from unicorn_dirty.errors import CodecError, DirtyPayloadTooLargeError, DirtyProtocolError

pytestmark = pytest.mark.timeout(60)

ROUND_TRIPS = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**64,
    -(2**200),
    1.5,
    -0.0,
    math.inf,
    "",
    "héllo ✓",
    b"",
    b"\x00\xff" * 100,
    [],
    (),
    {},
    [1, "a", b"b", None, (2, 3)],
    {"a": {"b": [1, 2, {"c": b"d"}]}, 3: "int key", (1, 2): "tuple key"},
    ((),),
]


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=repr)
def test_round_trip_keeps_type_and_value(value):
    out = P.decode(P.encode(value))
    assert out == value
    assert type(out) is type(value)


def test_bytes_travel_raw_without_base64():
    blob = bytes(range(256)) * 4
    encoded = P.encode(blob)
    assert blob in encoded
    assert len(encoded) == len(blob) + 5


def test_nan_round_trips():
    assert math.isnan(P.decode(P.encode(float("nan"))))


def test_subclasses_travel_as_their_base_type():
    import enum

    class Color(enum.IntEnum):
        RED = 1

    assert P.decode(P.encode([Color.RED, bytearray(b"ab")])) == [1, b"ab"]


@pytest.mark.parametrize("value", [object(), {1, 2}, 1j, [lambda: 0]])
def test_unencodable_values_raise_codec_error(value):
    with pytest.raises(CodecError, match="cannot encode"):
        P.encode(value)


def test_nesting_is_bounded_both_ways():
    deep: list = []
    for _ in range(P.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(CodecError, match="deeply"):
        P.encode(deep)
    crafted = bytes([P.T_LIST, 0, 0, 0, 1]) * (P.MAX_DEPTH + 5) + bytes([P.T_NONE])
    with pytest.raises(CodecError, match="deeply"):
        P.decode(crafted)


MALFORMED = [
    (b"", "empty"),
    (b"\xee", "unknown tag"),
    (bytes([P.T_STR, 0, 0, 0, 9]) + b"abc", "truncated string"),
    (bytes([P.T_STR, 0, 0, 0, 2]) + b"\xff\xfe", "invalid utf-8"),
    (bytes([P.T_INT, 0, 0]), "short int"),
    (bytes([P.T_LIST, 0xFF, 0xFF, 0xFF, 0xFF]), "count larger than payload"),
    (bytes([P.T_DICT, 0, 0, 0, 1, P.T_LIST, 0, 0, 0, 0, P.T_NONE]), "unhashable key"),
    (P.encode(1) + b"\x00", "trailing bytes"),
    (bytes([P.T_BIGINT, 0xFF, 0xFF, 0xFF, 0xFF]), "huge bigint"),
]


@pytest.mark.parametrize(("data", "why"), MALFORMED, ids=[m[1] for m in MALFORMED])
def test_malformed_payloads_raise_codec_error(data, why):
    with pytest.raises(CodecError):
        P.decode(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_never_raises_anything_but_codec_error(data):
    try:
        P.decode(data)
    except CodecError:
        pass


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([P.encode(v) for v in ROUND_TRIPS[:20]]), max_size=4),
    st.binary(max_size=8),
    st.integers(0, 60),
)
def test_mutated_valid_payloads_raise_only_codec_error(parts, junk, cut):
    data = b"".join(parts)
    data = data[:cut] + junk + data[cut:]
    try:
        P.decode(data)
    except CodecError:
        pass


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=5) | st.integers(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(values)
def test_any_supported_value_round_trips(value):
    assert P.decode(P.encode(value)) == value


# -- frames -------------------------------------------------------------------------------


def test_frames_split_anywhere_yield_the_same_frames():
    data = b"".join(
        P.frame(k, i, P.encode([i, "x" * i]))
        for i, k in enumerate([P.RESULT, P.CHUNK, P.END, P.ERROR] * 3)
    )
    whole = P.FrameReader().feed(data)
    assert len(whole) == 12
    for step in (1, 2, 7, 13, 50):
        reader = P.FrameReader()
        got = []
        for i in range(0, len(data), step):
            got += reader.feed(data[i : i + step])
        assert got == whole
        assert reader.buffered == 0


def test_oversized_frame_is_refused_from_its_header():
    reader = P.FrameReader(max_payload=100)
    header = struct.pack("!IBQ", 9 + 101, P.REQUEST, 1)
    with pytest.raises(DirtyPayloadTooLargeError, match="exceeds"):
        reader.feed(header)


def test_an_oversized_frame_can_be_skipped_and_the_next_ones_read():
    small = [P.frame(P.STASH, 1, b"a" * 10), P.frame(P.STATUS, 3)]
    data = small[0] + P.frame(P.REQUEST, 2, b"b" * 500) + small[1]
    for step in (1, 5, 13, 64, len(data)):
        reader = P.FrameReader(max_payload=100, skip_oversized=True)
        got = []
        for i in range(0, len(data), step):
            reader.push(data[i : i + step])
            frame = reader.next_frame()
            while frame is not None:
                got.append((frame, reader.skipped))
                frame = reader.next_frame()
        assert [f for f, _ in got] == [
            (P.STASH, 1, b"a" * 10),
            (P.REQUEST, 2, None),
            (P.STATUS, 3, b""),
        ]
        assert got[1][1] == 500
        assert not reader.incomplete and reader.buffered == 0


@pytest.mark.parametrize(
    "header",
    [struct.pack("!IBQ", 9, 99, 1), struct.pack("!IBQ", 3, P.REQUEST, 1)],
    ids=["unknown kind", "length shorter than header"],
)
def test_impossible_frames_are_protocol_errors(header):
    with pytest.raises(DirtyProtocolError):
        P.FrameReader().feed(header)


def test_request_routing_head_is_read_without_the_body():
    payload = P.encode_request("tasks:Email", "send", (1, b"x"), {"to": "a@b"}, 2.5)
    app, timeout, offset = P.decode_route(payload)
    assert (app, timeout) == ("tasks:Email", 2.5)
    assert P.decode_request_body(payload, offset) == ("send", (1, b"x"), {"to": "a@b"})
    assert P.decode_route(P.encode_request("a:B", "x", (), {}, None))[1] is None


@pytest.mark.parametrize("payload", [b"", b"\x00", b"\x00\x05ab", b"\x00\x01\xff" + b"\x00" * 8])
def test_bad_routing_heads_raise_codec_error(payload):
    with pytest.raises(CodecError):
        P.decode_route(payload)
