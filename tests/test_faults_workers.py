"""Faults and hostile clients against real workers (issue 12, items 1-7).

Each test drives a real ``unicorn`` and shows that nothing already on the wire
is lost while workers come and go, that no wait is unbounded, and that a
client that never reads cannot grow a worker without bound.
"""

from __future__ import annotations

import base64
import http.client
import os
import signal
import socket
import struct
import threading
import time

import pytest

from tests.support.unicorn_server import Unicorn, wait_for

APPS = {"gthread": "fault_apps:wsgi", "asgi": "fault_apps:asgi", "sync": "fault_apps:wsgi"}
APPS.update(dict.fromkeys(("gevent", "eventlet", "tornado"), "fault_apps:wsgi"))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def peak_growth(pid: int, before: int, seconds: float) -> int:
    """The most the worker's RSS grew over ``before`` while it works through what
    it was sent, sampled for ``seconds``."""
    peak = rss_kib(pid)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        peak = max(peak, rss_kib(pid))
        time.sleep(0.05)
    return peak - before


def worker_pid(srv: Unicorn) -> int:
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    conn.request("GET", "/pid")
    pid = int(conn.getresponse().read())
    conn.close()
    return pid


def booted(srv: Unicorn) -> int:
    return srv.log().count("Booting worker with pid")


class Hammer:
    """Keep-alive clients sending requests back to back until stopped, counting
    every request that did not get its 200."""

    def __init__(self, srv: Unicorn, clients: int = 6) -> None:
        self.srv = srv
        self.ok = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        conn = http.client.HTTPConnection(self.srv.host, self.srv.port, timeout=15)
        while not self.stop.is_set():
            try:
                conn.request("GET", "/")
                resp = conn.getresponse()
                body = resp.read()
                good = resp.status == 200 and body == b"hello"
                with self.lock:
                    if good:
                        self.ok += 1
                    else:
                        self.errors.append(f"{resp.status} {body[:60]!r}")
                if resp.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException) as exc:
                with self.lock:
                    self.errors.append(repr(exc))
                conn.close()

    def wait_for_requests(self, n: int) -> None:
        start = self.ok
        wait_for(lambda: self.ok >= start + n, 20, f"{n} more requests")

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(20)


@pytest.mark.parametrize("worker", ["gthread", "asgi"])
def test_hup_loses_no_request(tmp_path, worker):
    srv = Unicorn(tmp_path, APPS[worker], "-k", worker, "-w", "2", "--threads", "4")
    try:
        hammer = Hammer(srv)
        hammer.wait_for_requests(200)
        for round_ in (1, 2):
            before = booted(srv)
            srv.proc.send_signal(signal.SIGHUP)
            wait_for(lambda b=before: booted(srv) >= b + 2, 20, f"HUP {round_}'s new workers")
            hammer.wait_for_requests(200)
        hammer.finish()
        assert hammer.errors == []
        assert hammer.ok > 600
    finally:
        srv.stop()


@pytest.mark.parametrize("worker", ["gthread", "asgi"])
def test_max_requests_recycling_loses_no_request(tmp_path, worker):
    srv = Unicorn(tmp_path, APPS[worker], "-k", worker, "--max-requests", "150", "--threads", "4")
    try:
        hammer = Hammer(srv)
        wait_for(lambda: booted(srv) >= 5, 60, "four recycled workers")
        hammer.finish()
        # None: the one loss a CI run saw (asgi, "closed without response") was a
        # client accepted just before the drain counted connections, whose
        # connection_made the loop had not run yet; the drain now lets it run.
        assert hammer.errors == []
    finally:
        srv.stop()


@pytest.mark.parametrize("worker", ["gthread", "asgi"])
def test_ttou_loses_no_request(tmp_path, worker):
    srv = Unicorn(tmp_path, APPS[worker], "-k", worker, "-w", "3", "--threads", "4")
    try:
        hammer = Hammer(srv)
        hammer.wait_for_requests(200)
        for _ in range(2):
            exited = srv.log().count("Worker exiting")
            srv.proc.send_signal(signal.SIGTTOU)
            wait_for(
                lambda e=exited: srv.log().count("Worker exiting") > e, 20, "a worker to leave"
            )
            hammer.wait_for_requests(100)
        hammer.finish()
        assert hammer.errors == []
    finally:
        srv.stop()


