"""Real unicorn processes serving Flask, Django and plain WSGI apps with every WSGI worker:
-k sync, gthread, gevent, eventlet and tornado."""

from __future__ import annotations

import json
import socket
import sys
import threading
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

from unicorn_server import Unicorn, wait_for

pytestmark = pytest.mark.timeout(60)

WORKERS = {
    "sync": ("-k", "sync"),
    "gthread": ("-k", "gthread", "--threads", "4"),
    "gevent": ("-k", "gevent"),
    "eventlet": ("-k", "eventlet"),
    "tornado": ("-k", "tornado", "--threads", "4"),
}
#: the workers that keep connections alive (all but sync)
KEEPALIVE = [name for name in WORKERS if name != "sync"]
FRAMEWORKS = {"flask": "flask_app:app", "django": "djproject.wsgi:application"}


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Servers started once per module, keyed by (app, worker, extra args)."""
    tmp = tmp_path_factory.mktemp("unicorn")
    running: dict[tuple, Unicorn] = {}

    def get(app: str, worker: str, *extra: str) -> Unicorn:
        key = (app, worker, extra)
        if key not in running:
            running[key] = Unicorn(tmp, app, *WORKERS[worker], *extra)
        return running[key]

    yield get
    for server in running.values():
        server.stop()


def read_until_closed(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


# --- Flask and Django --------------------------------------------------------------


@pytest.mark.parametrize("worker", WORKERS)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_framework_get_post_stream(servers, framework, worker):
    srv = servers(FRAMEWORKS[framework], worker)
    r = httpx.get(srv.url + "/")
    assert r.status_code == 200
    assert r.text == f"hello from {framework}"
    assert r.headers["server"] == "unicorn"

    payload = bytes(range(256)) * 400
    r = httpx.post(srv.url + "/echo", content=payload)
    assert r.status_code == 200 and r.content == payload

    r = httpx.get(srv.url + "/stream")
    assert r.text == "".join(f"line {i}\n" for i in range(5))
    if worker in KEEPALIVE:
        assert r.headers["transfer-encoding"] == "chunked"
    else:
        assert r.headers["connection"] == "close"

    r = httpx.get(srv.url + "/query", params={"q": "caf\u00e9 & co"})
    assert json.loads(r.text)["args"] == {"q": "caf\u00e9 & co"}


@pytest.mark.parametrize("worker", WORKERS)
def test_flask_chunked_request_body(servers, worker):
    srv = servers(FRAMEWORKS["flask"], worker)
    r = httpx.post(srv.url + "/echo", content=iter([b"chunk-one ", b"chunk-two"]))
    assert r.status_code == 200
    assert r.content == b"chunk-one chunk-two"


@pytest.mark.parametrize("worker", WORKERS)
def test_flask_error_is_a_500_and_logged(servers, worker):
    srv = servers(FRAMEWORKS["flask"], worker)
    r = httpx.get(srv.url + "/error")
    assert r.status_code == 500
    # Flask logs through wsgi.errors, which is unicorn's error log
    srv.wait_log("flask view failed on purpose")


def test_django_error_is_a_500(servers):
    srv = servers(FRAMEWORKS["django"], "gthread")
    assert httpx.get(srv.url + "/error").status_code == 500
    assert httpx.get(srv.url + "/").status_code == 200


def test_root_path_is_script_name(servers):
    srv = servers(FRAMEWORKS["flask"], "gthread", "--root-path", "/mounted")
    body = json.loads(httpx.get(srv.url + "/mounted/query").text)
    assert (body["root"], body["path"]) == ("/mounted", "/query")


# --- the workers' own behaviour (plain WSGI app) ---------------------------------------

ROUTES = "wsgi_routes:app"


@pytest.mark.parametrize("worker", WORKERS)
def test_chunked_post_and_streaming(servers, worker):
    srv = servers(ROUTES, worker)
    r = httpx.post(srv.url + "/echo", content=iter([b"a" * 10000, b"b" * 10]))
    assert r.content == b"a" * 10000 + b"b" * 10
    r = httpx.get(srv.url + "/stream")
    assert r.text == "".join(f"part {i}\n" for i in range(5))


@pytest.mark.parametrize("worker", KEEPALIVE)
def test_reuses_keepalive_connections(servers, worker):
    srv = servers(ROUTES, worker)
    with httpx.Client() as client:
        answers = {client.get(srv.url + "/whoami").text for _ in range(5)}
    assert len(answers) == 1  # same worker, same client port: one connection


def test_sync_answers_connection_close(servers):
    srv = servers(ROUTES, "sync")
    with httpx.Client() as client:
        answers = [client.get(srv.url + "/whoami") for _ in range(3)]
    assert all(r.headers["connection"] == "close" for r in answers)
    assert len({r.text for r in answers}) == 3  # a new connection each time


@pytest.mark.parametrize("worker", KEEPALIVE)
def test_pipelining(servers, worker):
    srv = servers(ROUTES, worker)
    with socket.create_connection(srv.addr, timeout=10) as s:
        s.sendall(
            b"GET /one HTTP/1.1\r\nHost: t\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /three HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        data = read_until_closed(s)
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in data.split(b"HTTP/1.1 200 OK\r\n")[1:]]
    assert bodies == [b"ok /one", b"hello", b"ok /three"]


@pytest.mark.parametrize("worker", WORKERS)
def test_bad_request_is_400_and_others_go_on(servers, worker):
    srv = servers(ROUTES, worker)
    with httpx.Client() as client:
        assert client.get(srv.url + "/before").status_code == 200
        with socket.create_connection(srv.addr, timeout=10) as s:
            s.sendall(
                b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
            )
            data = read_until_closed(s)
        assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert b"smuggling" in data  # the reason is told to the client
        assert client.get(srv.url + "/after").text == "ok /after"
    srv.wait_log("Bad request from 127.0.0.1")


@pytest.mark.parametrize("worker", WORKERS)
def test_client_disconnect_mid_response(servers, worker):
    srv = servers(ROUTES, worker)
    with socket.create_connection(srv.addr, timeout=10) as s:
        s.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    # the worker is unharmed and serves the next client
    r = httpx.get(srv.url + "/whoami")
    assert r.status_code == 200
    assert "Traceback" not in srv.log()


@pytest.mark.parametrize("worker", WORKERS)
def test_app_exception_is_500_with_traceback_logged(servers, worker):
    srv = servers(ROUTES, worker)
    r = httpx.get(srv.url + "/error")
    assert r.status_code == 500
    assert "the application failed" not in r.text
    srv.wait_log("RuntimeError: the application failed on purpose")
    assert "Traceback" in srv.log()
    assert httpx.get(srv.url + "/").status_code == 200


@pytest.mark.parametrize("worker", WORKERS)
def test_max_requests_recycles_the_worker(servers, worker):
    srv = servers(ROUTES, worker, "--max-requests", "3")

    def pid() -> str | None:
        try:
            return httpx.get(srv.url + "/whoami", headers={"Connection": "close"}).text.split()[0]
        except httpx.TransportError:
            return None  # between the old worker's exit and the new one's boot

    first = wait_for(pid)
    pids = {first}
    wait_for(lambda: pids.add(pid()) or len(pids - {None}) >= 2, what="a recycled worker")
    srv.wait_log("Autorestarting worker")


@pytest.mark.parametrize("worker", KEEPALIVE)
def test_slow_request_does_not_hold_others(servers, worker):
    srv = servers(ROUTES, worker)
    slow = threading.Thread(target=httpx.get, args=(srv.url + "/slow?6",), kwargs={"timeout": 15})
    slow.start()
    try:
        try:
            r = httpx.get(srv.url + "/quick", timeout=5)
        except httpx.TimeoutException:
            raise AssertionError(f"/quick waited behind /slow; log:\n{srv.log()}") from None
        assert r.status_code == 200
        assert slow.is_alive()  # answered while the slow request still runs
    finally:
        slow.join()


HOOKS_CONF = """
def pre_request(worker, req):
    worker.log.info("pre_request %s %s", req.method, req.path)


