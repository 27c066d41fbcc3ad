"""WebSocket routes for the ASGI worker's tests."""

from __future__ import annotations


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
        body = b"plain http"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    path = scope["path"]
    assert (await receive())["type"] == "websocket.connect"
    if path == "/deny":
        await send({"type": "websocket.close"})
        return
    if path == "/unauthorized":
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"who are you?"})
        return
    if path == "/crash":
        raise RuntimeError("crash before accept")
    offered = scope["subprotocols"]
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": "chat" if "chat" in offered else None,
            "headers": [(b"x-scope-path", scope["path"].encode())],
        }
    )
    if path == "/close-4001":
        await send({"type": "websocket.close", "code": 4001, "reason": "go away"})
        return
    if path.endswith("/paths"):  # under any root_path
        paths = [scope["root_path"], scope["path"], scope["raw_path"].decode("latin-1")]
        await send({"type": "websocket.send", "text": " ".join(paths)})
    if path == "/scope":
        await send(
            {
                "type": "websocket.send",
                "text": f"{scope['scheme']} {scope['path']} {scope['query_string'].decode()}",
            }
        )
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if "text" in message and message["text"] is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
