"""What only the gevent, eventlet and tornado workers promise, with real processes.

Many slow clients held by one worker while others are served, application
calls that look blocking (socket I/O, ``time.sleep``) yielding to other
requests, native tornado applications beside WSGI ones, the warnings these
workers owe their users, and TLS with an explicit handshake.
"""

from __future__ import annotations

import resource
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

from unicorn_server import Unicorn, wait_for

pytestmark = pytest.mark.timeout(90)

GREEN = ["gevent", "eventlet"]
SLOW_CLIENTS = 1000


def _raise_fd_limit(needed: int) -> None:
    """The test process and the server (which inherits the limit) each hold ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below the {needed} this test holds")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _get(url: str, **kw) -> httpx.Response:
    return httpx.get(url, timeout=kw.pop("timeout", 10), **kw)


@pytest.mark.parametrize("worker", ["gevent", "eventlet", "tornado"])
def test_one_worker_holds_a_thousand_slow_clients_and_serves_others(tmp_path, worker):
    _raise_fd_limit(SLOW_CLIENTS + 500)
    srv = Unicorn(
        tmp_path,
        "green_apps:app",
        "-k",
        worker,
        "--worker-connections",
        str(SLOW_CLIENTS + 100),
        "--keep-alive",
        "60",
        "--backlog",
        "2048",
    )
    slow: list[socket.socket] = []
    try:
        # Each slow client has sent half a request head and then goes quiet.
        for _ in range(SLOW_CLIENTS):
            s = socket.create_connection(srv.addr, timeout=20)
            s.sendall(b"GET /slow-client HTTP/1.1\r\nHost: t\r\n")
            slow.append(s)
        with httpx.Client(timeout=10) as client:
            for i in range(20):
                r = client.get(f"{srv.url}/other{i}")
                assert r.status_code == 200 and r.text.endswith(f"ok /other{i}")
        # Every slow client is still held: finishing its head gets its answer.
        for s in slow:
            s.sendall(b"Connection: close\r\n\r\n")
        answered = 0
        for s in slow:
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            answered += data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"ok /slow-client")
        assert answered == SLOW_CLIENTS
        pids = {line.split()[-1] for line in srv.log().splitlines() if "Booting worker" in line}
        assert len(pids) == 1  # one worker did all of it
    finally:
        for s in slow:
            s.close()
        srv.stop()


class HeldServer:
    """A local TCP server that reads a line and answers only when released."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.asked = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.recv(64)
            self.asked.set()
            self.release.wait(30)
            conn.sendall(b"the answer")

    def close(self) -> None:
        self.release.set()
        self.sock.close()


def _fetch_into(result: dict, key: str, url: str, timeout: float) -> None:
    try:
        result[key] = _get(url, timeout=timeout)
    except httpx.TransportError as exc:
        result[key] = exc


@pytest.mark.parametrize("worker", GREEN)
def test_blocking_looking_calls_yield_to_other_requests(tmp_path, worker):
    srv = Unicorn(tmp_path, "green_apps:app", "-k", worker, "--graceful-timeout", "1")
    held = HeldServer()
    result: dict[str, object] = {}
    fetch = threading.Thread(
        target=_fetch_into, args=(result, "fetch", f"{srv.url}/fetch?{held.port}", 30)
    )
    sleeper = threading.Thread(
        target=_fetch_into, args=(result, "sleep", f"{srv.url}/sleep?20", 30)
    )
    try:
        fetch.start()
        assert held.asked.wait(15), "the application never reached the local server"
        sleeper.start()
        # One worker: the app waits in recv() and in time.sleep(), and yet others are served.
        wait_for(lambda: _get(srv.url + "/quick").text.endswith("ok /quick"), what="a reply")
        for i in range(5):
            assert _get(f"{srv.url}/q{i}").status_code == 200
        assert fetch.is_alive() and sleeper.is_alive()
        held.release.set()
        fetch.join(15)
        assert result["fetch"].text == "fetched the answer"  # type: ignore[union-attr]
        assert sleeper.is_alive()
    finally:
        held.close()
        srv.stop()  # graceful_timeout (1 s) ends the sleeper's request
        fetch.join(5)
        sleeper.join(15)


@pytest.mark.parametrize("worker", ["gevent", "eventlet", "tornado"])
def test_a_request_waiting_longer_than_timeout_does_not_get_the_worker_killed(tmp_path, worker):
    # gunicorn's meaning of `timeout` for async workers: the heartbeat comes from
    # the loop, so only a loop that is itself stuck gets the worker replaced.
    srv = Unicorn(tmp_path, "green_apps:app", "-k", worker, "-t", "1")
    try:
        before = _get(srv.url + "/pid").text.split()[0]
        r = _get(srv.url + "/sleep?2.5")
        assert r.text == "slept"
        assert _get(srv.url + "/pid").text.split()[0] == before
        assert "WORKER TIMEOUT" not in srv.log()
    finally:
        srv.stop()


def test_eventlet_is_deprecated_at_boot(tmp_path):
    srv = Unicorn(tmp_path, "green_apps:app", "-k", "eventlet")
    try:
        srv.wait_log("The eventlet worker is deprecated")
        assert "-k gevent" in srv.log()
    finally:
        srv.stop()


