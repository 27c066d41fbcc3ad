"""The ASGI twin of uwsgi_wsgi.py, for the asgi worker behind nginx (same routes)."""

from __future__ import annotations

import asyncio
import json
import os
import time
import zlib
from urllib.parse import parse_qs


async def _body(receive) -> bytes:
    out = bytearray()
    while True:
        message = await receive()
        out += message.get("body", b"")
        if not message.get("more_body"):
            return bytes(out)


async def _start(send, content_type: bytes, status: int = 200) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type)],
        }
    )


async def _piece(send, data: bytes, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def _wait_for_file(path: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def _pieces(send, first: bytes, rest: list[bytes], mark: str | None) -> None:
    await _piece(send, first)
    if mark is not None and not await _wait_for_file(mark):
        await _piece(send, b"TIMEOUT: the client never saw the first piece\n", False)
        return
    for data in rest:
        await _piece(send, data)
    await _piece(send, b"", False)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    if path.startswith("/environ"):
        headers = {}
        content = {}
        for name, value in scope["headers"]:
            key = name.decode().upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                content[key] = value.decode("latin-1")
            else:
                key = "HTTP_" + key
                text = value.decode("latin-1")
                headers[key] = headers[key] + "," + text if key in headers else text
        found = {
            "REQUEST_METHOD": scope["method"],
            # as WSGI spells it: the path's bytes read as latin-1
            "PATH_INFO": scope["path"].encode().decode("latin-1"),
            "QUERY_STRING": scope["query_string"].decode("latin-1"),
            "RAW_URI": scope["raw_path"].decode("latin-1")
            + ("?" + scope["query_string"].decode("latin-1") if scope["query_string"] else ""),
            "SERVER_PROTOCOL": "HTTP/" + scope["http_version"],
            "REMOTE_ADDR": scope["client"][0] if scope.get("client") else None,
            "CONTENT_TYPE": content.get("CONTENT_TYPE"),
            "CONTENT_LENGTH": content.get("CONTENT_LENGTH"),
            "wsgi.url_scheme": scope["scheme"],
            "headers": headers,
            "body": (await _body(receive)).decode("latin-1"),
        }
        await _start(send, b"application/json")
        await _piece(send, json.dumps(found).encode(), False)
    elif path == "/echo":
        body = await _body(receive)
        await _start(send, b"application/octet-stream")
        await _piece(send, body, False)
    elif path == "/count":
        total, crc = 0, 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            total += len(chunk)
            crc = zlib.crc32(chunk, crc)
            if not message.get("more_body"):
                break
        await _start(send, b"text/plain")
        await _piece(send, b"%d %08x" % (total, crc), False)
    elif path == "/pid":
        await _start(send, b"text/plain")
        await _piece(send, str(os.getpid()).encode(), False)
    elif path == "/stream":
        await _start(send, b"text/plain")
        await _pieces(send, b"part 0\n", [b"part %d\n" % i for i in range(1, 5)], query.get("mark"))
    elif path == "/sse":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        events = [b"data: %d\n\n" % i for i in range(1, 4)]
        await _pieces(send, b"data: 0\n\n", events, query.get("mark"))
    elif path == "/endless":
        await _start(send, b"application/octet-stream")
        try:
            for _ in range(100000):
                await _piece(send, b"x" * 65536)
            await _piece(send, b"", False)
        except OSError:
            pass
    else:
        await _start(send, b"text/plain")
        await _piece(send, b"hello", False)
