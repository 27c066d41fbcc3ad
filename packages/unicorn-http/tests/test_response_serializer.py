"""The response side: a status line and headers that cannot be used to inject
a header or a response (RFC 9112 section 4, RFC 9110 section 5), Date and
Server, the framing of the body (RFC 9112 section 6: Content-Length, chunked,
or until close), no body where none may be sent, 1xx, trailers, and the error
response for a refused request."""

from __future__ import annotations

import re

import pytest
from h1_harness import pump

from unicorn_http import (
    MUST_CLOSE,
    ConnectionClosed,
    Data,
    EndOfMessage,
    H1Connection,
    LocalProtocolError,
    RemoteProtocolError,
    Response,
    date_header,
)
from unicorn_http import h1 as h1_module

HOST = b"Host: example.com\r\n"
DATE_RE = re.compile(rb"Date: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n")


def answering(
    method: bytes = b"GET", version: bytes = b"1.1", *fields: bytes, **settings
) -> H1Connection:
    """A connection whose request has been read whole, ready for its response."""
    host = HOST if version == b"1.1" else b""
    conn = H1Connection(**settings)
    conn.receive_data(
        method
        + b" / HTTP/"
        + version
        + b"\r\n"
        + host
        + b"".join(f + b"\r\n" for f in fields)
        + b"\r\n"
    )
    pump(conn)
    return conn


def split(response: bytes) -> tuple[bytes, list[bytes], bytes]:
    """(status line, header lines, body) of one serialized response."""
    head, sep, body = response.partition(b"\r\n\r\n")
    assert sep, response
    status, *lines = head.split(b"\r\n")
    return status, lines, body


def names(lines: list[bytes]) -> list[bytes]:
    return [line.partition(b":")[0].lower() for line in lines]


# ------------------------------------------------------------------ injection

INJECTIONS = [
    ("cr-lf-in-value", [(b"X-A", b"a\r\nSet-Cookie: evil=1")], b""),
    ("lf-in-value", [(b"X-A", b"a\nSet-Cookie: evil=1")], b""),
    ("cr-in-value", [(b"X-A", b"a\rb")], b""),
    ("nul-in-value", [(b"X-A", b"a\x00b")], b""),
    ("ctl-in-value", [(b"X-A", b"a\x1bb")], b""),
    ("crlfcrlf-response-splitting", [(b"X-A", b"a\r\n\r\nHTTP/1.1 200 OK")], b""),
    ("cr-lf-in-name", [(b"X-A\r\nSet-Cookie", b"evil=1")], b""),
    ("space-in-name", [(b"X A", b"1")], b""),
    ("colon-in-name", [(b"X-A:", b"1")], b""),
    ("empty-name", [(b"", b"1")], b""),
    ("nul-in-name", [(b"X\x00", b"1")], b""),
    ("obs-text-in-name", [(b"X-\xe9", b"1")], b""),
    ("cr-lf-in-reason", [], b"OK\r\nSet-Cookie: evil=1"),
    ("lf-in-reason", [], b"OK\nX: y"),
    ("nul-in-reason", [], b"O\x00K"),
]


@pytest.mark.parametrize(
    ("headers", "reason"), [pytest.param(h, r, id=i) for i, h, r in INJECTIONS]
)
@pytest.mark.parametrize("status", [200, 103])
def test_header_injection_is_refused(headers, reason, status):
    conn = answering()
    with pytest.raises(LocalProtocolError):
        conn.send_response(status, headers, reason)


@pytest.mark.parametrize(
    ("headers", "reason"), [pytest.param(h, r, id=i) for i, h, r in INJECTIONS if h]
)
def test_trailer_injection_is_refused(headers, reason):
    conn = answering()
    conn.send_response(200, [])
    with pytest.raises(LocalProtocolError):
        conn.send_end(headers)


def test_obs_text_and_tabs_in_values_and_reason_are_sent():
    conn = answering()
    status, lines, _ = split(conn.send_response(200, [(b"X-A", b"caf\xe9\tok")], b"Fine \xe9"))
    assert status == b"HTTP/1.1 200 Fine \xe9"
    assert b"X-A: caf\xe9\tok" in lines


