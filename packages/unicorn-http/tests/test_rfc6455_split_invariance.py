"""Property tests of the frame parser: any split of a valid client stream
(messages in fragments, compressed or not, control frames between fragments,
a Close at the end) yields the same events, which are the messages that were
sent; arbitrary or mutated bytes never raise anything but the module's
protocol error, and a split never changes whether or how a stream fails."""

from __future__ import annotations

import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ws_harness import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    close_frame,
    cut,
    frame,
    parse_server_frames,
    run,
)

from unicorn_http import (
    BytesMessage,
    CloseReceived,
    PerMessageDeflate,
    Ping,
    Pong,
    TextMessage,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

masks = st.binary(min_size=4, max_size=4)
payloads = st.binary(max_size=300)
texts = st.text(max_size=100)


@st.composite
def streams(draw, compress: bool):
    """(raw client bytes, the events they must yield)."""
    zc = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw = []
    expect = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["text", "bytes", "ping", "pong"]))
        if kind in ("ping", "pong"):
            payload = draw(st.binary(max_size=125))
            raw.append(frame(PING if kind == "ping" else PONG, payload, mask=draw(masks)))
            expect.append(Ping(payload) if kind == "ping" else Pong(payload))
            continue
        if kind == "text":
            value = draw(texts)
            data = value.encode()
            opcode, event = TEXT, TextMessage(value)
        else:
            data = draw(payloads)
            opcode, event = BINARY, BytesMessage(data)
        compressed = compress and draw(st.booleans())
        if compressed:
            data = (zc.compress(data) + zc.flush(zlib.Z_SYNC_FLUSH))[:-4]
        # Fragment boundaries anywhere, even inside a UTF-8 sequence or a DEFLATE symbol.
        points = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=3))))
        pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            raw.append(
                frame(
                    opcode if i == 0 else CONT,
                    piece,
                    fin=last,
                    rsv=0b100 if compressed and i == 0 else 0,
                    mask=draw(masks),
                )
            )
            if not last and draw(st.booleans()):
                raw.append(frame(PING, b"between", mask=draw(masks)))
                expect.append(Ping(b"between"))
        expect.append(event)
    if draw(st.booleans()):
        raw.append(close_frame(1000, b"bye", mask=draw(masks)))
        expect.append(CloseReceived(1000, "bye"))
    return b"".join(raw), expect


def settings_for(compress: bool) -> dict:
    return {"deflate": PerMessageDeflate()} if compress else {}


@SETTINGS
@given(data=st.data(), compress=st.booleans(), points=st.lists(st.integers(0), max_size=30))
def test_any_split_gives_the_same_events(data, compress, points):
    raw, expect = data.draw(streams(compress))
    whole = run([raw], **settings_for(compress))
    assert whole[1] is None
    assert whole[0] == expect
    assert run(cut(raw, points), **settings_for(compress)) == whole


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), compress=st.booleans())
def test_one_byte_at_a_time_gives_the_same_events(data, compress):
    raw, expect = data.draw(streams(compress))
    assert run([raw[i : i + 1] for i in range(len(raw))], **settings_for(compress))[0] == expect


@SETTINGS
@given(data=st.data(), compress=st.booleans(), points=st.lists(st.integers(0), max_size=10))
def test_eof_anywhere_is_1006_unless_closed(data, compress, points):
    raw, _ = data.draw(streams(compress))
    stop = data.draw(st.integers(0, len(raw)))
    events, failure, _ = run(cut(raw[:stop], points), eof=True, **settings_for(compress))
    assert failure is None
    assert type(events[-1]) is CloseReceived
    assert events[-1].code in (1000, 1006)


SPECIAL = [b"\x00", b"\x80", b"\x81", b"\x82", b"\x88", b"\x89", b"\x8a", b"\xc1", b"\x01"]
SPECIAL += [b"\xfe", b"\xff", b"\x7e\x00", b"\x7f" + b"\x00" * 8, b"\xff" * 8]


@st.composite
def garbage(draw):
    compress = draw(st.booleans())
    raw, _ = draw(streams(compress))
    raw = bytearray(raw)
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(raw)))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip" and at < len(raw):
            raw[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            raw[at:at] = draw(st.sampled_from(SPECIAL) | st.binary(max_size=8))
        elif action == "delete":
            del raw[at : at + draw(st.integers(1, 8))]
    return bytes(raw), compress


def outcome(chunks: list[bytes], compress: bool):
    events, failure, sent = run(chunks, eof=True, max_message_size=4096, **settings_for(compress))
    if failure is not None:
        assert failure.code in (1002, 1007, 1009)
        # The last frame out is a Close with the code (Pongs may come before it).
        _, opcode, payload = parse_server_frames(sent)[-1]
        assert opcode == CLOSE and payload[:2] == failure.code.to_bytes(2, "big")
    return events, failure


@SETTINGS
@given(case=garbage(), points=st.lists(st.integers(0), max_size=10))
def test_mutated_streams_fail_only_with_the_protocol_error(case, points):
    raw, compress = case
    whole = outcome([raw], compress)  # anything but WebSocketProtocolError propagates
    assert outcome(cut(raw, points), compress) == whole


@SETTINGS
@given(
    raw=st.binary(max_size=200), compress=st.booleans(), points=st.lists(st.integers(0), max_size=5)
)
def test_arbitrary_bytes_fail_only_with_the_protocol_error(raw, compress, points):
    assert outcome(cut(raw, points), compress) == outcome([raw], compress)