@pytest.mark.parametrize("worker", GREEN)
def test_preload_warns_that_the_app_was_imported_unpatched(tmp_path, worker):
    srv = Unicorn(tmp_path, "green_apps:app", "-k", worker, "--preload")
    try:
        srv.wait_log("was imported in the master (--preload) before monkey-patching")
        assert _get(srv.url + "/x").status_code == 200
    finally:
        srv.stop()


def test_gevent_aliases_are_the_gevent_worker(tmp_path):
    for alias in ("gevent_wsgi", "gevent_pywsgi"):
        srv = Unicorn(tmp_path, "green_apps:app", "-k", alias)
        try:
            # core maps gunicorn's names to unicorn's gevent worker and says so
            srv.wait_log(f"Worker class {alias!r} is served by unicorn's 'gevent' worker")
            held = HeldServer()
            t = threading.Thread(target=_get, args=(f"{srv.url}/fetch?{held.port}",))
            t.start()
            assert held.asked.wait(15)
            assert _get(srv.url + "/quick").status_code == 200  # cooperative: gevent
            held.close()
            t.join(10)
        finally:
            srv.stop()


# --- tornado: native applications beside WSGI ones --------------------------------------


def test_tornado_serves_a_native_app_with_tornados_server(tmp_path):
    srv = Unicorn(tmp_path, "tornado_app:app", "-k", "tornado", "--max-requests", "50")
    try:
        r = _get(srv.url + "/")
        assert r.text == "hello from tornado"
        assert r.headers["server"].startswith("TornadoServer")
        assert httpx.post(srv.url + "/echo", content=b"x" * 5000).content == b"x" * 5000
        # Coroutine handlers run concurrently on the IOLoop.
        slow = threading.Thread(target=_get, args=(srv.url + "/sleep?s=3",))
        slow.start()
        try:
            assert _get(srv.url + "/", timeout=2.5).status_code == 200
            assert slow.is_alive()
        finally:
            slow.join(10)
        srv.wait_log("serving a tornado.web.Application")
    finally:
        srv.stop()


def test_tornado_native_app_max_requests_and_graceful_stop(tmp_path):
    srv = Unicorn(
        tmp_path,
        "tornado_app:app",
        "-k",
        "tornado",
        "--max-requests",
        "3",
        env={"ROUTES_MARK_DIR": str(tmp_path)},
    )
    try:

        def pid() -> str | None:
            try:
                return _get(srv.url + "/whoami", headers={"Connection": "close"}).text.split()[0]
            except httpx.TransportError:
                return None

        pids = {wait_for(pid)}
        wait_for(lambda: pids.add(pid()) or len(pids - {None}) >= 2, what="a recycled worker")
        # TERM while a request is in flight: it is answered, then the worker exits.
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("r", _get(srv.url + "/sleep?s=1")))
        t.start()
        wait_for(lambda: (tmp_path / "entered").exists(), what="the request to reach the app")
        srv.proc.send_signal(15)
        t.join(10)
        assert result["r"].text == "slept"
        assert srv.proc.wait(10) == 0
    finally:
        srv.stop()


def test_tornado_serves_wsgi_apps_on_unicorns_parser(tmp_path):
    srv = Unicorn(tmp_path, "wsgi_routes:app", "-k", "tornado")
    try:
        r = _get(srv.url + "/whoami")
        assert r.headers["server"] == "unicorn"  # not TornadoServer: our serializer
        # A request tornado's own parser would take apart but ours refuses.
        with socket.create_connection(srv.addr, timeout=10) as s:
            s.sendall(
                b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
            )
            data = s.recv(4096)
        assert data.startswith(b"HTTP/1.1 400"), data
    finally:
        srv.stop()


# --- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    return d / "cert.pem", d / "key.pem"


@pytest.mark.parametrize("worker", ["gevent", "eventlet", "tornado"])
def test_tls(tmp_path, cert, worker):
    certfile, keyfile = cert
    ctx = ssl.create_default_context(cafile=str(certfile))
    srv = Unicorn(
        tmp_path,
        "wsgi_routes:app",
        "-k",
        worker,
        "--certfile",
        str(certfile),
        "--keyfile",
        str(keyfile),
        ssl_context=ctx,
    )
    try:
        url = f"https://127.0.0.1:{srv.port}"
        with httpx.Client(verify=ctx, timeout=10) as client:
            answers = {client.get(url + "/whoami").text for _ in range(3)}
            assert len(answers) == 1  # keep-alive over TLS
            body = b"y" * 100_000
            assert client.post(url + "/echo", content=body).content == body
        # A client that connects and never starts the handshake holds nobody up.
        with socket.create_connection(srv.addr, timeout=10):
            assert httpx.get(url + "/whoami", verify=ctx, timeout=10).status_code == 200
        # ... and a failed handshake leaves nothing behind: the stop is prompt and clean.
        srv.proc.send_signal(15)
        assert srv.proc.wait(5) == 0
        assert "Traceback" not in srv.log()
    finally:
        srv.stop()
