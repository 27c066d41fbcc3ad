"""The benchmark's ASGI application, the same for every server.

``/``: hello world; ``/64k``: a 64 KiB body; ``/echo``: the request body back.
Plain ASGI, no framework, so the server's own work is what is measured.
``/fastapi``: hello world from a FastAPI route (when FastAPI is installed), to
show how much of a real application's time the server is.
"""

from __future__ import annotations

try:
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse
except ImportError:  # the FastAPI load is then skipped
    fastapi_app = None
else:
    fastapi_app = FastAPI()

    @fastapi_app.get("/fastapi", response_class=PlainTextResponse)
    async def fastapi_hello() -> str:
        return "Hello, world!"


HELLO = b"Hello, world!"
BIG = b"x" * 65536
_HELLO_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
_BIG_HEADERS = [(b"content-type", b"application/octet-stream"), (b"content-length", b"65536")]


async def app(scope, receive, send):
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        return
    path = scope["path"]
    if path == "/fastapi" and fastapi_app is not None:
        await fastapi_app(scope, receive, send)
        return
    if path == "/echo":
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/octet-stream"),
                    (b"content-length", b"%d" % len(body)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    if path == "/64k":
        await send({"type": "http.response.start", "status": 200, "headers": _BIG_HEADERS})
        await send({"type": "http.response.body", "body": BIG})
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HELLO_HEADERS})
    await send({"type": "http.response.body", "body": HELLO})


def wsgi_app(environ, start_response):
    """The same hello world for WSGI workers (the HTTP/2 benchmark's gthread rows)."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, world!"]
