"""The same request over HTTP/1.1 and over uwsgi (as nginx would pass it) yields
the same Request, apart from what only one protocol has: keep-alive and the
100-continue expectation (nginx answers both itself)."""

from __future__ import annotations

import pytest
from uwsgi_harness import nginx_vars, pack

from unicorn_http import Data, EndOfMessage, H1Connection, Request
from unicorn_uwsgi import UwsgiConnection

PROTOCOL_FIELDS = {"keep_alive", "expect_continue"}

REQUESTS = {
    "browser-get": (
        b"GET",
        b"/shop/caf%C3%A9/item?id=42&ref=%2Fhome&q=a+b",
        [
            (b"Host", b"shop.example"),
            (b"User-Agent", b"Mozilla/5.0 (X11; Linux x86_64)"),
            (b"Accept", b"text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
            (b"Accept-Language", b"en-GB,en;q=0.5"),
            (b"Accept-Encoding", b"gzip, deflate, br"),
            (b"Cookie", b"session=abc123; theme=dark"),
            (b"X-Request-Id", b"r-1"),
        ],
        b"",
    ),
    "form-post": (
        b"POST",
        b"/login",
        [
            (b"Host", b"shop.example"),
            (b"Content-Type", b"application/x-www-form-urlencoded"),
            (b"Content-Length", b"21"),
        ],
        b"user=alice&pass=s3cr3",
    ),
    "json-put-empty-query": (
        b"PUT",
        b"/api/v1/items/7?",
        [
            (b"Host", b"api.example:8443"),
            (b"Content-Length", b"7"),
            (b"Content-Type", b"application/json"),
        ],
        b'{"a":1}',
    ),
    "head": (b"HEAD", b"/", [(b"Host", b"x")], b""),
}


def over_http(method, target, headers, body):
    conn = H1Connection()
    lines = b"".join(b"%s: %s\r\n" % h for h in headers)
    conn.receive_data(b"%s %s HTTP/1.1\r\n%s\r\n%s" % (method, target, lines, body))
    return events(conn)


def over_uwsgi(method, target, headers, body):
    found = dict((k.lower(), v) for k, v in headers)
    conn = UwsgiConnection()
    conn.receive_data(
        pack(
            nginx_vars(
                method,
                target,
                headers,
                content_length=found.get(b"content-length", b""),
                content_type=found.get(b"content-type", b""),
            ),
            body,
        )
    )
    return events(conn)


def events(conn) -> list:
    out = [conn.next_event()]
    while type(out[-1]) is not EndOfMessage:
        out.append(conn.next_event())
    return out


@pytest.mark.parametrize("name", REQUESTS)
def test_same_request_over_http_and_uwsgi(name):
    http = over_http(*REQUESTS[name])
    uwsgi = over_uwsgi(*REQUESTS[name])
    assert type(http[0]) is Request and type(uwsgi[0]) is Request
    for field in Request.__slots__:
        if field not in PROTOCOL_FIELDS:
            assert getattr(uwsgi[0], field) == getattr(http[0], field), field
    body = lambda evs: b"".join(e.data for e in evs if type(e) is Data)  # noqa: E731
    assert body(uwsgi) == body(http) == REQUESTS[name][3]
    assert uwsgi[0].keep_alive is False
