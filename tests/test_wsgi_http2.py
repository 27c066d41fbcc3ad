"""WSGI over HTTP/2 on the gthread, gevent and eventlet workers, with real clients:
httpx, curl, nghttp, h2load, and h2's own client over a raw socket where a test
needs frames (resets, windows, GOAWAY, refused streams).

The connection starts as HTTP/2 by ALPN over TLS, by the preface in cleartext
(`--http2-cleartext prior-knowledge`), or by an HTTP/1.1 `Upgrade: h2c` (`upgrade`).
"""

from __future__ import annotations

import importlib.util
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

h2_config = pytest.importorskip("h2.config")
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.exceptions  # noqa: E402
import h2.settings  # noqa: E402
import httpx  # noqa: E402

from tests.support.unicorn_server import Unicorn, wait_for  # noqa: E402
from tests.test_asgi_tls import pki  # noqa: E402, F401 - the fixture

APP = "wsgi_h2:app"
H2C = ("--http-protocols", "h2,h1", "--http2-cleartext", "prior-knowledge")


def _workers() -> list[str]:
    kinds = ["gthread"]
    for lib in ("gevent", "eventlet"):
        try:
            if importlib.util.find_spec(lib) is None:
                raise ImportError(lib)
        except ImportError:
            continue
        kinds.append(lib)
    return kinds


WORKERS = _workers()


def start(tmp, worker: str, *args: str, marks=None, ssl_context=None) -> Unicorn:
    env = {"H2_MARK_DIR": str(marks or tmp)}
    extra = ("--threads", "4") if worker == "gthread" else ()
    return Unicorn(tmp, APP, "-k", worker, *extra, *args, env=env, ssl_context=ssl_context)


@pytest.fixture(scope="module", params=WORKERS)
def worker(request):
    return request.param


@pytest.fixture(scope="module")
def server(tmp_path_factory, worker):
    tmp = tmp_path_factory.mktemp(f"h2-{worker}")
    srv = start(tmp, worker, *H2C, "--access-logfile", str(tmp / "access.log"))
    srv.tmp = tmp
    yield srv
    srv.stop()


class RawH2:
    """h2's client over a socket: frames in, events out."""

    def __init__(self, addr, window: int | None = None) -> None:
        self.sock = socket.create_connection(addr, timeout=10)
        self.seen: list = []
        self.conn = h2.connection.H2Connection(h2_config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        if window is not None:
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.flush()

    def flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def request(self, path: str, end: bool = True, method: str = "GET") -> int:
        sid = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "t")]
        self.conn.send_headers(sid, headers, end_stream=end)
        self.flush()
        return sid

    def events(self, timeout: float = 10.0) -> list:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return []
        if not data:
            return [None]
        events = self.conn.receive_data(data)
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                try:
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                except h2.exceptions.ProtocolError:
                    pass  # the connection is closing
        self.flush()
        self.seen.extend(events)
        return events

    def until(self, check, timeout: float = 10.0) -> list:
        """Events until ``check(event)`` is true for one of them (or EOF)."""
        seen: list = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.events(max(0.05, deadline - time.monotonic()))
            seen.extend(events)
            if any(e is None or check(e) for e in events):
                return seen
        raise AssertionError(f"no matching event within {timeout} s: {seen}")

    def body(self, sid: int, timeout: float = 10.0) -> tuple[int, bytes]:
        """The status and body of stream ``sid`` (from every event seen so far)."""

        def ended(e):
            return getattr(e, "stream_id", None) == sid and isinstance(
                e, (h2.events.StreamEnded, h2.events.StreamReset)
            )

        if not any(ended(e) for e in self.seen):
            self.until(ended, timeout)
        mine = [e for e in self.seen if getattr(e, "stream_id", None) == sid]
        for event in mine:
            if isinstance(event, h2.events.StreamReset):
                raise AssertionError(f"stream {sid} reset: {event.error_code!r}")
        if not any(isinstance(e, h2.events.StreamEnded) for e in mine):
            raise AssertionError(f"connection closed; events so far: {self.seen}")
        status = next(
            int(dict(e.headers)[b":status"])
            for e in mine
            if isinstance(e, h2.events.ResponseReceived)
        )
        body = b"".join(e.data for e in mine if isinstance(e, h2.events.DataReceived))
        return status, body

    def close(self) -> None:
        self.sock.close()


# -- clients -------------------------------------------------------------------------------


