"""Any split of the input, down to one byte at a time, yields the same events
(Data joined per message, since splits move Data boundaries): pipelined
requests with Content-Length and chunked bodies, extensions and trailers,
answered in order or early (so the body is drained)."""

from __future__ import annotations

from h1_strategies import cut, drive, expected_events, streams
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unicorn_http import ConnectionClosed

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(stream=streams(), points=st.lists(st.integers(min_value=0), max_size=30))
def test_any_split_gives_the_same_events(stream, points):
    raw = b"".join(m.raw for m in stream)
    early = [m.early for m in stream]
    whole = drive([raw], early)
    assert whole == expected_events(stream)
    assert drive(cut(raw, points), early) == whole


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(3))
def test_one_byte_at_a_time_gives_the_same_events(stream):
    raw = b"".join(m.raw for m in stream)
    early = [m.early for m in stream]
    whole = drive([raw], early)
    assert drive([raw[i : i + 1] for i in range(len(raw))], early) == whole


@SETTINGS
@given(stream=streams(), points=st.lists(st.integers(min_value=0), max_size=10))
def test_eof_after_complete_requests_is_a_clean_close(stream, points):
    raw = b"".join(m.raw for m in stream)
    early = [m.early for m in stream]
    expected = expected_events(stream)
    if type(expected[-1]) is not ConnectionClosed:
        expected.append(ConnectionClosed())
    assert drive(cut(raw, points), early, eof=True) == expected
