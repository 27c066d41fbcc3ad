"""unicorn --protocol uwsgi behind a real nginx (uwsgi_pass over TCP and a Unix socket),
on every worker: requests, uploads, streams, disconnects, bad packets, refused peers."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

from nginx import Nginx, UwsgiUnicorn, nginx_binary, send_raw
from unicorn_server import Unicorn

from unicorn_uwsgi import pack

pytestmark = pytest.mark.timeout(90)

WORKERS = {
    "sync": ("uwsgi_wsgi:app", ("-k", "sync")),
    "gthread": ("uwsgi_wsgi:app", ("-k", "gthread", "--threads", "4")),
    "asgi": ("uwsgi_asgi:app", ("-k", "asgi")),
}
TRANSPORTS = ("tcp", "unix")


@pytest.fixture(scope="module", autouse=True)
def _have_nginx():
    nginx_binary()  # a clear failure (how to install it), never a skip


@pytest.fixture(scope="module")
def unicorns(tmp_path_factory):
    """``unicorn --protocol uwsgi`` servers, one per (worker, extra args), started once."""
    tmp = tmp_path_factory.mktemp("uwsgi")
    running: dict[tuple, Unicorn] = {}

    def get(worker: str, *extra: str, protocol: str = "uwsgi") -> Unicorn:
        key = (worker, extra, protocol)
        if key not in running:
            app, args = WORKERS[worker]
            if protocol == "uwsgi":
                running[key] = UwsgiUnicorn(tmp, app, *args, *extra)
            else:
                running[key] = Unicorn(tmp, app, *args, *extra)
        return running[key]

    yield get
    for server in running.values():
        server.stop()


class Front:
    """One test's nginx and the unicorn behind it."""

    def __init__(self, nginx: Nginx, unicorn: UwsgiUnicorn) -> None:
        self.nginx = nginx
        self.unicorn = unicorn
        self.url = nginx.url
        self.stream_url = nginx.stream_url

    def worker_pid(self) -> int:
        return int(httpx.get(self.url + "/pid", timeout=10).text)


@pytest.fixture(params=[(w, t) for w in WORKERS for t in TRANSPORTS], ids="-".join)
def front(request, unicorns, tmp_path):
    worker, transport = request.param
    server = unicorns(worker)
    upstream = f"127.0.0.1:{server.port}" if transport == "tcp" else f"unix:{server.socket_path}"
    nginx = Nginx(tmp_path, upstream)
    yield Front(nginx, server)
    nginx.stop()


# --- requests ----------------------------------------------------------------------


