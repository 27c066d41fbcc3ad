"""Whether a connection outlives its exchange (RFC 9112 section 9.3), and how
exchanges follow each other on it: pipelined requests wait their turn (PAUSED)
and come out in order, an unread body is drained so the next request can be
parsed (or the connection closes when that costs too much), and the server can
end the connection after the current response."""

from __future__ import annotations

import pytest
from h1_harness import EOM, merge, pump

from unicorn_http import (
    DONE,
    IDLE,
    MUST_CLOSE,
    NEED_DATA,
    PAUSED,
    SEND_BODY,
    ConnectionClosed,
    Data,
    EndOfMessage,
    H1Connection,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
)

HOST = b"Host: example.com\r\n"
CLOSED = ConnectionClosed()


def get(target: bytes = b"/", *fields: bytes, version: bytes = b"1.1") -> bytes:
    host = HOST if version == b"1.1" else b""
    return (
        b"GET "
        + target
        + b" HTTP/"
        + version
        + b"\r\n"
        + host
        + b"".join(f + b"\r\n" for f in fields)
        + b"\r\n"
    )


def post(target: bytes, body: bytes) -> bytes:
    return (
        b"POST "
        + target
        + b" HTTP/1.1\r\n"
        + HOST
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


def post_chunked(target: bytes, *chunks: bytes, trailer: bytes = b"") -> bytes:
    data = b"".join(b"%x\r\n%b\r\n" % (len(c), c) for c in chunks)
    return (
        b"POST "
        + target
        + b" HTTP/1.1\r\n"
        + HOST
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + data
        + b"0\r\n"
        + trailer
        + b"\r\n"
    )


def head_of(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[0].lower()


def connected(*raw: bytes, **settings) -> H1Connection:
    conn = H1Connection(**settings)
    for piece in raw:
        conn.receive_data(piece)
    return conn


# (id, version, Connection header lines, keep_alive wanted by the client)
KEEP_ALIVE = [
    ("rfc9112-9.3-http/1.1-persists-by-default", b"1.1", [], True),
    ("rfc9112-9.3-http/1.0-closes-by-default", b"1.0", [], False),
    ("rfc9112-9.3-http/1.1-close", b"1.1", [b"Connection: close"], False),
    ("rfc9112-9.3-http/1.1-close-any-case", b"1.1", [b"Connection: CLOSE"], False),
    ("rfc9112-9.3-http/1.1-close-in-a-list", b"1.1", [b"Connection: te,  close "], False),
    (
        "rfc9112-9.3-http/1.1-close-on-second-line",
        b"1.1",
        [b"Connection: te", b"Connection: close"],
        False,
    ),
    ("rfc9112-9.3-http/1.0-keep-alive", b"1.0", [b"Connection: keep-alive"], True),
    ("rfc9112-9.3-http/1.0-keep-alive-any-case", b"1.0", [b"Connection: Keep-Alive"], True),
    (
        "rfc9112-9.3-http/1.0-keep-alive-and-close",
        b"1.0",
        [b"Connection: keep-alive, close"],
        False,
    ),
    ("rfc9112-9.3-close-is-a-token-not-a-substring", b"1.1", [b"Connection: closed"], True),
    ("rfc9112-9.3-other-tokens-do-not-close", b"1.1", [b"Connection: upgrade"], True),
]


@pytest.mark.parametrize(
    ("version", "fields", "keep_alive"),
    [pytest.param(v, f, k, id=i) for i, v, f, k in KEEP_ALIVE],
)
def test_client_keep_alive_wish(version, fields, keep_alive):
    conn = connected(get(b"/", *fields, version=version))
    req = conn.next_event()
    assert req.keep_alive is keep_alive
    assert conn.next_event() == EOM
    out = conn.respond(200, [], b"ok")
    assert conn.keep_alive is keep_alive
    head = head_of(out)
    if keep_alive:
        assert b"connection: close" not in head
        # HTTP/1.0 must be told the connection stays (RFC 9112 section 9.3).
        assert (b"connection: keep-alive" in head) is (version == b"1.0")
        assert conn.our_state is IDLE and conn.their_state is IDLE
        assert conn.next_event() is NEED_DATA
    else:
        assert conn.our_state is MUST_CLOSE
        assert conn.next_event() == CLOSED
        assert conn.next_event() == CLOSED


def test_http_1_0_close_is_implied_not_sent():
    conn = connected(get(version=b"1.0"))
    pump(conn)
    assert b"connection:" not in head_of(conn.respond(200, [], b"x"))


def test_pipelined_requests_come_out_in_order_and_wait_their_turn():
    conn = connected(
        get(b"/1")
        + post(b"/2", b"hello")
        + post_chunked(b"/3", b"ab", b"cd", trailer=b"X-T: 1\r\n")
        + get(b"/4", b"Connection: close")
        + get(b"/never")
    )
    seen = []
    for _ in range(6):
        events = merge(pump(conn))
        assert events[-1] in (PAUSED, CLOSED), events
        if events[-1] == CLOSED:
            seen.append(events)
            break
        # PAUSED holds however often it is asked, and while the response streams.
        assert conn.next_event() is PAUSED
        assert conn.their_state is DONE
        seen.append(events[:-1])
        conn.send_response(200, [(b"Content-Length", b"2")])
        assert conn.next_event() is PAUSED
        conn.send_data(b"ok")
        assert conn.next_event() is PAUSED
        conn.send_end()
    targets = [events[0].target for events in seen if events and type(events[0]) is Request]
    assert targets == [b"/1", b"/2", b"/3", b"/4"]
    assert seen[1][1:] == [Data(b"hello"), EOM]
    assert seen[2][1:] == [Data(b"abcd"), EndOfMessage([(b"x-t", b"1")])]
    assert seen[4] == [CLOSED]


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"Content-Length: 24\r\n\r\n", id="content-length"),
        pytest.param(b"Transfer-Encoding: chunked\r\n\r\n18\r\n", id="chunked"),
    ],
)
def test_bytes_received_in_many_pieces_keep_their_order(head):
    """Several reads queued between two next_event() calls come out in order."""
    conn = connected(b"POST / HTTP/1.1\r\n" + HOST + head)
    assert type(conn.next_event()) is Request
    events = []
    for n in range(0, 24, 6):
        for i in range(n, n + 6, 2):
            conn.receive_data(b"abcdefghijklmnopqrstuvwx"[i : i + 2])
        events += [conn.next_event(), conn.next_event()]
    if b"chunked" in head:
        conn.receive_data(b"\r\n0\r\n\r\n")
    events = merge(events + pump(conn))
    assert events == [Data(b"abcdefghijklmnopqrstuvwx"), EOM, PAUSED]


