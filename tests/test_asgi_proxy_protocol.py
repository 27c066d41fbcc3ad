"""The ASGI worker behind a PROXY-protocol load balancer: a real unicorn -k asgi
process, raw sockets sending version 1 and 2 headers."""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

from unicorn_server import Unicorn

pytestmark = pytest.mark.timeout(60)

GET = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


def exchange(addr, *pieces: bytes) -> bytes:
    with socket.create_connection(addr, timeout=10) as s:
        for piece in pieces:
            s.sendall(piece)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Unicorn(
        tmp_path_factory.mktemp("asgi-proxy"),
        "asgi_whoami:app",
        "-k",
        "asgi",
        "--proxy-protocol",
        "--proxy-allow-from",
        "127.0.0.1",
    )
    yield srv
    srv.stop()


def test_v1_header_names_the_client(server):
    out = exchange(server.addr, b"PROXY TCP4 203.0.113.7 192.0.2.1 40123 443\r\n" + GET)
    assert out.startswith(b"HTTP/1.1 200"), out
    assert out.endswith(b"203.0.113.7 40123"), out


def test_v2_header_split_across_writes(server):
    v2 = (
        b"\r\n\r\n\x00\r\nQUIT\n\x21\x21\x00\x24"
        + socket.inet_pton(socket.AF_INET6, "2001:db8::7")
        + socket.inet_pton(socket.AF_INET6, "2001:db8::1")
        + (40999).to_bytes(2, "big")
        + (443).to_bytes(2, "big")
    )
    out = exchange(server.addr, v2[:9], v2[9:] + GET)
    assert out.endswith(b"2001:db8::7 40999"), out


def test_missing_header_is_refused_and_others_go_on(server):
    bad = exchange(server.addr, GET)
    assert bad.startswith(b"HTTP/1.1 400"), bad
    assert b"PROXY" in bad
    server.wait_log("invalid PROXY protocol header")
    out = exchange(server.addr, b"PROXY UNKNOWN\r\n" + GET)
    assert out.startswith(b"HTTP/1.1 200"), out
    # UNKNOWN keeps the socket's own peer address
    assert out.split(b"\r\n\r\n", 1)[1].startswith(b"127.0.0.1 "), out


V2_TCP4 = (
    b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c"
    + socket.inet_aton("203.0.113.9")
    + socket.inet_aton("192.0.2.1")
    + (40100).to_bytes(2, "big")
    + (443).to_bytes(2, "big")
)
V1_TCP4 = b"PROXY TCP4 203.0.113.7 192.0.2.1 40123 443\r\n"


# gthread too where unicorn-workers is installed (not in the other-Python runs)
_WORKERS = ["asgi"] + (["gthread"] if importlib.util.find_spec("unicorn_workers") else [])


@pytest.mark.parametrize("worker", _WORKERS)
@pytest.mark.parametrize(
    ("mode", "accepted", "refused"),
    [("v1", V1_TCP4, V2_TCP4), ("v2", V2_TCP4, V1_TCP4)],
    ids=["v1", "v2"],
)
def test_gunicorns_modes_take_one_version(tmp_path, worker, mode, accepted, refused):
    """gunicorn 24.1's `--proxy-protocol v1|v2`: the other version is a 400."""
    app = "origin_echo:" + ("asgi" if worker == "asgi" else "wsgi")
    srv = Unicorn(
        tmp_path, app, "-k", worker, "--proxy-protocol", mode, "--proxy-allow-from", "127.0.0.1"
    )
    try:
        out = exchange(srv.addr, accepted + GET)
        assert out.startswith(b"HTTP/1.1 200"), out
        assert b"203.0.113." in out
        out = exchange(srv.addr, refused + GET)
        assert out.startswith(b"HTTP/1.1 400"), out
        assert b"where proxy_protocol is " + mode.encode() in out
    finally:
        srv.stop()