# ------------------------------------------------------------- status line


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (200, b"HTTP/1.1 200 OK"),
        (404, b"HTTP/1.1 404 Not Found"),
        (413, b"HTTP/1.1 413 Content Too Large"),
        (431, b"HTTP/1.1 431 Request Header Fields Too Large"),
        (599, b"HTTP/1.1 599 Unknown"),
    ],
)
def test_status_line_has_a_default_reason(status, line):
    assert split(answering().send_response(status, []))[0] == line


def test_status_line_to_http_1_0_says_http_1_1():
    # RFC 9110 section 2.5: a server sends its own highest version.
    assert answering(b"GET", b"1.0").respond(200, [], b"").startswith(b"HTTP/1.1 200 OK\r\n")


# ------------------------------------------------------------ Date and Server


def test_date_and_server_are_added():
    _, lines, _ = split(answering().respond(200, [], b""))
    assert DATE_RE.fullmatch(next(x for x in lines if x.startswith(b"Date:")) + b"\r\n")
    assert b"Server: unicorn" in lines


def test_date_and_server_set_by_the_app_are_not_doubled():
    headers = [(b"date", b"Tue, 15 Nov 1994 08:12:31 GMT"), (b"SERVER", b"mine")]
    _, lines, _ = split(answering().respond(200, headers, b""))
    assert names(lines).count(b"date") == 1 and names(lines).count(b"server") == 1
    assert b"date: Tue, 15 Nov 1994 08:12:31 GMT" in lines and b"SERVER: mine" in lines


def test_server_and_date_can_be_turned_off():
    _, lines, _ = split(answering(server=None, send_date=False).respond(200, [], b""))
    assert b"date" not in names(lines) and b"server" not in names(lines)
    _, lines, _ = split(answering(server=b"edge/1").respond(200, [], b""))
    assert b"Server: edge/1" in lines


def test_date_is_built_once_per_second(monkeypatch):
    now = [1_000_000_000.2]
    monkeypatch.setattr(h1_module, "_clock", lambda: now[0])
    monkeypatch.setattr(h1_module, "_date_cache", [0.0, b""])
    first = date_header()
    assert first == b"Date: Sun, 09 Sep 2001 01:46:40 GMT\r\n"
    now[0] += 0.7
    assert date_header() is first  # same second: the cached line itself
    now[0] += 0.2
    second = date_header()
    assert second == b"Date: Sun, 09 Sep 2001 01:46:41 GMT\r\n"
    assert second.rstrip(b"\r\n") in split(answering().respond(200, [], b""))[1]


# ----------------------------------------------------------------- framing


def test_content_length_body():
    conn = answering()
    out = conn.send_response(200, [(b"Content-Length", b"5")])
    out += conn.send_data(b"he") + conn.send_data(b"llo") + conn.send_end()
    _, lines, body = split(out)
    assert body == b"hello"
    assert b"transfer-encoding" not in names(lines)


def test_explicit_chunked_body_with_trailers():
    conn = answering()
    out = conn.send_response(200, [(b"Transfer-Encoding", b"chunked"), (b"Trailer", b"X-Sum")])
    out += conn.send_data(b"hello") + conn.send_data(b"") + conn.send_data(b" world!")
    out += conn.send(EndOfMessage([(b"X-Sum", b"42")]))
    _, lines, body = split(out)
    assert names(lines).count(b"transfer-encoding") == 1
    assert body == b"5\r\nhello\r\n7\r\n world!\r\n0\r\nX-Sum: 42\r\n\r\n"


def test_http_1_1_without_length_is_chunked():
    conn = answering()
    out = conn.send(Response(200, [(b"Content-Type", b"text/event-stream")]))
    out += conn.send(Data(b"data: 1\n\n")) + conn.send_end()
    _, lines, body = split(out)
    assert b"Transfer-Encoding: chunked" in lines
    assert body == b"9\r\ndata: 1\n\n\r\n0\r\n\r\n"
    assert conn.keep_alive