def feed_until_request(conn: H1Connection, pieces: list[bytes]) -> Request:
    while pieces:
        conn.receive_data(pieces.pop(0))
        event = conn.next_event()
        if event is not NEED_DATA:
            return event
    raise AssertionError("no request")


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(post(b"/1", b"x" * 1000), id="content-length"),
        pytest.param(
            post_chunked(b"/1", b"x" * 500, b"y" * 500, trailer=b"X-T: 1\r\n"), id="chunked"
        ),
        pytest.param(get(b"/1"), id="no-body"),
    ],
)
@pytest.mark.parametrize("step", [1, 7, 100_000])
def test_unread_body_is_drained_then_the_next_request_parsed(first, step):
    raw = first + get(b"/2")
    pieces = [raw[i : i + step] for i in range(0, len(raw), step)]
    conn = H1Connection()
    assert feed_until_request(conn, pieces).target == b"/1"
    # Answer without reading the body: the connection stays usable.
    out = conn.respond(200, [], b"early")
    assert b"connection: close" not in head_of(out)
    events = pump(conn)
    for piece in pieces:
        conn.receive_data(piece)
        events += pump(conn)
    events = merge(events)
    # Nothing of the answered request shows any more, not its body nor its end:
    # the next event is the next request.
    assert [type(e) for e in events] == [Request, EndOfMessage, type(PAUSED)]
    assert events[0].target == b"/2"


def test_drain_over_max_drain_closes_content_length():
    conn = connected(post(b"/", b"x" * 100) + get(b"/2"), max_drain=10)
    conn.next_event()
    out = conn.respond(200, [], b"")
    # Known from Content-Length before a byte is drained: say so in the response.
    assert b"connection: close" in head_of(out)
    assert conn.next_event() == CLOSED


def test_drain_over_max_drain_closes_chunked():
    conn = connected(post_chunked(b"/", b"x" * 8, b"x" * 8) + get(b"/2"), max_drain=10)
    conn.next_event()
    conn.respond(200, [], b"")
    assert conn.next_event() == CLOSED
    assert conn.next_event() == CLOSED


def test_drain_within_max_drain_keeps_the_connection():
    conn = connected(post(b"/", b"x" * 10) + get(b"/2"), max_drain=10)
    conn.next_event()
    assert b"connection: close" not in head_of(conn.respond(200, [], b""))
    assert [type(e) for e in merge(pump(conn))] == [Request, EndOfMessage, type(PAUSED)]


