"""RFC 9113 sections 3 to 6, frame by frame, as h2spec organises its cases.

Each vector builds raw frames as a client would (hyperframe, hpack, or bytes by
hand for what hyperframe will not build), feeds them to a real server
``H2Connection`` and checks what the RFC says the server MUST do: a connection
error (GOAWAY with the code, ``H2ProtocolError`` raised), a stream error
(RST_STREAM with the code, the connection going on), or an answer (SETTINGS
ACK, PING ACK). Where the RFC allows either a stream or a connection error the
vector says ``either``. Each id names its section.
"""

from __future__ import annotations

import pytest
from h2_harness import Peer, kinds, of, raw_frame
from hyperframe.frame import (
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
)

from unicorn_http.events import Data, EndOfMessage, Request
from unicorn_http.h2 import CONNECTION_PREFACE, GoAwayReceived, H2Connection, StreamReset

PROTOCOL_ERROR = 1
FLOW_CONTROL_ERROR = 3
STREAM_CLOSED = 5
FRAME_SIZE_ERROR = 6
REFUSED_STREAM = 7
COMPRESSION_ERROR = 9

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE = (
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
)
CONTINUATION = 9


def expect(peer: Peer, outcome: tuple, build) -> None:
    """Send what ``build(peer)`` returns and check ``outcome``."""
    frames = build(peer)
    kind = outcome[0]
    if kind == "conn":
        exc = peer.send_error(*frames)
        assert exc.error_code == outcome[1], exc
        goaway = peer.goaway()
        assert goaway is not None and goaway.error_code == outcome[1]
        assert peer.server.closed
    elif kind == "stream":
        _, sid, code = outcome
        peer.send(*frames)
        assert code in peer.resets(sid)
        assert peer.goaway() is None
        # the connection goes on: a new request is served
        nxt = max(peer.server._h2.highest_inbound_stream_id + 2, 3) | 1
        events = peer.send(peer.request(nxt))
        assert kinds(events)[0] == (nxt, "Request")
    elif kind == "either":
        _, sid, code = outcome
        try:
            peer.send(*frames)
        except Exception as exc:
            assert getattr(exc, "error_code", None) == code, exc
            assert peer.goaway().error_code == code
        else:
            assert code in peer.resets(sid), peer.frames
    else:
        raise AssertionError(kind)


