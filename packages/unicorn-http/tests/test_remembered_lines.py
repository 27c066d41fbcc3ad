"""What a connection remembers of earlier requests (their request lines, field
lines and last field block) never changes what a request parses to: any
sequence of requests, good and bad, read on one keep-alive connection gives
each request exactly what it gives on a connection of its own."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unicorn_http import (
    MUST_CLOSE,
    Data,
    EndOfMessage,
    H1Connection,
    RemoteProtocolError,
    Request,
)

REQUEST_LINES = [
    b"GET / HTTP/1.1",
    b"GET /a?b=c HTTP/1.1",
    b"POST /upload HTTP/1.1",
    b"GET / HTTP/1.0",
    b"HEAD /x%20y HTTP/1.1",
    b"OPTIONS * HTTP/1.1",
    b"GET http://example.com/abs?q HTTP/1.1",
    b"GET /a\x7fb HTTP/1.1",  # DEL in the target
    b"GET / HTTP/2.0",  # unsupported version
    b"G@T / HTTP/1.1",  # method not a token
]

FIELD_LINES = [
    b"Host: example.com",
    b"Host: example.com:8080",
    b"Host: other.example",
    b"User-Agent: test/1.0",
    b"Accept:  */* ",
    b"Connection: keep-alive",
    b"Connection: close",
    b"Connection: upgrade",
    b"Upgrade: websocket",
    b"Content-Length: 3",
    b"Content-Length: 5",
    b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: gzip",
    b"Expect: 100-continue",
    b"Expect: teapot",
    b"X-Ctl: a\x01b",  # control byte in a value
    b"Bad Name: x",  # space in a name
    b"no colon",
    b"Host: a b",  # invalid Host
    b"X-Long: " + b"v" * 300,
]


def raw(line: bytes, fields: list[bytes]) -> bytes:
    head = line + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"
    # A body for whatever framing the fields announce (what a request refused
    # for its framing has after its head does not matter).
    if b"Transfer-Encoding: chunked" in fields:
        return head + b"3\r\nabc\r\n0\r\n\r\n"
    for f in fields:
        if f.startswith(b"Content-Length: "):
            return head + b"x" * int(f[16:])
    return head


def outcome(conn: H1Connection, data: bytes) -> tuple:
    """What one request parses to on ``conn``: its attributes and body, or the
    refusal's status and reason. The request is answered, keep-alive allowing."""
    conn.receive_data(data)
    try:
        req = conn.next_event()
        assert isinstance(req, Request), req
        body = []
        while True:
            event = conn.next_event()
            if type(event) is Data:
                body.append(event.data)
            else:
                assert type(event) is EndOfMessage, event
                break
    except RemoteProtocolError as exc:
        return ("refused", exc.status, exc.reason)
    conn.respond(204, [])
    return (
        req.method,
        req.target,
        list(req.headers),
        req.http_version,
        req.path,
        req.query,
        req.keep_alive,
        req.expect_continue,
        req.upgrade,
        req.content_length,
        req.chunked,
        b"".join(body),
    )


# Requests drawn from a few request lines and a few field blocks, so that lines
# and whole blocks repeat (under other request lines too) as they do in life.
sequences = st.tuples(
    st.lists(st.sampled_from(REQUEST_LINES), min_size=1, max_size=3),
    st.lists(st.lists(st.sampled_from(FIELD_LINES), max_size=6), min_size=1, max_size=3),
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=12),
).map(lambda t: [(t[0][i % len(t[0])], t[1][j % len(t[1])]) for i, j in t[2]])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequences, st.booleans())
def test_a_request_parses_the_same_after_any_earlier_requests(sequence, small_limits):
    limits = {"limit_request_fields": 5, "max_body_size": 4} if small_limits else {}
    conn = H1Connection(**limits)
    for line, fields in sequence:
        data = raw(line, fields)
        alone = outcome(H1Connection(**limits), data)
        assert outcome(conn, data) == alone, (line, fields)
        if alone[0] == "refused" or conn.our_state is MUST_CLOSE:
            conn = H1Connection(**limits)  # that connection is over


def test_a_changed_copy_of_the_headers_leaves_later_requests_alone():
    conn = H1Connection()
    data = raw(b"GET / HTTP/1.1", [b"Host: example.com", b"Accept: */*"])
    conn.receive_data(data)
    first = conn.next_event()
    conn.next_event()
    first.headers.clear()
    conn.respond(204, [])
    assert outcome(conn, data)[2] == [(b"host", b"example.com"), (b"accept", b"*/*")]
