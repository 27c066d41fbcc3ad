"""HTTP/2 on the ASGI worker, with real clients: curl, httpx, h2load, and h2's
own client over a raw socket where a test needs frames (resets, trailers, 103).

The connection starts as HTTP/2 by ALPN over TLS, by the preface in cleartext
(`--http2-cleartext prior-knowledge`), or by `Upgrade: h2c` (`upgrade`).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import ssl
import subprocess

import h2.config
import h2.connection
import h2.events
import httpx
import pytest

from tests.support.unicorn_server import Unicorn, wait_for
from tests.test_asgi_tls import pki  # noqa: F401 - the fixture

APP = "asgi_h2:app"
H2C = ("--http-protocols", "h2,h1", "--http2-cleartext", "both")


@pytest.fixture(scope="module")
def marks(tmp_path_factory):
    return tmp_path_factory.mktemp("marks")


@pytest.fixture(scope="module")
def server(tmp_path_factory, marks):
    srv = Unicorn(
        tmp_path_factory.mktemp("h2"), APP, "-k", "asgi", *H2C, env={"ASGI_MARK_DIR": str(marks)}
    )
    yield srv
    srv.stop()


def curl(*args: str) -> str:
    result = subprocess.run(
        ["curl", "-s", "-i", "--max-time", "10", *args], capture_output=True, text=True, timeout=20
    )
    return result.stdout.replace("\r\n", "\n")


def body_of(out: str) -> str:
    return out.split("\n\n", 1)[1]


class RawH2:
    """h2's client over a socket: frames in, events out, for the frame-level checks."""

    def __init__(self, addr) -> None:
        self.sock = socket.create_connection(addr, timeout=10)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()

    def flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def request(self, path: str, end: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        headers = [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "t")]
        self.conn.send_headers(sid, headers, end_stream=end)
        self.flush()
        return sid

    def events(self) -> list:
        data = self.sock.recv(65536)
        if not data:
            return [None]
        events = self.conn.receive_data(data)
        self.flush()
        return events

    def until(self, check, what: str) -> list:
        seen: list = []
        for _ in range(200):
            batch = self.events()
            seen.extend(batch)
            if None in batch or check(seen):
                return seen
        raise AssertionError(f"no {what} in {seen}")

    def close(self) -> None:
        self.sock.close()


def test_prior_knowledge_with_curl(server):
    out = curl("--http2-prior-knowledge", server.url + "/scope")
    assert out.startswith("HTTP/2 200"), out
    assert json.loads(body_of(out)) == {
        "http_version": "2",
        "scheme": "http",
        "method": "GET",
    }


def test_h2c_upgrade_with_curl(server):
    out = curl("--http2", server.url + "/scope")
    assert out.startswith("HTTP/1.1 101 Switching Protocols"), out
    assert "HTTP/2 200" in out and '"http_version": "2"' in out


def test_httpx_streams_and_uploads_past_the_window(server):
    with httpx.Client(http1=False, http2=True, timeout=10) as client:
        r = client.get(server.url + "/stream")
        assert r.http_version == "HTTP/2" and r.text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"
        body = b"u" * 1_000_000  # fifteen times the 65535-byte initial window
        r = client.post(server.url + "/upload", content=body)
        assert r.text == str(len(body))
        # many streams on the one connection
        for _ in range(20):
            assert client.get(server.url + "/").text == "hello"


def test_trailers_and_early_hints_as_headers_frames(server):
    raw = RawH2(server.addr)
    try:
        sid = raw.request("/trailers")
        seen = raw.until(lambda s: any(isinstance(e, h2.events.StreamEnded) for e in s), "end")
        trailers = [e for e in seen if isinstance(e, h2.events.TrailersReceived)]
        assert trailers and dict(trailers[0].headers)[b"x-checksum"] == b"abc"
        assert trailers[0].stream_id == sid
        sid = raw.request("/hints")
        seen = raw.until(lambda s: any(isinstance(e, h2.events.StreamEnded) for e in s), "end")
        informational = [e for e in seen if isinstance(e, h2.events.InformationalResponseReceived)]
        assert informational and dict(informational[0].headers)[b":status"] == b"103"
        assert b"preload" in dict(informational[0].headers)[b"link"]
    finally:
        raw.close()


def test_a_reset_stream_is_an_http_disconnect_and_its_neighbours_go_on(server, marks):
    raw = RawH2(server.addr)
    try:
        sid = raw.request("/forever")
        raw.until(lambda s: any(isinstance(e, h2.events.DataReceived) for e in s), "data")
        raw.conn.reset_stream(sid, error_code=8)  # CANCEL
        raw.flush()
        mark = marks / "forever-disconnect"
        wait_for(lambda: mark.exists() and mark.read_text(), 10, "the application to see it")
        assert (marks / "forever-disconnect").read_text() in (
            "http.disconnect",
            "ClientDisconnected",
        )
        other = raw.request("/")
        seen = raw.until(
            lambda s: any(isinstance(e, h2.events.StreamEnded) and e.stream_id == other for e in s),
            "the next stream",
        )
        data = b"".join(
            e.data for e in seen if isinstance(e, h2.events.DataReceived) and e.stream_id == other
        )
        assert data == b"hello"
    finally:
        raw.close()


