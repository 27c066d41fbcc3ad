"""Operating a real server: Prometheus metrics that add up over two sync workers,
and workers recycled by memory and by age without a failed request."""

from __future__ import annotations

import re
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

from unicorn_server import Unicorn, wait_for

pytestmark = pytest.mark.timeout(90)

_SAMPLE = re.compile(r"^([a-z_]+)(\{[^}]*\})? (\S+)$")


def request(addr, method: str = "GET", path: str = "/") -> tuple[int, str]:
    """One request on its own connection (HTTP/1.0): status and body."""
    with socket.create_connection(addr, timeout=10) as sock:
        sock.sendall(f"{method} {path} HTTP/1.0\r\nHost: t\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def scrape(url: str) -> dict[tuple[str, str], float]:
    """The exposition text as {(name, labels): value}; checks every line's shape."""
    host, port = url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"text/plain; version=0.0.4" in head
    samples = {}
    for line in body.decode().splitlines():
        if line.startswith("# "):
            assert line.split()[1] in ("HELP", "TYPE"), line
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        samples[(match.group(1), match.group(2) or "")] = float(match.group(3))
    return samples


def metrics_url(server: Unicorn) -> str:
    wait_for(lambda: "Metrics at: " in server.log(), 10, "the metrics line")
    return re.search(r"Metrics at: (\S+)", server.log()).group(1)


def delta(after, before, name, labels=""):
    return after.get((name, labels), 0) - before.get((name, labels), 0)


@pytest.mark.parametrize(("worker", "app"), [("sync", "ops_app:app"), ("asgi", "ops_app:asgi_app")])
def test_scrape_adds_up_over_two_workers(tmp_path, worker, app):
    server = Unicorn(
        tmp_path, app, "-k", worker, "-w", "2", "--metrics-bind", "127.0.0.1:0",
        "--control-socket-disable",
    )  # fmt: skip
    try:
        url = metrics_url(server)
        wait_for(lambda: scrape(url)[("unicorn_workers", "")] == 2, 10, "two workers")
        before = scrape(url)
        pids: set[str] = set()
        failures: list = []

        def client(n: int) -> None:
            for _ in range(n):
                status, body = request(server.addr, "GET", "/slow")
                if status != 200:
                    failures.append(status)
                pids.add(body)

        threads = [threading.Thread(target=client, args=(10,)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for _ in range(4):
            assert request(server.addr, "POST", "/")[0] == 200
        for _ in range(2):
            assert request(server.addr, "GET", "/missing")[0] == 404
        assert not failures
        assert len(pids) == 2, "both workers should have served"

        after = scrape(url)
        get200 = '{method="GET",status="200"}'
        assert delta(after, before, "unicorn_requests_total", get200) == 30
        assert delta(after, before, "unicorn_requests_total", '{method="POST",status="200"}') == 4
        assert delta(after, before, "unicorn_requests_total", '{method="GET",status="404"}') == 2
        assert delta(after, before, "unicorn_request_duration_seconds_count") == 36
        inf = '{le="+Inf"}'
        assert delta(after, before, "unicorn_request_duration_seconds_bucket", inf) == 36
        # the /slow requests took at least 20 ms each: none is in the 5 ms bucket
        fast = '{le="0.005"}'
        assert delta(after, before, "unicorn_request_duration_seconds_bucket", fast) <= 6
        assert delta(after, before, "unicorn_request_duration_seconds_sum") >= 30 * 0.02
        assert after[("unicorn_requests_in_flight", "")] == 0
        assert after[("unicorn_worker_starts_total", "")] == 2
        assert any(name == "unicorn_listen_backlog" for name, _ in after)

        # a retired worker's counts stay in the totals
        server.proc.send_signal(21)  # SIGTTIN: a third worker
        wait_for(lambda: scrape(url)[("unicorn_workers", "")] == 3, 10, "three workers")
        server.proc.send_signal(22)  # SIGTTOU: the oldest is retired
        wait_for(
            lambda: scrape(url).get(("unicorn_worker_exits_total", '{cause="retired"}')) == 1,
            15,
            "the retired worker's exit",
        )
        final = scrape(url)
        assert delta(final, before, "unicorn_requests_total", get200) == 30
        assert final[("unicorn_worker_starts_total", "")] == 3
    finally:
        server.stop()


def test_open_connections_are_counted(tmp_path):
    server = Unicorn(
        tmp_path, "ops_app:app", "-k", "gthread", "--threads", "2",
        "--metrics-bind", "127.0.0.1:0", "--control-socket-disable",
    )  # fmt: skip
    try:
        url = metrics_url(server)
        idle = [socket.create_connection(server.addr, timeout=5) for _ in range(3)]
        try:
            for sock in idle:  # a request each, then kept alive
                sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            wait_for(
                lambda: scrape(url)[("unicorn_open_connections", "")] == 3, 10, "3 connections"
            )
        finally:
            for sock in idle:
                sock.close()
        wait_for(lambda: scrape(url)[("unicorn_open_connections", "")] == 0, 10, "none left")
    finally:
        server.stop()


def _keep_requesting(addr, stop: threading.Event, path: str, seen: list, failures: list) -> None:
    while not stop.is_set():
        try:
            status, body = request(addr, "GET", path)
        except OSError as exc:
            failures.append(repr(exc))
            continue
        if status != 200:
            failures.append(status)
        seen.append(body)


def test_max_worker_memory_recycles_without_a_failed_request(tmp_path):
    server = Unicorn(
        tmp_path, "ops_app:app", "-k", "sync", "-w", "1", "--max-worker-memory", "120M",
        "--metrics-bind", "127.0.0.1:0", "--control-socket-disable",
    )  # fmt: skip
    try:
        url = metrics_url(server)
        first = request(server.addr)[1]
        stop = threading.Event()
        seen: list = []
        failures: list = []
        loop = threading.Thread(
            target=_keep_requesting, args=(server.addr, stop, "/grow", seen, failures)
        )
        loop.start()
        try:
            wait_for(lambda: any(pid != first for pid in seen), 40, "a new worker to answer")
        finally:
            stop.set()
            loop.join(15)
        assert not failures, failures
        assert f"Replacing worker (pid:{first}): max_worker_memory" in server.log()
        cause = '{cause="max_worker_memory"}'
        wait_for(lambda: scrape(url).get(("unicorn_worker_exits_total", cause)) == 1, 10, "exit")
    finally:
        server.stop()


def test_max_worker_lifetime_replaces_a_worker(tmp_path):
    server = Unicorn(
        tmp_path, "ops_app:app", "-k", "sync", "-w", "1", "--max-worker-lifetime", "2",
        "--max-worker-lifetime-jitter", "1", "--control-socket-disable",
    )  # fmt: skip
    try:
        first = request(server.addr)[1]
        started = time.monotonic()
        stop = threading.Event()
        seen: list = []
        failures: list = []
        loop = threading.Thread(
            target=_keep_requesting, args=(server.addr, stop, "/", seen, failures)
        )
        loop.start()
        try:
            wait_for(lambda: any(pid != first for pid in seen), 15, "a new worker to answer")
        finally:
            stop.set()
            loop.join(15)
        assert time.monotonic() - started < 10
        assert not failures, failures
        assert f"Replacing worker (pid:{first}): max_worker_lifetime" in server.log()
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("worker", "app"), [("gthread", "timeout_apps:wsgi"), ("asgi", "timeout_apps:asgi")]
)
def test_a_request_past_timeout_replaces_its_worker_gracefully(tmp_path, worker, app):
    """gunicorn's long-open request: a per-request timeout for threaded and async
    workers. The stuck request is logged with its request line; the worker is
    replaced; the other requests, and the stuck one itself, still complete."""
    import http.client
    import threading

    from tests.support.unicorn_server import Unicorn as Server
    from tests.support.unicorn_server import wait_for as poll

    srv = Server(
        tmp_path, app, "-k", worker, "--timeout", "2", "--threads", "4", "--graceful-timeout", "10"
    )
    try:
        result = {}

        def stuck():
            conn = http.client.HTTPConnection(srv.host, srv.port, timeout=20)
            conn.request("GET", "/stuck")
            result["stuck"] = conn.getresponse().read()

        t = threading.Thread(target=stuck)
        t.start()
        booted = srv.log().count("Booting worker")
        failures = []
        deadline = time.monotonic() + 15
        while "past timeout" not in srv.log() or srv.log().count("Booting worker") <= booted:
            conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
            try:
                conn.request("GET", "/")
                if conn.getresponse().read() != b"done":
                    failures.append("bad body")
            except OSError as exc:
                failures.append(repr(exc))
            finally:
                conn.close()
            assert time.monotonic() < deadline, srv.log()
        t.join(20)
        assert result.get("stuck") == b"done", srv.log()
        assert failures == []
        assert "Request GET /stuck has run" in srv.log()
        poll(lambda: srv.log().count("Booting worker") > booted, 10, "the replacement")
    finally:
        srv.stop()
