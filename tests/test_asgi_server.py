"""Real ``unicorn -k asgi`` processes: keep-alive, streaming, SSE, disconnects,
backpressure, lifespan, graceful shutdown, max_requests and worker_connections."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

from unicorn_server import Unicorn, wait_for

pytestmark = pytest.mark.timeout(60)
APP = "asgi_routes:app"


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One server for the tests that do not stop or reconfigure it."""
    tmp = tmp_path_factory.mktemp("asgi")
    marks = tmp / "marks"
    marks.mkdir()
    srv = Unicorn(tmp, APP, "-k", "asgi", env={"ASGI_MARK_DIR": str(marks)})
    srv.marks = marks
    yield srv
    srv.stop()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def read_response(s: socket.socket) -> bytes:
    """One Content-Length response from ``s``, leaving what follows it unread."""
    f = s.makefile("rb", buffering=0)  # unbuffered: reads nothing past the response
    try:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = f.readline()
            assert line, f"closed after {head!r}"
            head += line
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        body = b""
        while len(body) < length:
            chunk = f.read(length - len(body))
            assert chunk, "closed in the body"
            body += chunk
        return head + body
    finally:
        f.close()


def test_keep_alive_and_streaming_both_ways(shared):
    with httpx.Client(base_url=shared.url) as client:
        assert client.get("/").text == "hello"
        payload = os.urandom(300_000)

        def parts():
            for i in range(0, len(payload), 10_000):
                yield payload[i : i + 10_000]

        r = client.post("/echo", content=parts())
        assert r.content == payload
        assert client.get("/state").text.isdigit()  # lifespan state reached the request
        with client.stream("GET", "/sse?n=20") as r:
            assert r.headers["transfer-encoding"] == "chunked"
            events = [line for line in r.iter_lines() if line]
        assert events == [f"data: {i}" for i in range(20)]
        # the same connection serves on after the stream ended
        assert client.get("/").text == "hello"
    assert "Exception" not in shared.log()


def test_raw_pipelining(shared):
    with socket.create_connection(shared.addr, timeout=10) as s:
        s.sendall(
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        first, second, third = read_response(s), read_response(s), read_response(s)
    assert first.endswith(b"hello") and second.endswith(b"abc")
    assert third.startswith(b"HTTP/1.1 404")


def test_client_disconnect_mid_stream_reaches_the_app(shared):
    with socket.create_connection(shared.addr, timeout=10) as s:
        s.sendall(b"GET /forever HTTP/1.1\r\nHost: t\r\n\r\n")
        assert b"data: tick" in s.recv(4096)
    mark = shared.marks / "forever-disconnect"
    wait_for(mark.exists, what="the app to see the disconnect")
    assert mark.read_text() in ("http.disconnect", "ClientDisconnected")
    assert httpx.get(shared.url).text == "hello"


def test_large_upload_into_a_slow_reader_keeps_memory_bounded(shared):
    pid = int(httpx.get(shared.url + "/pid").text)
    before = rss_kb(pid)
    size = 100 << 20
    peak = [before]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kb(pid))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    block = b"z" * (1 << 20)

    def body():
        for _ in range(size >> 20):
            yield block

    try:
        r = httpx.post(
            shared.url + "/slow-upload",
            content=body(),
            headers={"content-length": str(size)},
            timeout=60,
        )
    finally:
        done.set()
        watcher.join()
    assert r.text == str(size)
    growth_mb = (peak[0] - before) / 1024
    assert growth_mb < 32, f"worker RSS grew by {growth_mb:.1f} MB for a 100 MB upload"