def test_an_application_failing_mid_stream_resets_that_stream(server):
    raw = RawH2(server.addr)
    try:
        sid = raw.request("/fail")
        seen = raw.until(lambda s: any(isinstance(e, h2.events.StreamReset) for e in s), "a reset")
        reset = next(e for e in seen if isinstance(e, h2.events.StreamReset))
        assert reset.stream_id == sid
    finally:
        raw.close()
    server.wait_log("mid-stream failure")


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load is not installed")
def test_h2load_streams_all_succeed(server):
    result = subprocess.run(
        ["h2load", "-n", "3000", "-c", "4", "-m", "10", server.url + "/"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "3000 succeeded, 0 failed, 0 errored" in result.stdout, result.stdout


def test_prior_knowledge_only_refuses_http1_from_a_trusted_peer(tmp_path):
    srv = Unicorn(
        tmp_path,
        APP,
        "-k",
        "asgi",
        "--http-protocols",
        "h2",
        "--http2-cleartext",
        "prior-knowledge",
    )
    try:
        with socket.create_connection(srv.addr, timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 400"), answer
        assert b"expected the HTTP/2 connection preface" in answer
        assert curl("--http2-prior-knowledge", srv.url + "/").startswith("HTTP/2 200")
    finally:
        srv.stop()


@pytest.mark.skipif(shutil.which("nghttp") is None, reason="nghttp is not installed")
def test_graceful_stop_sends_goaway_and_finishes_the_stream(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    srv = Unicorn(tmp_path, APP, "-k", "asgi", *H2C, env={"ASGI_MARK_DIR": str(marks)})
    try:
        client = subprocess.Popen(
            ["nghttp", "-v", srv.url + "/sleep"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for((marks / "sleep-started").exists, 10, "the stream to start")
        srv.proc.send_signal(signal.SIGTERM)
        out, _ = client.communicate(timeout=20)
        assert "recv GOAWAY frame" in out, out
        assert "slept" in out, out  # the stream in flight finished after the GOAWAY
        assert "recv DATA frame" in out and "END_STREAM" in out
        srv.proc.wait(15)
    finally:
        srv.stop()


def test_alpn_negotiates_h2_over_tls(tmp_path, pki):  # noqa: F811
    srv = Unicorn(
        tmp_path,
        APP,
        "-k",
        "asgi",
        "--http-protocols",
        "h2,h1",
        "--certfile",
        str(pki / "server.pem"),
        "--keyfile",
        str(pki / "server.key"),
        ssl_context=ssl.create_default_context(cafile=str(pki / "ca.pem")),
    )
    try:
        url = f"https://127.0.0.1:{srv.port}"
        out = curl("--http2", "--cacert", str(pki / "ca.pem"), url + "/scope")
        assert out.startswith("HTTP/2 200"), out
        assert '"scheme": "https"' in out
        verify = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        with httpx.Client(http2=True, verify=verify, timeout=10) as client:
            r = client.get(url + "/scope")
            assert r.http_version == "HTTP/2" and r.json()["http_version"] == "2"
        # a client that offers only HTTP/1.1 is served HTTP/1.1
        out = curl("--http1.1", "--cacert", str(pki / "ca.pem"), url + "/scope")
        assert out.startswith("HTTP/1.1 200") and '"http_version": "1.1"' in out
    finally:
        srv.stop()


@pytest.mark.parametrize("grace", [0, 1])
def test_asgi_disconnect_grace_period_then_the_task_is_cancelled(tmp_path, grace):
    """gunicorn's asgi_disconnect_grace_period, over HTTP/1.1 here."""
    import time

    marks = tmp_path / "marks"
    marks.mkdir()
    srv = Unicorn(
        tmp_path,
        APP,
        "-k",
        "asgi",
        "--asgi-disconnect-grace-period",
        str(grace),
        env={"ASGI_MARK_DIR": str(marks)},
    )
    try:
        s = socket.create_connection(srv.addr, timeout=10)
        s.sendall(b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        while b"held" not in data:
            data += s.recv(4096)
        s.close()
        gone = time.monotonic()
        mark = marks / "hold-cancelled"
        wait_for(lambda: mark.exists() and mark.read_text(), 10, "the cancellation")
        waited = float(mark.read_text()) - gone
        assert grace - 0.3 <= waited <= grace + 1.5, waited
    finally:
        srv.stop()
