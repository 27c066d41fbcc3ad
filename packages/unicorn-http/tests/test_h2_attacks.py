"""Every HTTP/2 attack class the connection bounds, each driven to its bound.

Floods are counted per ``flood_window`` seconds; a fake clock stands in for
time so the tests neither sleep nor depend on the machine's speed.
"""

from __future__ import annotations

import pytest
from h2_harness import Peer, kinds, of, raw_frame
from hyperframe.frame import SettingsFrame

from unicorn_http.errors import LocalProtocolError
from unicorn_http.events import EndOfMessage
from unicorn_http.h2 import StreamReset, Writable

ENHANCE_YOUR_CALM = 11
PROTOCOL_ERROR = 1
FRAME_SIZE_ERROR = 6
REFUSED_STREAM = 7
HEADERS, CONTINUATION = 1, 9


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------ rapid reset


def test_rapid_reset_cve_2023_44487_ends_in_enhance_your_calm():
    clock = Clock()
    peer = Peer(max_resets=50, clock=clock)
    sid = 1
    seen = 0
    with pytest.raises(Exception) as info:
        for _ in range(1000):
            events = peer.send(peer.request(sid, end_stream=False))
            seen += len(events)
            peer.send(peer.rst(sid))
            sid += 2
    assert getattr(info.value, "error_code", None) == ENHANCE_YOUR_CALM
    assert "rapid reset" in info.value.reason
    assert sid == 1 + 2 * 50  # the 51st reset was one too many
    assert peer.goaway().error_code == ENHANCE_YOUR_CALM
    assert peer.server.open_streams == 0


def test_rapid_reset_within_one_read_reaches_no_application():
    # opened and reset in the same bytes: the driver never hears of the stream
    peer = Peer(max_resets=1000)
    frames = []
    for sid in range(1, 400, 2):
        frames += [peer.request(sid, end_stream=False), peer.rst(sid)]
    events = peer.send(*frames)
    assert events == []
    assert peer.server.open_streams == 0


def test_resets_spread_over_time_are_allowed():
    clock = Clock()
    peer = Peer(max_resets=10, clock=clock, flood_window=10.0)
    sid = 1
    for _ in range(5):
        for _ in range(10):
            peer.send(peer.request(sid, end_stream=False))
            events = peer.send(peer.rst(sid))
            assert events == [(sid, StreamReset(8, True, ""))]
            sid += 2
        clock.now += 10.0
    assert peer.goaway() is None


# ------------------------------------------------------- continuation flood


def test_continuation_flood_cve_2024_27316_bounded_in_bytes():
    peer = Peer(http2_max_header_list_size=8192)  # header blocks bounded at 16 KiB
    frames = [raw_frame(HEADERS, 0x0, 1, peer.block([(b":method", b"GET")]))]
    frames += [peer.continuation(1, b"\x00" * 4000) for _ in range(10)]
    exc = peer.send_error(*frames)
    assert exc.error_code == ENHANCE_YOUR_CALM and "CVE-2024-27316" in exc.reason
    # refused at the frame that crossed the bound, not after the flood
    held = sum(len(f.data) for f in peer.server._h2.incoming_buffer._headers_buffer)
    assert held <= 2 * 8192


def test_continuation_flood_of_empty_frames_bounded_in_count():
    peer = Peer()
    frames = [raw_frame(HEADERS, 0x0, 1, peer.block([(b":method", b"GET")]))]
    frames += [peer.continuation(1, b"") for _ in range(100)]
    exc = peer.send_error(*frames)
    assert exc.error_code == PROTOCOL_ERROR and "continuation" in exc.reason.lower()


def test_continuation_flood_trickled_frame_by_frame():
    peer = Peer(http2_max_header_list_size=8192)
    peer.send(raw_frame(HEADERS, 0x0, 1, peer.block([(b":method", b"GET")])))
    assert peer.server.pending_since is not None  # a head left incomplete
    with pytest.raises(Exception) as info:
        for _ in range(100):
            peer.send(peer.continuation(1, b"\x00" * 1000))
    assert info.value.error_code == ENHANCE_YOUR_CALM


def test_large_header_block_within_the_bound_is_served():
    peer = Peer()
    block = peer.block(
        [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":path", b"/"),
            (b":authority", b"a"),
            (b"cookie", b"c" * 30000),
        ]
    )
    frames = [raw_frame(HEADERS, 0x1, 1, block[:16000])]
    frames.append(peer.continuation(1, block[16000:], end_headers=True))
    events = peer.send(*frames)
    assert kinds(events) == [(1, "Request"), (1, "EndOfMessage")]


# --------------------------------------------------------------- oversized


