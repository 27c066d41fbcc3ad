"""WebSockets through a real unicorn -k asgi process, with the websockets library
as the client: echo, fragments, compression, large messages, close codes,
denial, limits and shutdown."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import pytest

websockets = pytest.importorskip("websockets")
from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "support"))

from unicorn_server import Unicorn, wait_for  # noqa: E402

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Unicorn(
        tmp_path_factory.mktemp("ws"),
        "asgi_ws:app",
        "-k",
        "asgi",
        "--websocket-max-message-size",
        "1048576",
    )
    yield srv
    srv.stop()


def url(server, path: str) -> str:
    return f"ws://{server.host}:{server.port}{path}"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_echo_text_bytes_and_subprotocol(server):
    async def main():
        async with connect(url(server, "/echo"), subprotocols=["chat", "other"]) as ws:
            assert ws.subprotocol == "chat"
            assert ws.response.headers["x-scope-path"] == "/echo"
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01binary")
            assert await ws.recv() == b"\x00\x01binary"

    run(main())


def test_fragmented_message_is_assembled(server):
    async def main():
        async with connect(url(server, "/echo"), compression=None) as ws:
            await ws.send(["frag", "men", "ted"])
            assert await ws.recv() == "fragmented"

    run(main())


def test_permessage_deflate_is_negotiated_and_works(server):
    async def main():
        async with connect(url(server, "/echo")) as ws:
            assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
            text = "compress me " * 5000
            await ws.send(text)
            assert await ws.recv() == text

    run(main())


def test_large_message_round_trip(server):
    async def main():
        async with connect(url(server, "/echo"), max_size=None, compression=None) as ws:
            blob = bytes(range(256)) * 4000  # 1,024,000 bytes, under the 1 MiB limit
            await ws.send(blob)
            assert await ws.recv() == blob

    run(main())


def test_message_over_the_limit_closes_with_1009(server):
    async def main():
        async with connect(url(server, "/echo"), max_size=None, compression=None) as ws:
            await ws.send(b"x" * (1048576 + 1))
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd.code == 1009

    run(main())


def test_server_close_code_and_reason(server):
    async def main():
        async with connect(url(server, "/close-4001")) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd.code == 4001
            assert info.value.rcvd.reason == "go away"

    run(main())


def test_scope(server):
    async def main():
        async with connect(url(server, "/scope?x=1")) as ws:
            assert await ws.recv() == "ws /scope x=1"

    run(main())


def test_scope_paths_are_decoded_and_carry_root_path(tmp_path):
    srv = Unicorn(tmp_path, "asgi_ws:app", "-k", "asgi", "--root-path", "/r")

    async def main():
        async with connect(url(srv, "/caf%C3%A9/paths")) as ws:
            return await ws.recv()

    try:
        assert run(main()) == "/r /r/caf\u00e9/paths /r/caf%C3%A9/paths"
    finally:
        srv.stop()


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [("/deny", 403, b""), ("/unauthorized", 401, b"who are you?"), ("/crash", 500, b"")],
)
def test_denied_upgrades_are_http_responses(server, path, status, body):
    async def main():
        with pytest.raises(InvalidStatus) as info:
            async with connect(url(server, path)):
                pass
        assert info.value.response.status_code == status
        assert info.value.response.body == body

    run(main())
    if path == "/crash":
        server.wait_log("crash before accept")


def test_bad_handshake_gets_426_with_the_version(server):
    request = (
        b"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 12\r\n\r\n"
    )
    with socket.create_connection(server.addr, timeout=10) as s:
        s.sendall(request)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    assert out.startswith(b"HTTP/1.1 426"), out
    assert b"Sec-WebSocket-Version: 13" in out


def test_plain_http_still_served_beside_websockets(server):
    with socket.create_connection(server.addr, timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    assert out.startswith(b"HTTP/1.1 200") and b"plain http" in out, out


def test_shutdown_closes_open_websockets_with_1012(tmp_path):
    srv = Unicorn(tmp_path, "asgi_ws:app", "-k", "asgi", "--graceful-timeout", "10")

    async def main():
        async with connect(url(srv, "/echo")) as ws:
            await ws.send("ping")
            assert await ws.recv() == "ping"
            srv.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd.code == 1012

    try:
        run(main())
        wait_for(lambda: srv.proc.poll() is not None, 15, "the server to exit")
        assert srv.proc.returncode == 0
    finally:
        srv.stop()
