"""The standalone `unicorn-dirty` command: calls, errors, streams, sync and async clients."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest
from running_pool import ECHO, wait_for

from unicorn_dirty import (
    AsyncDirtyClient,
    DirtyActionNotFoundError,
    DirtyAppError,
    DirtyAppNotFoundError,
    DirtyClient,
    DirtyConnectionError,
    get_dirty_client,
    get_dirty_client_async,
)

pytestmark = pytest.mark.timeout(30)


def test_execute_returns_the_value_with_types_intact(shared_pool):
    assert shared_pool.client.execute(ECHO, "echo", 1, "a", b"\x00b", None, x=2.5, y=[True]) == [
        [1, "a", b"\x00b", None],
        {"x": 2.5, "y": [True]},
    ]


def test_app_exception_carries_remote_type_message_and_traceback(shared_pool):
    with pytest.raises(DirtyAppError) as info:
        shared_pool.client.execute(ECHO, "boom", "kaput")
    err = info.value
    assert err.error_type == "ValueError"
    assert err.message == "kaput"
    assert "in boom" in err.traceback and "raise ValueError(message)" in err.traceback
    # the shared_pool is fine afterwards
    assert shared_pool.client.execute(ECHO, "noop") is None


@pytest.mark.parametrize(
    "action", ["missing", "_private", "init", "close", "__call__", "__class__"]
)
def test_unknown_and_private_actions_name_the_app_and_action(shared_pool, action):
    with pytest.raises(DirtyActionNotFoundError) as info:
        shared_pool.client.execute(ECHO, action)
    assert "sample_apps:EchoApp" in str(info.value) and repr(action) in str(info.value)


def test_unknown_app_is_reported_with_the_known_ones(shared_pool):
    with pytest.raises(DirtyAppNotFoundError, match=r"nope:App.*sample_apps:EchoApp"):
        shared_pool.client.execute("nope:App", "x")


def test_unencodable_result_is_an_error_not_a_crash(shared_pool):
    with pytest.raises(DirtyAppError, match="not encodable"):
        shared_pool.client.execute(ECHO, "unencodable")
    assert shared_pool.client.execute(ECHO, "noop") is None


def test_coroutine_actions_are_awaited(shared_pool):
    assert shared_pool.client.execute(ECHO, "aadd", 2, 3) == 5


def test_sync_generator_streams_chunks_as_produced(shared_pool):
    chunks = []
    first_at = None
    start = time.monotonic()
    for chunk in shared_pool.client.stream(ECHO, "count", 5, delay=0.2):
        if first_at is None:
            first_at = time.monotonic() - start
        chunks.append(chunk)
    assert chunks == [0, 1, 2, 3, 4]
    # the first chunk arrived long before the whole stream was done
    assert first_at < 0.6


def test_async_generator_streams_to_the_sync_client(shared_pool):
    assert list(shared_pool.client.stream(ECHO, "acount", 3)) == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_long_stream_passes_the_credit_window(shared_pool):
    assert list(shared_pool.client.stream(ECHO, "count", 500)) == list(range(500))


def test_execute_on_a_stream_collects_its_chunks(shared_pool):
    assert shared_pool.client.execute(ECHO, "count", 4) == [0, 1, 2, 3]


def test_error_in_the_middle_of_a_stream_reaches_the_consumer(shared_pool):
    got = []
    with pytest.raises(DirtyAppError, match="mid-stream"):
        for chunk in shared_pool.client.stream(ECHO, "stream_then_fail"):
            got.append(chunk)
    assert got == [1]


def test_async_client_execute_and_stream(shared_pool):
    async def main():
        client = AsyncDirtyClient(shared_pool.path)
        try:
            value = await client.execute_async(ECHO, "echo", b"raw", k="v")
            sync_chunks = [c async for c in client.stream_async(ECHO, "count", 3)]
            async_chunks = [c async for c in client.stream_async(ECHO, "acount", 2)]
            with pytest.raises(DirtyAppError):
                await client.execute_async(ECHO, "boom")
            return value, sync_chunks, async_chunks
        finally:
            await client.close()

    value, sync_chunks, async_chunks = asyncio.run(main())
    assert value == [[b"raw"], {"k": "v"}]
    assert sync_chunks == [0, 1, 2]
    assert async_chunks == [{"i": 0}, {"i": 1}]


def test_async_calls_share_one_connection_and_run_on_all_workers(shared_pool):
    async def main():
        client = AsyncDirtyClient(shared_pool.path)
        start = time.monotonic()
        results = await asyncio.gather(
            *[client.execute_async(ECHO, "sleep", 0.3) for _ in range(2)]
        )
        elapsed = time.monotonic() - start
        await client.close()
        return results, elapsed

    results, elapsed = asyncio.run(main())
    assert results == [0.3, 0.3]
    assert elapsed < 0.55  # two workers ran them side by side


def test_get_dirty_client_reads_the_socket_from_the_environment(shared_pool, monkeypatch):
    monkeypatch.setenv("UNICORN_DIRTY_SOCKET", shared_pool.path)
    client = get_dirty_client()
    assert client is get_dirty_client()  # cached per thread
    assert client.execute(ECHO, "noop") is None
    other = []
    t = threading.Thread(target=lambda: other.append(get_dirty_client()))
    t.start()
    t.join()
    assert other[0] is not client

    async def main():
        a = await get_dirty_client_async()
        b = await get_dirty_client_async()
        assert a is b
        return await a.execute_async(ECHO, "echo", 1)

    assert asyncio.run(main()) == [[1], {}]


def test_missing_socket_is_a_connection_error(tmp_path, monkeypatch):
    monkeypatch.delenv("UNICORN_DIRTY_SOCKET", raising=False)
    with pytest.raises(DirtyConnectionError, match="UNICORN_DIRTY_SOCKET"):
        get_dirty_client()
    with pytest.raises(DirtyConnectionError, match="cannot connect"):
        DirtyClient(str(tmp_path / "none.sock")).execute(ECHO, "noop")


def test_socket_lives_in_a_private_file(shared_pool):
    assert os.stat(shared_pool.path).st_mode & 0o777 == 0o600


def test_term_stops_gracefully_and_removes_the_socket(pool):
    workers = [w["pid"] for w in pool.status()["workers"]]
    pool.client.close()
    pool.signal(signal.SIGTERM)
    assert pool.proc.wait(10) == 0
    assert not os.path.exists(pool.path)
    from running_pool import pid_gone

    wait_for(lambda: all(pid_gone(p) for p in workers), what="workers to exit")


def test_graceful_shutdown_finishes_running_calls(pool):
    client = DirtyClient(pool.path)
    result = []
    t = threading.Thread(target=lambda: result.append(client.execute(ECHO, "sleep", 0.5)))
    t.start()
    wait_for(lambda: any(w["busy"] for w in pool.status()["workers"]), what="call to start")
    pool.signal(signal.SIGTERM)
    t.join(10)
    assert result == [0.5]
    assert pool.proc.wait(10) == 0


def test_bad_app_path_fails_fast_with_a_message(make_pool):
    with pytest.raises(AssertionError, match="exited"):
        make_pool(["no_such_module:App"], workers=1)


def test_calls_made_while_a_stream_is_open_on_the_same_client(shared_pool, monkeypatch):
    monkeypatch.setenv("UNICORN_DIRTY_SOCKET", shared_pool.path)
    client = get_dirty_client()
    seen = []
    for chunk in client.stream(ECHO, "count", 40):
        seen.append((chunk, client.execute(ECHO, "echo", chunk)))
    assert seen == [(i, [[i], {}]) for i in range(40)]


def test_gunicorn_style_helpers(shared_pool, monkeypatch):
    from unicorn_dirty import close_dirty_client, close_dirty_client_async, set_dirty_socket_path

    monkeypatch.delenv("UNICORN_DIRTY_SOCKET", raising=False)
    set_dirty_socket_path(shared_pool.path)
    try:
        client = get_dirty_client(timeout=7.5)  # gunicorn's signature: timeout first
        assert client.timeout == 7.5
        assert client.execute(ECHO, "noop") is None
        close_dirty_client()
        assert get_dirty_client() is not client

        async def main():
            a = await get_dirty_client_async(timeout=3)
            assert a.timeout == 3 and await a.execute_async(ECHO, "noop") is None
            await close_dirty_client_async()
            assert await get_dirty_client_async() is not a
            await close_dirty_client_async()

        asyncio.run(main())
    finally:
        close_dirty_client()
        set_dirty_socket_path(None)
