"""receive() per the ASGI spec: every request, with or without a body, first
gets its http.request messages (the last with more_body False), whatever the
framing; a real unicorn -k asgi process and an app that reads before answering."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

from unicorn_server import Unicorn

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Unicorn(tmp_path_factory.mktemp("asgi-receive"), "asgi_whoami:app", "-k", "asgi")
    yield srv
    srv.stop()


@pytest.mark.parametrize(
    ("request_bytes", "size"),
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", 0, id="get-without-body"),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", 0, id="empty-post"
        ),
        pytest.param(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", 5, id="post"),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            3,
            id="chunked",
        ),
    ],
)
def test_the_app_reads_its_request_then_answers(server, request_bytes, size):
    with socket.create_connection(server.addr, timeout=10) as s:
        # Twice on one connection: the second request must not inherit the first's state.
        s.sendall(
            request_bytes + request_bytes.replace(b"Host: t", b"Host: t\r\nConnection: close")
        )
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    assert out.count(b"HTTP/1.1 200") == 2, out
    assert out.count(b"x-body-size: %d" % size) == 2, out