def test_http_1_0_without_length_ends_at_close():
    conn = answering(b"GET", b"1.0", b"Connection: keep-alive")
    out = conn.send_response(200, []) + conn.send_data(b"stream") + conn.send_end()
    _, lines, body = split(out)
    assert body == b"stream"
    assert b"transfer-encoding" not in names(lines) and b"content-length" not in names(lines)
    assert b"Connection: close" in lines
    assert not conn.keep_alive and conn.our_state is MUST_CLOSE
    assert conn.next_event() == ConnectionClosed()


def test_no_chunked_coding_to_an_http_1_0_client():
    # RFC 9112 section 6.1: a server MUST NOT send Transfer-Encoding to an
    # HTTP/1.0 request; a body the app asked to chunk ends at close instead.
    conn = answering(b"GET", b"1.0", b"Connection: keep-alive")
    out = conn.send_response(200, [(b"Transfer-Encoding", b"chunked"), (b"X-A", b"1")])
    out += conn.send_data(b"stream") + conn.send_end()
    _, lines, body = split(out)
    assert b"transfer-encoding" not in names(lines) and b"X-A: 1" in lines
    assert body == b"stream"
    assert b"Connection: close" in lines
    assert conn.our_state is MUST_CLOSE


@pytest.mark.parametrize(
    ("method", "status"),
    [(b"HEAD", 200), (b"GET", 204), (b"GET", 304), (b"HEAD", 404)],
)
def test_no_body_bytes_for_head_204_304(method, status):
    conn = answering(method)
    out = conn.send_response(status, [(b"Content-Length", b"11")] if status != 204 else [])
    out += conn.send_data(b"hello world") + conn.send_end()
    _, lines, body = split(out)
    assert body == b""
    assert b"transfer-encoding" not in names(lines)
    assert conn.keep_alive


def test_head_without_length_is_not_chunked():
    conn = answering(b"HEAD")
    _, lines, body = split(conn.send_response(200, []) + conn.send_data(b"x") + conn.send_end())
    assert body == b"" and b"transfer-encoding" not in names(lines)


def test_respond_adds_content_length_but_not_to_204_and_304():
    _, lines, body = split(answering().respond(200, [], b"hello"))
    assert b"Content-Length: 5" in lines and body == b"hello"
    for status in (204, 304):
        _, lines, body = split(answering().respond(status, []))
        assert b"content-length" not in names(lines) and body == b""


def test_body_longer_than_content_length_is_a_local_error():
    conn = answering()
    conn.send_response(200, [(b"Content-Length", b"3")])
    conn.send_data(b"ab")
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"cd")
    assert not conn.keep_alive


def test_body_shorter_than_content_length_is_a_local_error():
    conn = answering()
    conn.send_response(200, [(b"Content-Length", b"3")])
    conn.send_data(b"ab")
    with pytest.raises(LocalProtocolError):
        conn.send_end()
    assert conn.our_state is MUST_CLOSE
    assert conn.next_event() == ConnectionClosed()


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([(b"Content-Length", b"-1")], id="negative-length"),
        pytest.param([(b"Content-Length", b"1, 1")], id="length-list"),
        pytest.param([(b"Content-Length", b"1"), (b"content-length", b"1")], id="length-twice"),
        pytest.param([(b"Transfer-Encoding", b"gzip")], id="te-not-chunked"),
        pytest.param(
            [(b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"1")], id="te-and-length"
        ),
    ],
)
def test_bad_framing_headers_are_local_errors(headers):
    with pytest.raises(LocalProtocolError):
        answering().send_response(200, headers)


def test_trailers_only_on_chunked():
    conn = answering()
    conn.send_response(200, [(b"Content-Length", b"0")])
    with pytest.raises(LocalProtocolError):
        conn.send_end([(b"X-Sum", b"1")])


# ---------------------------------------------------------------------- 1xx


def test_103_early_hints_then_the_final_response():
    conn = answering()
    hints = conn.send_response(103, [(b"Link", b"</style.css>; rel=preload; as=style")])
    assert hints == b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n"
    assert conn.send_response(103, [(b"Link", b"</app.js>; rel=preload")]).startswith(
        b"HTTP/1.1 103 "
    )
    status, _, _ = split(conn.respond(200, [], b"ok"))
    assert status == b"HTTP/1.1 200 OK"


