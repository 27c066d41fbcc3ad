"""Property: however the body is framed and however it is read, wsgi.input yields it intact."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.timeout(60)

reads = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.integers(min_value=0, max_value=300)),
        st.tuples(st.just("readline"), st.integers(min_value=-1, max_value=300)),
    ),
    max_size=30,
)


def frame(body: bytes, cuts: list[int], chunked: bool) -> bytes:
    if not chunked:
        return b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    pieces, start = [], 0
    for cut in [*sorted(c % (len(body) + 1) for c in cuts), len(body)]:
        if cut > start:
            pieces.append(body[start:cut])
            start = cut
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces)
    return (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.binary(max_size=2000).map(lambda b: b.replace(b"\x00", b"\n")),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=8),
    chunked=st.booleans(),
    ops=reads,
)
def test_any_reads_return_the_body_intact(h, body, cuts, chunked, ops):
    got = {}

    def app(environ, start_response):
        f = environ["wsgi.input"]
        parts = []
        for op, n in ops:
            part = f.read(n) if op == "read" else f.readline(n)
            if op == "read" or n >= 0:
                assert len(part) <= n
            if op == "readline" and part and (n < 0 or len(part) < n):
                assert part.endswith(b"\n") or len(b"".join(parts)) + len(part) == len(body)
            parts.append(part)
        parts.append(f.read())
        got["body"] = b"".join(parts)
        start_response("200 OK", [])
        return [b""]

    data, _ = h.exchange(app, frame(body, cuts, chunked))
    assert data.startswith(b"HTTP/1.1 200")
    assert got["body"] == body
