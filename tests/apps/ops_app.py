"""A WSGI app for the operations tests: its pid, a slow path, a 404, memory that grows."""

from __future__ import annotations

import os
import time

_HOARD: list[bytes] = []


def app(environ, start_response):
    path = environ["PATH_INFO"]
    status = "200 OK"
    if path == "/grow":  # keep 8 MiB more for as long as this worker lives
        _HOARD.append(os.urandom(8 * 1024 * 1024))
    elif path == "/slow":
        time.sleep(0.02)
    elif path == "/missing":
        status = "404 Not Found"
    body = f"{os.getpid()}".encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def asgi_app(scope, receive, send):
    """The same routes for the asgi worker (without /grow)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    status = 200
    if path == "/slow":
        import asyncio

        await asyncio.sleep(0.02)
    elif path == "/missing":
        status = 404
    body = f"{os.getpid()}".encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
