"""RFC 9112 section 7.1: the chunked transfer coding. Sizes are bare hex (no
sign, underscore or 0x); extensions are token[=token/quoted-string] and bounded;
the trailer section is bounded, may not carry fields needed for framing,
routing, authentication or payload processing (RFC 9110 section 6.5.1), and
ends with the CRLF that closes the body."""

from __future__ import annotations

import pytest
from h1_harness import EOM, Parsed, Refused, case, check_vector

from unicorn_http import PAUSED, Data, EndOfMessage, H1Connection, RemoteProtocolError

HEAD = b"POST /upload HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunked(body: bytes) -> bytes:
    return HEAD + body


def body(data: bytes, *trailers: tuple[bytes, bytes]) -> list:
    return [Data(data), EndOfMessage(list(trailers)), PAUSED]


CASES = [
    # ---- accepted
    case("rfc9112-7.1-one-chunk", chunked(b"5\r\nhello\r\n0\r\n\r\n"), Parsed(body(b"hello"))),
    case(
        "rfc9112-7.1-several-chunks",
        chunked(b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"),
        Parsed(body(b"hello world")),
    ),
    case("rfc9112-7.1-empty-body", chunked(b"0\r\n\r\n"), Parsed([EOM, PAUSED])),
    case(
        "rfc9112-7.1-hex-size-both-cases",
        chunked(b"a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n"),
        Parsed(body(b"0123456789abcdefghij")),
    ),
    case(
        "rfc9112-7.1-size-leading-zeros",
        chunked(b"0005\r\nhello\r\n000\r\n\r\n"),
        Parsed(body(b"hello")),
    ),
    case(
        "rfc9112-7.1-data-holds-crlf-and-digits",
        chunked(b"7\r\n0\r\n\r\nab\r\n0\r\n\r\n"),
        Parsed(body(b"0\r\n\r\nab")),
    ),
    case(
        "rfc9112-7.1.1-extension-name-only",
        chunked(b"5;flag\r\nhello\r\n0\r\n\r\n"),
        Parsed(body(b"hello")),
    ),
    case(
        "rfc9112-7.1.1-extension-token-value",
        chunked(b"5;name=value;other=1\r\nhello\r\n0;last\r\n\r\n"),
        Parsed(body(b"hello")),
    ),
    case(
        "rfc9112-7.1.1-extension-quoted-value",
        chunked(b'5;name="a \\"quoted\\" value;="\r\nhello\r\n0\r\n\r\n'),
        Parsed(body(b"hello")),
    ),
    case(
        "rfc9112-7.1.1-extension-bws",
        chunked(b"5 ; name = value\r\nhello\r\n0\r\n\r\n"),
        Parsed(body(b"hello")),
    ),
    case(
        "rfc9112-7.1.2-trailers",
        chunked(b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other:  v \r\n\r\n"),
        Parsed(body(b"hello", (b"x-checksum", b"abc"), (b"x-other", b"v"))),
    ),
    # ---- refused: the size
    case(
        "rfc9112-7.1-chunk-size-plus",
        chunked(b"+5\r\nhello\r\n0\r\n\r\n"),
        Refused(400, "chunk size"),
    ),
    case(
        "rfc9112-7.1-chunk-size-minus",
        chunked(b"-5\r\nhello\r\n0\r\n\r\n"),
        Refused(400, "chunk size"),
    ),
    case(
        "rfc9112-7.1-chunk-size-0x",
        chunked(b"0x5\r\nhello\r\n0\r\n\r\n"),
        Refused(400, "chunk size"),
    ),
    case(
        "rfc9112-7.1-chunk-size-underscore",
        chunked(b"1_0\r\n0123456789abcdef\r\n0\r\n\r\n"),
        Refused(400, "chunk size"),
    ),
    case(
        "rfc9112-7.1-chunk-size-empty",
        chunked(b"\r\nhello\r\n0\r\n\r\n"),
        Refused(400, "chunk size"),
    ),
    case(
        "rfc9112-7.1-chunk-size-not-hex",
        chunked(b"g\r\nhello\r\n0\r\n\r\n"),
        Refused(400, "chunk size"),
    ),
    case(
        "rfc9112-7.1-chunk-size-leading-space", chunked(b" 5\r\nhello\r\n0\r\n\r\n"), Refused(400)
    ),
    case(
        "rfc9112-7.1-chunk-size-trailing-space", chunked(b"5 \r\nhello\r\n0\r\n\r\n"), Refused(400)
    ),
    case(
        "rfc9112-7.1-chunk-size-17-hex-digits",
        chunked(b"1" + b"0" * 16 + b"\r\nhello\r\n0\r\n\r\n"),
        Refused(400),
    ),
    case("rfc9112-7.1-chunk-size-bare-lf", chunked(b"5\nhello\r\n0\r\n\r\n"), Refused(400)),
    # ---- refused: what follows the data
    case(
        "rfc9112-7.1-data-longer-than-size",
        chunked(b"5\r\nhello!\r\n0\r\n\r\n"),
        Refused(400, "crlf"),
    ),
    case(
        "rfc9112-7.1-data-shorter-than-size",
        chunked(b"6\r\nhello\r\n0\r\n\r\n"),
        Refused(400, "crlf"),
    ),
    case("rfc9112-7.1-bare-lf-after-data", chunked(b"5\r\nhello\n0\r\n\r\n"), Refused(400, "crlf")),
    case("rfc9112-7.1-bare-cr-after-data", chunked(b"5\r\nhello\r0\r\n\r\n"), Refused(400, "crlf")),
    # ---- refused: extensions
    case(
        "rfc9112-7.1.1-extension-without-name", chunked(b"5;\r\nhello\r\n0\r\n\r\n"), Refused(400)
    ),
    case(
        "rfc9112-7.1.1-extension-without-value",
        chunked(b"5;a=\r\nhello\r\n0\r\n\r\n"),
        Refused(400),
    ),
    case(
        "rfc9112-7.1.1-extension-unterminated-quote",
        chunked(b'5;a="b\r\nhello\r\n0\r\n\r\n'),
        Refused(400),
    ),
    case(
        "rfc9112-7.1.1-extension-control-byte",
        chunked(b"5;a=\x01\r\nhello\r\n0\r\n\r\n"),
        Refused(400),
    ),
    case(
        "rfc9112-7.1.1-extension-bare-cr",
        chunked(b"5;a=b\rc\r\nhello\r\n0\r\n\r\n"),
        Refused(400),
    ),
    case(
        "rfc9112-7.1.1-extensions-over-limit",
        chunked(b"5;" + b"a" * 40 + b"\r\nhello\r\n0\r\n\r\n"),
        Refused(400, "extension"),
        limit_chunk_extensions=32,
    ),
    case(
        "rfc9112-7.1.1-extensions-over-limit-across-chunks",
        chunked(b"1;" + b"a" * 20 + b"\r\nx\r\n1;" + b"b" * 20 + b"\r\ny\r\n0\r\n\r\n"),
        Refused(400, "extension"),
        limit_chunk_extensions=32,
    ),
    case(
        "rfc9112-7.1.1-extensions-within-limit",
        chunked(b"1;" + b"a" * 14 + b"\r\nx\r\n1;" + b"b" * 14 + b"\r\ny\r\n0\r\n\r\n"),
        Parsed(body(b"xy")),
        limit_chunk_extensions=32,
    ),
    case(
        "rfc9112-7.1.1-size-line-over-limit-without-crlf",
        chunked(b"5;" + b"a" * 100),
        Refused(400, "extension"),
        limit_chunk_extensions=32,
    ),
    # ---- refused: trailers and the end
    case(
        "rfc9112-7.1-final-crlf-required",
        chunked(b"5\r\nhello\r\n0\r\n"),
        Refused(400, "closed"),
        eof=True,
    ),
    case(
        "rfc9112-7.1-final-crlf-required-after-trailers",
        chunked(b"5\r\nhello\r\n0\r\nX-A: 1\r\n"),
        Refused(400, "closed"),
        eof=True,
    ),
    case(
        "rfc9112-7.1-eof-inside-chunk-data",
        chunked(b"5\r\nhel"),
        Refused(400, "closed"),
        eof=True,
    ),
    case(
        "rfc9112-7.1-eof-before-last-chunk",
        chunked(b"5\r\nhello\r\n"),
        Refused(400, "closed"),
        eof=True,
    ),
    case(
        "rfc9112-7.1-eof-after-chunk-data",
        chunked(b"5\r\nhello"),
        Refused(400, "closed"),
        eof=True,
    ),
    case(
        "rfc9112-7.1.2-trailer-obs-fold",
        chunked(b"0\r\nX-A: 1\r\n 2\r\n\r\n"),
        Refused(400, "folding"),
    ),
    case(
        "rfc9112-7.1.2-trailer-space-before-colon",
        chunked(b"0\r\nX-A : 1\r\n\r\n"),
        Refused(400, "whitespace"),
    ),
    case("rfc9112-7.1.2-trailer-nul", chunked(b"0\r\nX-A: \x00\r\n\r\n"), Refused(400, "control")),
    case(
        "rfc9112-7.1.2-trailer-bare-lf", chunked(b"0\r\nX-A: 1\nX-B: 2\r\n\r\n"), Refused(400, "LF")
    ),
    case(
        "rfc9112-7.1.2-trailer-section-over-limit",
        chunked(b"0\r\nX-A: " + b"v" * 100 + b"\r\n\r\n"),
        Refused(431, "trailer"),
        limit_trailer_size=64,
    ),
    case(
        "rfc9112-7.1.2-trailer-section-over-limit-unterminated",
        chunked(b"0\r\nX-A: " + b"v" * 100),
        Refused(431, "trailer"),
        limit_trailer_size=64,
    ),
]

FORBIDDEN = [
    b"Content-Length: 5",
    b"Transfer-Encoding: chunked",
    b"Trailer: X-A",
    b"Host: evil.example",
    b"Authorization: Basic Zm9vOmJhcg==",
    b"Proxy-Authorization: Basic Zm9vOmJhcg==",
    b"Cookie: session=1",
    b"Content-Type: text/plain",
    b"Content-Encoding: gzip",
    b"Content-Range: bytes 0-1/2",
    b"Connection: close",
    b"Keep-Alive: timeout=5",
    b"Upgrade: websocket",
    b"Expect: 100-continue",
    b"TE: trailers",
    b"Range: bytes=0-1",
    b"Cache-Control: no-cache",
    b"Max-Forwards: 1",
    b"If-None-Match: *",
]
CASES += [
    case(
        "rfc9110-6.5.1-forbidden-trailer-" + f.split(b":")[0].decode().lower(),
        chunked(b"5\r\nhello\r\n0\r\nX-Fine: 1\r\n" + f + b"\r\n\r\n"),
        Refused(400, f.split(b":")[0].decode().lower(), "trailer"),
    )
    for f in FORBIDDEN
]


@pytest.mark.parametrize(("raw", "expect", "eof", "settings"), CASES)
def test_chunked(raw, expect, eof, settings):
    check_vector(raw, expect, eof, settings)


def test_forbidden_trailer_names_are_matched_case_insensitively():
    conn = H1Connection()
    conn.receive_data(chunked(b"0\r\ncOnTeNt-LeNgTh: 5\r\n\r\n"))
    conn.next_event()
    with pytest.raises(RemoteProtocolError) as exc:
        conn.next_event()
    assert exc.value.status == 400
