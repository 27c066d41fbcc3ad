"""The HTTP/2 connection against h2's own client side: whole exchanges, flow
control in both directions, h2c upgrade, graceful close, and the property that
any split of a client's bytes gives the same events."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import h2.config
import h2.connection
import h2.events
import pytest
from h2_harness import Peer
from hypothesis import given, settings
from hypothesis import strategies as st

from unicorn_http.errors import H2ProtocolError
from unicorn_http.events import ConnectionClosed, Data, EndOfMessage, Request
from unicorn_http.h2 import (
    GoAwayReceived,
    H2Connection,
    StreamReset,
    Writable,
    looks_like_preface,
)


def client(settings: dict | None = None) -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    conn.local_settings = h2.settings.Settings(client=True, initial_values=settings or None)
    conn.initiate_connection()
    return conn


class Pair:
    """An h2 client and our server, bytes passed between them by hand."""

    def __init__(self, client_settings: dict | None = None, **server_options) -> None:
        self.server = H2Connection(**server_options)
        self.server.initiate_connection()
        self.client = client(client_settings)
        self.events: list = []
        self.client_events: list = []
        self.pump()

    def pump(self) -> None:
        """Move bytes both ways until neither side has any to write."""
        for _ in range(100):
            to_server = self.client.data_to_send()
            if to_server:
                self.events += self.server.receive_data(to_server)
            to_client = self.server.data_to_send()
            if to_client:
                self.client_events += self.client.receive_data(to_client)
            if not to_server and not to_client:
                return
        raise AssertionError("the two sides never went quiet")

    def get(
        self, path: bytes = b"/", extra=(), end_stream: bool = True, method: bytes = b"GET"
    ) -> int:
        sid = self.client.get_next_available_stream_id()
        self.client.send_headers(
            sid,
            [
                (b":method", method),
                (b":scheme", b"http"),
                (b":path", path),
                (b":authority", b"t"),
                *extra,
            ],
            end_stream=end_stream,
        )
        self.pump()
        return sid

    def upload(self, sid: int, data: bytes, end_stream: bool = False) -> None:
        for i in range(0, len(data), 16384):
            last = i + 16384 >= len(data)
            self.client.send_data(sid, data[i : i + 16384], end_stream=end_stream and last)
        self.pump()

    def received(self, kind, sid: int | None = None) -> list:
        return [
            e
            for e in self.client_events
            if isinstance(e, kind) and (sid is None or e.stream_id == sid)
        ]

    def body(self, sid: int) -> bytes:
        return b"".join(e.data for e in self.received(h2.events.DataReceived, sid))

    def server_events(self, sid: int) -> list:
        return [e for s, e in self.events if s == sid]


def test_get_round_trip():
    pair = Pair()
    sid = pair.get(b"/hello?name=h2")
    request, end = pair.server_events(sid)
    assert isinstance(request, Request) and request.query == b"name=h2"
    assert end == EndOfMessage([])
    pair.server.respond(sid, 200, [(b"content-type", b"text/plain")], b"Hello, world!")
    pair.pump()
    response = pair.received(h2.events.ResponseReceived, sid)[0]
    assert dict(response.headers)[b":status"] == b"200"
    assert dict(response.headers)[b"content-length"] == b"13"
    assert pair.body(sid) == b"Hello, world!"
    assert pair.received(h2.events.StreamEnded, sid)


def test_many_streams_interleaved():
    pair = Pair()
    sids = [pair.get(b"/%d" % i) for i in range(20)]
    for sid in reversed(sids):
        pair.server.respond(sid, 200, [], b"r%d" % sid)
    pair.pump()
    assert [pair.body(sid) for sid in sids] == [b"r%d" % sid for sid in sids]
    assert pair.server.open_streams == 0


def test_upload_backpressure_our_window_refilled_only_when_consumed():
    pair = Pair()
    sid = pair.get(method=b"POST", end_stream=False)
    client = pair.client
    assert client.local_flow_control_window(sid) == 65535
    pair.upload(sid, b"u" * 65535)
    received = sum(len(e.data) for e in pair.server_events(sid) if isinstance(e, Data))
    assert received == 65535
    # the application has not consumed any of it: the client may send nothing more
    assert client.local_flow_control_window(sid) == 0
    pair.server.consumed(sid, 40000)
    pair.pump()
    assert client.local_flow_control_window(sid) >= 32768
    # h2 returns window in batches of at least half of it: the rest stays owed
    pair.server.consumed(sid, 25535)
    pair.server.consumed(sid, 1000)  # more than was received: capped, not credited
    pair.pump()
    assert client.local_flow_control_window(sid) <= 65535


def test_unconsumed_body_of_a_finished_stream_returns_to_the_connection_window():
    pair = Pair()
    sid = pair.get(method=b"POST", end_stream=False)
    pair.upload(sid, b"u" * 60000, end_stream=True)
    pair.server.respond(sid, 200, [], b"ignored your body")
    pair.pump()
    assert pair.client.outbound_flow_control_window == 65535


def test_download_backpressure_writable_after_window_update():
    pair = Pair(client_settings={4: 1000}, stream_buffer_size=4000)
    sid = pair.get()
    server = pair.server
    server.send_response(sid, 200, [])
    assert server.send_data(sid, b"a" * 3000) is True
    assert server.send_data(sid, b"b" * 3000) is False  # 5000 buffered, over 4000
    pair.pump()
    assert len(pair.body(sid)) == 1000
    pair.client.acknowledge_received_data(1000, sid)
    pair.client.increment_flow_control_window(5000, sid)
    pair.pump()
    assert (sid, Writable()) in pair.events
    assert server.send_data(sid, b"c", end_stream=True)
    pair.client.increment_flow_control_window(10000, sid)
    pair.pump()
    assert pair.body(sid) == b"a" * 3000 + b"b" * 3000 + b"c"
    assert pair.received(h2.events.StreamEnded, sid)


def test_trailers_both_ways():
    pair = Pair()
    sid = pair.get(method=b"POST", end_stream=False, extra=[(b"te", b"trailers")])
    pair.client.send_data(sid, b"payload")
    pair.client.send_headers(sid, [(b"x-req-sum", b"7")], end_stream=True)
    pair.pump()
    assert pair.server_events(sid)[1:] == [Data(b"payload"), EndOfMessage([(b"x-req-sum", b"7")])]
    pair.server.send_response(sid, 200, [(b"trailer", b"grpc-status")])
    pair.server.send_data(sid, b"reply")
    pair.server.send_end(sid, [(b"grpc-status", b"0")])
    pair.pump()
    trailers = pair.received(h2.events.TrailersReceived, sid)
    assert trailers and trailers[0].headers == [(b"grpc-status", b"0")]


def test_early_hints_reach_the_client():
    pair = Pair()
    sid = pair.get()
    pair.server.send_response(sid, 103, [(b"link", b"</a.css>; rel=preload")])
    pair.server.respond(sid, 200, [], b"page")
    pair.pump()
    informational = pair.received(h2.events.InformationalResponseReceived, sid)
    assert informational and dict(informational[0].headers)[b":status"] == b"103"
    assert pair.body(sid) == b"page"


def test_application_failure_mid_stream_resets_it():
    pair = Pair()
    sid = pair.get()
    pair.server.send_response(sid, 200, [])
    pair.server.send_data(sid, b"partial")
    pair.server.reset_stream(sid)
    pair.pump()
    resets = pair.received(h2.events.StreamReset, sid)
    assert resets and resets[0].error_code == h2.errors.ErrorCodes.INTERNAL_ERROR
    assert pair.server.open_streams == 0
    # the application's late writes are dropped, not raised
    pair.server.send_data(sid, b"late")
    pair.server.send_end(sid)


def test_client_cancel_is_a_stream_reset_event():
    pair = Pair()
    sid = pair.get(end_stream=False)
    pair.client.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    pair.pump()
    assert (sid, StreamReset(8, True, "")) in pair.events


def test_graceful_close_lets_in_flight_streams_finish():
    peer = Peer()
    peer.send(peer.request(1), peer.request(3, end_stream=False))
    peer.server.close_gracefully()
    goaway = peer.goaway()
    assert goaway.error_code == 0 and goaway.last_stream_id == 3
    assert not peer.server.finished and not peer.server.closed
    # in-flight streams complete after the GOAWAY, both ways
    peer.server.respond(1, 200, [], b"one")
    events = peer.send(peer.data(3, b"tail", end_stream=True))
    assert [e for _, e in events] == [Data(b"tail"), EndOfMessage([])]
    assert not peer.server.finished
    peer.server.respond(3, 200, [], b"two")
    assert peer.body(1) == b"one" and peer.body(3) == b"two"
    assert peer.ended(1) and peer.ended(3)
    assert peer.server.finished


def test_stream_opened_after_graceful_goaway_is_refused():
    peer = Peer()
    peer.send(peer.request(1))
    peer.server.close_gracefully()
    events = peer.send(peer.request(5, extra=[(b"x-table", b"entry")]))
    assert [type(e) for _, e in events] == [StreamReset]
    assert events[0][1].error_code == 7 and peer.resets(5) == [7]  # REFUSED_STREAM: retry elsewhere
    # its header block was still decoded: HPACK stays in step for the streams that finish
    peer.server.respond(1, 200, [], b"done")
    assert peer.body(1) == b"done" and peer.server.finished


def test_close_now_sends_goaway():
    pair = Pair()
    pair.get(end_stream=False)
    pair.server.close(0)
    pair.pump()
    assert pair.received(h2.events.ConnectionTerminated)
    assert pair.server.closed and pair.server.finished


def test_client_goaway_and_eof():
    pair = Pair()
    sid = pair.get()
    pair.client.close_connection()
    pair.pump()
    assert (0, GoAwayReceived(0, 0)) in pair.events
    pair.server.respond(sid, 200, [], b"after goaway")
    assert pair.server.data_to_send()  # the response still goes out
    assert pair.server.receive_data(b"") == [(0, ConnectionClosed())]
    assert pair.server.closed


def test_h2c_upgrade_makes_the_request_stream_1():
    c = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    settings_header = c.initiate_upgrade_connection()
    c.data_to_send()
    server = H2Connection()
    upgrade_request = Request(
        b"GET",
        b"/up?x=1",
        [
            (b"host", b"t"),
            (b"connection", b"Upgrade, HTTP2-Settings"),
            (b"upgrade", b"h2c"),
            (b"http2-settings", settings_header),
        ],
        b"1.1",
        b"/up",
        b"x=1",
        upgrade=b"h2c",
    )
    events = server.initiate_upgrade_connection(settings_header, upgrade_request)
    assert [(sid, type(e)) for sid, e in events] == [(1, Request), (1, EndOfMessage)]
    request = events[0][1]
    assert request.http_version == b"2" and request.path == b"/up"
    assert request.headers == [(b"host", b"t")]
    # after the 101: the client's preface, our SETTINGS, and stream 1's response
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    server.receive_data(preface + h2.connection.SettingsFrame(0).serialize())
    server.respond(1, 200, [], b"upgraded")
    received = c.receive_data(server.data_to_send())
    body = b"".join(e.data for e in received if isinstance(e, h2.events.DataReceived))
    assert body == b"upgraded"


def test_h2c_upgrade_with_a_bad_settings_header():
    server = H2Connection()
    with pytest.raises(H2ProtocolError, match="HTTP2-Settings"):
        server.initiate_upgrade_connection(b"!!not base64!!")


@pytest.mark.parametrize(
    ("data", "verdict"),
    [
        (b"", None),
        (b"PRI * HT", None),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", True),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00", True),
        (b"GET / HTTP/1.1\r\n", False),
        (b"PRX", False),
    ],
)
def test_prior_knowledge_preface_detection(data, verdict):
    assert looks_like_preface(data) is verdict


def test_receive_before_initiate_is_a_local_error():
    from unicorn_http.errors import LocalProtocolError

    with pytest.raises(LocalProtocolError):
        H2Connection().receive_data(b"x")


@pytest.mark.parametrize(
    "options",
    [
        {"http2_max_frame_size": 100},
        {"http2_initial_window_size": 1 << 31},
        {"http2_max_concurrent_streams": 0},
    ],
)
def test_bad_settings_refused_at_construction(options):
    with pytest.raises(ValueError, match="http2_"):
        H2Connection(**options)


# ------------------------------------------------------- split invariance


def _client_bytes() -> bytes:
    c = client()
    out = c.data_to_send()
    sid = 1
    for i in range(4):
        c.send_headers(
            sid,
            [
                (b":method", b"POST"),
                (b":scheme", b"https"),
                (b":path", b"/%d" % i),
                (b":authority", b"t"),
                (b"x-i", b"%d" % i),
            ],
        )
        c.send_data(sid, b"body-%d-" % i * 50, pad_length=i * 3 if i else None)
        if i % 2:
            c.send_headers(sid, [(b"x-trailer", b"%d" % i)], end_stream=True)
        else:
            c.end_stream(sid)
        sid += 2
    c.ping(b"pingpong")
    c.increment_flow_control_window(1000)
    c.prioritize(3, weight=100)
    return out + c.data_to_send()


CLIENT_BYTES = _client_bytes()


def _events_for(chunks: list[bytes]) -> list:
    server = H2Connection()
    server.initiate_connection()
    events = []
    for chunk in chunks:
        events += server.receive_data(chunk)
    return events, server.data_to_send()


WHOLE_EVENTS, WHOLE_OUTPUT = _events_for([CLIENT_BYTES])


def test_the_byte_stream_makes_the_expected_events():
    kinds = [(sid, type(e).__name__) for sid, e in WHOLE_EVENTS]
    assert kinds.count((1, "Request")) == 1 and kinds.count((7, "EndOfMessage")) == 1
    assert (3, EndOfMessage([(b"x-trailer", b"1")])) in WHOLE_EVENTS


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(CLIENT_BYTES) - 1), max_size=30))
def test_any_split_of_the_client_bytes_gives_the_same_events(cuts):
    points = sorted(set(cuts))
    chunks = [
        CLIENT_BYTES[a:b] for a, b in zip([0, *points], [*points, len(CLIENT_BYTES)], strict=True)
    ]
    events, output = _events_for(chunks)
    assert events == WHOLE_EVENTS
    assert output == WHOLE_OUTPUT


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_after_the_preface_raises_only_the_protocol_error(garbage):
    server = H2Connection()
    server.initiate_connection()
    try:
        server.receive_data(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + garbage)
    except H2ProtocolError as exc:
        assert exc.error_code in range(0, 14)


# --------------------------------------------------------- without h2


def test_unicorn_http_imports_without_h2():
    script = textwrap.dedent(
        """
        import sys

        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("h2", "hpack", "hyperframe"):
                    raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
                return None

        sys.meta_path.insert(0, Refuse())
        import unicorn_http
        from unicorn_http import H1Connection
        assert "h2" not in sys.modules and "unicorn_http.h2" not in sys.modules
        try:
            import unicorn_http.h2
        except ImportError as exc:
            assert "unicorn-http[http2]" in str(exc), exc
        else:
            raise SystemExit("unicorn_http.h2 imported without h2")
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
