"""A plain ASGI application for the asgi worker's integration tests.

Lifespan: startup fills ``state``; with ``ASGI_FAIL_STARTUP`` set it fails
with that message; shutdown writes ``ASGI_SHUTDOWN_FILE`` when set. Routes
that need to tell the test something write to ``ASGI_MARK_DIR``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path


def _mark(name: str, text: str = "") -> None:
    folder = os.environ.get("ASGI_MARK_DIR")
    if folder:
        (Path(folder) / name).write_text(text)


async def _respond(send, body: bytes, status: int = 200, headers=()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", b"%d" % len(body)), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def lifespan(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            failure = os.environ.get("ASGI_FAIL_STARTUP")
            if failure:
                await send({"type": "lifespan.startup.failed", "message": failure})
                return
            scope["state"]["started_pid"] = os.getpid()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            _mark("shutdown", str(os.getpid()))
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    path = scope["path"]
    if path == "/":
        await _respond(send, b"hello")
    elif path == "/state":
        await _respond(send, str(scope["state"].get("started_pid")).encode())
    elif path == "/pid":
        await _respond(send, str(os.getpid()).encode())
    elif path == "/echo":
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message["body"]
            more = message["more_body"]
        await _respond(send, bytes(body))
    elif path == "/slow-upload":
        # reads a large body slowly and answers with its size
        total = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            total += len(message["body"])
            more = message["more_body"]
            await asyncio.sleep(0.002)
        await _respond(send, str(total).encode())
    elif path == "/sse":
        count = int(dict(_query(scope)).get("n", "3"))
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
        for i in range(count):
            await send(
                {"type": "http.response.body", "body": b"data: %d\n\n" % i, "more_body": True}
            )
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
    elif path == "/forever":
        # streams until the client goes away, then says so
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        _mark("forever-started")
        try:
            while True:
                await send(
                    {"type": "http.response.body", "body": b"data: tick\n\n", "more_body": True}
                )
                message = await _poll_disconnect(receive, 0.02)
                if message is not None:
                    _mark("forever-disconnect", message["type"])
                    return
        except OSError as exc:
            _mark("forever-disconnect", type(exc).__name__)
    elif path == "/events":
        # an endless event stream that never reads: ended by the server on shutdown
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        _mark("events-started")
        try:
            while True:
                await send(
                    {"type": "http.response.body", "body": b"data: e\n\n", "more_body": True}
                )
                await asyncio.sleep(0.02)
        except OSError as exc:
            _mark("events-ended", type(exc).__name__)
    elif path == "/sleep":
        seconds = float(dict(_query(scope)).get("s", "1"))
        _mark("sleep-started")
        await asyncio.sleep(seconds)
        await _respond(send, b"slept")
    else:
        await _respond(send, b"not found", 404)


def _query(scope):
    for pair in scope["query_string"].decode().split("&"):
        if "=" in pair:
            yield tuple(pair.split("=", 1))


async def _poll_disconnect(receive, timeout):
    """The next http.disconnect within ``timeout``, or None. The request's own
    http.request messages (an empty one for a GET) are read past, as Starlette's
    listen_for_disconnect does."""
    try:
        while True:
            message = await asyncio.wait_for(receive(), timeout)
            if message["type"] != "http.request":
                return message
    except TimeoutError:
        return None
