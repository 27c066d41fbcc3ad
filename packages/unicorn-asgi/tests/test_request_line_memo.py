"""Requests on one connection that repeat or change their request line each get their own scope."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(30)


def test_each_request_on_a_connection_gets_its_own_line(serve):
    seen = []

    async def app(scope, receive, send):
        seen.append(
            (
                scope["method"],
                scope["path"],
                scope["raw_path"],
                scope["query_string"],
                scope["http_version"],
                scope["root_path"],
                scope["client"],
                scope["scheme"],
            )
        )
        scope["path"] = "/changed"  # the application's copy, not the next request's
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    srv = serve(app, root_path="/r", forwarded_allow_ips=["127.0.0.1"])
    lines = [
        b"GET /a HTTP/1.1",
        b"GET /a HTTP/1.1",
        b"GET /a?x=1 HTTP/1.1",
        b"POST /a HTTP/1.1",
        b"GET /caf%C3%A9 HTTP/1.1",
        b"GET /a HTTP/1.0",
    ]
    reqs = b"".join(
        line + b"\r\nHost: t\r\nContent-Length: 0\r\n" + extra + b"\r\n"
        for line, extra in zip(
            lines,
            [b"", b"X-Forwarded-For: 10.0.0.9\r\n", b"", b"", b"", b""],
            strict=True,
        )
    )
    srv.raw(reqs)
    client = seen[0][6]
    assert seen == [
        ("GET", "/r/a", b"/r/a", b"", "1.1", "/r", client, "http"),
        ("GET", "/r/a", b"/r/a", b"", "1.1", "/r", ("10.0.0.9", 0), "http"),
        ("GET", "/r/a", b"/r/a", b"x=1", "1.1", "/r", client, "http"),
        ("POST", "/r/a", b"/r/a", b"", "1.1", "/r", client, "http"),
        ("GET", "/r/café", b"/r/caf%C3%A9", b"", "1.1", "/r", client, "http"),
        ("GET", "/r/a", b"/r/a", b"", "1.0", "/r", client, "http"),
    ]


def test_forwarded_headers_are_looked_for_in_every_request(serve):
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["client"][0])
        # an application changing its own list changes nothing for the next request
        scope["headers"].append((b"x-forwarded-for", b"10.9.9.9"))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    srv = serve(app, forwarded_allow_ips=["127.0.0.1"])
    plain = b"GET / HTTP/1.1\r\nHost: t\r\nAccept: */*\r\n"
    reqs = (
        plain
        + b"\r\n"
        + plain
        + b"\r\n"
        + plain
        + b"X-Forwarded-For: 10.0.0.7\r\n\r\n"
        + plain
        + b"Connection: close\r\n\r\n"
    )
    srv.raw(reqs)
    assert seen == ["127.0.0.1", "127.0.0.1", "10.0.0.7", "127.0.0.1"]