def test_partly_read_body_is_drained():
    raw = post(b"/", b"0123456789") + get(b"/2")
    split = raw.index(b"01234") + 5
    conn = connected(raw[:split])
    conn.next_event()
    assert conn.next_event() == Data(b"01234")
    conn.respond(204, [])
    assert conn.next_event() is NEED_DATA
    conn.receive_data(raw[split:])
    events = merge(pump(conn))
    assert [type(e) for e in events] == [Request, EndOfMessage, type(PAUSED)]


@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
def test_server_ends_the_connection_with_keep_alive_false(version):
    fields = [b"Connection: keep-alive"] if version == b"1.0" else []
    conn = connected(get(b"/1", *fields, version=version) + get(b"/2"))
    pump(conn)
    conn.keep_alive = False  # max_requests reached, or shutting down
    out = conn.respond(200, [], b"bye")
    assert b"\r\nconnection: close" in head_of(out)
    assert b"keep-alive" not in head_of(out)
    assert conn.our_state is MUST_CLOSE
    # The pipelined request is never parsed.
    assert conn.next_event() == CLOSED


def test_response_connection_close_from_the_app_ends_the_connection():
    conn = connected(get(b"/1") + get(b"/2"))
    pump(conn)
    out = conn.respond(200, [(b"Connection", b"close")], b"bye")
    assert b"connection: close" in head_of(out)
    assert not conn.keep_alive
    assert conn.next_event() == CLOSED


def test_eof_between_requests_is_a_clean_close():
    conn = connected(get())
    pump(conn)
    conn.respond(200, [], b"")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"\r\n")
    conn.receive_data(b"")
    assert conn.next_event() == CLOSED
    assert conn.next_event() == CLOSED


def test_half_closed_client_still_gets_its_response():
    conn = connected(get(), b"")
    assert [type(e) for e in pump(conn)] == [Request, EndOfMessage, type(PAUSED)]
    assert conn.respond(200, [], b"ok").startswith(b"HTTP/1.1 200 OK\r\n")
    assert conn.next_event() == CLOSED


def test_data_after_eof_is_a_local_error():
    conn = connected(b"")
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"GET")


def test_response_before_a_request_is_a_local_error():
    conn = H1Connection()
    with pytest.raises(LocalProtocolError):
        conn.respond(200, [], b"")
    conn.receive_data(b"GET / HTT")
    assert conn.next_event() is NEED_DATA
    with pytest.raises(LocalProtocolError):
        conn.send_response(200, [])


def test_response_state_machine():
    conn = connected(post(b"/", b"hi"))
    conn.next_event()
    conn.send_response(200, [(b"Content-Length", b"1")])
    assert conn.our_state is SEND_BODY
    with pytest.raises(LocalProtocolError):
        conn.send_response(200, [])
    conn.send_data(b"x")
    conn.send_end()
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"x")
    with pytest.raises(LocalProtocolError):
        conn.send_end()


def test_start_next_cycle_reads_requests_without_answering():
    conn = connected(get(b"/1") + get(b"/2"))
    assert conn.next_event().target == b"/1"
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()  # the request is not over yet
    assert conn.next_event() == EOM
    conn.start_next_cycle()
    assert conn.next_event().target == b"/2"


def test_sending_connection_closed_ends_our_side():
    conn = connected(get(b"/1") + get(b"/2"))
    pump(conn)
    assert conn.send(ConnectionClosed()) == b""
    assert conn.next_event() == CLOSED


# ------------------------------------------- field lines seen earlier on a connection


def exchange(conn: H1Connection, data: bytes) -> Request:
    """Feed one request, read it whole and answer it; the request comes back."""
    conn.receive_data(data)
    req = conn.next_event()
    assert isinstance(req, Request)
    assert conn.next_event() == EndOfMessage()
    conn.respond(204, [])
    return req


def test_repeated_field_lines_parse_as_the_first_time():
    conn = H1Connection()
    fields = (b"User-Agent: test/1.0", b"Accept:  */* ", b"X-Trace: abc")
    first = exchange(conn, get(b"/a", *fields))
    again = exchange(conn, get(b"/b", *fields))
    assert (
        again.headers
        == first.headers
        == [
            (b"host", b"example.com"),
            (b"user-agent", b"test/1.0"),
            (b"accept", b"*/*"),
            (b"x-trace", b"abc"),
        ]
    )
    assert again.path == b"/b"


