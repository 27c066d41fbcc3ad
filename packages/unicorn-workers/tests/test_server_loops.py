"""The sync and gthread loops on real listening sockets, without the arbiter."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from types import SimpleNamespace

import httpx
import pytest

from unicorn_workers import Control
from unicorn_workers.gthread import SelectorSet, ThreadedServer
from unicorn_workers.sync import SyncServer
from unicorn_workers.wsgi import WSGIConfig

pytestmark = pytest.mark.timeout(20)


def echo_app(environ, start_response):
    body = environ["wsgi.input"].read()
    if environ["PATH_INFO"] == "/slow":
        time.sleep(float(environ["QUERY_STRING"] or "0.5"))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["PATH_INFO"].encode(), b" ", body]


def listen() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@pytest.fixture
def serve(h):
    started = []

    @contextmanager
    def start(kind, app=echo_app, *, max_requests=0, **opts):
        log = h.Log()
        lsock = listen()
        control = Control(max_requests=max_requests)
        settings = SimpleNamespace(timeout=5)
        if kind == "sync":
            config = WSGIConfig(app, settings, log, keepalive=False)
            server = SyncServer([lsock], config, control)
        else:
            config = WSGIConfig(app, settings, log, multithread=True)
            if kind == "gthread-selector":
                opts["poller"] = SelectorSet()
            server = ThreadedServer([lsock], config, control, **opts)
        thread = threading.Thread(target=server.serve, daemon=True)
        thread.start()
        info = SimpleNamespace(
            url="http://{}:{}".format(*lsock.getsockname()),
            addr=lsock.getsockname(),
            control=control,
            server=server,
            thread=thread,
            log=log,
        )
        started.append(info)
        try:
            yield info
        finally:
            control.stop()
            thread.join(10)
            lsock.close()
            control.close()

    return start


def read_until_closed(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


@pytest.fixture(params=["gthread", "gthread-selector"])
def gthread(request):
    """gthread on epoll, and on the selector fallback used where there is no epoll."""
    return request.param


@pytest.mark.parametrize("kind", ["sync", "gthread", "gthread-selector"])
def test_get_and_post(serve, kind):
    with serve(kind) as srv:
        r = httpx.get(srv.url + "/hello")
        assert r.status_code == 200 and r.text == "/hello "
        r = httpx.post(srv.url + "/up", content=b"payload")
        assert r.text == "/up payload"
        r = httpx.post(srv.url + "/chunked", content=iter([b"a", b"bc"]))
        assert r.text == "/chunked abc"


def test_sync_closes_every_connection(serve):
    with serve("sync") as srv, socket.create_connection(srv.addr, timeout=5) as s:
        s.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_until_closed(s)
    assert data.count(b"HTTP/1.1 200") == 1
    assert b"Connection: close\r\n" in data


def test_sync_stops_after_max_requests(serve):
    with serve("sync", max_requests=2) as srv:
        httpx.get(srv.url)
        httpx.get(srv.url)
        srv.thread.join(5)
        assert not srv.thread.is_alive()
        assert srv.control.nr == 2


def test_gthread_keeps_connections_alive_and_pipelines(serve, gthread):
    with serve(gthread, threads=2) as srv:
        with httpx.Client() as client:
            for i in range(5):
                r = client.get(srv.url + f"/{i}")
                assert r.text == f"/{i} "
            # one pooled connection served all five (counted just after each response)
            deadline = time.monotonic() + 5
            while srv.control.nr < 5 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert srv.control.nr == 5
            assert len(srv.server.conns) == 1
        with socket.create_connection(srv.addr, timeout=5) as s:
            s.sendall(b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(10)))
            s.sendall(b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = read_until_closed(s)
        bodies = [part.split(b"\r\n\r\n", 1)[1] for part in data.split(b"HTTP/1.1 ")[1:]]
        assert bodies == [b"/p%d " % i for i in range(10)] + [b"/last "]


def test_gthread_closes_idle_connections_after_keepalive(serve, gthread):
    with serve(gthread, keepalive=0.3) as srv, socket.create_connection(srv.addr, timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert s.recv(65536) == b""  # the server closed the idle connection
        assert time.monotonic() - started < 3


def test_gthread_slow_request_does_not_block_others(serve, gthread):
    in_app = threading.Event()
    release = threading.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/slow":
            in_app.set()
            release.wait(10)
        return echo_app(environ, start_response)

    with serve(gthread, app, threads=2) as srv:
        slow = threading.Thread(target=httpx.get, args=(srv.url + "/slow",))
        slow.start()
        assert in_app.wait(5)
        try:
            assert httpx.get(srv.url + "/fast").status_code == 200
            assert slow.is_alive()
        finally:
            release.set()
            slow.join()


def test_gthread_worker_connections_bound(serve, gthread):
    release = threading.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/hold":
            release.wait(10)
        return echo_app(environ, start_response)

    with serve(gthread, app, threads=2, worker_connections=2) as srv:
        holders = []
        for _ in range(2):
            s = socket.create_connection(srv.addr, timeout=5)
            s.sendall(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
            holders.append(s)
        # the bound is reached: a third client waits in the backlog
        third = socket.create_connection(srv.addr, timeout=5)
        third.sendall(b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n")
        third.settimeout(0.5)
        with pytest.raises(TimeoutError):
            third.recv(65536)
        release.set()
        answers = [s.recv(65536) for s in holders]
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers)
        # at the bound, a response ends its connection to give the backlog a turn
        assert any(b"Connection: close" in a for a in answers)
        third.settimeout(5)
        assert third.recv(65536).startswith(b"HTTP/1.1 200")
        for s in [*holders, third]:
            s.close()


def test_gthread_graceful_drain(serve, gthread):
    in_app = threading.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/slow":
            in_app.set()
            time.sleep(0.5)
        return echo_app(environ, start_response)

    with serve(gthread, app, threads=2, graceful_timeout=5) as srv:
        result = {}

        def slow():
            result["r"] = httpx.get(srv.url + "/slow")

        t = threading.Thread(target=slow)
        t.start()
        idle = socket.create_connection(srv.addr, timeout=5)
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        idle.recv(65536)
        assert in_app.wait(5)
        srv.control.stop()
        assert idle.recv(65536) == b""  # idle keep-alive connections are closed at once
        t.join(5)
        assert result["r"].status_code == 200  # the in-flight request finished
        assert result["r"].headers["connection"] == "close"
        srv.thread.join(5)
        assert not srv.thread.is_alive()
        # no longer accepting
        with pytest.raises(OSError), socket.create_connection(srv.addr, timeout=1) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            if not s.recv(100):
                raise ConnectionResetError


def test_gthread_graceful_timeout_bounds_the_drain(serve, gthread):
    in_app = threading.Event()

    def app(environ, start_response):
        in_app.set()
        time.sleep(3)
        return echo_app(environ, start_response)

    with serve(gthread, app, threads=1, graceful_timeout=0.3) as srv:
        t = threading.Thread(target=lambda: httpx.get(srv.url, timeout=5), daemon=True)
        t.start()
        assert in_app.wait(5)
        started = time.monotonic()
        srv.control.stop()
        srv.thread.join(5)
        assert time.monotonic() - started < 1.5
        assert "Graceful timeout" in srv.log.text("warning")


def test_gthread_max_requests(serve, gthread):
    with serve(gthread, threads=2, max_requests=3) as srv:
        with httpx.Client() as client:
            codes = [client.get(srv.url).status_code for _ in range(3)]
        assert codes == [200, 200, 200]
        srv.thread.join(5)
        assert not srv.thread.is_alive()


def test_gthread_bad_request_does_not_affect_other_connections(serve, gthread):
    with serve(gthread, threads=2) as srv, httpx.Client() as client:
        assert client.get(srv.url + "/a").status_code == 200
        with socket.create_connection(srv.addr, timeout=5) as s:
            s.sendall(
                b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
            )
            data = read_until_closed(s)
        assert data.startswith(b"HTTP/1.1 400")
        assert b"Content-Length" in data
        assert client.get(srv.url + "/b").text == "/b "


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    import shutil
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-keyout", str(d / "k.pem"), "-out", str(d / "c.pem")),
        ],
        check=True,
        capture_output=True,
    )
    return d / "c.pem", d / "k.pem"


@pytest.mark.parametrize("kind", ["sync", "gthread", "gthread-selector"])
def test_tls(h, tls_files, kind, tmp_path):
    import ssl

    cert, key = tls_files
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    blob = tmp_path / "blob"
    blob.write_bytes(b"z" * 300_000)

    def app(environ, start_response):
        start_response("200 OK", [])
        if environ["PATH_INFO"] == "/file":
            return environ["wsgi.file_wrapper"](open(blob, "rb"))
        return [environ["wsgi.url_scheme"].encode(), b" ", environ["wsgi.input"].read()]

    lsock = listen()
    control = Control(ssl_context=ctx)
    settings = SimpleNamespace(timeout=5)
    if kind == "sync":
        server = SyncServer([lsock], WSGIConfig(app, settings, h.Log(), keepalive=False), control)
    else:
        poller = SelectorSet() if kind == "gthread-selector" else None
        server = ThreadedServer(
            [lsock], WSGIConfig(app, settings, h.Log()), control, threads=2, poller=poller
        )
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    url = "https://{}:{}".format(*lsock.getsockname())
    try:
        with httpx.Client(verify=False) as client:
            for _ in range(3):
                r = client.post(url + "/", content=b"secret")
                assert r.text == "https secret"
            assert client.get(url + "/file").content == b"z" * 300_000
    finally:
        control.stop()
        thread.join(10)
        lsock.close()
        control.close()