def test_gthread_serves_a_waiting_request_when_a_thread_frees(tmp_path):
    """Item 2: bytes waiting in the kernel are activity; the keep-alive sweep must
    not close that connection while every thread is busy."""
    srv = Unicorn(tmp_path, APPS["gthread"], "-k", "gthread", "--threads", "1", "--keep-alive", "1")
    try:
        waiting = http.client.HTTPConnection(srv.host, srv.port, timeout=15)
        waiting.request("GET", "/")
        assert waiting.getresponse().read() == b"hello"  # now an idle keep-alive connection
        slow = http.client.HTTPConnection(srv.host, srv.port, timeout=15)
        slow.request("GET", "/sleep?s=2.5")  # holds the only thread for 2.5 s
        started = time.monotonic()
        waiting.request("GET", "/")  # waits in the kernel past keepalive (1 s)
        resp = waiting.getresponse()
        assert resp.status == 200 and resp.read() == b"hello"
        assert time.monotonic() - started > 1.5  # it really waited for the thread
        assert slow.getresponse().read() == b"hello"
    finally:
        srv.stop()


@pytest.mark.parametrize("worker", ["gthread", "asgi", "gevent", "eventlet", "tornado"])
def test_keepalive_zero_still_waits_for_the_first_request(tmp_path, worker):
    """Item 3: `--keep-alive 0` turns off reuse after a response, nothing more."""
    srv = Unicorn(tmp_path, APPS[worker], "-k", worker, "--keep-alive", "0")
    try:
        socks = [socket.create_connection(srv.addr, timeout=10) for _ in range(5)]
        # The scenario itself: clients that connect, then take a moment (longer
        # than two sweeps of the worker's clock) before sending their request.
        time.sleep(0.6)
        for s in socks:
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        for s in socks:
            data = b""
            while b"hello" not in data:
                chunk = s.recv(4096)
                assert chunk, f"closed before the response: {data!r}"
                data += chunk
            assert data.startswith(b"HTTP/1.1 200")
            assert b"connection: close" in data.lower()
            s.close()
    finally:
        srv.stop()


@pytest.mark.parametrize("worker", ["gthread", "asgi", "sync", "gevent", "eventlet", "tornado"])
def test_slowloris_heads_time_out_and_others_are_served(tmp_path, worker):
    """Item 4: a trickling head does not refresh its deadline."""
    srv = Unicorn(
        tmp_path,
        APPS[worker],
        "-k",
        worker,
        "--client-header-timeout",
        "1",
        "--worker-connections",
        "30",
        "--threads",
        "2",
    )
    trickle = [
        socket.create_connection(srv.addr, timeout=10) for _ in range(30 if worker != "sync" else 1)
    ]
    stop = threading.Event()

    def drip() -> None:
        for s in trickle:
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        while not stop.is_set():
            for s in trickle:
                try:
                    s.sendall(b"X")
                except OSError:
                    pass
            stop.wait(0.1)

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        started = time.monotonic()
        for _ in range(5):
            conn = http.client.HTTPConnection(srv.host, srv.port, timeout=15)
            conn.request("GET", "/")
            assert conn.getresponse().read() == b"hello"
            conn.close()
        assert time.monotonic() - started < 10
        for s in trickle:
            s.settimeout(10)
            answer = s.recv(200)
            assert answer.startswith(b"HTTP/1.1 408"), answer
        wait_for(lambda: "client_header_timeout" in srv.log(), 5, "the 408 in the log")
    finally:
        stop.set()
        dripper.join(5)
        for s in trickle:
            s.close()
        srv.stop()


@pytest.mark.parametrize("worker", ["gthread", "sync", "gevent", "eventlet", "tornado"])
def test_slow_bodies_hold_threads_for_a_bounded_time(tmp_path, worker):
    """Item 4, the body: N slow uploads hold at most N threads, for a bounded time."""
    srv = Unicorn(
        tmp_path,
        APPS[worker],
        "-k",
        worker,
        "--client-body-timeout",
        "1",
        "--threads",
        "2",
        "-w",
        "1",
    )
    slow = [socket.create_connection(srv.addr, timeout=15) for _ in range(4)]
    stop = threading.Event()

    def drip() -> None:
        for s in slow:
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
        while not stop.is_set():
            for s in slow:
                try:
                    s.sendall(b"x")
                except OSError:
                    pass
            stop.wait(0.1)

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        for s in slow:
            answer = s.recv(300)
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert b"client_body_timeout" in answer
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=15)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"hello"
    finally:
        stop.set()
        dripper.join(5)
        for s in slow:
            s.close()
        srv.stop()


