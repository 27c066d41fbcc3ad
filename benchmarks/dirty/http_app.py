"""ASGI endpoints for bench_dirty_http.py: each request runs the 10 ms sleep in the dirty pool.

``unicorn_app`` calls unicorn-dirty through the event loop's one multiplexed
client; ``gunicorn_app`` calls gunicorn 27's pool. gunicorn's async client
carries one call at a time per connection and its ``get_dirty_client_async``
keeps the client in a context variable, which is new for every request, so
the peer keeps its own free list of connected clients: the fastest way we
found to use it, so that the comparison is with gunicorn at its best.
"""

from __future__ import annotations

from unicorn_dirty import get_dirty_client_async

MS = 10.0
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
}
BODY = {"type": "http.response.body", "body": b"ok"}


async def lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def unicorn_app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    client = await get_dirty_client_async()
    await client.execute_async("bench_app:BenchApp", "sleep", MS)
    await send(START)
    await send(BODY)


_free_clients: list = []


async def gunicorn_app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    from gunicorn.dirty.client import DirtyClient, get_dirty_socket_path

    client = _free_clients.pop() if _free_clients else DirtyClient(get_dirty_socket_path())
    try:
        await client.execute_async("gunicorn_peer:PeerBenchApp", "sleep", MS)
    except BaseException:
        await client.close_async()
        raise
    _free_clients.append(client)
    await send(START)
    await send(BODY)
