"""An independent implementation (h11) agrees with ours both ways: the requests
its client writes parse to the same request, body and trailers, and the
responses we write it reads back as the same status, headers, body and
trailers, for every framing choice. Skipped where h11 is not installed (the
isolated wheel run)."""

from __future__ import annotations

import pytest
from h1_harness import merge, pump
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unicorn_http import PAUSED, Data, EndOfMessage, H1Connection, Request

h11 = pytest.importorskip("h11")

TCHAR = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
names = st.text(TCHAR, min_size=1, max_size=10).map(lambda s: b"X-" + s.encode())
values = st.text("".join(map(chr, range(0x21, 0x7F))) + " \t", max_size=20).map(
    lambda s: s.strip(" \t").encode()
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from([b"GET", b"HEAD", b"POST"]),
    status=st.sampled_from([200, 201, 204, 304, 404, 500, 599]),
    headers=st.lists(st.tuples(names, values), max_size=4),
    pieces=st.lists(st.binary(max_size=30), max_size=4),
    framing=st.sampled_from(["auto", "length", "chunked"]),
    trailers=st.lists(st.tuples(names, values), max_size=2),
    hints=st.booleans(),
)
def test_h11_reads_back_what_was_sent(method, status, headers, pieces, framing, trailers, hints):
    body = b"".join(pieces)
    # h11's client speaks HTTP/1.1 only; HTTP/1.0 framing is pinned in test_response_serializer.
    request = method + b" / HTTP/1.1\r\nHost: example.com\r\n\r\n"
    conn = H1Connection()
    conn.receive_data(request)
    pump(conn)
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target="/", headers=[("Host", "example.com")]))
    client.send(h11.EndOfMessage())

    sent = list(headers)
    if framing == "length":
        sent.append((b"Content-Length", b"%d" % len(body)))
    elif framing == "chunked":
        sent.append((b"Transfer-Encoding", b"chunked"))
    out = b""
    if hints:
        out += conn.send_response(103, [(b"Link", b"</a.css>; rel=preload")])
    out += conn.send_response(status, sent)
    for piece in pieces:
        out += conn.send_data(piece)
    final_head = out[out.find(b"HTTP/1.1 %d " % status) :].partition(b"\r\n\r\n")[0].lower()
    no_body = method == b"HEAD" or status in (204, 304)
    chunked_out = b"\r\ntransfer-encoding: chunked" in final_head and not no_body
    out += conn.send_end(trailers if chunked_out else None)

    client.receive_data(out)
    events = []
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA or event is h11.PAUSED or type(event) is h11.ConnectionClosed:
            break
        events.append(event)
        if type(event) is h11.EndOfMessage:
            break
    if hints:
        info = events.pop(0)
        assert type(info) is h11.InformationalResponse and info.status_code == 103
    response = events[0]
    assert type(response) is h11.Response
    assert response.status_code == status
    got = [(n, v) for n, v in response.headers if n.startswith(b"x-")]
    assert got == [(n.lower(), v) for n, v in headers]
    data = b"".join(e.data for e in events if type(e) is h11.Data)
    assert data == (b"" if no_body else body)
    end = events[-1]
    assert type(end) is h11.EndOfMessage
    if chunked_out:
        assert list(end.headers) == [(n.lower(), v) for n, v in trailers]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from([b"GET", b"POST", b"PUT", b"OPTIONS"]),
    target=st.sampled_from([b"/", b"/a/b?c=d", b"/%20?", b"*"]),
    headers=st.lists(st.tuples(names, values), max_size=4),
    pieces=st.lists(st.binary(min_size=1, max_size=30), max_size=4),
    chunked=st.booleans(),
    trailers=st.lists(st.tuples(names, values), max_size=2),
    step=st.integers(1, 50),
)
def test_we_read_what_h11_writes(method, target, headers, pieces, chunked, trailers, step):
    if target == b"*":
        method = b"OPTIONS"
    body = b"".join(pieces)
    sent = [(b"Host", b"example.com"), *headers]
    if chunked:
        sent.append((b"Transfer-Encoding", b"chunked"))
    else:
        sent.append((b"Content-Length", b"%d" % len(body)))
        trailers = []
    client = h11.Connection(h11.CLIENT)
    raw = client.send(h11.Request(method=method, target=target, headers=sent))
    for piece in pieces:
        raw += client.send(h11.Data(data=piece))
    raw += client.send(h11.EndOfMessage(headers=trailers))

    conn = H1Connection()
    events = []
    for i in range(0, len(raw), step):
        conn.receive_data(raw[i : i + step])
        events += pump(conn)
    events = merge(events)
    assert events.pop() is PAUSED
    req = events[0]
    assert type(req) is Request
    assert (req.method, req.target) == (method, target)
    assert req.headers == [(n.lower(), v) for n, v in sent]
    assert req.chunked is chunked
    end = EndOfMessage([(n.lower(), v) for n, v in trailers])
    assert events[1:] == ([Data(body)] if body else []) + [end]
