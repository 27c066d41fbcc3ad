"""RFC 9112 section 6: how long a request body is. Content-Length is digits
only and said once; Transfer-Encoding must end in a single chunked; the two
together, or Transfer-Encoding in HTTP/1.0, are refused (request smuggling);
and RFC 9112 section 3.2: exactly one Host in HTTP/1.1."""

from __future__ import annotations

import pytest
from h1_harness import EOM, Parsed, Refused, case, check_vector, outcome

from unicorn_http import PAUSED, Data, EndOfMessage

HOST = b"Host: example.com\r\n"


def post(*fields: bytes, body: bytes = b"", version: bytes = b"1.1") -> bytes:
    host = HOST if version == b"1.1" else b""
    lines = b"".join(f + b"\r\n" for f in fields)
    return b"POST /upload HTTP/" + version + b"\r\n" + host + lines + b"\r\n" + body


CHUNKED_BODY = b"5\r\nhello\r\n0\r\n\r\n"

CASES = [
    # ---- Content-Length
    case(
        "rfc9112-6.2-content-length",
        post(b"Content-Length: 5", body=b"hello"),
        Parsed([Data(b"hello"), EOM, PAUSED], content_length=5, chunked=False),
    ),
    case(
        "rfc9112-6.2-content-length-zero",
        post(b"Content-Length: 0"),
        Parsed([EOM, PAUSED], content_length=0),
    ),
    case(
        "rfc9112-6.2-content-length-leading-zeros",
        post(b"Content-Length: 005", body=b"hello"),
        Parsed([Data(b"hello"), EOM, PAUSED], content_length=5),
    ),
    case(
        "rfc9112-6.2-body-stops-at-content-length",
        post(b"Content-Length: 3", body=b"abcGET"),
        Parsed([Data(b"abc"), EOM, PAUSED]),
    ),
    case(
        "rfc9112-6.3-7-no-length-means-no-body",
        post(body=b""),
        Parsed([EOM, PAUSED], content_length=None, chunked=False),
    ),
    case(
        "rfc9112-6.3-content-length-in-http/1.0",
        post(b"Content-Length: 2", body=b"hi", version=b"1.0"),
        Parsed([Data(b"hi"), EOM, PAUSED], http_version=b"1.0"),
    ),
    case(
        "rfc9112-6.3-5-duplicate-content-length-same-value",
        post(b"Content-Length: 5", b"Content-Length: 5", body=b"hello"),
        Refused(400, "more than one content-length"),
    ),
    case(
        "rfc9112-6.3-5-duplicate-content-length-different-values",
        post(b"Content-Length: 5", b"Content-Length: 6", body=b"hello!"),
        Refused(400, "more than one content-length"),
    ),
    case(
        "rfc9112-6.3-5-content-length-list",
        post(b"Content-Length: 5, 5", body=b"hello"),
        Refused(400, "digits"),
    ),
    case(
        "rfc9110-8.6-content-length-plus-sign",
        post(b"Content-Length: +5", body=b"hello"),
        Refused(400, "digits"),
    ),
    case(
        "rfc9110-8.6-content-length-minus-sign",
        post(b"Content-Length: -5", body=b"hello"),
        Refused(400, "digits"),
    ),
    case(
        "rfc9110-8.6-content-length-hex",
        post(b"Content-Length: 0x5", body=b"hello"),
        Refused(400, "digits"),
    ),
    case(
        "rfc9110-8.6-content-length-underscore",
        post(b"Content-Length: 1_0", body=b"0123456789"),
        Refused(400, "digits"),
    ),
    case(
        "rfc9110-8.6-content-length-decimal-point",
        post(b"Content-Length: 5.0", body=b"hello"),
        Refused(400, "digits"),
    ),
    case(
        "rfc9110-8.6-content-length-inner-space",
        post(b"Content-Length: 1 0", body=b"0123456789"),
        Refused(400, "digits"),
    ),
    case("rfc9110-8.6-content-length-empty", post(b"Content-Length:"), Refused(400, "digits")),
    case(
        "rfc9110-8.6-content-length-non-ascii-digit",
        post("Content-Length: \u0665".encode()),
        Refused(400, "digits"),
    ),
    case(
        "rfc9110-8.6-content-length-too-many-digits",
        post(b"Content-Length: 1" + b"0" * 18),
        Refused(400, "digits"),
    ),
    case(
        "rfc9112-6.3-eof-before-content-length",
        post(b"Content-Length: 10", body=b"short"),
        Refused(400, "closed"),
        eof=True,
    ),
    # ---- Transfer-Encoding
    case(
        "rfc9112-6.1-chunked",
        post(b"Transfer-Encoding: chunked", body=CHUNKED_BODY),
        Parsed([Data(b"hello"), EOM, PAUSED], chunked=True, content_length=None),
    ),
    case(
        "rfc9112-6.1-chunked-is-case-insensitive",
        post(b"Transfer-Encoding: ChUnKeD", body=CHUNKED_BODY),
        Parsed([Data(b"hello"), EOM, PAUSED], chunked=True),
    ),
    case(
        "rfc9112-6.3-3-te-and-cl",
        post(b"Transfer-Encoding: chunked", b"Content-Length: 5", body=CHUNKED_BODY),
        Refused(400, "both transfer-encoding and content-length"),
    ),
    case(
        "rfc9112-6.3-3-cl-and-te",
        post(b"Content-Length: 16", b"Transfer-Encoding: chunked", body=CHUNKED_BODY),
        Refused(400, "both transfer-encoding and content-length"),
    ),
    case(
        "rfc9112-6.3-3-te-and-cl-zero",
        post(b"Content-Length: 0", b"Transfer-Encoding: chunked", body=CHUNKED_BODY),
        Refused(400, "smuggling"),
    ),
    case(
        "rfc9112-6.3-4-chunked-then-gzip",
        post(b"Transfer-Encoding: chunked, gzip", body=CHUNKED_BODY),
        Refused(400, "end with chunked"),
    ),
    case(
        "rfc9112-6.3-4-gzip-then-chunked-not-implemented",
        post(b"Transfer-Encoding: gzip, chunked", body=CHUNKED_BODY),
        Refused(501, "gzip"),
    ),
    case(
        "rfc9112-6.3-4-gzip-and-chunked-on-two-lines",
        post(b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked", body=CHUNKED_BODY),
        Refused(501, "gzip"),
    ),
    case(
        "rfc9112-6.3-4-chunked-then-gzip-on-two-lines",
        post(b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip", body=CHUNKED_BODY),
        Refused(400, "end with chunked"),
    ),
    case(
        "rfc9112-7-chunked-twice",
        post(b"Transfer-Encoding: chunked, chunked", body=CHUNKED_BODY),
        Refused(400, "more than once"),
    ),
    case(
        "rfc9112-7-chunked-twice-on-two-lines",
        post(b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked", body=CHUNKED_BODY),
        Refused(400, "more than once"),
    ),
    case(
        "rfc9112-6.3-4-identity-only",
        post(b"Transfer-Encoding: identity", body=b"hello"),
        Refused(400, "end with chunked"),
    ),
    case(
        "rfc9112-6.1-te-empty",
        post(b"Transfer-Encoding:", body=b"hello"),
        Refused(400, "empty Transfer-Encoding"),
    ),
    case(
        # RFC 9110 section 5.6.1: a recipient ignores empty list elements.
        "rfc9110-5.6.1-te-trailing-comma",
        post(b"Transfer-Encoding: chunked,", body=CHUNKED_BODY),
        Parsed([Data(b"hello"), EOM, PAUSED], chunked=True),
    ),
    case(
        "rfc9110-5.6.1-te-empty-elements",
        post(b"Transfer-Encoding: , ,chunked", body=CHUNKED_BODY),
        Parsed([Data(b"hello"), EOM, PAUSED], chunked=True),
    ),
    case(
        "rfc9112-6.3-4-te-chunked-lookalike",
        post(b"Transfer-Encoding: xchunked", body=CHUNKED_BODY),
        Refused(400, "end with chunked"),
    ),
    case(
        "rfc9112-6.1-te-in-http/1.0",
        post(b"Transfer-Encoding: chunked", body=CHUNKED_BODY, version=b"1.0"),
        Refused(400, "http/1.0"),
    ),
    case(
        "rfc9112-6.1-te-and-cl-in-http/1.0",
        post(b"Transfer-Encoding: chunked", b"Content-Length: 5", body=b"hello", version=b"1.0"),
        Refused(400),
    ),
    case(
        "rfc9112-6.1-gzip-in-http/1.0",
        post(b"Transfer-Encoding: gzip", body=b"hello", version=b"1.0"),
        Refused(400, "http/1.0"),
    ),
    # ---- Host (RFC 9112 section 3.2, RFC 9110 section 7.2)
    case(
        "rfc9112-3.2-http/1.1-without-host",
        b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
        Refused(400, "host"),
    ),
    case(
        "rfc9112-3.2-two-hosts",
        b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        Refused(400, "more than one host"),
    ),
    case(
        "rfc9112-3.2-two-identical-hosts",
        b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n",
        Refused(400, "more than one host"),
    ),
    case(
        "rfc9110-5.3-two-content-types",
        b"GET / HTTP/1.1\r\nHost: a.example\r\nContent-Type: text/plain\r\n"
        b"Content-Type: application/json\r\n\r\n",
        Refused(400, "more than one content-type"),
    ),
    case(
        "rfc9112-3.2-two-hosts-in-http/1.0",
        b"GET / HTTP/1.0\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        Refused(400, "more than one host"),
    ),
    case(
        "rfc9112-3.2-http/1.0-without-host",
        b"GET / HTTP/1.0\r\n\r\n",
        Parsed(http_version=b"1.0", headers=[]),
    ),
    case(
        "rfc9112-3.2-empty-host",
        b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
        Parsed(headers=[(b"host", b"")]),
    ),
    case(
        "rfc9110-7.2-host-with-port",
        b"GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
        Parsed(headers=[(b"host", b"example.com:8080")]),
    ),
    case(
        "rfc9110-7.2-host-ipv6",
        b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
        Parsed(headers=[(b"host", b"[::1]:8080")]),
    ),
    case(
        "rfc9110-7.2-host-with-userinfo",
        b"GET / HTTP/1.1\r\nHost: user@evil.example\r\n\r\n",
        Refused(400, "host"),
    ),
    case(
        "rfc9110-7.2-host-with-path",
        b"GET / HTTP/1.1\r\nHost: example.com/admin\r\n\r\n",
        Refused(400, "host"),
    ),
    case(
        "rfc9110-7.2-host-with-space",
        b"GET / HTTP/1.1\r\nHost: example.com evil.example\r\n\r\n",
        Refused(400, "host"),
    ),
    case(
        "rfc9110-7.2-host-port-not-digits",
        b"GET / HTTP/1.1\r\nHost: example.com:http\r\n\r\n",
        Refused(400, "host"),
    ),
]


@pytest.mark.parametrize(("raw", "expect", "eof", "settings"), CASES)
def test_framing(raw, expect, eof, settings):
    check_vector(raw, expect, eof, settings)


def test_body_framed_by_content_length_leaves_the_next_request_alone():
    """What follows a Content-Length body is the next request, not more body."""
    raw = post(b"Content-Length: 5", body=b"hello") + b"GET /next HTTP/1.1\r\n" + HOST + b"\r\n"
    conn, events, error = outcome([raw])
    assert error is None
    assert events[1:] == [Data(b"hello"), EndOfMessage(), PAUSED]
    conn.respond(200, [], b"")
    assert conn.next_event().target == b"/next"
