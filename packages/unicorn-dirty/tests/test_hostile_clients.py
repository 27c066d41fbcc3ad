"""Clients that do not play along cannot grow the arbiter or hold it: replies a client
does not read are bounded (dirty_max_client_buffer), a frame must arrive whole within
dirty_client_timeout, connections are bounded (dirty_max_clients), and a request over
dirty_max_payload fails alone."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest
from running_pool import ECHO, wait_for

from unicorn_dirty import (
    AsyncDirtyClient,
    DirtyClient,
    DirtyConnectionError,
    DirtyPayloadTooLargeError,
)
from unicorn_dirty import protocol as P

pytestmark = pytest.mark.timeout(40)

MiB = 1024 * 1024


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def raw(pool) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(pool.path)
    return sock


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while True:
            if sock.recv(65536) == b"":
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def stash_gets(n: int) -> bytes:
    return b"".join(P.frame(P.STASH, i + 1, P.encode(("get", ("big", "k")))) for i in range(n))


def test_a_client_that_never_reads_stash_replies_is_bounded_then_dropped(make_pool):
    pool = make_pool(workers=1, args=["--max-client-buffer", str(2 * MiB), "--client-timeout", "1"])
    pool.client.stash_call("put", "big", "k", b"v" * MiB, None)
    before = peak_rss(pool.pid)
    hog = raw(pool)
    hog.sendall(stash_gets(150))  # 150 MiB of replies if all were answered
    wait_for(lambda: "its replies went unread for 1s" in pool.log(), timeout=15, what="hog dropped")
    growth = peak_rss(pool.pid) - before
    assert growth < 24 * MiB, f"arbiter peak RSS grew by {growth / MiB:.0f} MiB"
    assert closed_by_peer(hog, 5)
    hog.close()
    assert pool.client.execute(ECHO, "echo", "bystander") == [["bystander"], {}]
    assert pool.status()["stats"]["clients_dropped"] == 1


def test_a_client_that_never_reads_results_does_not_start_more_calls(make_pool):
    pool = make_pool(workers=2, args=["--max-client-buffer", str(2 * MiB), "--client-timeout", "1"])
    before = peak_rss(pool.pid)
    hog = raw(pool)
    calls = b"".join(
        P.frame(P.REQUEST, i + 1, P.encode_request(ECHO, "big", (MiB,), {}, None))
        for i in range(120)
    )
    hog.sendall(calls)
    wait_for(lambda: "its replies went unread for 1s" in pool.log(), timeout=20, what="hog dropped")
    growth = peak_rss(pool.pid) - before
    assert growth < 24 * MiB, f"arbiter peak RSS grew by {growth / MiB:.0f} MiB"
    hog.close()
    # its parked calls were dropped with it: the pool is idle and serves others
    wait_for(lambda: pool.status()["apps"][ECHO]["queued"] == 0, what="queue emptied")
    assert pool.client.execute(ECHO, "big", 3) == b"xxx"


def test_a_slow_reader_is_paused_not_dropped_and_loses_nothing(make_pool):
    pool = make_pool(workers=1, args=["--max-client-buffer", str(MiB)])
    pool.client.stash_call("put", "big", "k", b"v" * (MiB // 4), None)
    slow = raw(pool)
    slow.sendall(stash_gets(40))  # 10 MiB of replies
    wait_for(lambda: pool.status()["paused_clients"] == 1, what="slow reader paused")
    reader = P.FrameReader()
    got = []
    slow.settimeout(10)
    while len(got) < 40:
        got += reader.feed(slow.recv(1 << 20))
    assert [ident for _, ident, _ in got] == list(range(1, 41))
    assert all(P.decode(payload) == (True, b"v" * (MiB // 4)) for _, _, payload in got)
    assert pool.status()["paused_clients"] == 0
    slow.close()


def test_an_oversized_call_fails_alone_on_a_shared_async_connection(make_pool, monkeypatch):
    monkeypatch.delenv("UNICORN_DIRTY_MAX_PAYLOAD", raising=False)  # the client does not know
    pool = make_pool(workers=2, args=["--max-payload", str(MiB)])

    async def main():
        client = AsyncDirtyClient(pool.path)
        try:
            first = [asyncio.create_task(client.execute_async(ECHO, "sleep", 0.3))]
            await asyncio.sleep(0.05)  # on the wire before the big one
            big = asyncio.create_task(client.execute_async(ECHO, "echo", b"x" * (2 * MiB)))
            after = [asyncio.create_task(client.execute_async(ECHO, "echo", i)) for i in range(2)]
            return await asyncio.gather(*first, big, *after, return_exceptions=True)
        finally:
            await client.close()

    slow, big, *echoes = asyncio.run(main())
    assert isinstance(big, DirtyPayloadTooLargeError), big
    assert f"exceeds dirty_max_payload ({MiB})" in str(big)
    assert slow == 0.3
    assert echoes == [[[0], {}], [[1], {}]]
    assert "answered DirtyPayloadTooLargeError" in pool.log()


def test_connections_past_dirty_max_clients_are_refused_and_logged(make_pool):
    pool = make_pool(workers=1, args=["--max-clients", "20"])
    pool.status()
    before = open_fds(pool.pid)
    idle = []
    for _ in range(200):
        idle.append(raw(pool))
    wait_for(lambda: "dirty_max_clients (20) are open" in pool.log(), what="refusal logged")
    wait_for(lambda: sum(closed_by_peer(s, 0.001) for s in idle) >= 180, what="extra ones closed")
    assert open_fds(pool.pid) - before <= 20
    for s in idle:
        s.close()
    wait_for(lambda: DirtyClient(pool.path).execute(ECHO, "noop") is None, what="served again")


def test_a_frame_that_trickles_in_is_dropped_at_the_deadline(make_pool):
    pool = make_pool(workers=1, args=["--client-timeout", "0.5"])
    slow = raw(pool)
    frame = P.frame(P.REQUEST, 1, P.encode_request(ECHO, "noop", (), {}, None))
    start = time.monotonic()
    closed = False
    for byte in frame[:-1]:  # one byte every 0.1 s: each byte is progress, the frame is not
        try:
            slow.sendall(bytes([byte]))
        except OSError:
            closed = True
            break
        if closed_by_peer(slow, 0.1):
            closed = True
            break
    assert closed and time.monotonic() - start < 3
    wait_for(lambda: "a frame stayed incomplete for 0.5s" in pool.log(), what="logged cause")
    slow.close()
    assert pool.client.execute(ECHO, "noop") is None


def test_at_the_limit_a_connection_that_never_sent_anything_makes_room(make_pool):
    pool = make_pool(workers=1, args=["--max-clients", "4", "--client-timeout", "0.5"])
    pool.client.close()
    squatters = [raw(pool) for _ in range(4)]
    start = time.monotonic()
    refused_young = None

    def served():
        nonlocal refused_young
        try:
            return DirtyClient(pool.path).execute(ECHO, "echo", "in") == [["in"], {}]
        except DirtyConnectionError:
            if refused_young is None:
                refused_young = time.monotonic() - start
            return False

    wait_for(served, timeout=10, what="a real client served once a squatter can be evicted")
    assert refused_young is not None and refused_young < 0.5  # young squatters are kept
    assert "it sent nothing in" in pool.log()
    assert sum(closed_by_peer(s, 0.2) for s in squatters) >= 1
    for s in squatters:
        s.close()
