"""RFC 9112 section 3: the request line (method, request-target in its four
forms, HTTP-version), and section 2.2 on the empty lines a server skips before it."""

from __future__ import annotations

import pytest
from h1_harness import Parsed, Refused, case, check_vector

HOST = b"Host: example.com\r\n"

CASES = [
    # ---- accepted
    case(
        "rfc9112-3.2.1-origin-form",
        b"GET /a/b%20c?x=1&y HTTP/1.1\r\n" + HOST + b"\r\n",
        Parsed(method=b"GET", target=b"/a/b%20c?x=1&y", path=b"/a/b%20c", query=b"x=1&y"),
    ),
    case(
        "rfc9112-3.2.1-origin-form-empty-query",
        b"GET /p? HTTP/1.1\r\n" + HOST + b"\r\n",
        Parsed(path=b"/p", query=b""),
    ),
    case(
        "rfc9112-3.2.1-query-keeps-later-question-marks",
        b"GET /p?a?b HTTP/1.1\r\n" + HOST + b"\r\n",
        Parsed(path=b"/p", query=b"a?b"),
    ),
    case(
        "rfc9112-3.2.2-absolute-form",
        b"GET http://example.com/p/q?r=1 HTTP/1.1\r\n" + HOST + b"\r\n",
        Parsed(target=b"http://example.com/p/q?r=1", path=b"/p/q", query=b"r=1"),
    ),
    case(
        "rfc9112-3.2.2-absolute-form-without-path",
        b"GET http://example.com HTTP/1.1\r\n" + HOST + b"\r\n",
        Parsed(path=b"/", query=b""),
    ),
    case(
        "rfc9112-3.2.2-absolute-form-query-without-path",
        b"GET https://example.com:8443?q HTTP/1.1\r\n" + HOST + b"\r\n",
        Parsed(path=b"/", query=b"q"),
    ),
    case(
        "rfc9112-3.2.3-authority-form-for-connect",
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        Parsed(method=b"CONNECT", target=b"example.com:443", path=b"example.com:443"),
    ),
    case(
        "rfc9112-3.2.3-authority-form-ipv6",
        b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n",
        Parsed(path=b"[2001:db8::1]:443"),
    ),
    case(
        "rfc9112-3.2.4-asterisk-form-for-options",
        b"OPTIONS * HTTP/1.1\r\n" + HOST + b"\r\n",
        Parsed(method=b"OPTIONS", target=b"*", path=b"*", query=b""),
    ),
    case(
        "rfc9110-9.1-extension-method-token",
        b"M-SEARCH /x HTTP/1.1\r\n" + HOST + b"\r\n",
        Parsed(method=b"M-SEARCH"),
    ),
    case(
        "rfc9110-9.1-method-is-case-sensitive-and-kept",
        b"get / HTTP/1.1\r\n" + HOST + b"\r\n",
        Parsed(method=b"get"),
    ),
    case("http/1.0", b"GET / HTTP/1.0\r\n\r\n", Parsed(http_version=b"1.0", headers=[])),
    case("http/1.1", b"GET / HTTP/1.1\r\n" + HOST + b"\r\n", Parsed(http_version=b"1.1")),
    # A deliberate choice (grammar.TARGET_BYTES): raw UTF-8 in paths is sent by
    # real clients, so obs-text is kept in the target.
    case(
        "obs-text-in-target-kept",
        b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + HOST + b"\r\n",
        Parsed(path=b"/caf\xc3\xa9"),
    ),
    case(
        "rfc9112-2.2-empty-line-before-request-line",
        b"\r\nGET / HTTP/1.1\r\n" + HOST + b"\r\n",
        Parsed(method=b"GET"),
    ),
    case(
        "rfc9112-2.2-several-empty-lines-before-request-line",
        b"\r\n\r\n\r\nGET / HTTP/1.1\r\n" + HOST + b"\r\n",
        Parsed(method=b"GET"),
    ),
    # ---- refused: method
    case(
        "rfc9110-9.1-method-not-a-token",
        b"GE(T / HTTP/1.1\r\n" + HOST + b"\r\n",
        Refused(400, "method"),
    ),
    case(
        "rfc9110-9.1-nul-in-method",
        b"G\x00T / HTTP/1.1\r\n" + HOST + b"\r\n",
        Refused(400, "method"),
    ),
    case(
        "rfc9110-9.1-obs-text-in-method",
        b"G\xc9T / HTTP/1.1\r\n" + HOST + b"\r\n",
        Refused(400, "method"),
    ),
    case("rfc9112-3-empty-method", b" / HTTP/1.1\r\n" + HOST + b"\r\n", Refused(400)),
    # ---- refused: the shape of the line
    case(
        "rfc9112-3-two-spaces",
        b"GET  / HTTP/1.1\r\n" + HOST + b"\r\n",
        Refused(400, "request line"),
    ),
    case(
        "rfc9112-3-tab-as-separator",
        b"GET\t/\tHTTP/1.1\r\n" + HOST + b"\r\n",
        Refused(400, "request line"),
    ),
    case("rfc9112-3-trailing-space", b"GET / HTTP/1.1 \r\n" + HOST + b"\r\n", Refused(400)),
    case("rfc9112-3-leading-space", b" GET / HTTP/1.1\r\n" + HOST + b"\r\n", Refused(400)),
    case(
        "rfc9112-3-space-in-target",
        b"GET /a b HTTP/1.1\r\n" + HOST + b"\r\n",
        Refused(400, "request line"),
    ),
    case("http/0.9-style-line-without-version", b"GET /\r\n\r\n", Refused(400)),
    case(
        "rfc9112-2.2-bare-lf-line-ends",
        b"GET / HTTP/1.1\nHost: example.com\n\n",
        Refused(400, "LF"),
    ),
    case("bare-cr-in-request-line", b"GET / HTTP/1.1\rHost: example.com\r\n\r\n", Refused(400)),
    # A head whose lines end with CR alone never completes: refused at once, not
    # after an idle close.
    case(
        "rfc9112-2.2-bare-cr-line-ends",
        b"GET / HTTP/1.1\rHost: example.com\r\r",
        Refused(400, "bare CR"),
    ),
    case(
        "tls-client-hello-on-a-plain-port",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(32),
        Refused(400, "TLS handshake"),
    ),
    case(
        "rfc9112-2.2-bare-lf-among-empty-lines",
        b"\r\n\nGET / HTTP/1.1\r\n" + HOST + b"\r\n",
        Refused(400),
    ),
    case(
        "rfc9112-2.2-too-many-empty-lines",
        b"\r\n" * 9 + b"GET / HTTP/1.1\r\n" + HOST + b"\r\n",
        Refused(400, "empty lines"),
    ),
    # ---- refused: version
    case("rfc9110-2.5-http/2.0-line", b"GET / HTTP/2.0\r\n" + HOST + b"\r\n", Refused(505, "2.0")),
    # RFC 9110 section 2.5: a higher minor version of a major version we implement
    # is processed as the highest minor version we have.
    case(
        "rfc9110-2.5-http/1.2-as-1.1",
        b"GET / HTTP/1.2\r\n" + HOST + b"\r\n",
        Parsed(http_version=b"1.1"),
    ),
    case("rfc9110-2.5-http/0.9-version", b"GET / HTTP/0.9\r\n\r\n", Refused(505, "0.9")),
    case("rfc9110-2.5-http/3.0", b"GET / HTTP/3.0\r\n" + HOST + b"\r\n", Refused(505, "version")),
    case(
        "rfc9112-2.3-http-name-is-case-sensitive",
        b"GET / http/1.1\r\n" + HOST + b"\r\n",
        Refused(400, "version"),
    ),
    case(
        "rfc9112-2.3-two-digit-minor",
        b"GET / HTTP/1.10\r\n" + HOST + b"\r\n",
        Refused(400, "version"),
    ),
    case(
        "rfc9112-2.3-version-without-minor",
        b"GET / HTTP/1\r\n" + HOST + b"\r\n",
        Refused(400, "version"),
    ),
    case("rfc9112-2.3-not-a-version", b"GET / FOO\r\n" + HOST + b"\r\n", Refused(400, "version")),
    # ---- refused: target
    case(
        "rfc9112-3.2-control-byte-in-target",
        b"GET /a\x01b HTTP/1.1\r\n" + HOST + b"\r\n",
        Refused(400, "control"),
    ),
    case(
        "rfc9112-3.2-nul-in-target",
        b"GET /a\x00 HTTP/1.1\r\n" + HOST + b"\r\n",
        Refused(400, "control"),
    ),
    case(
        "rfc9112-3.2-del-in-target",
        b"GET /a\x7f HTTP/1.1\r\n" + HOST + b"\r\n",
        Refused(400, "control"),
    ),
    case(
        "rfc9112-3.2-relative-target",
        b"GET a/b HTTP/1.1\r\n" + HOST + b"\r\n",
        Refused(400, "form"),
    ),
    case(
        "rfc9112-3.2.3-authority-form-only-for-connect",
        b"GET example.com:80 HTTP/1.1\r\n" + HOST + b"\r\n",
        Refused(400, "form"),
    ),
    case(
        "rfc9112-3.2.3-connect-with-origin-form",
        b"CONNECT / HTTP/1.1\r\n" + HOST + b"\r\n",
        Refused(400, "connect"),
    ),
    case(
        "rfc9112-3.2.3-connect-without-port",
        b"CONNECT example.com HTTP/1.1\r\n" + HOST + b"\r\n",
        Refused(400, "host:port"),
    ),
    case(
        "rfc9112-3.2.3-connect-with-userinfo",
        b"CONNECT user@example.com:443 HTTP/1.1\r\n" + HOST + b"\r\n",
        Refused(400, "host:port"),
    ),
    case(
        "rfc9112-3.2.3-connect-with-absolute-form",
        b"CONNECT http://example.com:443/ HTTP/1.1\r\n" + HOST + b"\r\n",
        Refused(400),
    ),
    case(
        "rfc9112-3.2.4-asterisk-form-only-for-options",
        b"GET * HTTP/1.1\r\n" + HOST + b"\r\n",
        Refused(400, "asterisk"),
    ),
    case(
        "rfc3986-3.1-scheme-missing",
        b"GET ://example.com/ HTTP/1.1\r\n" + HOST + b"\r\n",
        Refused(400, "form"),
    ),
    case(
        "rfc9112-2.2-eof-inside-request-line",
        b"GET / HTT",
        Refused(400, "closed"),
        eof=True,
    ),
]


@pytest.mark.parametrize(("raw", "expect", "eof", "settings"), CASES)
def test_request_line(raw, expect, eof, settings):
    check_vector(raw, expect, eof, settings)
