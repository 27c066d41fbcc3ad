"""`dirty_backend = "ray"`: the same clients and errors against a real two-node Ray cluster.

One cluster (a head and a second node, both on 127.0.0.1) and one
`unicorn-dirty --backend ray` for the module; RayEchoApp's two actors need a
CPU each, so one runs on each node and calls cross nodes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("ray", reason="the ray backend needs the unicorn-dirty[ray] extra")

from ray_cluster import RAY_ENV, RayCluster
from running_pool import HERE, Pool, child_env, wait_for

from unicorn_dirty import (
    AsyncDirtyClient,
    DirtyAppError,
    DirtyAppNotFoundError,
    DirtyClient,
    DirtyTimeoutError,
    DirtyWorkerError,
    stash,
)
from unicorn_dirty import protocol as P
from unicorn_dirty.ray_backend import RAY_STREAM_AHEAD

pytestmark = pytest.mark.timeout(240)  # the first test also starts the cluster

ECHO = "ray_apps:RayEchoApp"
RELAY = "ray_apps:RelayApp"


@pytest.fixture(scope="module")
def cluster():
    c = RayCluster(cpus=2)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def address(request):
    # UNICORN_DIRTY_TEST_RAY_ADDRESS: a two-node cluster already running (faster iteration)
    return (
        os.environ.get("UNICORN_DIRTY_TEST_RAY_ADDRESS")
        or request.getfixturevalue("cluster").address
    )


@pytest.fixture(scope="module")
def ray_pool(address):
    os.environ.update(RAY_ENV)
    pool = Pool(
        [ECHO, RELAY],
        1,
        ["--backend", "ray", "--ray-address", address, "--threads", "2", "--cancel-timeout", "3"],
        ready=False,
    )
    try:
        pool.wait_ready(3, timeout=120)  # Ray workers start slowly on a busy 2-core machine
        yield pool
    finally:
        pool.stop()
        assert pool.proc.returncode == 0, pool.log()


@pytest.fixture
def stashed(ray_pool, monkeypatch):
    monkeypatch.setenv("UNICORN_DIRTY_SOCKET", ray_pool.path)
    return ray_pool


def echo_workers(pool: Pool) -> list[dict]:
    return [w for w in pool.status()["workers"] if w["apps"] == [ECHO]]


def test_execute_crosses_nodes_with_the_local_errors(ray_pool):
    client = ray_pool.client
    status = ray_pool.status()
    assert status["backend"] == "ray"
    nodes = {w["node"] for w in echo_workers(ray_pool)}
    assert len(nodes) == 2  # one actor on each node
    seen = {client.execute(ECHO, "node")["node"] for _ in range(8)}
    assert seen == nodes
    assert client.execute(ECHO, "echo", 1, b"\x00bytes", k={"a": [1, 2]}) == [
        [1, b"\x00bytes"],
        {"k": {"a": [1, 2]}},
    ]
    assert asyncio.run(_aadd(ray_pool.path)) == 5
    with pytest.raises(DirtyAppError) as err:
        client.execute(ECHO, "boom", "bad input")
    assert err.value.error_type == "ValueError" and err.value.message == "bad input"
    assert "raise ValueError" in err.value.traceback
    with pytest.raises(DirtyAppError) as err:
        client.execute(ECHO, "unencodable")
    assert err.value.error_type == "CodecError"
    with pytest.raises(DirtyAppNotFoundError):
        client.execute("nope:Nope", "noop")
    with pytest.raises(DirtyAppError, match="no action"):
        client.execute(ECHO, "_private")
    # an actor calls another app through Ray itself (no socket on the other node)
    assert client.execute(RELAY, "relay", "echo", 7) == [[7], {}]
    assert client.execute(RELAY, "relay_stream", 3) == [0, 1, 2]
    assert client.execute(RELAY, "arelay", 2, 3) == 5


async def _aadd(path: str) -> int:
    async with AsyncDirtyClient(path) as client:
        return await client.execute_async(ECHO, "aadd", 2, 3)


def test_streams_sync_async_and_as_a_list(ray_pool):
    client = ray_pool.client
    assert list(client.stream(ECHO, "count", 100)) == list(range(100))
    assert client.execute(ECHO, "count", 5) == [0, 1, 2, 3, 4]
    assert list(client.stream(ECHO, "noop")) == [None]

    async def astream():
        async with AsyncDirtyClient(ray_pool.path) as c:
            return [x async for x in c.stream_async(ECHO, "acount", 40)]

    assert asyncio.run(astream()) == [{"i": i} for i in range(40)]
    with pytest.raises(DirtyAppError, match="mid-stream"):
        list(client.stream(ECHO, "stream_then_fail"))


def test_a_slow_stream_consumer_holds_the_actor_back(stashed):
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(stashed.path)
    sock.sendall(P.frame(P.REQUEST, 1, P.encode_request(ECHO, "counted", ("bp",), {}, None)))
    reader = P.FrameReader()

    def chunks_within(seconds: float) -> int:
        n = 0
        sock.settimeout(seconds)
        try:
            while True:
                for kind, _, _ in reader.feed(sock.recv(65536)):
                    n += kind == P.CHUNK
        except TimeoutError:
            return n

    assert chunks_within(1.0) == P.STREAM_WINDOW
    # the generator in the actor is paused too, a few chunks ahead of the front
    produced = stash.get("produced", "bp")
    assert P.STREAM_WINDOW <= produced <= P.STREAM_WINDOW + RAY_STREAM_AHEAD + 2
    sock.sendall(P.frame(P.CREDIT, 1, P.encode(4)))
    assert chunks_within(0.5) == 4
    sock.close()


def test_cancel_reaches_the_actor(stashed):
    async def cancel_sync_action():
        async with AsyncDirtyClient(stashed.path) as c:
            task = asyncio.create_task(c.execute_async(ECHO, "cooperative", "ray-sync", 20))
            await asyncio.to_thread(
                wait_for, lambda: stash.get("marks", "ray-sync") == "running", 15
            )
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(cancel_sync_action())
    wait_for(
        lambda: stash.get("marks", "ray-sync") == "cancelled", what="is_cancelled() in the actor"
    )

    async def cancel_coroutine():
        async with AsyncDirtyClient(stashed.path) as c:
            task = asyncio.create_task(c.execute_async(ECHO, "await_forever", "ray-async"))
            await asyncio.to_thread(
                wait_for, lambda: stash.get("marks", "ray-async") == "running", 15
            )
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(cancel_coroutine())
    wait_for(lambda: stash.get("marks", "ray-async") == "cancelled", what="the coroutine cancelled")

    for i, _ in enumerate(stashed.client.stream(ECHO, "endless", "ray-stream")):
        if i == 3:
            break
    wait_for(lambda: stash.get("marks", "ray-stream") == "closed", what="the generator closed")
    wait_for(lambda: not any(w["busy"] for w in stashed.status()["workers"]), what="idle actors")


def test_timeout_cancels_and_replaces_an_actor_that_keeps_running(stashed):
    before = {w["pid"] for w in echo_workers(stashed)}
    # an action that heeds is_cancelled() stops in time: its actor stays
    with pytest.raises(DirtyTimeoutError):
        stashed.client.execute(ECHO, "cooperative", "ray-timeout", 30, timeout=0.5)
    wait_for(lambda: stash.get("marks", "ray-timeout") == "cancelled", what="the call cancelled")
    assert {w["pid"] for w in echo_workers(stashed)} == before
    start = time.monotonic()
    with pytest.raises(DirtyTimeoutError):
        stashed.client.execute(ECHO, "sleep", 30, timeout=1)
    assert time.monotonic() - start < 8
    # one that does not is still running --cancel-timeout later: its actor is
    # killed, Ray restarts it, and both serve again, one of them a new process
    after = wait_for(
        lambda: (
            (ws := echo_workers(stashed))
            and all(w["ready"] for w in ws)
            and {w["pid"] for w in ws} != before
            and ws
        ),
        timeout=40,
        what="the timed-out actor to be restarted",
    )
    assert len(after) == 2 and len({w["pid"] for w in after} & before) == 1
    assert stashed.client.execute(ECHO, "echo", "again") == [["again"], {}]


def test_killing_an_actor_mid_call_gives_dirty_worker_error(stashed):
    inits = stash.get("ray_inits", "echo")
    result: dict = {}

    def call():
        try:
            result["value"] = DirtyClient(stashed.path).execute(ECHO, "slow_echo", 20, "x")
        except Exception as exc:
            result["error"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    victim = wait_for(
        lambda: next((w["pid"] for w in echo_workers(stashed) if w["busy"]), None),
        what="the call to start",
    )
    os.kill(victim, signal.SIGKILL)
    caller.join(20)
    assert isinstance(result.get("error"), DirtyWorkerError), result
    wait_for(
        lambda: (
            all(w["ready"] for w in echo_workers(stashed))
            and victim not in [w["pid"] for w in echo_workers(stashed)]
        ),
        timeout=30,
        what="Ray to restart the actor",
    )
    assert stash.get("ray_inits", "echo") == inits + 1  # init() ran again in the new process
    pids = {stashed.client.execute(ECHO, "whoami") for _ in range(6)}
    assert victim not in pids and len(pids) == 2
    assert stashed.status()["stats"]["worker_deaths"] >= 1


def test_stash_is_one_and_atomic_for_every_caller(stashed):
    n = 100
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "stash_incrementer.py"), "ray_race", "k", str(n)],
            env=child_env(UNICORN_DIRTY_SOCKET=stashed.path),
        )
        for _ in range(3)
    ]
    errors = []

    def from_actors():  # both actors, on both nodes, incrementing through the stash actor
        try:
            assert DirtyClient(stashed.path).execute(ECHO, "incr_many", "ray_race", "k", n) == n
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=from_actors) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for p in procs:
        assert p.wait(30) == 0
    assert errors == []
    assert stash.get("ray_race", "k") == n * (3 + 4)

    assert stash.compare_and_set("ray_locks", "job", None, "a") is True
    assert stash.compare_and_set("ray_locks", "job", None, "b") is False
    assert stash.get("ray_locks", "job") == "a"
    stash.put("ray_ttl", "k", "v", ttl=0.3)
    assert stash.get("ray_ttl", "k") == "v"
    wait_for(lambda: stash.get("ray_ttl", "k") is None, what="the TTL to expire")
    # what an actor wrote, a client reads, and the other way round
    stash.put("ray_shared", "from-client", 1)
    assert stashed.client.execute(ECHO, "cooperative", "ray-finish", 0.05) == "finished"
    assert stash.get("marks", "ray-finish") == "finished"


def test_term_stops_the_actors(address):
    # a second pool on the same cluster (its own namespace), one actor needing no CPU
    args = ["--backend", "ray", "--ray-address", address, "--ray-namespace", "second"]
    pool = Pool(["sample_apps:EchoApp"], 1, args, ready=False)
    try:
        workers = pool.wait_ready(1, timeout=45)
    finally:
        pool.stop()
    assert pool.proc.returncode == 0
    pids = [w["pid"] for w in workers]
    wait_for(lambda: not any(_alive(p) for p in pids), timeout=15, what="the actors to exit")
    assert not os.path.exists(pool.path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