def test_oversized_frame_refused_before_its_payload_arrives():
    peer = Peer()
    exc = peer.send_error(raw_frame(0, 0, 1, b"", length=16 * 1024 * 1024 - 1)[:9])
    assert exc.error_code == FRAME_SIZE_ERROR
    assert len(peer.server._h2.incoming_buffer._data) <= 9


# --------------------------------------------------------- control floods


@pytest.mark.parametrize(
    ("option", "frame", "name"),
    [
        ("max_pings", lambda p, i: p.ping(i.to_bytes(8, "big")), "PING"),
        ("max_settings", lambda p, i: SettingsFrame(0, settings={3: 100}), "SETTINGS"),
        ("max_priorities", lambda p, i: p.priority(2 * i + 1), "PRIORITY"),
        ("max_unknown_frames", lambda p, i: raw_frame(0x77, 0, 0, b"x"), "unknown"),
    ],
)
def test_control_frame_flood_ends_in_enhance_your_calm(option, frame, name):
    clock = Clock()
    peer = Peer(clock=clock, **{option: 20})
    # the budget is spent slowly without harm (the handshake's SETTINGS counts) ...
    for i in range(19):
        peer.send(frame(peer, i))
    clock.now += 10.0
    for i in range(20):
        peer.send(frame(peer, i))
    assert peer.goaway() is None
    # ... and a burst over it ends the connection
    exc = peer.send_error(*[frame(peer, i) for i in range(21)])
    assert exc.error_code == ENHANCE_YOUR_CALM and name in exc.reason


def test_ping_flood_answers_stay_bounded():
    peer = Peer(max_pings=100)
    peer.send_error(*[peer.ping() for _ in range(1000)])
    # at most the budget was answered before the GOAWAY
    pongs = [f for f in peer.frames if f.type == 6]
    assert len(pongs) <= 101


def test_empty_data_flood_ends_in_enhance_your_calm():
    peer = Peer(max_empty_data=30)
    peer.send(peer.request(1, end_stream=False))
    exc = peer.send_error(*[peer.data(1, b"") for _ in range(31)])
    assert exc.error_code == ENHANCE_YOUR_CALM and "empty DATA" in exc.reason


def test_empty_data_with_end_stream_is_not_counted():
    peer = Peer(max_empty_data=1)
    for sid in range(1, 21, 2):
        peer.send(peer.request(sid, end_stream=False))
        events = peer.send(peer.data(sid, b"", end_stream=True))
        assert kinds(events) == [(sid, "EndOfMessage")]
        peer.server.respond(sid, 200, [], b"")
    assert peer.goaway() is None


def test_window_update_flood_ends_in_enhance_your_calm():
    peer = Peer(max_idle_window_updates=50)
    exc = peer.send_error(*[peer.window_update(0, 1) for _ in range(51)])
    assert exc.error_code == ENHANCE_YOUR_CALM and "WINDOW_UPDATE" in exc.reason


def test_window_updates_earned_by_the_data_we_send():
    # a client acknowledging every DATA frame of a large download is no flood
    peer = Peer(max_idle_window_updates=10, settings={4: 100})
    peer.send(peer.request(1))
    peer.server.send_response(1, 200, [])
    peer.server.send_data(1, b"d" * 30000, end_stream=True)
    for _ in range(299):
        peer.send(peer.window_update(1, 100), peer.window_update(0, 100))
    assert peer.body(1) == b"d" * 30000 and peer.ended(1)
    assert peer.goaway() is None


# ------------------------------------------------- a window that never opens


def test_stalled_stream_holds_a_bounded_buffer():
    peer = Peer(settings={4: 0}, stream_buffer_size=1 << 16)
    peer.send(peer.request(1))
    server = peer.server
    server.send_response(1, 200, [])
    chunk = b"s" * 16384
    sent = 0
    while server.send_data(1, chunk):
        sent += len(chunk)
        assert sent < 10 * (1 << 16)
    assert server._streams[1].out_size <= (1 << 16) + len(chunk)
    with pytest.raises(LocalProtocolError, match="wait for Writable"):
        server.send_data(1, chunk)
    assert peer.body(1) == b""
    # the client opens its window: the buffer drains and the driver is told
    events = peer.send(SettingsFrame(0, settings={4: 1 << 20}), peer.window_update(0, 1 << 20))
    assert (1, Writable()) in events
    assert server.send_data(1, b"tail", end_stream=True)
    assert peer.body(1).endswith(b"tail") and peer.ended(1)


