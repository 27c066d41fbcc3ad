"""An ASGI app for the HTTP/2 tests: what the scope says, streaming, trailers,
early hints, uploads and a stream that reports its disconnect in ASGI_MARK_DIR."""

import asyncio
import json
import os
import time
from pathlib import Path


def _mark(name: str, text: str = "") -> None:
    folder = os.environ.get("ASGI_MARK_DIR")
    if folder:
        (Path(folder) / name).write_text(text)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    start = {"type": "http.response.start", "status": 200, "headers": []}
    if path == "/scope":
        body = json.dumps(
            {
                "http_version": scope["http_version"],
                "scheme": scope["scheme"],
                "method": scope["method"],
            }
        ).encode()
        await send(start)
        await send({"type": "http.response.body", "body": body})
    elif path == "/upload":
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send(start)
        await send({"type": "http.response.body", "body": str(size).encode()})
    elif path == "/stream":
        start["headers"] = [(b"content-type", b"text/event-stream")]
        await send(start)
        for i in range(3):
            await send(
                {"type": "http.response.body", "body": b"data: %d\n\n" % i, "more_body": True}
            )
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
    elif path == "/trailers":
        start["trailers"] = True
        await send(start)
        await send({"type": "http.response.body", "body": b"body", "more_body": False})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]})
    elif path == "/hints":
        await send({"type": "http.response.early_hint", "links": [b"</style.css>; rel=preload"]})
        await send(start)
        await send({"type": "http.response.body", "body": b"hinted"})
    elif path == "/forever":
        start["headers"] = [(b"content-type", b"text/event-stream")]
        await send(start)
        _mark("forever-started")
        try:
            while True:
                await send(
                    {"type": "http.response.body", "body": b"data: tick\n\n", "more_body": True}
                )
                try:
                    message = await asyncio.wait_for(receive(), 0.02)
                except TimeoutError:
                    continue
                if message["type"] == "http.disconnect":
                    _mark("forever-disconnect", "http.disconnect")
                    return
        except OSError as exc:
            _mark("forever-disconnect", type(exc).__name__)
    elif path == "/sleep":
        _mark("sleep-started")
        await asyncio.sleep(1.0)
        await send(start)
        await send({"type": "http.response.body", "body": b"slept"})
    elif path == "/hold":
        # ignores http.disconnect: only the grace period's cancellation ends it
        await send(start)
        await send({"type": "http.response.body", "body": b"held", "more_body": True})
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            _mark("hold-cancelled", repr(time.monotonic()))
            raise
    elif path == "/fail":
        await send(start)
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("mid-stream failure")
    else:
        await send(start)
        await send({"type": "http.response.body", "body": b"hello"})