def test_keepalive_timeout_closes_idle_connections(tmp_path):
    srv = Unicorn(tmp_path, APP, "-k", "asgi", "--keep-alive", "1")
    try:
        with socket.create_connection(srv.addr, timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            read_response(s)
            started = time.monotonic()
            assert s.recv(100) == b""  # the server closed it
            assert 0.5 < time.monotonic() - started < 5
    finally:
        srv.stop()


def test_max_requests_closes_the_last_response_and_recycles(tmp_path):
    srv = Unicorn(tmp_path, APP, "-k", "asgi", "--max-requests", "4")
    try:
        # the readiness probe was request 1
        with socket.create_connection(srv.addr, timeout=10) as s:
            s.sendall(b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n")
            first = read_response(s)
            pid = first.rsplit(b"\r\n\r\n", 1)[1]
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert b"connection: close" not in read_response(s).lower()
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            last = read_response(s)
            assert b"connection: close" in last.lower()
            assert s.recv(100) == b""

        def new_pid():
            try:
                got = httpx.get(srv.url + "/pid", timeout=2).text.encode()
            except httpx.HTTPError:
                return None
            return got if got != pid else None

        wait_for(new_pid, what="a new worker")
        srv.wait_log("Autorestarting worker")
    finally:
        srv.stop()


def test_worker_connections_bound(tmp_path):
    srv = Unicorn(tmp_path, APP, "-k", "asgi", "--worker-connections", "2")
    try:
        held = []
        for _ in range(2):
            s = socket.create_connection(srv.addr, timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            read_response(s)
            held.append(s)
        waiting = socket.create_connection(srv.addr, timeout=10)
        waiting.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        waiting.settimeout(0.5)
        with pytest.raises(TimeoutError):
            waiting.recv(100)  # in the backlog, not accepted
        held.pop().close()
        waiting.settimeout(10)
        assert read_response(waiting).endswith(b"hello")
        waiting.close()
        for s in held:
            s.close()
    finally:
        srv.stop()


def test_lifespan_startup_failure_stops_the_server(tmp_path):
    with pytest.raises(AssertionError, match="exited with") as info:
        Unicorn(tmp_path, APP, "-k", "asgi", env={"ASGI_FAIL_STARTUP": "no database today"})
    assert "Worker failed to boot: application startup failed: no database today" in str(info.value)
    assert "Traceback" not in str(info.value)  # an expected failure, said in one line


def test_lifespan_off_serves_without_state(tmp_path):
    srv = Unicorn(tmp_path, APP, "-k", "asgi", "--asgi-lifespan", "off", "--asgi-loop", "asyncio")
    try:
        r = httpx.get(srv.url + "/state")
        assert r.status_code == 500  # the app indexes scope["state"], which is absent
        assert "KeyError" in srv.log()
    finally:
        srv.stop()


def test_graceful_shutdown_idle_and_in_flight(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    srv = Unicorn(
        tmp_path, APP, "-k", "asgi", "--graceful-timeout", "10", env={"ASGI_MARK_DIR": str(marks)}
    )
    try:
        idle = socket.create_connection(srv.addr, timeout=10)
        idle.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        read_response(idle)
        reused = socket.create_connection(srv.addr, timeout=10)
        reused.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        read_response(reused)
        result = {}

        def slow():
            result["r"] = httpx.get(srv.url + "/sleep?s=1.5", timeout=10)

        def events():
            with httpx.stream("GET", srv.url + "/events", timeout=10) as r:
                result["events"] = sum(1 for line in r.iter_lines() if line)

        t = threading.Thread(target=slow)
        t.start()
        sse = threading.Thread(target=events)
        sse.start()
        wait_for((marks / "sleep-started").exists, what="the slow request to start")
        wait_for((marks / "events-started").exists, what="the event stream to start")
        stopped_at = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        # A request that reaches an idle keep-alive connection while the worker
        # drains is served, and the connection then closes.
        wait_for((marks / "events-ended").exists, what="the drain to end the event stream")
        reused.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        head = read_response(reused)
        assert head.startswith(b"HTTP/1.1 200") and b"connection: close" in head.lower(), head
        # One nothing reaches is closed when its keep-alive time (2 s) is up.
        assert idle.recv(100) == b""
        assert time.monotonic() - stopped_at < 3.0
        t.join(10)
        r = result["r"]
        assert r.status_code == 200 and r.text == "slept"
        assert r.headers["connection"] == "close"
        # the endless event stream was ended cleanly (a chunked end, not a cut)
        sse.join(10)
        assert result["events"] > 0
        assert (marks / "events-ended").read_text() == "ClientDisconnected"
        srv.proc.wait(10)
        assert time.monotonic() - stopped_at < 5  # well inside graceful_timeout
        assert (marks / "shutdown").exists()  # lifespan shutdown ran
        idle.close()
    finally:
        srv.stop()


def test_access_log_and_request_hooks(tmp_path):
    access = tmp_path / "access.log"
    hooks = tmp_path / "hooks.log"
    conf = tmp_path / "conf.py"
    conf.write_text(
        "def pre_request(worker, req):\n"
        f"    open({str(hooks)!r}, 'a').write(f'pre {{req.method}} {{req.path}}\\n')\n"
        "def post_request(worker, req, scope, resp):\n"
        f"    open({str(hooks)!r}, 'a').write(f'post {{req.path}} {{resp.status_code}} {{scope[\"type\"]}}\\n')\n"
    )
    srv = Unicorn(
        tmp_path, APP, "-k", "asgi", "-c", str(conf), "--access-logfile", str(access),
        "--access-logformat", '%(h)s "%(r)s" %(s)s %(b)s "%({user-agent}i)s"',
    )  # fmt: skip
    try:
        httpx.get(srv.url + "/nowhere", headers={"User-Agent": "probe/1"})
        wait_for(lambda: "/nowhere" in access.read_text(), what="the access log line")
        line = next(x for x in access.read_text().splitlines() if "/nowhere" in x)
        assert line == '127.0.0.1 "GET /nowhere HTTP/1.1" 404 9 "probe/1"'
        wait_for(lambda: "post /nowhere" in hooks.read_text(), what="the post_request hook")
        assert "pre GET /nowhere\n" in hooks.read_text()
        assert "post /nowhere 404 http\n" in hooks.read_text()
    finally:
        srv.stop()