@pytest.mark.parametrize(
    "bad",
    [b"Bad Name: x", b"X-Ctl: a\x01b", b"no colon", b"X-Bare: a\rb", b" folded"],
)
def test_a_bad_line_beside_lines_seen_before_is_refused(bad):
    conn = H1Connection()
    exchange(conn, get(b"/", b"Accept: */*"))
    conn.receive_data(get(b"/", b"Accept: */*", bad))
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.status == 400


def test_lines_seen_before_still_count_against_limit_request_fields():
    conn = H1Connection(limit_request_fields=3)
    fields = (b"A: 1", b"B: 2")
    exchange(conn, get(b"/", *fields))  # Host + 2 = 3 fields: allowed
    conn.receive_data(get(b"/", *fields, b"A: 1"))
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert info.value.status == 431


def test_framing_fields_are_acted_on_every_time_they_repeat():
    conn = H1Connection()
    close = b"Connection: close"
    assert exchange(conn, get(b"/", b"Connection: keep-alive")).keep_alive
    conn.receive_data(get(b"/", close))
    req = conn.next_event()
    assert req.keep_alive is False
    assert conn.next_event() == EndOfMessage()
    conn.respond(204, [])
    assert conn.our_state is MUST_CLOSE


def test_memory_for_seen_lines_is_bounded():
    conn = H1Connection()
    for i in range(400):
        exchange(conn, get(b"/", b"X-Unique-%d: %s" % (i, b"v" * 200)))
    for i in range(400):
        exchange(conn, get(b"/unique/%d/%s" % (i, b"p" * 200)))
    remembered = sum(map(len, conn._memory.fields)) + sum(map(len, conn._memory.lines))
    assert remembered <= 16384


def test_a_repeated_request_line_parses_as_the_first_time():
    conn = H1Connection()
    line = b"GET /p?q=1 HTTP/1.1\r\n" + HOST + b"\r\n"
    first = exchange(conn, line)
    again = exchange(conn, line)
    assert (
        (again.method, again.path, again.query, again.http_version)
        == (
            first.method,
            first.path,
            first.query,
            first.http_version,
        )
        == (b"GET", b"/p", b"q=1", b"1.1")
    )


@pytest.mark.parametrize(
    "line", [b"GET /a\x7fb HTTP/1.1", b"GET  / HTTP/1.1", b"GET / HTTP/2.0", b"G@T / HTTP/1.1"]
)
def test_a_bad_request_line_after_good_ones_is_refused(line):
    conn = H1Connection()
    exchange(conn, get(b"/"))
    exchange(conn, get(b"/"))
    conn.receive_data(line + b"\r\n" + HOST + b"\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_the_same_field_block_again_frames_its_body_again():
    conn = H1Connection()
    for body in (b"first", b"again"):
        conn.receive_data(post(b"/", body))
        req = conn.next_event()
        assert req.content_length == 5
        assert conn.next_event() == Data(body)
        assert conn.next_event() == EndOfMessage()
        conn.respond(204, [])


def test_changing_a_request_headers_list_does_not_change_the_next_request():
    conn = H1Connection()
    first = exchange(conn, get(b"/", b"Accept: */*"))
    first.headers.append((b"x-added", b"by the app"))
    first.headers[0] = (b"host", b"elsewhere")
    again = exchange(conn, get(b"/", b"Accept: */*"))
    assert again.headers == [(b"host", b"example.com"), (b"accept", b"*/*")]


def test_the_same_field_block_under_another_version_is_judged_for_that_version():
    conn = H1Connection()
    fields = b"Host: example.com\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
    req = exchange(conn, b"GET / HTTP/1.1\r\n" + fields)
    assert req.upgrade == b"websocket"
    conn.receive_data(b"GET / HTTP/1.0\r\n" + fields)
    req = conn.next_event()
    assert req.upgrade is None  # RFC 9110 section 7.8: ignored in HTTP/1.0


def test_a_large_field_block_is_not_kept_after_its_request():
    conn = H1Connection()
    big = b"X-Big: " + b"v" * 8000
    exchange(conn, get(b"/", big, big.replace(b"X-Big", b"X-Big2"), big.replace(b"X-Big", b"X-B3")))
    exchange(conn, get(b"/", b"Accept: */*"))
    exchange(conn, get(b"/", big, big.replace(b"X-Big", b"X-Big2"), big.replace(b"X-Big", b"X-B3")))
    kept = conn._memory.block or b""
    assert (
        len(kept) + sum(map(len, conn._memory.fields)) + sum(map(len, conn._memory.lines)) <= 16384
    )
