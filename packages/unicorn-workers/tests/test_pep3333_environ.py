"""The environ a request produces (PEP 3333, CGI variables, gunicorn's proxy rules)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(10)


def capture(h, raw: bytes, **kw):
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    data, _conn = h.exchange(app, raw, **kw)
    assert h.parse(data)[0][0] == 200, data
    return seen


def test_request_line_and_cgi_variables(h):
    env = capture(
        h,
        b"GET /caf%C3%A9/a%2Fb?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\n"
        b"Content-Type: text/x\r\n\r\n",
    )
    assert env["REQUEST_METHOD"] == "GET"
    # PEP 3333: the decoded path, as latin-1 text of the raw bytes
    assert env["PATH_INFO"] == "/caf\xc3\xa9/a/b"
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["RAW_URI"] == "/caf%C3%A9/a%2Fb?x=1&y=%20"
    assert env["SCRIPT_NAME"] == ""
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_NAME"] == "example.com"
    assert env["SERVER_PORT"] == "8080"
    assert env["HTTP_HOST"] == "example.com:8080"
    assert env["REMOTE_ADDR"] == "10.0.0.7"
    assert env["REMOTE_PORT"] == "40000"
    assert env["CONTENT_TYPE"] == "text/x"
    assert "HTTP_CONTENT_TYPE" not in env
    assert "CONTENT_LENGTH" not in env
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.input_terminated"] is True
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input"].read() == b""
    assert callable(env["wsgi.file_wrapper"])
    assert callable(env["wsgi.early_hints"])
    assert env["SERVER_SOFTWARE"].startswith("unicorn/")
    env["wsgi.errors"].write("to the error log\n")


def test_server_name_defaults(h):
    env = capture(h, b"GET / HTTP/1.0\r\n\r\n")
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("127.0.0.1", "8000")
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
    env = capture(h, b"GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n")
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("[::1]", "80")
    env = capture(h, b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n", is_ssl=True)
    assert (env["SERVER_PORT"], env["wsgi.url_scheme"]) == ("443", "https")


def test_repeated_headers_are_joined_and_underscores_dropped(h):
    env = capture(
        h,
        b"GET / HTTP/1.1\r\nHost: x\r\nAccept: a\r\nX-Trace: 1\r\nAccept: b\r\n"
        b"X-Auth_User: admin\r\nX-Auth-User: real\r\nContent-Length: 0\r\n\r\n",
    )
    assert env["HTTP_ACCEPT"] == "a,b"
    assert env["HTTP_X_TRACE"] == "1"
    assert env["HTTP_X_AUTH_USER"] == "real"
    assert env["CONTENT_LENGTH"] == "0"


def test_underscore_headers_refused_when_asked(h):
    def app(environ, start_response):
        raise AssertionError("must not run")

    data, _ = h.exchange(app, b"GET / HTTP/1.1\r\nHost: x\r\nX_A: 1\r\n\r\n", header_map="refuse")
    status, _, body, _ = h.parse(data)[0]
    assert status == 400 and b"underscore" in body


def test_root_path_becomes_script_name(h):
    env = capture(h, b"GET /app/users/1 HTTP/1.1\r\nHost: x\r\n\r\n", root_path="/app")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/users/1")
    env = capture(h, b"GET /app HTTP/1.1\r\nHost: x\r\n\r\n", root_path="/app/")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "")
    # only whole path segments are stripped
    env = capture(h, b"GET /application HTTP/1.1\r\nHost: x\r\n\r\n", root_path="/app")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/application")


SCHEME_REQ = b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\n\r\n"
SECURE = {"X-FORWARDED-PROTO": "https", "X-FORWARDED-SSL": "on"}


def test_secure_scheme_headers_only_from_trusted_peers(h):
    env = capture(h, SCHEME_REQ, secure_scheme_headers=SECURE)
    assert env["wsgi.url_scheme"] == "http"  # 10.0.0.7 is not in the default list
    env = capture(h, SCHEME_REQ, peer=("127.0.0.1", 1), secure_scheme_headers=SECURE)
    assert env["wsgi.url_scheme"] == "https"
    assert env["SERVER_PORT"] == "443"
    env = capture(
        h,
        SCHEME_REQ,
        secure_scheme_headers=SECURE,
        forwarded_allow_ips="10.0.0.0/8",
    )
    assert env["wsgi.url_scheme"] == "https"
    env = capture(h, SCHEME_REQ, secure_scheme_headers=SECURE, forwarded_allow_ips="*")
    assert env["wsgi.url_scheme"] == "https"


def test_contradictory_scheme_headers_are_refused(h):
    data, _ = h.exchange(
        lambda e, s: [],
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\nX-Forwarded-SSL: off\r\n\r\n",
        peer=("127.0.0.1", 1),
        secure_scheme_headers=SECURE,
    )
    status, _, body, _ = h.parse(data)[0]
    assert status == 400 and b"contradictory" in body


def test_concurrency_flags(h):
    env = capture(h, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", multithread=True, workers=3)
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is True
    env = capture(h, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", workers=1)
    assert env["wsgi.multithread"] is False
    assert env["wsgi.multiprocess"] is False


def test_unix_socket_peer(h):
    env = capture(h, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", peer="")
    assert env["REMOTE_ADDR"] == ""
    assert "REMOTE_PORT" not in env


def test_each_request_gets_its_own_environ(h):
    seen = []

    def app(environ, start_response):
        environ["mine"] = environ["PATH_INFO"]
        seen.append(environ)
        start_response("200 OK", [])
        return [b""]

    data, _ = h.exchange(
        app,
        b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    assert [s[0] for s in h.parse(data)] == [200, 200]
    assert seen[0]["mine"] == "/a" and seen[1]["mine"] == "/b"
    assert "HTTP_X_A" not in seen[1]