def test_get_with_query_and_headers(front):
    r = httpx.get(
        front.url + "/environ/caf%C3%A9/a%20b?x=1&y=%2F&z=caf%C3%A9",
        headers={"X-Request-Id": "r-42", "Cookie": "session=abc; theme=dark"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    env = r.json()
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/environ/caf\u00c3\u00a9/a b"  # latin-1 of the UTF-8 bytes
    assert env["QUERY_STRING"] == "x=1&y=%2F&z=caf%C3%A9"
    assert env["RAW_URI"] == "/environ/caf%C3%A9/a%20b?x=1&y=%2F&z=caf%C3%A9"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"
    assert env["headers"]["HTTP_X_REQUEST_ID"] == "r-42"
    assert env["headers"]["HTTP_COOKIE"] == "session=abc; theme=dark"
    assert "CONTENT_LENGTH" not in env["headers"]


def test_post_and_head(front):
    payload = bytes(range(256)) * 1000
    r = httpx.post(front.url + "/echo", content=payload, timeout=10)
    assert r.status_code == 200 and r.content == payload

    r = httpx.post(
        front.url + "/environ", content=b"a=1&b=2", headers={"Content-Type": "x/form"}, timeout=10
    )
    env = r.json()
    assert env["CONTENT_TYPE"] == "x/form" and env["CONTENT_LENGTH"] == "7"
    assert env["body"] == "a=1&b=2"

    r = httpx.head(front.url + "/environ", timeout=10)
    assert r.status_code == 200 and r.content == b""
    assert httpx.get(front.url + "/", timeout=10).text == "hello"


def test_chunked_upload_arrives_with_its_length(front):
    # nginx buffers a chunked upload even with uwsgi_request_buffering off and sends
    # its length: the server frames the body by CONTENT_LENGTH alone.
    pieces = [b"%05d" % i * 100 for i in range(200)]
    r = httpx.post(front.stream_url + "/count", content=iter(pieces), timeout=30)
    whole = b"".join(pieces)
    assert r.text == f"{len(whole)} {zlib.crc32(whole):08x}"


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_100_mb_upload_unbuffered_keeps_worker_memory_bounded(front):
    pid = front.worker_pid()
    size, piece = 100 * 1024 * 1024, bytes(range(256)) * 4096  # 1 MiB
    before = _rss(pid)
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss(pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    crc = 0

    def body():
        nonlocal crc
        for _ in range(size // len(piece)):
            crc = zlib.crc32(piece, crc)
            yield piece

    client = http.client.HTTPConnection("127.0.0.1", front.nginx.stream_port, timeout=60)
    try:
        # A Content-Length and no chunking: nginx streams it on as it comes.
        client.request("POST", "/count", body=body(), headers={"Content-Length": str(size)})
        response = client.getresponse()
        answer = response.read()
    finally:
        client.close()
        done.set()
        sampler.join(5)
    assert response.status == 200, answer[:300]
    assert answer == b"%d %08x" % (size, crc)
    growth = peak[0] - before
    print(f"worker RSS {before / 2**20:.1f} MiB, peak {peak[0] / 2**20:.1f} MiB during 100 MiB")
    assert growth < 20 * 1024 * 1024, f"worker RSS grew {growth / 2**20:.1f} MiB during the upload"
    assert front.worker_pid() == pid


# --- streams -----------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/stream", "/sse"])
def test_stream_reaches_the_client_as_written_and_ends_cleanly(front, route, tmp_path):
    # The application holds everything after its first piece until the client has
    # that piece: a stream nginx or unicorn held back would time out instead.
    mark = tmp_path / f"got-first-{route.strip('/')}"
    with httpx.stream("GET", front.stream_url + route, params={"mark": str(mark)}, timeout=15) as r:
        assert r.status_code == 200
        if route == "/sse":
            assert r.headers["content-type"] == "text/event-stream"
        pieces = r.iter_raw()
        got = next(pieces)
        mark.touch()
        got += b"".join(pieces)
    if route == "/sse":
        assert got == b"".join(b"data: %d\n\n" % i for i in range(4))
    else:
        assert got == b"".join(b"part %d\n" % i for i in range(5))


def test_client_disconnecting_mid_stream_leaves_the_worker_serving(front):
    pid = front.worker_pid()
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", front.nginx.stream_port), timeout=10) as s:
            s.sendall(b"GET /endless HTTP/1.1\r\nHost: localhost\r\n\r\n")
            got = 0
            while got < 1 << 20:
                got += len(s.recv(65536))
        assert httpx.get(front.url + "/", timeout=10).text == "hello"
    assert front.worker_pid() == pid


# --- the same environ over HTTP and over uwsgi ----------------------------------------


@pytest.mark.parametrize("worker", WORKERS)
def test_environ_is_the_same_over_http_and_over_uwsgi(unicorns, worker, tmp_path):
    direct = unicorns(worker, protocol="http")
    server = unicorns(worker)
    nginx = Nginx(tmp_path, f"unix:{server.socket_path}")
    try:
        headers = {
            "Host": "localhost",
            "X-Custom": "one",
            "Cookie": "a=1; b=2",
            "Accept-Language": "en-GB",
            "Content-Type": "application/json",
        }
        target = "/environ/x%2Fy/%C3%A9?q=a+b&r=%26"
        body = b'{"k": "v"}'
        over_http = httpx.post(direct.url + target, headers=headers, content=body).json()
        over_uwsgi = httpx.post(nginx.url + target, headers=headers, content=body).json()
    finally:
        nginx.stop()
    # What nginx itself adds or rewrites is no business of the protocol.
    for env in (over_http, over_uwsgi):
        for hop in ("HTTP_CONNECTION", "HTTP_HOST"):
            env["headers"].pop(hop, None)
    assert over_uwsgi == over_http


@pytest.mark.parametrize("worker", WORKERS)
def test_https_at_nginx_is_the_scheme_the_application_sees(unicorns, worker, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = unicorns(worker)
    nginx = Nginx(tmp_path, f"unix:{server.socket_path}", tls=(cert, key))
    try:
        over_tls = httpx.get(nginx.tls_url + "/environ", verify=False, timeout=10).json()
        plain = httpx.get(nginx.url + "/environ", timeout=10).json()
    finally:
        nginx.stop()
    assert over_tls["wsgi.url_scheme"] == "https"
    assert plain["wsgi.url_scheme"] == "http"


# --- refusals -------------------------------------------------------------------------

GOOD = pack(
    [
        (b"REQUEST_METHOD", b"GET"),
        (b"REQUEST_URI", b"/pid"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"HTTP_HOST", b"raw"),
    ]
)

BAD_PACKETS = {
    "modifier1": (b"\x05" + GOOD[1:], "modifier1 5"),
    "over-buffer-size": (b"\x00\xff\x7f\x00" + b"\x00" * 64, "uwsgi_buffer_size"),
    "nul-in-value": (
        pack([(b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"/"), (b"HTTP_X", b"a\x00b")]),
        "HTTP_X",
    ),
    "empty-key": (b"\x00\x05\x00\x00\x00\x00\x01\x00v", "empty key"),
}


@pytest.mark.parametrize("worker", WORKERS)
def test_bad_packets_close_the_connection_with_a_log_line(unicorns, worker, tmp_path):
    server = unicorns(worker)
    nginx = Nginx(tmp_path, f"127.0.0.1:{server.port}")
    try:
        pid = int(httpx.get(nginx.url + "/pid", timeout=10).text)
        for name, (raw, cause) in BAD_PACKETS.items():
            answer = send_raw(server.addr, raw)  # returns once unicorn has closed
            assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), (name, answer[:200])
            server.wait_log(cause)
            assert httpx.get(nginx.url + "/pid", timeout=10).text == str(pid), name
        assert send_raw(server.addr, GOOD).endswith(str(pid).encode())
    finally:
        nginx.stop()


@pytest.mark.parametrize("worker", ["sync", "gthread", "asgi"])
def test_packet_cut_short_by_the_peer_is_logged(unicorns, worker):
    server = unicorns(worker)
    answer = send_raw(server.addr, GOOD[:-3])  # returns once unicorn has closed
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:200]
    server.wait_log("closed inside a uwsgi packet", timeout=3)
    assert send_raw(server.addr, GOOD).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("worker", WORKERS)
def test_peer_outside_uwsgi_allow_ips_is_closed_with_a_log_line(unicorns, worker, tmp_path):
    server = unicorns(worker, "--uwsgi-allow-from", "192.0.2.1")
    assert send_raw(server.addr, GOOD) == b""
    server.wait_log("127.0.0.1")
    line = next(line for line in server.log().splitlines() if "uwsgi_allow_ips" in line)
    assert "127.0.0.1" in line
    # A Unix-socket peer is always admitted: nginx there is served.
    nginx = Nginx(tmp_path, f"unix:{server.socket_path}")
    try:
        assert httpx.get(nginx.url + "/", timeout=10).text == "hello"
    finally:
        nginx.stop()


@pytest.mark.parametrize(
    ("worker", "target", "headers", "status", "cause"),
    [
        ("sync", "/" + "a" * 100, {}, 414, "limit_request_line"),
        ("gthread", "/", {"Cookie": "c=" + "x" * 5000}, 431, "uwsgi_buffer_size"),
        ("asgi", "/", {"Cookie": "c=" + "x" * 5000}, 431, "uwsgi_buffer_size"),
    ],
)
def test_nginx_passes_the_error_status_of_a_refused_packet(
    unicorns, tmp_path, worker, target, headers, status, cause
):
    # A request nginx forwards but unicorn refuses: the client sees unicorn's status
    # and reason, unicorn's log says why, and the worker goes on serving.
    server = unicorns(worker, "--limit-request-line", "64")
    nginx = Nginx(tmp_path, f"unix:{server.socket_path}")
    try:
        r = httpx.get(nginx.url + target, headers=headers, timeout=10)
        assert r.status_code == status
        assert cause in r.text
        server.wait_log(cause)
        assert httpx.get(nginx.url + "/", timeout=10).text == "hello"
    finally:
        nginx.stop()


@pytest.mark.parametrize("worker", ["sync", "asgi"])
def test_uwsgi_buffer_size_lets_large_cookies_through(unicorns, tmp_path, worker):
    server = unicorns(worker, "--uwsgi-buffer-size", "16384")
    nginx = Nginx(tmp_path, f"unix:{server.socket_path}")
    cookie = "c=" + "x" * 5000
    try:
        r = httpx.get(nginx.url + "/environ", headers={"Cookie": cookie}, timeout=10)
    finally:
        nginx.stop()
    assert r.status_code == 200
    assert r.json()["headers"]["HTTP_COOKIE"] == cookie
