"""The access log: gunicorn's atoms, compiled once, fed raw pieces per request."""

from __future__ import annotations

import base64
import os
import re

import pytest
from harness import wait_for

from unicorn_core.errors import ConfigError
from unicorn_core.logs import DEFAULT_ACCESS_FORMAT, compile_access_format

pytestmark = pytest.mark.timeout(30)

REQUEST_HEADERS = [
    (b"Host", b"example.com"),
    (b"User-Agent", b"curl/8"),
    (b"Referer", b"http://ref/"),
    (b"Authorization", b"Basic " + base64.b64encode(b"alice:secret")),
    (b"X-Trace", b"abc"),
]
RESPONSE_HEADERS = [("Content-Type", "text/plain"), ("X-Served-By", "w1")]


def line(fmt: str, **overrides) -> str:
    args = {
        "remote": "10.0.0.1",
        "method": "GET",
        "target": "/path/x?q=1&r=2",
        "version": "HTTP/1.1",
        "status": 201,
        "length": 1234,
        "request_time": 1.5,
        "req_headers": REQUEST_HEADERS,
        "resp_headers": RESPONSE_HEADERS,
        "environ": {"PATH_INFO": "/path/x", "REMOTE_USER": "bob"},
    }
    args.update(overrides)
    return compile_access_format(fmt)(*args.values())


@pytest.mark.parametrize(
    ("atom", "expected"),
    [
        ("h", "10.0.0.1"),
        ("l", "-"),
        ("u", "alice"),
        ("r", "GET /path/x?q=1&r=2 HTTP/1.1"),
        ("s", "201"),
        ("m", "GET"),
        ("U", "/path/x"),
        ("q", "q=1&r=2"),
        ("H", "HTTP/1.1"),
        ("B", "1234"),
        ("b", "1234"),
        ("f", "http://ref/"),
        ("a", "curl/8"),
        ("T", "1"),
        ("M", "1500"),
        ("D", "1500000"),
        ("L", "1.500000"),
        ("p", f"<{os.getpid()}>"),
        ("{x-trace}i", "abc"),
        ("{X-Trace}i", "abc"),
        ("{missing}i", "-"),
        ("{x-served-by}o", "w1"),
        ("{content-type}o", "text/plain"),
        ("{REMOTE_USER}e", "bob"),
        ("{NOPE}e", "-"),
    ],
)
def test_atoms(atom, expected):
    assert line(f"[%({atom})s]") == f"[{expected}]"


def test_date_atom():
    assert re.fullmatch(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]", line("%(t)s"))


def test_no_length_and_no_headers():
    assert line("%(b)s %(B)s", length=None) == "- 0"
    assert line("%(a)s|%(f)s|%(u)s", req_headers=[]) == "-|-|-"


def test_headers_from_environ_when_not_given():
    environ = {"HTTP_USER_AGENT": "wsgi-agent", "HTTP_X_TRACE": "t"}
    assert line("%(a)s %({x-trace}i)s", req_headers=None, environ=environ) == "wsgi-agent t"


def test_default_format():
    text = line(DEFAULT_ACCESS_FORMAT)
    assert text.startswith("10.0.0.1 - alice [")
    assert text.endswith('] "GET /path/x?q=1&r=2 HTTP/1.1" 201 1234 "http://ref/" "curl/8"')


def test_literal_text_and_percent():
    assert line("100%% %(s)s done") == "100% 201 done"


def test_unknown_atom_is_refused():
    with pytest.raises(ConfigError, match=r"unknown atom %\(x\)s"):
        compile_access_format("%(x)s")


def test_access_log_file_end_to_end(start_server, tmp_path):
    access = tmp_path / "access.log"
    fmt = '%(h)s "%(r)s" %(s)s %(b)s %({x-pid}o)s %({PATH_INFO}e)s %(a)s'
    server = start_server("--access-logfile", str(access), "--access-logformat", fmt).ready()
    _, headers, _ = server.get("/logged?x=1", headers={"User-Agent": "probe/1"})
    expected = '127.0.0.1 "GET /logged?x=1 HTTP/1.0" 200 '
    text = wait_for(
        lambda: access.exists() and "/logged" in access.read_text() and access.read_text(), 5
    )
    (entry,) = [ln for ln in text.splitlines() if "/logged" in ln]
    assert entry.startswith(expected)
    assert entry.endswith(f" {headers['X-Pid']} /logged probe/1")
