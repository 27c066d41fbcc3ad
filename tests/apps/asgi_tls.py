"""An ASGI app that answers with the ``tls`` scope extension as JSON (null
when there is none), over HTTP and over a WebSocket."""

import json


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    tls = scope.get("extensions", {}).get("tls")
    body = json.dumps({"scheme": scope["scheme"], "tls": tls}).encode()
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": body.decode()})
        await send({"type": "websocket.close"})
        return
    await receive()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
