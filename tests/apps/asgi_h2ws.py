"""WebSocket over HTTP/2 (RFC 8441) routes for tests/test_asgi_http2_websocket.py.

Every WebSocket writes its scope and its last received message to
``$ASGI_MARK_DIR/<name>.json`` (the name is the ``name`` query parameter), so a
test can see what the application saw."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from urllib.parse import parse_qs


def _mark(scope, what: str, value) -> None:
    name = parse_qs(scope["query_string"].decode()).get("name", [""])[0]
    if name:
        path = Path(os.environ["ASGI_MARK_DIR"]) / f"{name}.{what}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(value))
        tmp.replace(path)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        body = f"{scope['method']} {scope['path']} {scope['http_version']}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    seen = {
        "type": scope["type"],
        "http_version": scope["http_version"],
        "scheme": scope["scheme"],
        "path": scope["path"],
        "subprotocols": scope["subprotocols"],
        "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
    }
    _mark(scope, "scope", seen)
    assert (await receive())["type"] == "websocket.connect"
    path = scope["path"]
    if path == "/deny":
        await send({"type": "websocket.close"})
        return
    if path == "/unauthorized":
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"who are you?"})
        return
    offered = scope["subprotocols"]
    await send({"type": "websocket.accept", "subprotocol": "chat" if "chat" in offered else None})
    if path == "/close-4001":
        await send({"type": "websocket.close", "code": 4001, "reason": "go away"})
        message = await receive()
        _mark(scope, "last", message)
        return
    if path == "/stall":
        # read nothing until the test creates $ASGI_MARK_DIR/<name>.go
        go = Path(os.environ["ASGI_MARK_DIR"]) / (
            parse_qs(scope["query_string"].decode())["name"][0] + ".go"
        )
        while not go.exists():
            await asyncio.sleep(0.02)
    if path == "/big":
        await send({"type": "websocket.send", "bytes": bytes(range(256)) * 1024})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            _mark(scope, "last", message)
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
