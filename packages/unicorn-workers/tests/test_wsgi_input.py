"""wsgi.input: streaming reads of Content-Length and chunked bodies, 100-continue."""

from __future__ import annotations

import socket
import threading

import pytest

from unicorn_workers.wsgi import ClientConnection

pytestmark = pytest.mark.timeout(10)

BODY = b"line one\nline two\n\nlast line without newline"


def post(body: bytes, chunked: bool = False, extra: bytes = b"") -> bytes:
    if chunked:
        pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
        framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        return (
            b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            + extra
            + b"\r\n"
            + framed
        )
    return b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body),
        extra,
        body,
    )


def run(h, reader, raw):
    out = {}

    def app(environ, start_response):
        out["value"] = reader(environ["wsgi.input"])
        start_response("200 OK", [])
        return [b"done"]

    data, conn = h.exchange(app, raw)
    return out.get("value"), h.parse(data), conn


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_read_forms(h, chunked):
    raw = post(BODY, chunked)
    assert run(h, lambda f: f.read(), raw)[0] == BODY
    assert run(h, lambda f: f.read(None), raw)[0] == BODY
    assert run(h, lambda f: [f.read(5), f.read(0), f.read(100), f.read(3)], raw)[0] == [
        BODY[:5],
        b"",
        BODY[5:],
        b"",
    ]
    assert run(h, lambda f: [f.readline(), f.readline(4), f.readline()], raw)[0] == [
        b"line one\n",
        b"line",
        b" two\n",
    ]
    assert run(h, lambda f: f.readlines(), raw)[0] == BODY.splitlines(keepends=True)
    assert run(h, lambda f: list(f), raw)[0] == BODY.splitlines(keepends=True)
    assert run(h, lambda f: f.readlines(12), raw)[0] == [b"line one\n", b"line two\n"]


def test_big_body_streams_in_pieces(h):
    body = bytes(range(256)) * 4096  # 1 MiB
    sizes = []

    def reader(f):
        total = b""
        while chunk := f.read(100_000):
            sizes.append(len(chunk))
            total += chunk
        return total

    value, responses, _ = run(h, reader, post(body))
    assert value == body
    assert responses[0][0] == 200
    assert max(sizes) == 100_000


def test_unread_body_is_skipped_before_the_next_request(h):
    def app(environ, start_response):
        start_response("200 OK", [])
        return [environ["PATH_INFO"].encode()]

    raw = post(b"x" * 5000) + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
    data, _ = h.exchange(app, raw)
    assert [r[2] for r in h.parse(data)] == [b"/up", b"/next"]


def test_bad_chunked_body_is_a_400_with_a_reason(h):
    raw = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n"
    _value, responses, conn = run(h, lambda f: f.read(), raw)
    status, _, body, _ = responses[0]
    assert status == 400
    assert b"chunk size" in body
    assert conn.must_close


def test_client_gone_mid_body_costs_only_that_request(h):
    log = h.Log()
    raw = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part"

    def app(environ, start_response):
        environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [b"never"]

    _data, conn = h.exchange(app, raw, log=log)
    assert conn.must_close
    assert "Traceback" not in log.text()


def test_100_continue_is_sent_on_the_first_read(h):
    client, server = socket.socketpair()
    client.settimeout(5)
    server.settimeout(5)
    got = {}

    def app(environ, start_response):
        got["body"] = environ["wsgi.input"].read()
        start_response("201 Created", [])
        return [b""]

    conn = ClientConnection(server, ("127.0.0.1", 1), h.make_config(app))
    t = threading.Thread(target=h.serve, args=(conn,))
    t.start()
    client.sendall(
        b"PUT /f HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    )
    interim = client.recv(1024)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    client.sendall(b"hello")
    final = client.recv(1024)
    assert final.startswith(b"HTTP/1.1 201 Created\r\n")
    client.close()
    t.join(5)
    conn.close()
    assert got["body"] == b"hello"


def test_no_100_continue_when_the_body_is_not_read(h):
    def app(environ, start_response):
        start_response("413 Content Too Large", [("Content-Type", "text/plain")])
        return [b"too big"]

    raw = b"PUT /f HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n"
    data, _conn = h.exchange(app, raw)
    status, headers, body, _ = h.parse(data)[0]
    assert status == 413 and body == b"too big"
    assert headers["connection"] == "close"
