"""Garbage in, RemoteProtocolError out: arbitrary bytes and mutated valid
requests never make next_event() raise anything else, however they are split,
and a split never changes whether (or where) the input is refused."""

from __future__ import annotations

from h1_strategies import cut, drive, streams
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from unicorn_http import RemoteProtocolError

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Bytes that matter to the grammar, to insert or substitute.
SPECIAL = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b":", b";", b",", b'"', b"0", b"f", b"-"]
SPECIAL += [b"+", b"\x7f", b"\xff", b"\r\n\r\n", b"0\r\n\r\n", b"chunked", b"Content-Length: 1\r\n"]
SPECIAL += [b"Transfer-Encoding: chunked\r\n", b"Host: x\r\n", b" \r\n", b"\r\n "]
SPECIAL += [b": ", b"\r\n: v", b"\r\nX : v", b"\r\nX:\r\n", b"HTTP/1.0", b"\r\n\r\n\r"]

PREFIXES = [
    b"",
    b"GET / HTTP/1.1\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
]


def outcome(chunks: list[bytes], early: list[bool], **settings) -> tuple[list, int | None]:
    """The events, and the refusal's status (None when accepted). Anything else propagates."""
    try:
        return drive(chunks, early, eof=True, **settings), None
    except RemoteProtocolError as exc:
        assert 400 <= exc.status <= 505, exc
        assert exc.reason
        return [], exc.status


def check(raw: bytes, points: list[int], early: list[bool], **settings) -> None:
    whole = outcome([raw], early, **settings)
    split = outcome(cut(raw, points), early, **settings)
    one = outcome([raw[i : i + 1] for i in range(len(raw))], early, **settings)
    assert (split[1] is None) == (whole[1] is None) == (one[1] is None), (whole, split, one)
    if whole[1] is None:
        assert split[0] == whole[0] == one[0]


@SETTINGS
@example(raw=b"\r\n\r\n\r", prefix=0, points=[4])
@example(raw=b"5\r\nhello\r\n0\r\n", prefix=3, points=[])
@given(
    raw=st.binary(max_size=200),
    prefix=st.integers(0, len(PREFIXES) - 1),
    points=st.lists(st.integers(min_value=0), max_size=8),
)
def test_arbitrary_bytes_only_raise_the_protocol_error(raw, prefix, points):
    check(PREFIXES[prefix] + raw, points, [False] * 10)


@st.composite
def mutated(draw) -> tuple[bytes, list[bool]]:
    stream = draw(streams(3))
    raw = bytearray(b"".join(m.raw for m in stream))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(raw)))
        how = draw(st.sampled_from(["insert", "replace", "delete", "duplicate", "random"]))
        if how == "insert":
            raw[at:at] = draw(st.sampled_from(SPECIAL))
        elif how == "replace":
            raw[at : at + 1] = draw(st.sampled_from(SPECIAL))
        elif how == "delete":
            del raw[at : at + draw(st.integers(1, 8))]
        elif how == "duplicate":
            raw[at:at] = raw[at : at + draw(st.integers(1, 30))]
        else:
            raw[at:at] = draw(st.binary(min_size=1, max_size=4))
    return bytes(raw), [m.early for m in stream]


@SETTINGS
@given(case=mutated(), points=st.lists(st.integers(min_value=0), max_size=10))
def test_mutated_requests_only_raise_the_protocol_error(case, points):
    raw, early = case
    check(raw, points, early)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutated(), points=st.lists(st.integers(min_value=0), max_size=10))
def test_mutated_requests_under_tight_limits(case, points):
    raw, early = case
    check(
        raw,
        points,
        early,
        limit_request_line=40,
        limit_request_fields=4,
        limit_request_field_size=30,
        limit_chunk_extensions=8,
        limit_trailer_size=30,
        max_body_size=30,
        max_drain=10,
    )
