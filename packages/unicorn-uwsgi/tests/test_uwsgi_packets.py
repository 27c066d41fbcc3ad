"""The uwsgi packet (header, vars block, body) as nginx's uwsgi_pass sends it:
what becomes of each variable, and every malformed or oversized packet refused
with the reason that names it. Each vector runs whole and one byte at a time."""

from __future__ import annotations

import pytest
from uwsgi_harness import (
    EOM,
    PAUSED,
    Parsed,
    Refused,
    case,
    check_vector,
    nginx_vars,
    outcome,
    pack,
)

from unicorn_http import ConnectionClosed, Data

HOST = [(b"Host", b"example.com")]


def raw_packet(block: bytes, modifier1: int = 0, modifier2: int = 0) -> bytes:
    """A packet with a vars block written by hand (to break it on purpose)."""
    return bytes((modifier1,)) + len(block).to_bytes(2, "little") + bytes((modifier2,)) + block


def var(key: bytes, value: bytes) -> bytes:
    return len(key).to_bytes(2, "little") + key + len(value).to_bytes(2, "little") + value


GOOD = var(b"REQUEST_METHOD", b"GET") + var(b"REQUEST_URI", b"/")
PADDED = pack([(b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"/"), (b"HTTP_X_PAD", b"p" * 200)])

