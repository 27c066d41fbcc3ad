"""The response side: start_response, write(), iterables, errors, sendfile, 103, keep-alive."""

from __future__ import annotations

import os
import socket
import struct
import sys
import threading
import time

import pytest

from unicorn_workers.wsgi import ClientConnection, FileWrapper

pytestmark = pytest.mark.timeout(10)

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def test_list_body_gets_content_length_and_keeps_alive(h):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello ", b"world"]

    data, _conn = h.exchange(app, GET + GET)
    responses = h.parse(data)
    assert len(responses) == 2
    status, headers, body, _ = responses[0]
    assert (status, body) == (200, b"hello world")
    assert headers["content-length"] == "11"
    assert "connection" not in headers
    assert "transfer-encoding" not in headers


def test_generator_body_is_chunked_and_streamed(h):
    def app(environ, start_response):
        start_response("200 OK", [])
        yield b""
        yield b"one"
        yield b"two"

    data, _ = h.exchange(app, GET)
    _status, headers, body, _ = h.parse(data)[0]
    assert headers["transfer-encoding"] == "chunked"
    assert body == b"onetwo"
    assert data.endswith(b"\r\n\r\n3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n")  # framed one by one


def test_write_callable(h):
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Length", "10")])
        write(b"01234")
        return [b"56789"]

    data, _ = h.exchange(app, GET)
    assert h.parse(data)[0][2] == b"0123456789"


def test_http10_response_without_length_ends_with_close(h):
    def app(environ, start_response):
        start_response("200 OK", [])
        return iter([b"a", b"b"])

    data, conn = h.exchange(app, b"GET / HTTP/1.0\r\n\r\n")
    assert data.endswith(b"\r\n\r\nab")
    assert conn.must_close


def test_head_has_length_but_no_body(h):
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"twelve bytes"]

    data, _ = h.exchange(app, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" + GET)
    first, second = data.split(b"\r\n\r\n", 1)
    assert b"Content-Length: 12" in first
    assert second.startswith(b"HTTP/1.1 200 OK")


def test_custom_reason_phrase_and_hop_by_hop_headers(h):
    def app(environ, start_response):
        start_response(
            "299 Fine Enough",
            [("Keep-Alive", "timeout=5"), ("Transfer-Encoding", "gzip"), ("X-Ok", "1")],
        )
        return [b"x"]

    data, _ = h.exchange(app, GET)
    assert data.startswith(b"HTTP/1.1 299 Fine Enough\r\n")
    _status, headers, _body, _ = h.parse(data)[0]
    assert "keep-alive" not in headers
    assert headers["content-length"] == "1"
    assert headers["x-ok"] == "1"


def test_connection_close_from_the_app_is_honoured(h):
    def app(environ, start_response):
        start_response("200 OK", [("Connection", "close")])
        return [b"bye"]

    data, _conn = h.exchange(app, GET + GET)
    responses = h.parse(data)
    assert len(responses) == 1
    assert responses[0][1]["connection"] == "close"


def test_keepalive_off_says_connection_close(h):
    data, _conn = h.exchange(lambda e, s: (s("200 OK", []), [b"x"])[1], GET + GET, keepalive=False)
    responses = h.parse(data)
    assert len(responses) == 1
    assert responses[0][1]["connection"] == "close"


def test_error_before_start_response_is_a_500_with_a_logged_traceback(h):
    log = h.Log()

    def app(environ, start_response):
        raise RuntimeError("boom in the app")

    data, _conn = h.exchange(app, GET + GET, log=log)
    responses = h.parse(data)
    assert len(responses) == 1  # the connection is closed after a 500
    assert responses[0][0] == 500
    assert b"boom" not in responses[0][2]  # no traceback to the client
    text = log.text("exception")
    assert "Traceback" in text and "RuntimeError: boom in the app" in text


def test_error_after_the_head_closes_the_connection(h):
    log = h.Log()
    closed = []

    class Body:
        def __iter__(self):
            yield b"partial"
            raise ValueError("mid-stream")

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body()

    data, conn = h.exchange(app, GET + GET, log=log)
    assert data.count(b"HTTP/1.1") == 1
    assert b"partial" in data and not data.endswith(b"0\r\n\r\n")
    assert conn.must_close
    assert closed == [True]
    assert "ValueError: mid-stream" in log.text("exception")


def test_exc_info_replaces_the_response_before_the_head(h):
    def app(environ, start_response):
        start_response("200 OK", [("X-First", "1")])
        try:
            raise KeyError("x")
        except KeyError:
            start_response("503 Service Unavailable", [("X-Second", "1")], sys.exc_info())
        return [b"sorry"]

    data, _ = h.exchange(app, GET)
    status, headers, body, _ = h.parse(data)[0]
    assert status == 503 and "x-first" not in headers and body == b"sorry"


def test_exc_info_after_the_head_reraises(h):
    log = h.Log()

    def app(environ, start_response):
        write = start_response("200 OK", [])
        write(b"started")
        try:
            raise KeyError("late")
        except KeyError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"unreachable"]

    data, _conn = h.exchange(app, GET, log=log)
    assert b"unreachable" not in data
    assert "KeyError: 'late'" in log.text("exception")


def test_start_response_twice_without_exc_info_fails(h):
    log = h.Log()

    def app(environ, start_response):
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b""]

    data, _ = h.exchange(app, GET, log=log)
    assert h.parse(data)[0][0] == 500
    assert "AssertionError" in log.text("exception")


def test_app_returning_without_start_response(h):
    log = h.Log()
    data, _ = h.exchange(lambda e, s: [b"x"], GET, log=log)
    assert h.parse(data)[0][0] == 500
    assert "start_response" in log.text("exception")


