"""Limits, named as gunicorn names them: limit_request_line (414),
limit_request_fields and limit_request_field_size (431), max_body_size (413);
0 means unlimited. A limit holds however the bytes arrive, and a head that
never ends is refused before it fills memory."""

from __future__ import annotations

import pytest
from h1_harness import EOM, Parsed, Refused, case, check_vector, one_byte_at_a_time, outcome

from unicorn_http import NEED_DATA, PAUSED, Data, H1Connection, RemoteProtocolError

HOST = b"Host: example.com\r\n"


def get(target: bytes, *fields: bytes) -> bytes:
    return (
        b"GET " + target + b" HTTP/1.1\r\n" + HOST + b"".join(f + b"\r\n" for f in fields) + b"\r\n"
    )


def line_of(n: int) -> bytes:
    """A target that makes the request line exactly n bytes long."""
    return b"/" + b"a" * (n - len(b"GET / HTTP/1.1"))


def field_of(n: int) -> bytes:
    """A header line of exactly n bytes, CRLF not counted."""
    return b"X-Long: " + b"v" * (n - len(b"X-Long: "))


def fields(n: int) -> list[bytes]:
    return [b"X-%d: v" % i for i in range(n)]


def chunked(data: bytes, size: int) -> bytes:
    return (
        b"POST / HTTP/1.1\r\n"
        + HOST
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%b\r\n" % (len(piece), piece) for piece in pieces(data, size))
        + b"0\r\n\r\n"
    )


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def post(n: int) -> bytes:
    return b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: %d\r\n\r\n" % n + b"x" * n


CASES = [
    # ---- limit_request_line -> 414
    case("limit-request-line-exact", get(line_of(64)), Parsed(), limit_request_line=64),
    case(
        "limit-request-line-one-over",
        get(line_of(65)),
        Refused(414, "limit_request_line"),
        limit_request_line=64,
    ),
    case(
        "limit-request-line-over-before-its-end",
        b"GET /" + b"a" * 200,
        Refused(414, "limit_request_line"),
        limit_request_line=64,
    ),
    case(
        "limit-request-line-0-is-unlimited", get(line_of(100_000)), Parsed(), limit_request_line=0
    ),
    case("limit-request-line-default-4094", get(line_of(4094)), Parsed()),
    case("limit-request-line-default-4095", get(line_of(4095)), Refused(414)),
    # ---- limit_request_fields -> 431 (Host counts as a field)
    case("limit-request-fields-exact", get(b"/", *fields(9)), Parsed(), limit_request_fields=10),
    case(
        "limit-request-fields-one-over",
        get(b"/", *fields(10)),
        Refused(431, "limit_request_fields"),
        limit_request_fields=10,
    ),
    case(
        "limit-request-fields-0-is-unlimited",
        get(b"/", *fields(1000)),
        Parsed(),
        limit_request_fields=0,
    ),
    case("limit-request-fields-default-100", get(b"/", *fields(99)), Parsed()),
    case("limit-request-fields-default-101", get(b"/", *fields(100)), Refused(431)),
    # ---- limit_request_field_size -> 431; a field line counts with its CRLF (as gunicorn)
    case(
        "limit-request-field-size-exact",
        get(b"/", field_of(126)),
        Parsed(),
        limit_request_field_size=128,
    ),
    case(
        "limit-request-field-size-plus-one",
        get(b"/", field_of(127)),
        Refused(431, "limit_request_field_size"),
        limit_request_field_size=128,
    ),
    case(
        "limit-request-field-size-0-is-unlimited",
        get(b"/", field_of(200_000)),
        Parsed(),
        limit_request_field_size=0,
    ),
    case("limit-request-field-size-default-8190", get(b"/", field_of(8188)), Parsed()),
    # gunicorn's own corpus: two lines of 8,189 bytes plus CRLF are over the default.
    case(
        "limit-request-field-size-default-8191",
        get(b"/", field_of(8189), field_of(8189)),
        Refused(431),
    ),
    case(
        "head-that-never-ends-is-refused",
        b"GET / HTTP/1.1\r\n" + b"X-A: v\r\n" * 1000,
        Refused(431),
        limit_request_fields=10,
        limit_request_field_size=64,
    ),
    # ---- trailers count against limit_request_fields too
    case(
        "limit-request-fields-in-trailers",
        chunked(b"x", 1)[:-2] + b"".join(b"X-T%d: v\r\n" % i for i in range(5)) + b"\r\n",
        Refused(431, "limit_request_fields"),
        limit_request_fields=4,
    ),
    # ---- max_body_size -> 413
    case(
        "max-body-size-content-length-exact",
        post(16),
        Parsed([Data(b"x" * 16), EOM, PAUSED]),
        max_body_size=16,
    ),
    case("max-body-size-content-length-over", post(17), Refused(413, "limit"), max_body_size=16),
    case(
        "max-body-size-content-length-refused-before-the-body",
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: %d\r\n\r\n" % (1 << 40),
        Refused(413),
        max_body_size=16,
    ),
    case(
        "max-body-size-chunked-exact",
        chunked(b"x" * 16, 5),
        Parsed([Data(b"x" * 16), EOM, PAUSED]),
        max_body_size=16,
    ),
    case(
        "max-body-size-chunked-over", chunked(b"x" * 17, 5), Refused(413, "limit"), max_body_size=16
    ),
    case(
        "max-body-size-one-huge-chunk",
        chunked(b"", 1)[:-5] + b"ffffffff\r\n",
        Refused(413),
        max_body_size=16,
    ),
    case(
        "max-body-size-0-is-unlimited",
        post(100_000),
        Parsed([Data(b"x" * 100_000), EOM, PAUSED], content_length=100_000),
        max_body_size=0,
    ),
]


@pytest.mark.parametrize(("raw", "expect", "eof", "settings"), CASES)
def test_limits(raw, expect, eof, settings):
    check_vector(raw, expect, eof, settings)


def test_defaults_follow_gunicorn():
    conn = H1Connection()
    assert conn.limit_request_line == 4094
    assert conn.limit_request_fields == 100
    assert conn.limit_request_field_size == 8190


def test_a_slow_long_request_line_is_refused_as_soon_as_it_passes_the_limit():
    conn = H1Connection(limit_request_line=64)
    for byte in one_byte_at_a_time(b"GET /" + b"a" * 59):
        conn.receive_data(byte)
        assert conn.next_event() is NEED_DATA
    conn.receive_data(b"aaaa")
    with pytest.raises(RemoteProtocolError) as exc:
        conn.next_event()
    assert exc.value.status == 414


def test_unlimited_head_still_parses_a_large_request_split_in_pieces():
    raw = get(line_of(50_000), *fields(500), field_of(50_000))
    pieces = [raw[i : i + 997] for i in range(0, len(raw), 997)]
    _, events, error = outcome(
        pieces, limit_request_line=0, limit_request_fields=0, limit_request_field_size=0
    )
    assert error is None
    assert len(events[0].headers) == 502
