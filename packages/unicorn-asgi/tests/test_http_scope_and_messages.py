"""The ASGI http scope and messages over real sockets: what the application sees and sends."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest

pytestmark = pytest.mark.timeout(30)


async def scope_app(scope, receive, send):
    shown = {k: v for k, v in scope.items() if k not in ("headers", "raw_path", "query_string")}
    shown["raw_path"] = scope["raw_path"].decode("latin-1")
    shown["query_string"] = scope["query_string"].decode("latin-1")
    shown["headers"] = [[n.decode(), v.decode()] for n, v in scope["headers"]]
    shown["extensions"] = sorted(scope["extensions"])
    body = json.dumps(shown).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_scope_is_complete(serve):
    srv = serve(scope_app, state={"db": "ready"})
    r = httpx.get(srv.url + "/caf%C3%A9/a%2Fb?x=1&y=%20", headers={"X-Thing": "yes"})
    scope = r.json()
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/caf\u00e9/a/b"
    assert scope["raw_path"] == "/caf%C3%A9/a%2Fb"
    assert scope["query_string"] == "x=1&y=%20"
    assert scope["root_path"] == ""
    assert ["x-thing", "yes"] in scope["headers"]
    assert scope["client"][0] == "127.0.0.1" and scope["client"][1] > 0
    assert scope["server"] == ["127.0.0.1", srv.port]
    assert scope["state"] == {"db": "ready"}
    assert {
        "http.response.trailers",
        "http.response.informational",
        "http.response.pathsend",
    } <= set(scope["extensions"])
    # transfer of a chunked response without Content-Length
    assert r.headers["transfer-encoding"] == "chunked"


def test_state_is_a_copy_per_request(serve):
    async def app(scope, receive, send):
        scope["state"]["n"] = scope["state"].get("n", 0) + 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(scope["state"]["n"]).encode()})

    srv = serve(app, state={})
    with httpx.Client() as client:
        assert [client.get(srv.url).text for _ in range(3)] == ["1", "1", "1"]


def test_root_path_prefixes_path_and_raw_path(serve):
    srv = serve(scope_app, root_path="/api/")
    scope = httpx.get(srv.url + "/items").json()
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/items"
    assert scope["raw_path"] == "/api/items"


def test_http_1_0_and_head(serve):
    async def app(scope, receive, send):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"x-v", scope["http_version"].encode())],
            }
        )
        await send({"type": "http.response.body", "body": b"body!"})

    srv = serve(app)
    out = srv.raw(b"GET / HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200") and b"x-v: 1.0" in out and out.endswith(b"body!")
    r = httpx.head(srv.url)
    assert r.status_code == 200 and r.content == b""
    out = srv.raw(b"HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert out.endswith(b"\r\n\r\n") and b"body!" not in out


def test_forwarded_headers_from_a_trusted_peer_only(serve):
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7, 127.0.0.1"}
    trusted = serve(
        scope_app,
        forwarded_allow_ips=["127.0.0.1"],
        secure_scheme_headers={"X-FORWARDED-PROTO": "https"},
    )
    scope = httpx.get(trusted.url, headers=headers).json()
    assert scope["scheme"] == "https"
    assert scope["client"] == ["203.0.113.7", 0]
    untrusted = serve(
        scope_app,
        forwarded_allow_ips=["10.0.0.1"],
        secure_scheme_headers={"X-FORWARDED-PROTO": "https"},
    )
    scope = httpx.get(untrusted.url, headers=headers).json()
    assert scope["scheme"] == "http"
    assert scope["client"][0] == "127.0.0.1"


def test_request_body_streams_in_and_response_streams_out(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        more = True
        while more:
            message = await receive()
            more = message["more_body"]
            await send(
                {"type": "http.response.body", "body": message["body"].upper(), "more_body": True}
            )
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    srv = serve(app)

    def parts():
        for i in range(50):
            yield b"chunk %d;" % i

    with httpx.Client() as client:
        r = client.post(srv.url, content=parts())
        assert r.content == b"".join(parts()).upper()
        assert r.headers["transfer-encoding"] == "chunked"
        r = client.post(srv.url, content=b"abc" * 100000)
        assert r.content == b"ABC" * 100000


def test_expect_100_continue_on_first_receive(serve):
    async def reads(scope, receive, send):
        message = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": message["body"]})

    async def refuses(scope, receive, send):
        await send(
            {"type": "http.response.start", "status": 413, "headers": [(b"content-length", b"0")]}
        )
        await send({"type": "http.response.body", "body": b""})

    head = b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    srv = serve(reads)
    with socket.create_connection(srv.addr, timeout=5) as s:
        s.sendall(head)
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"hello")
        assert s.recv(1000).endswith(b"5\r\nhello\r\n0\r\n\r\n")
    srv2 = serve(refuses)
    with socket.create_connection(srv2.addr, timeout=5) as s:
        s.sendall(head)
        out = s.recv(1000)
        assert out.startswith(b"HTTP/1.1 413") and b"100 Continue" not in out


def test_pipelined_requests_answered_in_order(serve):
    async def app(scope, receive, send):
        if scope["path"] == "/slow":
            await asyncio.sleep(0.05)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(scope["path"]))],
            }
        )
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    srv = serve(app)
    reqs = b"".join(
        b"GET /%s HTTP/1.1\r\nHost: t\r\n%s\r\n"
        % (p, b"Connection: close\r\n" if p == b"c" else b"")
        for p in (b"a", b"slow", b"b", b"c")
    )
    out = srv.raw(reqs)
    bodies = [part.rsplit(b"\r\n\r\n", 1)[-1] for part in out.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b"/a", b"/slow", b"/b", b"/c"]


def test_trailers_early_hints_and_pathsend(serve, tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"0123456789" * 50000)

    async def app(scope, receive, send):
        if scope["path"] == "/trailers":
            await send(
                {"type": "http.response.start", "status": 200, "headers": [], "trailers": True}
            )
            await send({"type": "http.response.body", "body": b"data"})
            await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]})
        elif scope["path"] == "/hints":
            await send(
                {
                    "type": "http.response.informational",
                    "status": 103,
                    "headers": [(b"link", b"</a.css>; rel=preload")],
                }
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"2")],
                }
            )
            await send({"type": "http.response.body", "body": b"ok"})
        else:
            size = str(target.stat().st_size).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", size)],
                }
            )
            await send({"type": "http.response.pathsend", "path": str(target)})

    srv = serve(app)
    out = srv.raw(b"GET /trailers HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert out.endswith(b"4\r\ndata\r\n0\r\nx-checksum: abc\r\n\r\n")
    out = srv.raw(b"GET /hints HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert out.startswith(
        b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK"
    )
    r = httpx.get(srv.url + "/file")
    assert r.content == target.read_bytes()


def test_bad_request_gets_400_and_others_go_on(serve):
    srv = serve(scope_app)
    out = srv.raw(b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400")
    assert httpx.get(srv.url).status_code == 200
    assert "Bad request" in srv.log.text()


def test_upgrade_websocket_is_the_apps_to_answer(serve):
    async def app(scope, receive, send):
        await send(
            {
                "type": "http.response.start",
                "status": 426,
                "headers": [(b"content-length", b"0"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    srv = serve(app)
    out = srv.raw(
        b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    assert out.startswith(b"HTTP/1.1 426")


def test_request_limits_reach_the_parser(serve):
    srv = serve(scope_app, limit_request_fields=3, limit_request_line=64)
    out = srv.raw(b"GET / HTTP/1.1\r\nHost: t\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 431")
    out = srv.raw(b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 414")


def test_upgrade_seam_hands_the_connection_over(serve):
    srv = serve(scope_app)
    taken = []

    def websocket(proto, req):
        taken.append(req.target)
        proto.transport.write(b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\n\r\n")
        proto.close()
        return True

    srv.config.upgrades[b"websocket"] = websocket
    out = srv.raw(
        b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
    assert out.startswith(b"HTTP/1.1 501") and taken == [b"/ws"]


def test_body_left_unread_after_the_response_belongs_to_nobody(serve):
    got = []

    async def app(scope, receive, send):
        if scope["path"] == "/early":
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [(b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            got.append(await receive())  # must not read the next request's bytes
            return
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]}
        )
        await send({"type": "http.response.body", "body": b"next"})

    srv = serve(app)
    out = srv.raw(
        b"POST /early HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789"
        b"GET /after HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    assert out.startswith(b"HTTP/1.1 413") and out.endswith(b"next")
    assert got == [{"type": "http.disconnect"}]