def test_bad_header_from_the_app_is_a_500(h):
    log = h.Log()

    def app(environ, start_response):
        start_response("200 OK", [("X-Bad", "a\r\nInjected: 1")])
        return [b"x"]

    data, _ = h.exchange(app, GET, log=log)
    assert h.parse(data)[0][0] == 500
    assert b"Injected" not in data


def test_iterable_close_is_called(h):
    closed = []

    class Body:
        def __iter__(self):
            return iter([b"a", b"b"])

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body()

    data, _ = h.exchange(app, GET)
    assert h.parse(data)[0][2] == b"ab"
    assert closed == [True]


def test_client_gone_mid_response_costs_only_that_request(h):
    log = h.Log()
    client, server = socket.socketpair()
    server.settimeout(5)
    closed = threading.Event()

    def app(environ, start_response):
        start_response("200 OK", [])

        def body():
            try:
                for _ in range(10_000):
                    yield b"x" * 65536
            finally:
                closed.set()

        return body()

    conn = ClientConnection(server, ("127.0.0.1", 1), h.make_config(app, log))
    client.sendall(GET)
    t = threading.Thread(target=h.serve, args=(conn,))
    t.start()
    client.recv(65536)
    client.close()
    t.join(5)
    assert not t.is_alive()
    assert closed.is_set()
    assert conn.must_close and conn.broken
    assert "Traceback" not in log.text()
    conn.close()


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(200_000))
    return path


@pytest.mark.parametrize("tls", [False, True], ids=["sendfile", "tls-fallback"])
def test_file_wrapper(h, data_file, tls):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        f = open(data_file, "rb")  # noqa: SIM115 (closed by the server through close())
        f.seek(1000)
        return environ["wsgi.file_wrapper"](f, 32768)

    data, _conn = h.exchange(app, GET + GET, is_ssl=tls)
    responses = h.parse(data)
    assert len(responses) == 2
    expected = data_file.read_bytes()[1000:]
    for status, _headers, body, _ in responses:
        assert status == 200 and body == expected
    if not tls:
        assert responses[0][1]["content-length"] == str(len(expected))


def test_file_wrapper_without_fileno_is_iterated(h):
    import io

    def app(environ, start_response):
        start_response("200 OK", [])
        return FileWrapper(io.BytesIO(b"abc" * 5000), 1000)

    data, _ = h.exchange(app, GET)
    assert h.parse(data)[0][2] == b"abc" * 5000


def test_sendfile_setting_off(h, data_file, monkeypatch):
    calls = []
    real = os.sendfile
    monkeypatch.setattr(os, "sendfile", lambda *a: calls.append(1) or real(*a))

    def app(environ, start_response):
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](open(data_file, "rb"))

    h.exchange(app, GET)
    assert calls
    calls.clear()
    data, _ = h.exchange(app, GET, sendfile=False)
    assert calls == []
    assert h.parse(data)[0][2] == data_file.read_bytes()


def test_early_hints(h):
    def app(environ, start_response):
        environ["wsgi.early_hints"]([("Link", "</style.css>; rel=preload; as=style")])
        start_response("200 OK", [])
        return [b"page"]

    data, _ = h.exchange(app, GET)
    responses = h.parse(data)
    assert [r[0] for r in responses] == [103, 200]
    assert responses[0][1]["link"] == "</style.css>; rel=preload; as=style"
    # no 1xx to an HTTP/1.0 client
    data, _ = h.exchange(app, b"GET / HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200")


def test_pipelined_requests_are_answered_in_order(h):
    def app(environ, start_response):
        start_response("200 OK", [])
        return [environ["PATH_INFO"].encode()]

    raw = b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(20))
    data, conn = h.exchange(app, raw)
    assert [r[2] for r in h.parse(data)] == [b"/%d" % i for i in range(20)]
    assert conn.requests == 20


def test_bad_request_gets_a_reason(h):
    log = h.Log()
    data, _conn = h.exchange(lambda e, s: [], b"GET / HTTP/1.1\r\n\r\n", log=log)
    status, _, body, _ = h.parse(data)[0]
    assert status == 400 and b"Host" in body
    assert "Bad request from 10.0.0.7" in log.text("info")


def test_access_log_gets_the_request(h):
    log = h.Log(access=True)

    def app(environ, start_response):
        start_response("201 Created", [("X-R", "1")])
        return [b"abc"]

    h.exchange(app, b"POST /p?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", log=log)
    (line,) = log.lines
    remote, method, target, version, status, length, elapsed, req_h, resp_h, env = line
    assert (remote, method, target, version, status, length) == (
        "10.0.0.7",
        "POST",
        "/p?q=1",
        "HTTP/1.1",
        201,
        3,
    )
    assert 0 <= elapsed < 5
    assert (b"host", b"x") in req_h
    assert ("X-R", "1") in resp_h
    assert env["PATH_INFO"] == "/p"


def test_sendfile_to_a_client_that_stops_reading_is_bounded(h, tmp_path):
    """A client with a full receive window must not hold the worker past `timeout`."""

    path = tmp_path / "big.bin"
    path.write_bytes(b"\0" * (64 << 20))
    client, server = socket.socketpair()
    # what prepare_client sets from `timeout`, here 0.3 s
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 0, 300_000))
    log = h.Log()

    def app(environ, start_response):
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](open(path, "rb"))

    conn = ClientConnection(server, ("127.0.0.1", 1), h.make_config(app, log))
    client.sendall(GET)
    started = time.monotonic()
    t = threading.Thread(target=h.serve, args=(conn,))
    t.start()
    t.join(5)  # the client never reads
    assert not t.is_alive()
    assert time.monotonic() - started < 3
    assert conn.broken
    conn.close()
    client.close()