def _ws_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask + masked


def test_websocket_ping_flood_from_a_client_that_never_reads(tmp_path):
    """Item 6: Pongs obey the write high-water mark; reading stops while it is reached."""
    srv = Unicorn(tmp_path, APPS["asgi"], "-k", "asgi")
    try:
        pid = worker_pid(srv)
        before = rss_kib(pid)
        s = socket.create_connection(srv.addr, timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        key = base64.b64encode(os.urandom(16))
        s.sendall(
            b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        assert head.startswith(b"HTTP/1.1 101")
        ping = _ws_frame(0x9, b"p" * 125)
        burst = ping * 64
        s.settimeout(2)  # a send that cannot go on means the server stopped reading
        sent = 0
        deadline = time.monotonic() + 4
        try:
            while time.monotonic() < deadline:
                s.sendall(burst)
                sent += len(burst)
        except TimeoutError:
            pass
        grown = peak_growth(pid, before, 1.0)
        assert grown < 16_000, f"worker RSS grew by {grown} KiB after {sent} bytes of Pings"
        # Others are still served.
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"hello"
        s.close()
    finally:
        srv.stop()


def test_pipelining_client_that_never_reads(tmp_path):
    """Item 7: responses to pipelined requests wait for the transport to drain, so
    a client that pipelines without reading holds a bounded amount of memory."""
    srv = Unicorn(tmp_path, APPS["asgi"], "-k", "asgi")
    try:
        pid = worker_pid(srv)
        before = rss_kib(pid)
        s = socket.create_connection(srv.addr, timeout=10)
        s.settimeout(2)  # a send that cannot go on means the server stopped reading
        requests = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 200
        sent = 0
        end = time.monotonic() + 5
        try:
            while time.monotonic() < end:
                s.sendall(requests)
                sent += 200
        except TimeoutError:
            pass
        grown = peak_growth(pid, before, 2.0)
        # Before the fix: about 12 MB after 5 s here, growing with every second.
        assert grown < 6_000, f"worker RSS grew by {grown} KiB for {sent} unread responses"
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"hello"
        s.close()
    finally:
        srv.stop()


@pytest.fixture(scope="module", params=["sync", "gthread", "asgi"])
def any_worker(request, tmp_path_factory):
    srv = Unicorn(tmp_path_factory.mktemp(request.param), APPS[request.param], "-k", request.param)
    yield srv
    srv.stop()


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501, b"CONNECT"),
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(32), 400, b"TLS handshake"),
        (b"GET / HTTP/1.1\rHost: t\r\r", 400, b"bare CR"),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: a/b\r\nContent-Type: c/d\r\n"
            b"Content-Length: 0\r\n\r\n",
            400,
            b"more than one Content-Type",
        ),
    ],
    ids=["connect", "tls-on-plain-port", "lone-cr", "two-content-types"],
)
def test_refused_at_once_with_a_reason(any_worker, raw, status, reason):
    """Items 5, 15, 16: answered at once, never a silent wait for the idle close."""
    s = socket.create_connection(any_worker.addr, timeout=5)
    try:
        started = time.monotonic()
        s.sendall(raw)
        answer = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 %d" % status), answer
        assert reason in answer
        assert time.monotonic() - started < 2
    finally:
        s.close()
    any_worker.wait_log(reason.decode())


def test_gunicorns_method_conventions_and_casefold(any_worker, tmp_path):
    """gunicorn's defaults refuse a lower-case method; --casefold-http-method
    upper-cases it instead."""
    raw = b"get / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    s = socket.create_connection(any_worker.addr, timeout=5)
    s.sendall(raw)
    answer = s.recv(4096)
    s.close()
    assert answer.startswith(b"HTTP/1.1 400") and b"unconventional request method" in answer
    if "gthread" not in str(any_worker.log_path.parent):
        return
    srv = Unicorn(tmp_path, APPS["gthread"], "-k", "gthread", "--casefold-http-method")
    try:
        s = socket.create_connection(srv.addr, timeout=5)
        s.sendall(raw)
        answer = s.recv(4096)
        s.close()
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hello"), answer
    finally:
        srv.stop()
