"""One table of forwarded-header cases, run against the WSGI and the ASGI layers.

The connection edge (unicorn_http.edge) reads a trusted front end's headers once
for every worker; these cases pin down that both layers apply the same reading
(docs/http.md, "Behind a proxy"). The test client is 127.0.0.1, which
`forwarded_allow_ips` trusts by default.
"""

from __future__ import annotations

import http.client
import json

import pytest

from tests.support.unicorn_server import Unicorn

WORKERS = [
    ("sync", "origin_echo:wsgi"),
    ("gthread", "origin_echo:wsgi"),
    ("asgi", "origin_echo:asgi"),
]

# (id, request headers, status, expected fields of the answer)
CASES = [
    ("none", [], 200, {"client": "127.0.0.1", "scheme": "http", "root_path": ""}),
    ("proto-https", [("X-Forwarded-Proto", "https")], 200, {"scheme": "https"}),
    ("proto-case-insensitive", [("X-Forwarded-Proto", "HTTPS")], 200, {"scheme": "https"}),
    ("proto-http", [("X-Forwarded-Proto", "http")], 200, {"scheme": "http"}),
    ("ssl-on", [("X-Forwarded-Ssl", "on")], 200, {"scheme": "https"}),
    (
        "agreeing-scheme-headers",
        [("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "on")],
        200,
        {"scheme": "https"},
    ),
    (
        "contradictory-scheme-headers",
        [("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "off")],
        400,
        {},
    ),
    ("xff-one-hop", [("X-Forwarded-For", "203.0.113.7")], 200, {"client": "203.0.113.7"}),
    (
        "xff-nearest-untrusted-hop",
        [("X-Forwarded-For", "198.51.100.1, 203.0.113.7, 127.0.0.1")],
        200,
        {"client": "203.0.113.7"},
    ),
    (
        "xff-two-lines-read-as-one-list",
        [("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-For", "203.0.113.9")],
        200,
        {"client": "203.0.113.9"},
    ),
    (
        "xff-all-trusted-takes-the-first",
        [("X-Forwarded-For", "127.0.0.1, ::1")],
        200,
        {"client": "127.0.0.1"},
    ),
    (
        "script-name-from-forwarder-headers",
        [("SCRIPT_NAME", "/mounted")],
        200,
        {"root_path": "/mounted"},
    ),
]


def get(server: Unicorn, path: str, headers: list[tuple[str, str]]) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, (json.loads(body) if resp.status == 200 else {"body": body})
    finally:
        conn.close()


@pytest.fixture(scope="module", params=WORKERS, ids=[w for w, _ in WORKERS])
def server(request, tmp_path_factory):
    worker, app = request.param
    srv = Unicorn(tmp_path_factory.mktemp(worker), app, "-k", worker)
    srv.worker = worker
    yield srv
    srv.stop()


@pytest.mark.parametrize(
    ("headers", "status", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_trusted_front_end(server, headers, status, expected):
    got_status, got = get(server, "/mounted/page", headers)
    assert got_status == status, got
    for key, value in expected.items():
        assert got[key] == value, (key, got)
    if status == 400:
        assert b"contradictory scheme headers" in got["body"]
        server.wait_log("contradictory scheme headers")


def test_script_name_moves_path_into_root(server):
    _, got = get(server, "/mounted/page", [("SCRIPT_NAME", "/mounted")])
    # WSGI: PATH_INFO loses the mount point; ASGI keeps the full path beside root_path.
    assert got["path"] == ("/mounted/page" if server.worker == "asgi" else "/page")
    assert got["root_path"] == "/mounted"


@pytest.mark.parametrize(("worker", "app"), WORKERS, ids=[w for w, _ in WORKERS])
def test_untrusted_peer_is_not_believed(tmp_path, worker, app):
    srv = Unicorn(tmp_path, app, "-k", worker, "--forwarded-allow-ips", "10.1.2.3")
    try:
        status, got = get(
            srv,
            "/x",
            [
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Ssl", "off"),
                ("X-Forwarded-For", "203.0.113.7"),
                ("SCRIPT_NAME", "/evil"),
            ],
        )
        # Not trusted: no 400 for the contradiction, nothing taken from the headers.
        assert status == 200
        assert got["client"] == "127.0.0.1"
        assert got["scheme"] == "http"
        assert got["root_path"] == ""
    finally:
        srv.stop()