def test_informational_responses_carry_no_date_or_framing():
    _, lines, body = split(answering().send_response(103, [(b"Link", b"</a>")]))
    assert names(lines) == [b"link"] and body == b""


# ------------------------------------------------------------------ send_error


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400, b"Bad Request"),
        (b"GET / HTTP/2.0\r\n\r\n", 505, b"HTTP Version Not Supported"),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n", 414, b"URI Too Long"),
        (
            b"GET / HTTP/1.1\r\n" + HOST + b"X: " + b"v" * 9000 + b"\r\n\r\n",
            431,
            b"Request Header Fields Too Large",
        ),
        (
            b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip, chunked\r\n\r\n",
            501,
            b"Not Implemented",
        ),
    ],
)
def test_send_error_answers_and_closes(raw, status, reason):
    conn = H1Connection()
    conn.receive_data(raw)
    with pytest.raises(RemoteProtocolError) as exc:
        conn.next_event()
    out = conn.send_error(exc.value)
    status_line, lines, body = split(out)
    assert status_line == b"HTTP/1.1 %d %s" % (status, reason)
    assert b"Connection: close" in lines
    assert b"Content-Type: text/plain; charset=utf-8" in lines
    assert b"Content-Length: %d" % len(body) in lines
    assert body == b"%d %s: %s\n" % (status, reason, exc.value.reason.encode())
    assert conn.our_state is MUST_CLOSE