def post_request(worker, req, environ, resp):
    worker.log.info("post_request %s %s %d", req.uri, resp.status, resp.sent)
"""


@pytest.mark.parametrize("worker", WORKERS)
def test_access_log_and_request_hooks(tmp_path, worker):
    conf = tmp_path / "hooks.conf.py"
    conf.write_text(HOOKS_CONF)
    access = tmp_path / "access.log"
    srv = Unicorn(
        tmp_path, ROUTES, *WORKERS[worker], "-c", str(conf), "--access-logfile", str(access)
    )
    try:
        r = httpx.get(
            srv.url + "/path?q=1", headers={"User-Agent": "agent/1", "Referer": "http://r/"}
        )
        assert r.status_code == 200
        wait_for(lambda: "/path?q=1" in access.read_text(), what="the access log line")
        line = next(ln for ln in access.read_text().splitlines() if "/path?q=1" in ln)
        assert line.startswith("127.0.0.1 - - [")
        assert line.endswith('"GET /path?q=1 HTTP/1.1" 200 8 "http://r/" "agent/1"')
        srv.wait_log("pre_request GET /path")
        srv.wait_log("post_request /path?q=1 200 OK 8")
    finally:
        srv.stop()


def test_sync_request_timeout_replaces_the_worker(tmp_path):
    srv = Unicorn(tmp_path, ROUTES, "-k", "sync", "-t", "1")
    try:
        before = httpx.get(srv.url + "/whoami").text.split()[0]
        with pytest.raises(httpx.TransportError):
            httpx.get(srv.url + "/slow?30", timeout=20)
        srv.wait_log("WORKER TIMEOUT")
        after = wait_for(
            lambda: _pid_or_none(srv.url), what=f"a replacement worker; log:\n{srv.log()}"
        )
        assert after != before
    finally:
        srv.stop()


def _pid_or_none(url: str) -> str | None:
    try:
        return httpx.get(url + "/whoami", timeout=2).text.split()[0]
    except httpx.TransportError:
        return None


@pytest.mark.parametrize("worker", WORKERS)
def test_term_lets_the_request_in_flight_finish(tmp_path, worker):
    srv = Unicorn(tmp_path, ROUTES, *WORKERS[worker], env={"ROUTES_MARK_DIR": str(tmp_path)})
    result = {}

    def slow():
        result["r"] = httpx.get(srv.url + "/slow?1", timeout=10)

    t = threading.Thread(target=slow)
    t.start()
    try:
        wait_for(lambda: (tmp_path / "entered").exists(), what="the request to reach the app")
        srv.proc.send_signal(15)
        t.join(10)
        assert result["r"].status_code == 200
        assert result["r"].headers["connection"] == "close"
        assert srv.proc.wait(10) == 0
    finally:
        t.join(10)
        srv.stop()


def test_threads_alone_means_gthread(tmp_path):
    # gunicorn's rule: the default sync worker with --threads N serves as gthread
    srv = Unicorn(tmp_path, ROUTES, "--threads", "2")
    try:
        with httpx.Client() as client:
            answers = {client.get(srv.url + "/whoami").text for _ in range(3)}
        assert len(answers) == 1  # keep-alive: one connection served all three
        srv.wait_log("serving as gthread")
    finally:
        srv.stop()


def _exchange(addr, data: bytes) -> bytes:
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


@pytest.mark.parametrize("worker", WORKERS)
def test_proxy_protocol_header_names_the_client(servers, worker):
    server = servers(
        "wsgi_routes:app", worker, "--proxy-protocol", "--proxy-allow-from", "127.0.0.1"
    )
    get = b"GET /whoami HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    # v1: the client's port comes from the header, not from our socket
    out = _exchange(server.addr, b"PROXY TCP4 203.0.113.7 192.0.2.1 40123 443\r\n" + get)
    assert out.startswith(b"HTTP/1.1 200"), out
    assert out.endswith(b" 40123"), out
    # v2 in its own write, split from the request: still read whole
    v2 = (
        b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c"
        + bytes([198, 51, 100, 9, 192, 0, 2, 1])
        + (40999).to_bytes(2, "big")
        + (443).to_bytes(2, "big")
    )
    with socket.create_connection(server.addr, timeout=10) as s:
        s.sendall(v2[:7])
        s.sendall(v2[7:] + get)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    assert out.endswith(b" 40999"), out
    # no header from a proxy that must send one: 400 naming the cause, then others go on
    bad = _exchange(server.addr, get)
    assert bad.startswith(b"HTTP/1.1 400"), bad
    assert b"PROXY" in bad
    server.wait_log("invalid PROXY protocol header")
    out = _exchange(server.addr, b"PROXY UNKNOWN\r\n" + get)
    assert out.startswith(b"HTTP/1.1 200"), out


def test_proxy_protocol_not_expected_from_other_peers(servers):
    # 127.0.0.1 is not a listed balancer: its plain requests are served as they are.
    server = servers(
        "wsgi_routes:app", "gthread", "--proxy-protocol", "--proxy-allow-from", "192.0.2.50"
    )
    out = _exchange(server.addr, b"GET /whoami HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200"), out


@pytest.mark.parametrize("permit", [False, True])
def test_obsolete_folding_refused_unless_permitted(servers, permit):
    extra = ("--permit-obsolete-folding",) if permit else ()
    server = servers("wsgi_routes:app", "gthread", *extra)
    folded = b"GET /whoami HTTP/1.1\r\nHost: t\r\nX-Long: one\r\n two\r\nConnection: close\r\n\r\n"
    out = _exchange(server.addr, folded)
    if permit:
        assert out.startswith(b"HTTP/1.1 200"), out
    else:
        assert out.startswith(b"HTTP/1.1 400"), out
        assert b"folding" in out
