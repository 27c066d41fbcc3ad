"""A caller that goes away (cancel, early close, disconnect) cancels the work in the worker."""

from __future__ import annotations

import asyncio
import socket

import pytest
from running_pool import ECHO, wait_for

from unicorn_dirty import AsyncDirtyClient, stash
from unicorn_dirty import protocol as P

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def marks(shared_pool, monkeypatch):
    monkeypatch.setenv("UNICORN_DIRTY_SOCKET", shared_pool.path)
    return lambda key: stash.get("marks", key)


def all_idle(shared_pool) -> bool:
    return not any(w["busy"] for w in shared_pool.status()["workers"])


def test_breaking_out_of_a_sync_stream_closes_the_generator(shared_pool, marks):
    for i, _ in enumerate(shared_pool.client.stream(ECHO, "endless", "sync-gen")):
        if i == 3:
            break
    wait_for(lambda: marks("sync-gen") == "closed", what="generator close")
    wait_for(lambda: all_idle(shared_pool), what="slot freed")
    assert shared_pool.client.execute(ECHO, "noop") is None


def test_closing_an_async_stream_closes_the_async_generator(shared_pool, marks):
    async def main():
        client = AsyncDirtyClient(shared_pool.path)
        agen = client.stream_async(ECHO, "aendless", "async-gen")
        async for chunk in agen:
            assert chunk == b"tick"
            break
        await agen.aclose()
        await client.close()

    asyncio.run(main())
    wait_for(lambda: marks("async-gen") == "closed", what="async generator close")
    wait_for(lambda: all_idle(shared_pool), what="slot freed")


def test_cancelling_the_awaiting_task_cancels_the_coroutine(shared_pool, marks):
    async def main():
        client = AsyncDirtyClient(shared_pool.path)
        task = asyncio.create_task(client.execute_async(ECHO, "await_forever", "coro"))
        while marks("coro") != "running":
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # the connection stays usable for other calls
        assert await client.execute_async(ECHO, "echo", 1) == [[1], {}]
        await client.close()

    asyncio.run(main())
    wait_for(lambda: marks("coro") == "cancelled", what="coroutine cancellation")
    wait_for(lambda: all_idle(shared_pool), what="slot freed")


def test_cancelled_async_caller_tells_a_sync_action_through_is_cancelled(shared_pool, marks):
    async def main():
        client = AsyncDirtyClient(shared_pool.path)
        task = asyncio.create_task(client.execute_async(ECHO, "cooperative", "coop"))
        while marks("coop") != "running":
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()

    asyncio.run(main())
    wait_for(lambda: marks("coop") == "cancelled", what="cooperative cancel")
    wait_for(lambda: all_idle(shared_pool), what="slot freed")


def test_a_disconnected_caller_cancels_its_running_call(shared_pool, marks):
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(shared_pool.path)
    sock.sendall(P.frame(P.REQUEST, 1, P.encode_request(ECHO, "cooperative", ("gone",), {}, None)))
    wait_for(lambda: marks("gone") == "running", what="call to start")
    sock.close()
    wait_for(lambda: marks("gone") == "cancelled", what="cancel after disconnect")
    wait_for(lambda: all_idle(shared_pool), what="slot freed")


def test_a_slow_stream_consumer_holds_the_producer_back(shared_pool, marks):
    """Backpressure: without credit the worker stops after the window, it does not buffer on."""
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(shared_pool.path)
    sock.sendall(P.frame(P.REQUEST, 1, P.encode_request(ECHO, "endless", ("slow",), {}, None)))
    reader = P.FrameReader()
    chunks = 0
    sock.settimeout(0.4)
    try:
        while True:
            for kind, _, _ in reader.feed(sock.recv(65536)):
                chunks += kind == P.CHUNK
    except TimeoutError:
        pass
    assert chunks == P.STREAM_WINDOW
    sock.sendall(P.frame(P.CREDIT, 1, P.encode(4)))
    more = 0
    try:
        while True:
            for kind, _, _ in reader.feed(sock.recv(65536)):
                more += kind == P.CHUNK
    except TimeoutError:
        pass
    assert more == 4
    sock.close()
    wait_for(lambda: marks("slow") == "closed", what="stream closed after disconnect")