def test_client_reset_of_stalled_stream_frees_its_buffer():
    peer = Peer(settings={4: 0})
    peer.send(peer.request(1))
    peer.server.send_response(1, 200, [])
    peer.server.send_data(1, b"x" * 100000)
    events = peer.send(peer.rst(1))
    assert events == [(1, StreamReset(8, True, ""))]
    assert peer.server.open_streams == 0 and peer.server._streams == {}


# ------------------------------------------------------- too many streams


def test_more_streams_than_the_limit_refused_without_ending_the_connection():
    peer = Peer(http2_max_concurrent_streams=10)
    frames = [peer.request(sid, end_stream=False) for sid in range(1, 61, 2)]
    events = peer.send(*frames)
    requests = [sid for sid, e in events if type(e).__name__ == "Request"]
    assert requests == list(range(1, 21, 2))
    refused = [sid for sid in range(21, 61, 2) if REFUSED_STREAM in peer.resets(sid)]
    assert refused == list(range(21, 61, 2))
    assert peer.goaway() is None
    # finishing one stream makes room for one more
    peer.server.respond(1, 200, [], b"")
    peer.send(peer.data(1, b"", end_stream=True))
    events = peer.send(peer.request(61))
    assert of(events, 61)[0].method == b"GET"


# ---------------------------------------------------------------- slowloris


def test_pending_since_reports_an_incomplete_frame():
    clock = Clock()
    peer = Peer(clock=clock)
    frame = peer.request(1).serialize()
    peer.send_bytes(frame[:5])
    assert peer.server.pending_since == clock.now
    clock.now += 3
    peer.send_bytes(frame[5:8])
    assert peer.server.pending_since == clock.now - 3  # since the first byte, not the last
    peer.send_bytes(frame[8:])
    assert peer.server.pending_since is None


# ------------------------------------------- frames racing a reset in one read


def _stalled(peer: Peer, end_stream: bool) -> None:
    peer.send(peer.request(1))
    peer.server.send_response(1, 200, [])
    peer.server.send_data(1, b"x" * 1000, end_stream=end_stream)


@pytest.mark.parametrize("end_stream", [False, True])
def test_window_update_then_reset_in_one_read(end_stream):
    # h2 has closed the stream before the WINDOW_UPDATE's event is handled
    peer = Peer(settings={4: 0})
    _stalled(peer, end_stream)
    events = peer.send(peer.window_update(1, 5000), peer.rst(1))
    assert events == [(1, StreamReset(8, True, ""))]
    assert peer.goaway() is None and peer.server.open_streams == 0


def test_malformed_request_then_reset_in_one_read():
    peer = Peer()
    events = peer.send(peer.request(1, extra=[(b"Bad", b"x")], end_stream=False), peer.rst(1))
    assert [type(e) for _, e in events] == [StreamReset]
    assert peer.goaway() is None


def test_forbidden_trailer_then_reset_in_one_read():
    peer = Peer()
    peer.send(peer.request(1, end_stream=False))
    events = peer.send(peer.headers_frame(1, [(b"host", b"x")]), peer.rst(1))
    assert [type(e) for _, e in events][:1] == [StreamReset]
    assert peer.goaway() is None


def test_content_length_short_then_reset_in_one_read():
    peer = Peer()
    peer.send(peer.request(1, extra=[(b"content-length", b"9")], end_stream=False))
    events = peer.send(peer.headers_frame(1, [(b"x-t", b"1")]), peer.rst(1))
    assert [type(e) for _, e in events][:1] == [StreamReset]
    assert peer.goaway() is None


def test_data_in_flight_on_a_stream_refused_after_goaway():
    # found by test_h2_fuzz: GOAWAY before any stream, then a request and its DATA
    peer = Peer()
    peer.server.close_gracefully()
    events = peer.send(peer.request(1, end_stream=False), peer.data(1, b"body"))
    assert [(sid, type(e)) for sid, e in events] == [(1, StreamReset)]
    assert 7 in peer.resets(1) and peer.goaway().error_code == 0


def test_trailers_in_flight_on_a_refused_stream_are_decoded_and_ignored():
    # found by test_h2_fuzz: h2 would count the trailers as a new stream over the limit
    peer = Peer(http2_max_concurrent_streams=1)
    peer.send(peer.request(1, end_stream=False), peer.request(3, end_stream=False))
    assert 7 in peer.resets(3)
    events = peer.send(peer.headers_frame(3, [(b"x-trailer", b"an entry for the table")]))
    assert events == [] and peer.goaway() is None
    # the refused block went through the decoder: the next block may refer to it
    events = peer.send(peer.headers_frame(1, [(b"x-trailer", b"an entry for the table")]))
    assert [e for _, e in events] == [EndOfMessage([(b"x-trailer", b"an entry for the table")])]