def test_httpx_prior_knowledge_environ(server):
    with httpx.Client(http1=False, http2=True, timeout=10) as client:
        resp = client.get(f"{server.url}/environ", headers={"x-forwarded-proto": "https"})
        assert resp.http_version == "HTTP/2"
        env = resp.json()
        assert env["SERVER_PROTOCOL"] == "HTTP/2"
        # the same edge rules as HTTP/1.1: 127.0.0.1 is trusted by default
        assert env["wsgi.url_scheme"] == "https"
        assert env["REMOTE_ADDR"] == "127.0.0.1"
        assert env["SERVER_NAME"] == "127.0.0.1"
        # many requests on one connection
        assert {client.get(f"{server.url}/").text for _ in range(5)} == {"HTTP/2"}
    wait_for(
        lambda: "HTTP/2" in (server.tmp / "access.log").read_text(),
        what="an HTTP/2 line in the access log",
    )


def test_http1_still_served(server):
    resp = subprocess.run(
        ["curl", "-s", "--max-time", "10", "--http1.1", f"{server.url}/"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    # prior-knowledge only: a trusted peer that does not open with the preface gets 400
    assert "expected the HTTP/2 connection preface" in resp.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_prior_knowledge_upload(server):
    out = subprocess.run(
        ["curl", "-s", "--max-time", "10", "--http2-prior-knowledge", "-w", " %{http_version}",
         "--data-binary", "@-", f"{server.url}/upload"],
        input=b"y" * 300_000, capture_output=True, timeout=20,
    )  # fmt: skip
    assert out.stdout == b"300000 2"


@pytest.mark.skipif(shutil.which("nghttp") is None, reason="nghttp is not installed")
def test_nghttp(server):
    out = subprocess.run(
        ["nghttp", "-n", "-s", "-m", "5", f"{server.url}/"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "5 complete" in out.stdout or out.stdout.count("/") >= 5


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load is not installed")
def test_h2load_no_failed_streams(server):
    out = subprocess.run(
        ["h2load", "-n", "2000", "-c", "4", "-m", "10", "-T", "20", f"{server.url}/"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "2000 succeeded, 0 failed, 0 errored, 0 timeout" in out.stdout, out.stdout


# -- flow control --------------------------------------------------------------------------


def test_slow_reader_backpressures_the_upload(server, worker):
    """The application reads 1000 bytes and waits: the stream's window is not
    refilled beyond those, so the client cannot send more than one window."""
    marks = server.tmp
    (marks / "go").unlink(missing_ok=True)
    raw = RawH2(server.addr)
    try:
        sid = raw.conn.get_next_available_stream_id()
        raw.conn.send_headers(
            sid,
            [(":method", "POST"), (":path", "/upload?hold"), (":scheme", "http"),
             (":authority", "t")],
        )  # fmt: skip
        total = 4 << 20
        sent = 0
        stalled_since = None
        while sent < total:
            window = min(raw.conn.local_flow_control_window(sid), 16384, total - sent)
            if window > 0:
                raw.conn.send_data(sid, b"z" * window)
                raw.flush()
                sent += window
                stalled_since = None
                continue
            if stalled_since is None:
                stalled_since = time.monotonic()
            elif time.monotonic() - stalled_since > 1.0:
                break  # no WINDOW_UPDATE for a second: the server holds back
            raw.events(0.2)
        # one stream window (65535) plus the 1000 bytes the app read: nothing more
        assert sent <= 65535 + 1000, sent
        (marks / "go").write_text("")
        while sent < total:
            window = min(raw.conn.local_flow_control_window(sid), 16384, total - sent)
            if window > 0:
                raw.conn.send_data(sid, b"z" * window)
                raw.flush()
                sent += window
            else:
                assert raw.events(10) != [None]
        raw.conn.end_stream(sid)
        raw.flush()
        status, body = raw.body(sid, timeout=30)
        assert (status, body) == (200, str(total).encode())
    finally:
        raw.close()


def test_streamed_response_bigger_than_the_window(server):
    raw = RawH2(server.addr, window=16384)
    try:
        sid = raw.request(f"/big?{4 << 20}")
        status, body = raw.body(sid, timeout=30)
        assert status == 200 and len(body) == 4 << 20
    finally:
        raw.close()


# -- failures ------------------------------------------------------------------------------


def test_app_error_before_the_response_is_500(server):
    with httpx.Client(http1=False, http2=True, timeout=10) as client:
        resp = client.get(f"{server.url}/boom")
        assert resp.status_code == 500
        # the connection goes on
        assert client.get(f"{server.url}/").text == "HTTP/2"
    server.wait_log("Error handling request /boom")


def test_app_error_mid_response_resets_the_stream(server):
    raw = RawH2(server.addr)
    try:
        sid = raw.request("/midboom")
        seen = raw.until(lambda e: isinstance(e, h2.events.StreamReset))
        reset = [e for e in seen if isinstance(e, h2.events.StreamReset)]
        assert reset and reset[0].stream_id == sid
        assert reset[0].error_code == h2.errors.ErrorCodes.INTERNAL_ERROR
        # the other streams go on
        assert raw.body(raw.request("/")) == (200, b"HTTP/2")
    finally:
        raw.close()
    server.wait_log("boom mid-response")


# -- limits and stopping -------------------------------------------------------------------


@pytest.mark.parametrize("kind", WORKERS)
def test_more_streams_than_the_limit_are_refused(tmp_path, kind):
    srv = start(tmp_path, kind, *H2C, "--http2-max-concurrent-streams", "2")
    raw = RawH2(srv.addr)
    try:
        first = [raw.request("/wait/limit") for _ in range(2)]
        third = raw.request("/wait/limit")
        seen = raw.until(lambda e: isinstance(e, h2.events.StreamReset))
        reset = [e for e in seen if isinstance(e, h2.events.StreamReset)]
        assert reset[0].stream_id == third
        assert reset[0].error_code == h2.errors.ErrorCodes.REFUSED_STREAM
        (tmp_path / "limit").write_text("")
        for sid in first:
            assert raw.body(sid) == (200, b"waited")
    finally:
        raw.close()
        srv.stop()


@pytest.mark.skipif(shutil.which("nghttp") is None, reason="nghttp is not installed")
@pytest.mark.parametrize("kind", WORKERS)
def test_graceful_stop_goaway_and_the_stream_finishes(tmp_path, kind):
    """SIGTERM with a stream in flight: GOAWAY(NO_ERROR) naming that stream, which
    then finishes (nghttp, which keeps a stream going after GOAWAY as it should)."""
    srv = start(tmp_path, kind, *H2C, "--graceful-timeout", "20")
    trace = tmp_path / "nghttp.out"
    with open(trace, "wb") as out_file:
        client = subprocess.Popen(
            ["nghttp", "-v", "--no-dep", f"{srv.url}/wait/stop"],
            stdout=out_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for((tmp_path / "started-stop").exists, what="the stream's application to run")
        srv.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "recv GOAWAY" in trace.read_text(), what="the GOAWAY")
        (tmp_path / "stop").write_text("")
        client.wait(20)
        out = trace.read_text()
        assert "recv GOAWAY" in out, out
        assert "last_stream_id=1," in out and "error_code=NO_ERROR" in out, out
        # the response went out after the GOAWAY
        goaway = out.index("recv GOAWAY")
        assert "waited" in out[goaway:], out
        srv.proc.wait(20)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        srv.stop()


@pytest.mark.parametrize("kind", WORKERS)
def test_idle_connection_closed_after_keepalive(tmp_path, kind):
    srv = start(tmp_path, kind, *H2C, "--keep-alive", "1")
    raw = RawH2(srv.addr)
    try:
        assert raw.body(raw.request("/")) == (200, b"HTTP/2")
        started = time.monotonic()
        seen = raw.until(lambda e: isinstance(e, h2.events.ConnectionTerminated), timeout=10)
        assert any(isinstance(e, h2.events.ConnectionTerminated) for e in seen)
        assert time.monotonic() - started < 8
    finally:
        raw.close()
        srv.stop()


@pytest.mark.parametrize("kind", WORKERS)
def test_max_requests_sends_goaway(tmp_path, kind):
    """max_requests counts streams: the worker says GOAWAY, the streams it accepted
    are answered (the harness's own probe may be the first request counted)."""
    srv = start(tmp_path, kind, *H2C, "--max-requests", "3")
    raw = RawH2(srv.addr)
    try:
        sent = []
        for _ in range(6):
            try:
                sid = raw.request("/")
            except OSError:
                break  # closed after its GOAWAY
            sent.append(sid)
            raw.until(
                lambda e, sid=sid: isinstance(e, h2.events.ConnectionTerminated)
                or (getattr(e, "stream_id", None) == sid and isinstance(
                    e, (h2.events.StreamEnded, h2.events.StreamReset)))
            )  # fmt: skip
            if any(isinstance(e, h2.events.ConnectionTerminated) for e in raw.seen):
                break
        goaway = [e for e in raw.seen if isinstance(e, h2.events.ConnectionTerminated)]
        assert goaway and goaway[0].error_code == h2.errors.ErrorCodes.NO_ERROR
        assert 2 <= len(sent) <= 4
        for sid in sent:
            if sid <= goaway[0].last_stream_id:
                assert raw.body(sid) == (200, b"HTTP/2")
    finally:
        raw.close()
        srv.stop()


# -- TLS and ALPN --------------------------------------------------------------------------


@pytest.mark.parametrize("handshake", ["on-connect", "explicit"])
@pytest.mark.parametrize("kind", WORKERS)
def test_tls_alpn(pki, tmp_path, kind, handshake):  # noqa: F811
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    args = ["--certfile", str(pki / "server.pem"), "--keyfile", str(pki / "server.key"),
            "--http-protocols", "h2,h1"]  # fmt: skip
    if handshake == "on-connect":
        args.append("--do-handshake-on-connect")
    # else gunicorn's default: the worker does the handshake before reading ALPN
    srv = start(tmp_path, kind, *args, ssl_context=ctx)
    try:
        url = f"https://127.0.0.1:{srv.port}"
        with httpx.Client(http2=True, verify=ctx, timeout=10) as client:
            resp = client.get(f"{url}/environ")
            assert resp.http_version == "HTTP/2"
            assert resp.json()["SERVER_PROTOCOL"] == "HTTP/2"
            assert resp.json()["wsgi.url_scheme"] == "https"
        with httpx.Client(http2=False, verify=ctx, timeout=10) as client:
            assert client.get(f"{url}/").text == "HTTP/1.1"
        if shutil.which("curl"):
            out = subprocess.run(
                ["curl", "-s", "--max-time", "10", "--http2", "--cacert", str(pki / "ca.pem"),
                 "-w", " %{http_version}", f"{url}/"],
                capture_output=True, text=True, timeout=20,
            )  # fmt: skip
            assert out.stdout == "HTTP/2 2"
    finally:
        srv.stop()


def test_sync_worker_does_not_offer_h2(pki, tmp_path):  # noqa: F811
    """The sync worker cannot carry HTTP/2: ALPN there offers HTTP/1.1 alone."""
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    args = ["--certfile", str(pki / "server.pem"), "--keyfile", str(pki / "server.key"),
            "--http-protocols", "h2,h1"]  # fmt: skip
    srv = Unicorn(tmp_path, APP, "-k", "sync", *args, ssl_context=ctx)
    try:
        with httpx.Client(http2=True, verify=ctx, timeout=10) as client:
            assert client.get(f"https://127.0.0.1:{srv.port}/").text == "HTTP/1.1"
    finally:
        srv.stop()


# -- h2c Upgrade from HTTP/1.1 (http2_cleartext upgrade / both) ----------------------------


@pytest.fixture(scope="module")
def upgrade_server(tmp_path_factory, worker):
    tmp = tmp_path_factory.mktemp(f"h2c-{worker}")
    srv = start(tmp, worker, "--http-protocols", "h2,h1", "--http2-cleartext", "both")
    yield srv
    srv.stop()


def _curl(*args: str) -> str:
    out = subprocess.run(
        ["curl", "-s", "-i", "--max-time", "10", *args], capture_output=True, text=True, timeout=20
    )
    return out.stdout.replace("\r\n", "\n")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_h2c_upgrade(upgrade_server):
    out = _curl("--http2", f"{upgrade_server.url}/environ")
    assert out.startswith("HTTP/1.1 101 Switching Protocols\n"), out
    assert "\nupgrade: h2c\n" in out.lower()
    head, body = out.split("\n\n", 2)[1:]
    assert head.startswith("HTTP/2 200")  # stream 1, after the 101
    assert '"SERVER_PROTOCOL": "HTTP/2"' in body
    # the port takes prior knowledge too (both)
    out = _curl("--http2-prior-knowledge", f"{upgrade_server.url}/")
    assert out.startswith("HTTP/2 200") and out.endswith("HTTP/2")
    # a request with a body is not upgraded (as on the asgi worker): HTTP/1.1 serves it
    out = _curl("--http2", "--data-binary", "hello", f"{upgrade_server.url}/upload")
    assert out.startswith("HTTP/1.1 200") and out.endswith("\n5"), out


@pytest.mark.skipif(shutil.which("nghttp") is None, reason="nghttp is not installed")
def test_nghttp_h2c_upgrade_then_more_streams(upgrade_server):
    url = f"{upgrade_server.url}/"
    out = subprocess.run(
        ["nghttp", "-u", "-v", url, url + "big?131072"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "HTTP Upgrade success" in out.stdout, out.stdout
    # stream 1 (the upgraded request) and stream 3 each get their response
    assert out.stdout.count(":status: 200") == 2, out.stdout


def test_h2c_upgrade_with_bad_settings_is_400(upgrade_server):
    with socket.create_connection(upgrade_server.addr, timeout=10) as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMA\r\n\r\n"
        )
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400") and b"HTTP2-Settings" in reply, reply


def test_h2c_upgrade_is_for_trusted_peers(tmp_path, worker):
    # the whole of 127/8 is loopback: 127.0.0.2 is trusted, 127.0.0.1 is not
    srv = start(
        tmp_path, worker, "--http-protocols", "h2,h1", "--http2-cleartext", "upgrade",
        "--forwarded-allow-ips", "127.0.0.2",
    )  # fmt: skip
    try:
        out = _curl("--http2", "--interface", "127.0.0.2", f"{srv.url}/")
        assert out.startswith("HTTP/1.1 101") and out.endswith("HTTP/2"), out
        out = _curl("--http2", f"{srv.url}/")
        assert out.startswith("HTTP/1.1 200") and out.endswith("HTTP/1.1"), out
    finally:
        srv.stop()