# (id, outcome, build(peer) -> frames)
FRAME_VECTORS = [
    # 4.1 frame format
    (
        "rfc9113-4.1-1-unknown-frame-type-ignored",
        ("ok",),
        lambda p: [raw_frame(0x42, 0, 0, b"whatever")],
    ),
    # 4.2 frame size
    (
        "rfc9113-4.2-1-data-over-max-frame-size",
        ("conn", FRAME_SIZE_ERROR),
        lambda p: [p.request(1, end_stream=False), p.data(1, b"x" * 16385)],
    ),
    (
        "rfc9113-4.2-2-headers-over-max-frame-size",
        ("conn", FRAME_SIZE_ERROR),
        lambda p: [raw_frame(HEADERS, 0x5, 1, b"\x82" * 16385)],
    ),
    (
        "rfc9113-4.2-3-oversized-frame-refused-from-its-header",
        ("conn", FRAME_SIZE_ERROR),
        lambda p: [raw_frame(DATA, 0, 1, b"", length=1 << 20)],
    ),
    (
        "rfc9113-4.2-4-settings-length-not-multiple-of-6",
        ("conn", FRAME_SIZE_ERROR),
        lambda p: [raw_frame(SETTINGS, 0, 0, b"\x00\x03\x00\x00\x00")],
    ),
    # 4.3 header compression
    (
        "rfc9113-4.3-1-invalid-header-block",
        ("conn", COMPRESSION_ERROR),
        lambda p: [raw_frame(HEADERS, 0x5, 1, b"\xff\xff\xff\xff\xff\xff")],
    ),
    (
        "rfc9113-4.3-2-headers-then-other-frame-before-continuation",
        ("conn", PROTOCOL_ERROR),
        lambda p: [raw_frame(HEADERS, 0x1, 1, p.block([(b":method", b"GET")])), p.data(1, b"x")],
    ),
    # 5.1 stream states
    (
        "rfc9113-5.1-1-idle-data",
        ("conn", PROTOCOL_ERROR),
        lambda p: [p.data(1, b"x")],
    ),
    (
        "rfc9113-5.1-2-idle-rst-stream",
        ("conn", PROTOCOL_ERROR),
        lambda p: [p.rst(1)],
    ),
    (
        "rfc9113-5.1-3-idle-window-update",
        ("conn", PROTOCOL_ERROR),
        lambda p: [p.window_update(1, 100)],
    ),
    (
        "rfc9113-5.1-4-idle-continuation",
        ("conn", PROTOCOL_ERROR),
        lambda p: [p.continuation(1, p.block([(b":method", b"GET")]), end_headers=True)],
    ),
    (
        "rfc9113-5.1-5-half-closed-remote-data",
        ("either", 1, STREAM_CLOSED),
        lambda p: [p.request(1), p.data(1, b"x")],
    ),
    (
        "rfc9113-5.1-6-half-closed-remote-headers",
        ("either", 1, STREAM_CLOSED),
        lambda p: [p.request(1), p.request(1)],
    ),
    (
        "rfc9113-5.1-7-closed-by-reset-data",
        ("either", 1, STREAM_CLOSED),
        lambda p: [p.request(1, end_stream=False), p.rst(1), p.data(1, b"x")],
    ),
    # 5.1.1 stream identifiers
    (
        "rfc9113-5.1.1-1-even-stream-id",
        ("conn", PROTOCOL_ERROR),
        lambda p: [p.request(2)],
    ),
    (
        "rfc9113-5.1.1-2-stream-id-lower-than-before",
        ("conn", PROTOCOL_ERROR),
        lambda p: [p.request(5), p.request(3)],
    ),
    # 5.3 priority: accepted and ignored; a stream cannot depend on itself
    (
        "rfc9113-5.3.1-1-priority-self-dependency",
        ("either", 1, PROTOCOL_ERROR),
        lambda p: [p.priority(1, depends_on=1)],
    ),
    (
        "rfc9113-5.5-1-unknown-extension-frame-in-stream",
        ("ok",),
        lambda p: [
            p.request(1, end_stream=False),
            raw_frame(0x99, 0xFF, 1, b"ext"),
            p.data(1, b"", True),
        ],
    ),
    # 6.1 DATA
    (
        "rfc9113-6.1-1-data-on-stream-0",
        ("conn", PROTOCOL_ERROR),
        lambda p: [raw_frame(DATA, 0, 0, b"x")],
    ),
    (
        "rfc9113-6.1-2-data-padding-over-length",
        ("conn", PROTOCOL_ERROR),
        lambda p: [p.request(1, end_stream=False), raw_frame(DATA, 0x8, 1, b"\x05ab")],
    ),
    # 6.2 HEADERS
    (
        "rfc9113-6.2-1-headers-on-stream-0",
        ("conn", PROTOCOL_ERROR),
        lambda p: [raw_frame(HEADERS, 0x5, 0, p.block([(b":method", b"GET")]))],
    ),
    (
        "rfc9113-6.2-2-headers-padding-over-length",
        ("conn", PROTOCOL_ERROR),
        lambda p: [raw_frame(HEADERS, 0x5 | 0x8, 1, b"\x09" + b"\x82")],
    ),
    # 6.3 PRIORITY
    (
        "rfc9113-6.3-1-priority-on-stream-0",
        ("conn", PROTOCOL_ERROR),
        lambda p: [raw_frame(PRIORITY, 0, 0, b"\x00\x00\x00\x01\x10")],
    ),
    (
        "rfc9113-6.3-2-priority-wrong-length",
        ("either", 1, FRAME_SIZE_ERROR),
        lambda p: [raw_frame(PRIORITY, 0, 1, b"\x00\x00\x00\x03")],
    ),
    # 6.4 RST_STREAM
    (
        "rfc9113-6.4-1-rst-stream-on-stream-0",
        ("conn", PROTOCOL_ERROR),
        lambda p: [raw_frame(RST_STREAM, 0, 0, b"\x00\x00\x00\x08")],
    ),
    (
        "rfc9113-6.4-2-rst-stream-wrong-length",
        ("conn", FRAME_SIZE_ERROR),
        lambda p: [p.request(1, end_stream=False), raw_frame(RST_STREAM, 0, 1, b"\x00\x00\x08")],
    ),
    # 6.5 SETTINGS
    (
        "rfc9113-6.5-1-settings-ack-with-payload",
        ("conn", FRAME_SIZE_ERROR),
        lambda p: [raw_frame(SETTINGS, 0x1, 0, b"\x00\x03\x00\x00\x00\x64")],
    ),
    (
        "rfc9113-6.5-2-settings-on-a-stream",
        ("conn", PROTOCOL_ERROR),
        lambda p: [raw_frame(SETTINGS, 0, 1, b"")],
    ),
    (
        "rfc9113-6.5.2-1-enable-push-not-0-or-1",
        ("conn", PROTOCOL_ERROR),
        lambda p: [SettingsFrame(0, settings={2: 2})],
    ),
    (
        "rfc9113-6.5.2-2-initial-window-size-over-max",
        ("conn", FLOW_CONTROL_ERROR),
        lambda p: [SettingsFrame(0, settings={4: 1 << 31})],
    ),
    (
        "rfc9113-6.5.2-3-max-frame-size-too-small",
        ("conn", PROTOCOL_ERROR),
        lambda p: [SettingsFrame(0, settings={5: 16383})],
    ),
    (
        "rfc9113-6.5.2-4-max-frame-size-too-large",
        ("conn", PROTOCOL_ERROR),
        lambda p: [SettingsFrame(0, settings={5: 1 << 24})],
    ),
    (
        "rfc9113-6.5.2-5-unknown-setting-ignored",
        ("ok",),
        lambda p: [SettingsFrame(0, settings={0xFF: 1})],
    ),
    # 6.7 PING
    (
        "rfc9113-6.7-1-ping-on-a-stream",
        ("conn", PROTOCOL_ERROR),
        lambda p: [raw_frame(PING, 0, 1, b"12345678")],
    ),
    (
        "rfc9113-6.7-2-ping-wrong-length",
        ("conn", FRAME_SIZE_ERROR),
        lambda p: [raw_frame(PING, 0, 0, b"1234567")],
    ),
    # 6.8 GOAWAY
    (
        "rfc9113-6.8-1-goaway-on-a-stream",
        ("conn", PROTOCOL_ERROR),
        lambda p: [raw_frame(GOAWAY, 0, 1, b"\x00\x00\x00\x00\x00\x00\x00\x00")],
    ),
    # 6.9 WINDOW_UPDATE
    (
        "rfc9113-6.9-1-zero-increment-on-connection",
        ("conn", PROTOCOL_ERROR),
        lambda p: [raw_frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x00\x00")],
    ),
    (
        "rfc9113-6.9-2-zero-increment-on-stream",
        ("either", 1, PROTOCOL_ERROR),
        lambda p: [
            p.request(1, end_stream=False),
            raw_frame(WINDOW_UPDATE, 0, 1, b"\x00\x00\x00\x00"),
        ],
    ),
    (
        "rfc9113-6.9-3-window-update-wrong-length",
        ("conn", FRAME_SIZE_ERROR),
        lambda p: [raw_frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x01")],
    ),
    (
        "rfc9113-6.9.1-1-connection-window-over-2-31",
        ("conn", FLOW_CONTROL_ERROR),
        lambda p: [p.window_update(0, (1 << 31) - 1)],
    ),
    (
        "rfc9113-6.9.1-2-stream-window-over-2-31",
        ("either", 1, FLOW_CONTROL_ERROR),
        lambda p: [p.request(1, end_stream=False), p.window_update(1, (1 << 31) - 1)],
    ),
    (
        "rfc9113-6.9.1-3-client-sends-over-our-window",
        ("conn", FLOW_CONTROL_ERROR),
        lambda p: (
            [p.request(1, end_stream=False)]
            + [p.data(1, b"x" * 16384) for _ in range(4)]
            + [p.data(1, b"x" * 16384)]
        ),
    ),
    (
        "rfc9113-6.9.2-1-settings-window-over-max-with-open-stream",
        ("conn", FLOW_CONTROL_ERROR),
        lambda p: [
            p.request(1, end_stream=False),
            p.window_update(1, (1 << 31) - 65536),
            SettingsFrame(0, settings={4: 65537}),
        ],
    ),
    # 6.10 CONTINUATION
    (
        "rfc9113-6.10-1-continuation-on-another-stream",
        ("conn", PROTOCOL_ERROR),
        lambda p: [
            raw_frame(HEADERS, 0x1, 1, p.block([(b":method", b"GET")])),
            p.continuation(3, b"", True),
        ],
    ),
    (
        "rfc9113-6.10-2-continuation-after-end-headers",
        ("conn", PROTOCOL_ERROR),
        lambda p: [p.request(1, end_stream=False), p.continuation(1, b"", True)],
    ),
    (
        "rfc9113-6.10-3-continuation-after-data",
        ("conn", PROTOCOL_ERROR),
        lambda p: [p.request(1, end_stream=False), p.data(1, b"x"), p.continuation(1, b"", True)],
    ),
]


@pytest.mark.parametrize(
    ("outcome", "build"),
    [pytest.param(o, b, id=i) for i, o, b in FRAME_VECTORS],
)
def test_frame_rules(outcome, build):
    peer = Peer()
    if outcome[0] == "ok":
        events = peer.send(*build(peer))
        assert peer.goaway() is None
        assert not peer.server.closed
        # whatever was ignored, the connection still serves
        events = peer.send(peer.request(101))
        assert kinds(events) == [(101, "Request"), (101, "EndOfMessage")]
        return
    expect(peer, outcome, build)


# ------------------------------------------------------------------ section 3


def test_rfc9113_3_4_server_preface_is_settings_first():
    server = H2Connection(http2_max_concurrent_streams=7, http2_initial_window_size=1 << 20)
    server.initiate_connection()
    out = server.data_to_send()
    assert out[3] == SETTINGS and out[4] == 0
    peer = Peer(http2_max_concurrent_streams=7, http2_max_frame_size=32768)
    assert peer.server_settings[3] == 7
    assert peer.server_settings[5] == 32768
    assert peer.server_settings[8] == 1  # RFC 8441 SETTINGS_ENABLE_CONNECT_PROTOCOL


def test_rfc9113_3_4_invalid_preface_is_a_connection_error():
    peer = Peer(handshake=False)
    exc = peer.send_error(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert exc.error_code == PROTOCOL_ERROR


def test_rfc9113_3_4_preface_then_settings_acked():
    peer = Peer(handshake=False)
    peer.send_bytes(CONNECTION_PREFACE[:5])
    assert peer.server.pending_since is not None
    peer.send_bytes(CONNECTION_PREFACE[5:] + SettingsFrame(0, settings={4: 1000}).serialize())
    frames = peer.read()
    assert isinstance(frames[0], SettingsFrame) and "ACK" not in frames[0].flags
    assert any(isinstance(f, SettingsFrame) and "ACK" in f.flags for f in frames)
    assert peer.server.pending_since is None


def test_rfc9113_3_4_connection_window_raised_to_the_stream_window():
    peer = Peer(http2_initial_window_size=1 << 20)
    updates = [f for f in peer.frames if f.type == WINDOW_UPDATE and f.stream_id == 0]
    assert updates and updates[0].window_increment == (1 << 20) - 65535


# ------------------------------------------------------------------ section 5


def test_rfc9113_5_1_2_streams_over_the_limit_are_refused_and_hpack_stays_in_step():
    peer = Peer(http2_max_concurrent_streams=2)
    events = peer.send(peer.request(1, end_stream=False), peer.request(3, end_stream=False))
    assert [e for e in kinds(events)] == [(1, "Request"), (3, "Request")]
    # stream 5 is one too many; its header block adds to the dynamic table, which
    # stream 7's block refers to: the refusal must still decode it
    extra = [(b"x-custom", b"a-value-for-the-table")]
    events = peer.send(peer.request(5, extra=extra))
    assert peer.resets(5) == [REFUSED_STREAM]
    assert [(sid, type(e)) for sid, e in events] == [(5, StreamReset)]
    assert events[0][1].remote is False and "concurrent" in events[0][1].reason
    peer.server.respond(1, 200, [], b"")
    events = peer.send(peer.request(7, extra=extra))
    request = of(events, 7)[0]
    assert (b"x-custom", b"a-value-for-the-table") in request.headers
    # data on the refused stream costs it only a STREAM_CLOSED reset
    peer.send(peer.data(5, b"late"))
    assert STREAM_CLOSED in peer.resets(5)
    assert peer.goaway() is None


def test_rfc9113_5_3_2_priority_accepted_and_ignored():
    peer = Peer()
    events = peer.send(peer.priority(3, depends_on=1, weight=200), peer.priority(1, depends_on=0))
    assert events == []
    block = peer.block(
        [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"), (b":authority", b"a")]
    )
    frame = HeadersFrame(
        1,
        data=block,
        flags=["END_STREAM", "END_HEADERS", "PRIORITY"],
        depends_on=3,
        stream_weight=10,
    )
    events = peer.send(frame)
    assert kinds(events) == [(1, "Request"), (1, "EndOfMessage")]


# ------------------------------------------------------------------ section 6


def test_rfc9113_6_5_3_settings_acknowledged():
    peer = Peer()
    peer.send(SettingsFrame(0, settings={3: 10}))
    assert any(isinstance(f, SettingsFrame) and "ACK" in f.flags for f in peer.read())


def test_rfc9113_6_7_ping_answered_with_same_payload_and_ack_not_answered():
    peer = Peer()
    peer.send(peer.ping(b"abcdefgh"))
    pongs = [f for f in peer.read() if isinstance(f, PingFrame)]
    assert len(pongs) == 1 and "ACK" in pongs[0].flags and pongs[0].opaque_data == b"abcdefgh"
    peer.send(peer.ping(b"zzzzzzzz", ack=True))
    assert [f for f in peer.read() if isinstance(f, PingFrame)] == []


def test_rfc9113_6_8_client_goaway_lets_the_response_in_flight_finish():
    peer = Peer()
    peer.send(peer.request(1))
    events = peer.send(GoAwayFrame(0, last_stream_id=0, error_code=0))
    assert [type(e) for _, e in events] == [GoAwayReceived]
    peer.server.respond(1, 200, [], b"still here")
    assert peer.body(1) == b"still here" and peer.ended(1)


def test_rfc9113_6_9_1_response_respects_the_client_stream_window():
    peer = Peer(settings={4: 10})
    peer.send(peer.request(1))
    peer.server.send_response(1, 200, [])
    assert peer.server.send_data(1, b"x" * 25, end_stream=True) is True
    assert peer.body(1) == b"x" * 10 and not peer.ended(1)
    peer.send(peer.window_update(1, 10))
    assert peer.body(1) == b"x" * 20 and not peer.ended(1)
    peer.send(peer.window_update(1, 100))
    assert peer.body(1) == b"x" * 25 and peer.ended(1)
    assert peer.server.open_streams == 0


def test_rfc9113_6_9_1_response_respects_the_connection_window():
    peer = Peer(settings={4: 1 << 20})
    peer.send(peer.request(1), peer.request(3))
    for sid in (1, 3):
        peer.server.send_response(sid, 200, [])
        peer.server.send_data(sid, b"y" * 40000, end_stream=True)
    assert len(peer.body(1)) + len(peer.body(3)) == 65535
    peer.send(peer.window_update(0, 1 << 20))
    assert peer.body(1) == b"y" * 40000 and peer.body(3) == b"y" * 40000
    assert peer.ended(1) and peer.ended(3)


def test_rfc9113_6_9_1_frames_split_at_the_client_max_frame_size():
    peer = Peer(settings={4: 1 << 20, 5: 16384})
    peer.send(peer.window_update(0, 1 << 20), peer.request(1))
    peer.server.respond(1, 200, [], b"z" * 40000)
    sizes = [len(f.data) for f in peer.read() if isinstance(f, DataFrame)]
    assert sizes == [16384, 16384, 40000 - 32768]


def test_rfc9113_6_9_2_initial_window_change_applies_to_open_streams():
    peer = Peer(settings={4: 0})
    peer.send(peer.request(1))
    peer.server.send_response(1, 200, [])
    peer.server.send_data(1, b"w" * 100, end_stream=True)
    assert peer.body(1) == b""
    peer.send(SettingsFrame(0, settings={4: 60}))
    assert peer.body(1) == b"w" * 60
    # a smaller window may go negative: nothing more until it is positive again
    peer.send(SettingsFrame(0, settings={4: 20}))
    peer.send(peer.window_update(1, 40))
    assert peer.body(1) == b"w" * 60
    peer.send(peer.window_update(1, 100))
    assert peer.body(1) == b"w" * 100 and peer.ended(1)


def test_rfc9113_6_10_header_block_across_continuation_frames():
    peer = Peer()
    block = peer.block(
        [
            *[(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/c")],
            (b":authority", b"example.com"),
            (b"x-long", b"v" * 3000),
        ]
    )
    parts = [block[:10], block[10:20], block[20:]]
    events = peer.send(
        raw_frame(HEADERS, 0x1, 1, parts[0]),
        peer.continuation(1, parts[1]),
        peer.continuation(1, parts[2], end_headers=True),
    )
    request = of(events, 1)[0]
    assert isinstance(request, Request) and request.path == b"/c"
    assert (b"x-long", b"v" * 3000) in request.headers


def test_rfc9113_6_1_padding_is_returned_to_the_window_at_once():
    peer = Peer()
    peer.send(peer.request(1, end_stream=False))
    # 200 frames of 3 data bytes and 200 bytes of padding: 40,600 bytes of window,
    # more than half of it padding, which is handed back without the driver
    frames = [DataFrame(1, data=b"abc", pad_length=199, flags=["PADDED"]) for _ in range(200)]
    events = peer.send(*frames)
    assert [e for _, e in events] == [Data(b"abc")] * 200
    updates = [f for f in peer.read() if f.type == WINDOW_UPDATE]
    for sid in (0, 1):
        returned = sum(f.window_increment for f in updates if f.stream_id == sid)
        assert 200 * 200 - 32768 <= returned <= 200 * 200
    # the 600 data bytes come back only once consumed (h2 batches what it
    # returns: counted are the bytes it holds as processed, sent or not)
    window = peer.server._h2._inbound_flow_control_window_manager
    assert window.current_window_size + window._bytes_processed == 65535 - 600
    peer.server.consumed(1, 600)
    assert window.current_window_size + window._bytes_processed == 65535


def test_rfc9113_6_4_client_reset_reaches_the_driver():
    peer = Peer()
    peer.send(peer.request(1, end_stream=False))
    events = peer.send(peer.rst(1, 8))
    assert events == [(1, StreamReset(8, True, ""))]
    assert peer.server.open_streams == 0
    # a late response on the reset stream is dropped quietly
    peer.server.respond(1, 200, [], b"late")
    assert peer.body(1) == b""


def test_rfc9113_5_4_2_stream_error_leaves_other_streams_alone():
    peer = Peer()
    peer.send(peer.request(1, end_stream=False))
    events = peer.send(peer.request(3, extra=[(b"Upper", b"x")]))
    assert [(sid, type(e)) for sid, e in events] == [(3, StreamReset)]
    assert PROTOCOL_ERROR in peer.resets(3)
    events = peer.send(peer.data(1, b"body", end_stream=True))
    assert [e for _, e in events] == [Data(b"body"), EndOfMessage([])]


def test_rfc9113_frames_parse_back():
    # the harness itself: what the server writes is well-formed HTTP/2
    peer = Peer()
    peer.send(peer.request(1))
    peer.server.respond(1, 200, [(b"content-type", b"text/plain")], b"ok")
    frames = peer.read()
    assert [type(f) for f in frames] == [HeadersFrame, DataFrame]
    assert not [f for f in frames if isinstance(f, RstStreamFrame | PriorityFrame)]