def test_send_error_while_a_response_is_under_way_only_closes():
    conn = H1Connection()
    conn.receive_data(b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n")
    conn.next_event()
    conn.send_response(200, [])
    conn.receive_data(b"zz\r\n")
    with pytest.raises(RemoteProtocolError) as exc:
        conn.next_event()
    assert conn.send_error(exc.value) == b""
    assert conn.our_state is MUST_CLOSE


def test_error_in_the_body_of_a_keep_alive_request():
    conn = H1Connection()
    conn.receive_data(b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n")
    conn.next_event()
    with pytest.raises(RemoteProtocolError) as exc:
        conn.next_event()
    _, lines, _ = split(conn.send_error(exc.value))
    assert b"Connection: close" in lines
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_app_connection_close_is_honoured_and_sent_once():
    conn = answering()
    _, lines, _ = split(conn.respond(200, [(b"Connection", b"close")], b"x"))
    assert [line.lower() for line in lines].count(b"connection: close") == 1
    assert conn.our_state is MUST_CLOSE


def test_app_connection_keep_alive_cannot_override_a_close():
    conn = answering(b"GET", b"1.1", b"Connection: close")
    _, lines, _ = split(conn.respond(200, [(b"Connection", b"keep-alive")], b"x"))
    assert b"connection: keep-alive" not in [line.lower() for line in lines]
    assert b"connection: close" in [line.lower() for line in lines]


@pytest.mark.parametrize("field", [(b"Content-Length", b"0"), (b"Transfer-Encoding", b"chunked")])
def test_no_framing_fields_in_a_204(field):
    # RFC 9110 section 8.6, RFC 9112 section 6.1: a server MUST NOT send them in a 204.
    conn = answering()
    _, lines, body = split(conn.send_response(204, [field]) + conn.send_end())
    assert field[0].lower() not in names(lines)
    assert body == b""


def test_head_response_to_http10_carries_no_transfer_encoding():
    conn = answering(b"HEAD", b"1.0")
    _, lines, _ = split(conn.send_response(200, [(b"Transfer-Encoding", b"chunked")]))
    assert b"transfer-encoding" not in names(lines)


def test_respond_to_head_does_not_claim_a_zero_length():
    # The app cannot know from an empty HEAD body what the GET body's length is.
    conn = answering(b"HEAD")
    _, lines, body = split(conn.respond(200, [(b"Content-Type", b"text/plain")], b""))
    assert b"content-length" not in names(lines)
    assert body == b""


def test_early_answer_to_expect_without_body_keeps_alive():
    conn = answering(b"GET", b"1.1", b"Expect: 100-continue")
    _, lines, _ = split(conn.respond(200, [], b"ok"))
    assert b"connection: close" not in [line.lower() for line in lines]


def test_send_error_carries_the_fields_the_error_names():
    # A 426 must say which WebSocket version we speak (RFC 6455 section 4.4).
    conn = answering()
    exc = RemoteProtocolError("unsupported WebSocket version", 426)
    exc.headers = [(b"Sec-WebSocket-Version", b"13")]
    status, lines, _ = split(conn.send_error(exc))
    assert status == b"HTTP/1.1 426 Upgrade Required"
    assert b"Sec-WebSocket-Version: 13" in lines


def test_send_data_length_counts_bytes_sent_around_the_serializer():
    # os.sendfile writes the body itself; the connection still checks the length.
    conn = answering()
    conn.send_response(200, [(b"Content-Length", b"10")])
    conn.send_data_length(6)
    with pytest.raises(LocalProtocolError):
        conn.send_data_length(5)


def test_send_data_length_refuses_a_chunked_body():
    conn = answering()
    conn.send_response(200, [])
    with pytest.raises(LocalProtocolError):
        conn.send_data_length(3)


def test_a_finished_connection_is_not_a_reference_cycle():
    # Bound methods kept as next_event would make each connection garbage that
    # only the cyclic collector frees; the end states hold no such reference.
    import gc
    import weakref

    conn = answering()
    conn.respond(200, [(b"Connection", b"close")], b"x")
    assert conn.next_event() == ConnectionClosed()
    ref = weakref.ref(conn)
    gc.disable()
    try:
        del conn
        assert ref() is None
    finally:
        gc.enable()


def test_send_error_before_any_request():
    # A connection refused before its first request (a bad PROXY header).
    conn = H1Connection()
    status, lines, body = split(conn.send_error(RemoteProtocolError("bad PROXY header", 400)))
    assert status == b"HTTP/1.1 400 Bad Request"
    assert b"Connection: close" in lines
    assert b"bad PROXY header" in body
    assert conn.next_event() == ConnectionClosed()


# ------------------------------------------------- fields remembered once checked


def test_a_field_sent_again_is_serialized_the_same():
    fields = [(b"Content-Type", b"text/plain"), (b"Content-Length", b"2"), (b"X-A", b"1")]
    outputs = []
    for _ in range(3):
        conn = answering()
        outputs.append(conn.send_response(200, fields) + conn.send_data(b"ok") + conn.send_end())
    assert outputs[0] == outputs[1] == outputs[2]
    _, lines, body = split(outputs[2])
    assert lines[:3] == [b"Content-Type: text/plain", b"Content-Length: 2", b"X-A: 1"]
    assert body == b"ok"


def test_a_remembered_content_length_still_frames_the_body():
    for _ in range(2):
        conn = answering()
        conn.send_response(200, [(b"content-length", b"3")])
        with pytest.raises(LocalProtocolError, match="longer than its Content-Length"):
            conn.send_data(b"four")


def test_a_remembered_content_length_still_refuses_a_second_one():
    answering().send_response(200, [(b"content-length", b"3")])
    with pytest.raises(LocalProtocolError, match="Content-Length"):
        answering().send_response(200, [(b"content-length", b"3"), (b"content-length", b"3")])


def test_a_bad_value_is_refused_after_good_ones_of_the_same_name():
    answering().send_response(200, [(b"x-note", b"fine")])
    with pytest.raises(LocalProtocolError, match="control byte"):
        answering().send_response(200, [(b"x-note", b"fine\r\nSet-Cookie: evil=1")])


def test_fields_given_as_lists_or_with_bytearray_values_are_served():
    conn = answering()
    out = conn.send_response(200, [[b"x-list", b"1"], (b"x-array", bytearray(b"2"))])
    _, lines, _ = split(out + conn.send_end())
    assert b"x-list: 1" in lines and b"x-array: 2" in lines