CASES = [
    # ---- accepted: what nginx sends
    case(
        "nginx-get-with-query-and-headers",
        pack(
            nginx_vars(
                b"GET",
                b"/a/b%20c?x=1&y=%2F",
                [(b"Host", b"example.com"), (b"User-Agent", b"t/1"), (b"Cookie", b"a=1; b=2")],
            )
        ),
        Parsed(
            method=b"GET",
            target=b"/a/b%20c?x=1&y=%2F",
            path=b"/a/b%20c",
            query=b"x=1&y=%2F",
            headers=[(b"host", b"example.com"), (b"user-agent", b"t/1"), (b"cookie", b"a=1; b=2")],
            http_version=b"1.1",
            keep_alive=False,
            content_length=None,
            chunked=False,
            origin={
                "client": ("203.0.113.7", 51234),
                "server": ("example.com", 8080),
                "scheme": "http",
                "remote_user": None,
            },
        ),
    ),
    case(
        "nginx-post-with-body",
        pack(
            nginx_vars(
                b"POST",
                b"/form",
                [*HOST, (b"Content-Type", b"text/plain"), (b"Content-Length", b"5")],
                content_length=b"5",
                content_type=b"text/plain",
            ),
            b"hello",
        ),
        Parsed(
            [Data(b"hello"), EOM, PAUSED],
            method=b"POST",
            content_length=5,
            headers=[
                (b"host", b"example.com"),
                (b"content-type", b"text/plain"),
                (b"content-length", b"5"),
            ],
        ),
    ),
    case(
        # nginx buffers a chunked upload (even with uwsgi_request_buffering off),
        # sends its length in CONTENT_LENGTH and passes Transfer-Encoding on.
        "nginx-chunked-upload-sent-with-its-length",
        pack(
            nginx_vars(
                b"PUT",
                b"/up",
                [*HOST, (b"Transfer-Encoding", b"chunked"), (b"Content-Type", b"a/b")],
                content_length=b"3",
                content_type=b"a/b",
            ),
            b"abc",
        ),
        Parsed(
            [Data(b"abc"), EOM, PAUSED],
            content_length=3,
            chunked=False,
            headers=[
                (b"host", b"example.com"),
                (b"content-type", b"a/b"),
                (b"content-length", b"3"),
            ],
        ),
    ),
    case(
        "cgi-content-length-wins-over-the-header",
        pack(
            nginx_vars(b"POST", b"/", [*HOST, (b"Content-Length", b"9")], content_length=b"2"),
            b"ok",
        ),
        Parsed(
            [Data(b"ok"), EOM, PAUSED],
            headers=[(b"host", b"example.com"), (b"content-length", b"2")],
        ),
    ),
    case(
        "content-type-only-as-cgi-var",
        pack(nginx_vars(b"POST", b"/", HOST, content_type=b"x/y", content_length=b"0")),
        Parsed(
            [EOM, PAUSED],
            content_length=0,
            headers=[
                (b"host", b"example.com"),
                (b"content-length", b"0"),
                (b"content-type", b"x/y"),
            ],
        ),
    ),
    case(
        "empty-content-length-is-no-body",
        pack(nginx_vars(b"GET", b"/")) + b"",
        Parsed([EOM, PAUSED], content_length=None, headers=[(b"host", b"example.com")]),
    ),
    case(
        "head-request",
        pack(nginx_vars(b"HEAD", b"/h")),
        Parsed(method=b"HEAD", path=b"/h"),
    ),
    case(
        "query-string-var-is-the-query",
        pack(
            [
                (b"REQUEST_METHOD", b"GET"),
                (b"REQUEST_URI", b"/p?from=uri"),
                (b"QUERY_STRING", b"from=var"),
            ]
        ),
        Parsed(path=b"/p", query=b"from=var", target=b"/p?from=uri", headers=[]),
    ),
    case(
        "query-from-request-uri-without-query-string",
        pack([(b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"/p?q=1")]),
        Parsed(
            path=b"/p", query=b"q=1", http_version=b"1.1", origin={"client": None, "server": None}
        ),
    ),
    case(
        "absolute-form-request-uri",
        pack(nginx_vars(b"GET", b"http://example.com/p/q?r=1")[1:]),
        Parsed(target=b"http://example.com/p/q?r=1", path=b"/p/q", query=b"r=1"),
    ),
    case(
        "asterisk-form-request-uri",
        pack([(b"REQUEST_METHOD", b"OPTIONS"), (b"REQUEST_URI", b"*")]),
        Parsed(method=b"OPTIONS", path=b"*", query=b""),
    ),
    case(
        "no-request-uri-path-info-encoded-again",
        pack(
            [
                (b"REQUEST_METHOD", b"GET"),
                (b"PATH_INFO", b"/a b/\xc3\xa9"),
                (b"QUERY_STRING", b"x=1"),
            ]
        ),
        Parsed(target=b"/a%20b/%C3%A9?x=1", path=b"/a%20b/%C3%A9", query=b"x=1"),
    ),
    case(
        "http-1.0-client",
        pack(nginx_vars(b"GET", b"/", protocol=b"HTTP/1.0")),
        Parsed(http_version=b"1.0", keep_alive=False),
    ),
    case(
        "http-2-client",
        pack(nginx_vars(b"GET", b"/", protocol=b"HTTP/2.0")),
        Parsed(http_version=b"2"),
    ),
    case(
        "http-3-client",
        pack(nginx_vars(b"GET", b"/", protocol=b"HTTP/3.0")),
        Parsed(http_version=b"3"),
    ),
    case(
        "https-on",
        pack(nginx_vars(b"GET", b"/", https=b"on", scheme=b"https")),
        Parsed(origin={"scheme": "https"}),
    ),
    case(
        "https-1-without-request-scheme",
        pack([(b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"/"), (b"HTTPS", b"1")]),
        Parsed(origin={"scheme": "https"}),
    ),
    case(
        "uwsgi-scheme-https",
        pack([(b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"/"), (b"UWSGI_SCHEME", b"https")]),
        Parsed(origin={"scheme": "https"}),
    ),
    case(
        "wsgi-url-scheme-https",
        pack([(b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"/"), (b"wsgi.url_scheme", b"https")]),
        Parsed(origin={"scheme": "https"}),
    ),
    case(
        "https-off-is-http",
        pack(nginx_vars(b"GET", b"/", https=b"off")),
        Parsed(origin={"scheme": "http"}),
    ),
    case(
        "remote-user",
        pack(nginx_vars(b"GET", b"/", extra=[(b"REMOTE_USER", b"alice")])),
        Parsed(origin={"remote_user": "alice"}),
    ),
    case(
        "empty-server-name-takes-the-host-header",
        pack(nginx_vars(b"GET", b"/", [(b"Host", b"shop.example:8443")], server_name=b"")),
        Parsed(origin={"server": ("shop.example", 8080)}),
    ),
    case(
        "empty-server-name-ipv6-host",
        pack(nginx_vars(b"GET", b"/", [(b"Host", b"[::1]:8443")], server_name=b"")),
        Parsed(origin={"server": ("[::1]", 8080)}),
    ),
    case(
        "header-names-lower-cased-underscores-to-hyphens",
        pack(
            [
                (b"REQUEST_METHOD", b"GET"),
                (b"REQUEST_URI", b"/"),
                (b"HTTP_X_REQUEST_ID", b"7"),
                (b"HTTP_ACCEPT_ENCODING", b"gzip"),
            ]
        ),
        Parsed(headers=[(b"x-request-id", b"7"), (b"accept-encoding", b"gzip")]),
    ),
    case(
        # include uwsgi_params (Debian's sends HTTP_HOST $host), then
        # uwsgi_param HTTP_HOST $http_host: the override wins.
        "repeated-http-host-the-last-wins",
        pack(
            nginx_vars(
                b"GET",
                b"/",
                [(b"Host", b"example.com"), (b"Host", b"example.com:8080"), (b"Accept", b"*/*")],
            )
        ),
        Parsed(headers=[(b"host", b"example.com:8080"), (b"accept", b"*/*")]),
    ),
    case(
        "values-that-read-http-host-are-only-values",
        pack(
            [
                (b"REQUEST_METHOD", b"GET"),
                (b"REQUEST_URI", b"/"),
                (b"HTTP_X_A", b"HTTP_HOST"),
                (b"HTTP_X_B", b"HTTP_HOST"),
            ]
        ),
        Parsed(headers=[(b"x-a", b"HTTP_HOST"), (b"x-b", b"HTTP_HOST")]),
    ),
    case(
        "repeated-other-headers-kept",
        pack(nginx_vars(b"GET", b"/", [*HOST, (b"Cookie", b"a=1"), (b"Cookie", b"b=2")])),
        Parsed(headers=[(b"host", b"example.com"), (b"cookie", b"a=1"), (b"cookie", b"b=2")]),
    ),
    case(
        "empty-header-value-kept",
        pack([(b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"/"), (b"HTTP_X_EMPTY", b"")]),
        Parsed(headers=[(b"x-empty", b"")]),
    ),
    case(
        "value-with-tab-and-obs-text",
        pack([(b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"/"), (b"HTTP_X_V", b"a\tb \xe9")]),
        Parsed(headers=[(b"x-v", b"a\tb \xe9")]),
    ),
    case(
        "modifier2-is-ignored",
        pack(nginx_vars(), modifier2=7),
        Parsed(method=b"GET"),
    ),
    case(
        "expect-100-continue-answered-by-nginx",
        pack(
            nginx_vars(b"POST", b"/", [*HOST, (b"Expect", b"100-continue")], content_length=b"1"),
            b"x",
        ),
        Parsed([Data(b"x"), EOM, PAUSED], expect_continue=False),
    ),
    case(
        "exactly-at-uwsgi-buffer-size",
        PADDED,
        Parsed(method=b"GET"),
        uwsgi_buffer_size=len(PADDED),
    ),
    # ---- refused: the header
    case(
        "modifier1-not-wsgi", raw_packet(GOOD, modifier1=5), Refused(400, "modifier1 5", "only 0")
    ),
    case(
        "head-over-uwsgi-buffer-size",
        pack([(b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"/"), (b"HTTP_X_PAD", b"p" * 5000)]),
        Refused(431, "uwsgi_buffer_size (4096 bytes)"),
    ),
    case(
        "one-byte-over-uwsgi-buffer-size",
        PADDED,
        Refused(431, "uwsgi_buffer_size"),
        uwsgi_buffer_size=len(PADDED) - 1,
    ),
    case(
        "closed-inside-the-header",
        b"\x00\x10",
        Refused(400, "closed inside a uwsgi packet header"),
        eof=True,
    ),
    case(
        "closed-inside-the-vars",
        raw_packet(GOOD)[:-3],
        Refused(400, "closed inside a uwsgi packet"),
        eof=True,
    ),
    # ---- refused: the vars block
    case(
        "block-ends-inside-key-length",
        raw_packet(GOOD + b"\x05"),
        Refused(400, "inside a key length"),
    ),
    case(
        "block-ends-inside-value-length",
        raw_packet(GOOD + b"\x01\x00K\x01"),
        Refused(400, "inside the key or value length"),
    ),
    case(
        "key-past-the-block",
        raw_packet(GOOD + b"\x09\x00KEY"),
        Refused(400, "inside the key or value length"),
    ),
    case(
        "value-past-the-block",
        raw_packet(GOOD + b"\x01\x00K\x09\x00abc"),
        Refused(400, "past the vars block"),
    ),
    case("empty-key", raw_packet(GOOD + b"\x00\x00\x01\x00v"), Refused(400, "empty key")),
    case(
        "nul-in-value",
        raw_packet(GOOD + var(b"HTTP_X", b"a\x00b")),
        Refused(400, "NUL, CR, LF", "HTTP_X"),
    ),
    case("cr-in-value", raw_packet(GOOD + var(b"HTTP_X_Y", b"a\rb")), Refused(400, "HTTP_X_Y")),
    case(
        "lf-in-cgi-value",
        raw_packet(GOOD + var(b"SERVER_NAME", b"a\nb")),
        Refused(400, "SERVER_NAME"),
    ),
    case("space-in-key", raw_packet(GOOD + var(b"HTTP_X Y", b"1")), Refused(400, "is not a token")),
    case(
        "control-byte-in-key",
        raw_packet(GOOD + var(b"HTTP_\x01", b"1")),
        Refused(400, "is not a token"),
    ),
    # ---- refused: the request the vars describe
    case(
        "no-request-method",
        pack([(b"REQUEST_URI", b"/")]),
        Refused(400, "without REQUEST_METHOD", "uwsgi_params"),
    ),
    case(
        "method-not-a-token",
        pack([(b"REQUEST_METHOD", b"G(T"), (b"REQUEST_URI", b"/")]),
        Refused(400, "REQUEST_METHOD is not a token"),
    ),
    case(
        "request-uri-with-space",
        pack([(b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"/a b")]),
        Refused(400, "REQUEST_URI", "space"),
    ),
    case(
        "request-uri-not-a-target",
        pack([(b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"a/b")]),
        Refused(400, "not an origin"),
    ),
    case(
        "request-uri-over-limit-request-line",
        pack([(b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"/" + b"u" * 100)]),
        Refused(414, "limit_request_line (100 bytes)"),
        limit_request_line=100,
    ),
    case(
        "var-over-limit-request-field-size",
        pack([(b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"/"), (b"HTTP_X_BIG", b"v" * 100)]),
        Refused(431, "HTTP_X_BIG", "limit_request_field_size (100 bytes)"),
        limit_request_field_size=100,
    ),
    case(
        "headers-over-limit-request-fields",
        pack(
            [
                (b"REQUEST_METHOD", b"GET"),
                (b"REQUEST_URI", b"/"),
                *[(b"HTTP_X_%d" % i, b"v") for i in range(11)],
            ]
        ),
        Refused(431, "limit_request_fields (10)"),
        limit_request_fields=10,
    ),
    case(
        "headers-at-limit-request-fields-with-all-the-cgi-vars",
        pack(nginx_vars(b"GET", b"/", [(b"X-%d" % i, b"v") for i in range(10)])),
        Parsed(method=b"GET"),
        limit_request_fields=10,
    ),
    case(
        "too-many-cgi-vars",
        pack(
            [
                (b"REQUEST_METHOD", b"GET"),
                (b"REQUEST_URI", b"/"),
                *[(b"V%d" % i, b"v") for i in range(63)],
            ]
        ),
        Refused(431, "more than 64 distinct uwsgi vars"),
    ),
    case(
        "server-protocol-unknown",
        pack(nginx_vars(protocol=b"HTTP/9.9")),
        Refused(505, "SERVER_PROTOCOL"),
    ),
    case(
        "content-length-not-digits",
        pack(nginx_vars(b"POST", content_length=b"-1")),
        Refused(400, "CONTENT_LENGTH", "not digits"),
    ),
    case(
        "http-content-length-without-the-cgi-var",
        pack(
            [(b"REQUEST_METHOD", b"POST"), (b"REQUEST_URI", b"/"), (b"HTTP_CONTENT_LENGTH", b"3")],
            b"abc",
        ),
        Refused(400, "no CONTENT_LENGTH var"),
    ),
    case(
        "remote-port-not-a-port",
        pack(nginx_vars(extra=[(b"REMOTE_PORT", b"http")])),
        Refused(400, "REMOTE_PORT"),
    ),
    case(
        "server-port-over-65535",
        pack(nginx_vars(extra=[(b"SERVER_PORT", b"70000")])),
        Refused(400, "SERVER_PORT"),
    ),
    # ---- refused: the body
    case(
        "closed-inside-the-body",
        pack(nginx_vars(b"POST", content_length=b"10"), b"short"),
        Refused(400, "5 bytes of the request body to come"),
        eof=True,
    ),
]


@pytest.mark.parametrize(("raw", "expect", "eof", "settings"), CASES)
def test_vector(raw, expect, eof, settings):
    check_vector(raw, expect, eof, settings)


def test_closed_before_any_byte_is_no_request_and_no_error():
    # A peer that connects and closes at once (a health check).
    conn, events, error = outcome([], eof=True)
    assert error is None
    assert [type(e) for e in events] == [ConnectionClosed]
    assert conn.their_state == "CLOSED"
    assert conn.request is None and conn.origin is None
