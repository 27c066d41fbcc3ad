"""RFC 9112 section 5 and RFC 9110 section 5: header fields. Names are tokens
with nothing between name and colon; values lose surrounding SP/HTAB and may
not hold CR, LF, NUL or other controls; obs-fold is refused."""

from __future__ import annotations

import pytest
from h1_harness import Parsed, Refused, case, check_vector

LINE = b"GET / HTTP/1.1\r\nHost: example.com\r\n"


def head(*fields: bytes) -> bytes:
    return LINE + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


CASES = [
    # ---- accepted
    case(
        "rfc9112-5-names-lowercased-order-kept",
        head(b"X-B: 2", b"x-a: 1", b"X-B: 3"),
        Parsed(headers=[(b"host", b"example.com"), (b"x-b", b"2"), (b"x-a", b"1"), (b"x-b", b"3")]),
    ),
    case(
        "rfc9112-5-ows-trimmed",
        head(b"X-A:  \t value with  inner space \t "),
        Parsed(headers=[(b"host", b"example.com"), (b"x-a", b"value with  inner space")]),
    ),
    case(
        "rfc9112-5-no-space-after-colon",
        head(b"X-A:v"),
        Parsed(headers=[(b"host", b"example.com"), (b"x-a", b"v")]),
    ),
    case(
        "rfc9110-5.5-empty-value",
        head(b"X-Empty:", b"X-Blank:   "),
        Parsed(headers=[(b"host", b"example.com"), (b"x-empty", b""), (b"x-blank", b"")]),
    ),
    case(
        "rfc9110-5.5-colons-in-value",
        head(b"X-Time: 12:30:00"),
        Parsed(headers=[(b"host", b"example.com"), (b"x-time", b"12:30:00")]),
    ),
    case(
        "rfc9110-5.5-obs-text-in-value",
        head(b"X-Name: caf\xc3\xa9"),
        Parsed(headers=[(b"host", b"example.com"), (b"x-name", b"caf\xc3\xa9")]),
    ),
    case(
        "rfc9110-5.6.2-every-tchar-in-a-name",
        head(b"!#$%&'*+-.^_`|~09AZaz: v"),
        Parsed(headers=[(b"host", b"example.com"), (b"!#$%&'*+-.^_`|~09azaz", b"v")]),
    ),
    # ---- refused
    case(
        "rfc9112-5.1-space-before-colon",
        head(b"X-A : v"),
        Refused(400, "whitespace between header name and colon"),
    ),
    case(
        "rfc9112-5.1-tab-before-colon",
        head(b"X-A\t: v"),
        Refused(400, "whitespace between header name and colon"),
    ),
    case(
        "gunicorn-strip-header-spaces",
        head(b"X-A : v", b"X-B\t: w"),
        Parsed(headers=[(b"host", b"example.com"), (b"x-a", b"v"), (b"x-b", b"w")]),
        strip_header_spaces=True,
    ),
    case(
        "rfc9112-5.1-space-before-colon-on-content-length",
        LINE + b"Content-Length : 5\r\n\r\nhello",
        Refused(400, "whitespace"),
    ),
    case("rfc9112-5.2-obs-fold", head(b"X-A: one", b" two"), Refused(400, "folding")),
    case("rfc9112-5.2-obs-fold-tab", head(b"X-A: one", b"\ttwo"), Refused(400, "folding")),
    # RFC 9112 section 5.2: a server may instead replace each obs-fold with SP.
    case(
        "rfc9112-5.2-obs-fold-allowed-becomes-sp",
        head(b"X-A: one ", b" \ttwo", b"X-B: 2"),
        Parsed(headers=[(b"host", b"example.com"), (b"x-a", b"one two"), (b"x-b", b"2")]),
        permit_obsolete_folding=True,
    ),
    case(
        "rfc9112-5.2-whitespace-before-first-field-refused-even-when-folding",
        b"GET / HTTP/1.1\r\n Host: example.com\r\n\r\n",
        Refused(400),
        permit_obsolete_folding=True,
    ),
    case(
        "rfc9112-5.2-obs-fold-first-line",
        b"GET / HTTP/1.1\r\n Host: example.com\r\n\r\n",
        Refused(400, "folding"),
    ),
    case("rfc9110-5.5-nul-in-value", head(b"X-A: a\x00b"), Refused(400, "control")),
    case("rfc9110-5.5-cr-in-value", head(b"X-A: a\rb"), Refused(400)),
    case("rfc9112-2.2-bare-lf-in-field-block", head(b"X-A: a\nX-B: b"), Refused(400, "LF")),
    case("rfc9110-5.5-ctl-in-value", head(b"X-A: a\x01b"), Refused(400, "control")),
    case("rfc9110-5.5-del-in-value", head(b"X-A: a\x7fb"), Refused(400, "control")),
    case("rfc9110-5.5-vertical-tab-in-value", head(b"X-A: \x0bv"), Refused(400, "control")),
    case("rfc9110-5.5-escape-in-value", head(b"X-A: \x1b[31m"), Refused(400, "control")),
    case("rfc9112-5-line-without-colon", head(b"X-A v"), Refused(400, "colon")),
    case(
        "rfc9112-5-middle-line-without-colon",
        head(b"X-A: 1", b"garbage", b"X-B: 2"),
        Refused(400, "colon"),
    ),
    case("rfc9110-5.1-empty-name", head(b": v"), Refused(400, "empty header name")),
    case("rfc9110-5.1-name-not-a-token", head(b"X(A): v"), Refused(400, "token")),
    case("rfc9110-5.1-space-inside-name", head(b"X A: v"), Refused(400)),
    case("rfc9110-5.1-obs-text-in-name", head(b"X-\xc3\xa9: v"), Refused(400, "token")),
    case("rfc9110-5.1-nul-in-name", head(b"X-\x00: v"), Refused(400)),
    case(
        "rfc9112-2.2-eof-inside-field-block",
        LINE + b"X-A: 1\r\n",
        Refused(400, "closed"),
        eof=True,
    ),
]


@pytest.mark.parametrize(("raw", "expect", "eof", "settings"), CASES)
def test_fields(raw, expect, eof, settings):
    check_vector(raw, expect, eof, settings)
