"""A slow route past the worker's timeout beside fast ones (WSGI and ASGI)."""

import asyncio
import time


def wsgi(environ, start_response):
    if environ["PATH_INFO"] == "/stuck":
        time.sleep(4)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"done"]


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/stuck":
        await asyncio.sleep(4)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"done"})
