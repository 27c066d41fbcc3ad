"""Apps for the fault tests: the same routes as WSGI (``wsgi``) and ASGI (``asgi``).

/           hello
/pid        the worker's pid
/sleep?s=N  answer after N seconds
/big        64 KiB
/upload     read the whole body, answer its size
ASGI only: a WebSocket at any path that echoes and otherwise only waits.
"""

import asyncio
import os
import time
from urllib.parse import parse_qs

BIG = b"x" * 65536


def _body(path: str, query: str) -> bytes:
    if path == "/pid":
        return str(os.getpid()).encode()
    if path == "/big":
        return BIG
    return b"hello"


def wsgi(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/sleep":
        time.sleep(float(parse_qs(environ["QUERY_STRING"]).get("s", ["1"])[0]))
    if path == "/upload":
        size = len(environ["wsgi.input"].read())
        body = str(size).encode()
    else:
        body = _body(path, environ["QUERY_STRING"])
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text") or "?"})
    path = scope["path"]
    query = scope["query_string"].decode()
    if path == "/sleep":
        await asyncio.sleep(float(parse_qs(query).get("s", ["1"])[0]))
    if path == "/upload":
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = str(size).encode()
    else:
        body = _body(path, query)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})
