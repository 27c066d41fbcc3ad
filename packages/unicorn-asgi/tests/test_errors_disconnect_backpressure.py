"""Application errors, vanished clients and flow control, over real sockets."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import pytest

pytestmark = pytest.mark.timeout(30)


def test_exception_before_start_is_a_500_with_traceback_logged(serve):
    async def app(scope, receive, send):
        raise ValueError("boom")

    srv = serve(app)
    r = httpx.get(srv.url)
    assert r.status_code == 500 and r.text == "Internal Server Error\n"
    assert "Exception in ASGI application [ValueError: boom]" in srv.log.text()


def test_exception_after_start_closes_the_connection(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("late")

    srv = serve(app)
    out = srv.raw(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200") and b"partial" in out
    assert not out.endswith(b"0\r\n\r\n")  # not a complete chunked body


def test_returning_without_a_response_is_a_500(serve):
    async def app(scope, receive, send):
        return None

    srv = serve(app)
    assert httpx.get(srv.url).status_code == 500
    assert "without starting a response" in srv.log.text()


def test_invalid_messages_are_the_apps_error(serve):
    async def app(scope, receive, send):
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"bad\nname", b"x")]}
        )

    srv = serve(app)
    assert httpx.get(srv.url).status_code == 500


def test_client_disconnect_mid_stream_reaches_the_app(serve):
    seen = []
    gone = threading.Event()

    async def app(scope, receive, send):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )

        async def watch():
            # A GET's one (empty) http.request comes first; then the disconnect.
            while (message := await receive())["type"] == "http.request":
                assert message == {"type": "http.request", "body": b"", "more_body": False}
            seen.append(message)
            gone.set()

        watcher = asyncio.ensure_future(watch())
        try:
            while True:
                await send(
                    {"type": "http.response.body", "body": b"data: tick\n\n", "more_body": True}
                )
                await asyncio.sleep(0.01)
        except OSError as exc:
            seen.append(type(exc).__name__)
        await watcher

    srv = serve(app)
    with socket.create_connection(srv.addr) as s:
        s.sendall(b"GET /sse HTTP/1.1\r\nHost: t\r\n\r\n")
        assert b"data: tick" in s.recv(4096)
    assert gone.wait(5)
    assert seen[0] == {"type": "http.disconnect"}
    deadline = time.monotonic() + 5
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen[1] == "ClientDisconnected"


def test_receive_after_the_response_returns_disconnect(serve):
    got = []

    async def app(scope, receive, send):
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})
        got.append(await asyncio.wait_for(receive(), 2))

    srv = serve(app)
    assert httpx.get(srv.url).text == "ok"
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == [{"type": "http.disconnect"}]


def test_a_slow_client_does_not_block_others(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/big":
            for _ in range(200):
                await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
        await send({"type": "http.response.body", "body": b"fine"})

    srv = serve(app)
    stuck = socket.create_connection(srv.addr)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")  # and never read
    try:
        with httpx.Client(timeout=5) as client:
            for _ in range(5):
                assert client.get(srv.url + "/small").text == "fine"

        # the stalled response is waiting on flow control, not buffered whole
        # (looked at from the server's thread: its loop owns the connection set)
        def stalled():
            proto = next(p for p in srv.config.connections if p.cycle is not None)
            return proto.write_paused, proto.transport.get_write_buffer_size()

        paused, buffered = srv.call(stalled)
        assert paused and buffered < 4 << 20
    finally:
        stuck.close()


def test_upload_into_a_slow_reader_pauses_the_socket(serve):
    reads = []
    release = asyncio.Event()

    async def app(scope, receive, send):
        await release.wait()
        total = 0
        more = True
        while more:
            message = await receive()
            total += len(message["body"])
            more = message["more_body"]
        reads.append(total)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(total).encode()})

    srv = serve(app)
    size = 64 << 20
    sent = [0]

    def upload():
        with socket.create_connection(srv.addr) as s:
            s.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
            block = b"u" * 65536
            s.settimeout(0.5)
            try:
                while sent[0] < size:
                    sent[0] += s.send(block)
            except TimeoutError:
                return

    t = threading.Thread(target=upload)
    t.start()
    t.join(10)
    # The server stopped reading: the upload stalls with the kernel buffers full.
    assert sent[0] < 16 << 20
    assert srv.call(lambda: next(iter(srv.config.connections)).read_paused)
    srv.call(release.set)


def test_a_1xx_in_response_start_is_the_apps_error(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 101, "headers": []})

    srv = serve(app)
    out = srv.raw(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 500")


def test_apps_that_are_not_coroutine_functions(serve):
    class Raises:
        def __call__(self, scope, receive, send):
            raise LookupError("at call time")

    async def inner(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"wrapped"})

    class Awaitable:
        def __init__(self, *args):
            self.args = args

        def __await__(self):
            return inner(*self.args).__await__()

    srv = serve(Raises())
    assert httpx.get(srv.url).status_code == 500
    assert "LookupError: at call time" in srv.log.text()
    srv2 = serve(Awaitable)
    assert httpx.get(srv2.url).text == "wrapped"


def test_a_disconnect_finalizes_the_apps_generators_at_once(serve):
    """Frameworks stream from async generators and cancel work in their finally
    blocks; when send() raises on a vanished client, the generator must be
    finalized when the request ends, not whenever the cyclic collector runs."""
    import gc

    closed = threading.Event()

    async def app(scope, receive, send):
        async def produce():
            try:
                while True:
                    yield b"data: x\n\n"
            finally:
                closed.set()

        await send({"type": "http.response.start", "status": 200, "headers": []})
        body = produce()  # held by the frame, as a response object holds its iterator
        async for chunk in body:  # left suspended when send() raises
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.sleep(0.01)

    srv = serve(app)
    gc.disable()
    try:
        with socket.create_connection(srv.addr) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert b"data: x" in s.recv(4096)
        assert closed.wait(5)
    finally:
        gc.enable()
