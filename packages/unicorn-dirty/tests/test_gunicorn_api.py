"""The dirty API as gunicorn's users write it (gunicorn 25+ `gunicorn.dirty`): the error
classes with their attributes and to_dict()/from_dict(), StashClient and the socket path
helpers, connect_async/close_async, and dirty_workers = 0."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from running_pool import ECHO, Pool, wait_for

import unicorn_dirty
from unicorn_dirty import (
    AsyncDirtyClient,
    DirtyAppError,
    DirtyAppNotFoundError,
    DirtyClient,
    DirtyConnectionError,
    DirtyError,
    DirtyNoWorkersAvailableError,
    DirtyTimeoutError,
    DirtyWorkerError,
    StashClient,
    StashError,
    get_dirty_socket_path,
    get_stash_socket_path,
    set_dirty_socket_path,
    set_stash_socket_path,
    stash,
)

pytestmark = pytest.mark.timeout(30)


def raised(fn, *args, **kwargs) -> DirtyError:
    with pytest.raises(DirtyError) as info:
        fn(*args, **kwargs)
    return info.value


def round_trip(err: DirtyError) -> DirtyError:
    again = DirtyError.from_dict(err.to_dict())
    assert type(again) is type(err)
    assert again.message == err.message and again.details == err.details
    return again


def test_app_errors_name_the_app_and_action(shared_pool):
    err = raised(shared_pool.client.execute, ECHO, "boom", "kaput")
    assert isinstance(err, DirtyAppError)
    assert (err.app_path, err.action, err.error_type) == (ECHO, "boom", "ValueError")
    assert "raise ValueError(message)" in err.traceback
    again = round_trip(err)
    assert (again.app_path, again.action, again.traceback) == (ECHO, "boom", err.traceback)
    assert err.to_dict()["error_type"] == "DirtyAppError"


def test_app_not_found_is_an_app_error_with_its_app_path(shared_pool):
    err = raised(shared_pool.client.execute, "nope:App", "x")
    assert isinstance(err, DirtyAppNotFoundError) and isinstance(err, DirtyAppError)
    assert err.app_path == "nope:App"
    assert round_trip(err).app_path == "nope:App"
    assert DirtyAppNotFoundError("a:B").app_path == "a:B"  # gunicorn's signature


def test_timeout_connection_and_worker_errors_carry_their_fields(make_pool, tmp_path):
    pool = make_pool(workers=1, args=["--cancel-timeout", "0.2"])
    err = raised(pool.client.execute, ECHO, "sleep", 5, timeout=0.2)
    assert isinstance(err, DirtyTimeoutError) and err.timeout == 0.2
    assert round_trip(err).timeout == 0.2

    missing = str(tmp_path / "none.sock")
    err = raised(DirtyClient(missing).execute, ECHO, "noop")
    assert isinstance(err, DirtyConnectionError) and err.socket_path == missing
    assert round_trip(err).socket_path == missing

    pool.wait_ready(1)
    client = DirtyClient(pool.path)
    (worker,) = wait_for(
        lambda: [w for w in pool.ready_workers() if not w["busy"]] or None, what="idle worker"
    )
    from test_supervision import run_in_thread

    t, out = run_in_thread(client.execute, ECHO, "sleep", 20)
    wait_for(lambda: pool.status()["workers"][0]["busy"], what="call running")
    os.kill(worker["pid"], signal.SIGKILL)
    t.join(10)
    err = out["error"]
    assert isinstance(err, DirtyWorkerError) and err.worker_id == worker["pid"]
    assert round_trip(err).worker_id == worker["pid"]


def test_from_dict_builds_only_our_classes():
    err = DirtyError.from_dict({"error_type": "SystemExit", "message": "m", "details": {}})
    assert type(err) is DirtyError
    assert type(DirtyError.from_dict({"error_type": "DirtyTimeoutError"})) is DirtyTimeoutError
    assert DirtyNoWorkersAvailableError("a:B").app_path == "a:B"


def test_stash_client_and_socket_path_helpers(shared_pool, monkeypatch):
    monkeypatch.delenv("UNICORN_DIRTY_SOCKET", raising=False)
    with pytest.raises(DirtyError):
        get_dirty_socket_path()
    with pytest.raises(StashError):
        get_stash_socket_path()
    with StashClient(shared_pool.path) as s:
        s.put("gapi", "k", {"v": 1})
        assert s.get("gapi", "k") == {"v": 1} and s.get("gapi", "nope", 7) == 7
        assert s.exists("gapi") and s.exists("gapi", "k") and not s.exists("gapi", "nope")
        table = s.table("gapi")
        table["k2"] = b"raw"
        assert sorted(table) == ["k", "k2"] and table["k2"] == b"raw" and len(table) == 2
        assert s.keys("gapi", "k*") == ["k", "k2"]
        assert "gapi" in s.tables()
        s.delete_table("gapi")
        assert not s.exists("gapi")
    set_stash_socket_path(shared_pool.path)
    try:
        assert get_stash_socket_path() == shared_pool.path
        stash.put("gapi2", "x", 1)
        assert stash.get("gapi2", "x") == 1
        assert unicorn_dirty.StashTable(StashClient(), "gapi2")["x"] == 1
    finally:
        set_stash_socket_path(None)
    set_dirty_socket_path(shared_pool.path)
    try:
        assert get_dirty_socket_path() == shared_pool.path
        assert get_stash_socket_path() == shared_pool.path
    finally:
        set_dirty_socket_path(None)


def test_connect_async_and_close_async(shared_pool):
    async def main():
        a = AsyncDirtyClient(shared_pool.path)
        await a.connect_async()
        assert await a.execute_async(ECHO, "echo", 1) == [[1], {}]
        await a.close_async()
        # gunicorn's DirtyClient carries the async methods too
        c = DirtyClient(shared_pool.path)
        await c.connect_async()
        value = await c.execute_async(ECHO, "echo", 2)
        chunks = [x async for x in c.stream_async(ECHO, "count", 3)]
        await c.close_async()
        async with DirtyClient(shared_pool.path) as d:
            assert await d.execute_async(ECHO, "noop") is None
        return value, chunks

    assert asyncio.run(main()) == ([[2], {}], [0, 1, 2])


def test_dirty_workers_0_disables_the_standalone_pool(tmp_path):
    pool = Pool(["sample_apps:FailingInitApp"], workers=0, ready=False)
    try:
        wait_for(lambda: "the dirty pool is disabled" in pool.log(), what="pool up, disabled")
        start = time.monotonic()
        err = raised(pool.client.execute, "sample_apps:FailingInitApp", "x")
        assert time.monotonic() - start < 0.5
        assert isinstance(err, DirtyNoWorkersAvailableError)
        assert err.app_path == "sample_apps:FailingInitApp"
        # nothing imported or forked; the stash still answers
        assert pool.status()["workers"] == [] and "failed to load" not in pool.log()
        pool.client.stash_call("put", "t", "k", 1, None)
        assert pool.client.stash_call("get", "t", "k") == (True, 1)
    finally:
        pool.stop()


def test_a_pool_whose_workers_cannot_boot_fails_calls_at_once():
    pool = Pool(["sample_apps:FailingInitApp"], workers=1, ready=False)
    try:
        wait_for(lambda: "failed to load its apps" in pool.log(), what="a failed boot")
        for _ in range(3):  # between boots, and while a new worker boots and fails again
            start = time.monotonic()
            err = raised(pool.client.execute, "sample_apps:FailingInitApp", "x")
            assert time.monotonic() - start < 2.0
            assert isinstance(err, DirtyNoWorkersAvailableError)
            assert "fail to boot" in err.message
    finally:
        pool.stop()
