"""One caller's timeout is that caller's business: the call is cancelled first, its
worker replaced only if it does not stop within dirty_cancel_timeout, and then only
after the worker's other calls finish; timeouts are clamped to 0.1 s."""

from __future__ import annotations

import socket
import threading

import pytest
from running_pool import ECHO, wait_for

from unicorn_dirty import DirtyClient, DirtyTimeoutError
from unicorn_dirty import protocol as P

pytestmark = pytest.mark.timeout(40)


def in_thread(fn, *args, **kwargs):
    out: dict = {}

    def target():
        try:
            out["value"] = fn(*args, **kwargs)
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, out


def test_a_short_timeout_does_not_fail_the_other_calls_on_its_worker(make_pool):
    pool = make_pool(workers=1, args=["--threads", "4", "--cancel-timeout", "0.3"])
    (worker,) = pool.ready_workers()
    others = [in_thread(DirtyClient(pool.path).execute, ECHO, "sleep", 1.5) for _ in range(3)]
    wait_for(lambda: pool.status()["workers"][0]["busy"] == 3, what="three calls running")
    with pytest.raises(DirtyTimeoutError, match=r"after 0\.1s"):
        pool.client.execute(ECHO, "sleep", 30, timeout=0.1)
    for t, _ in others:
        t.join(10)
    assert [out for _, out in others] == [{"value": 1.5}] * 3
    # the stuck thread's worker is replaced once the others are done, and serves again
    wait_for(
        lambda: [w["pid"] for w in pool.ready_workers()] not in ([], [worker["pid"]]),
        what="replacement",
    )
    assert pool.client.execute(ECHO, "noop") is None
    status = pool.status()
    assert status["stats"]["workers_replaced_stuck"] == 1
    assert "replacing the worker once its other calls finish" in pool.log()


def test_a_call_that_honours_cancellation_keeps_its_worker(make_pool):
    pool = make_pool(workers=1, args=["--cancel-timeout", "5"])
    (worker,) = pool.ready_workers()
    with pytest.raises(DirtyTimeoutError):
        pool.client.execute(ECHO, "cooperative", "coop-timeout", timeout=0.3)
    wait_for(
        lambda: pool.client.stash_call("get", "marks", "coop-timeout") == (True, "cancelled"),
        what="action saw is_cancelled()",
    )
    assert pool.client.execute(ECHO, "whoami") == worker["pid"]
    assert pool.status()["stats"]["worker_deaths"] == 0


def test_calls_not_started_on_a_stuck_worker_go_back_to_the_queue(make_pool):
    pool = make_pool(workers=1, args=["--cancel-timeout", "0.3"])
    for _ in range(10):  # short calls: the arbiter prefetches one call per worker
        pool.client.execute(ECHO, "noop")
    stuck, stuck_out = in_thread(DirtyClient(pool.path).execute, ECHO, "sleep", 30, timeout=0.2)
    wait_for(lambda: pool.status()["workers"][0]["busy"] == 1, what="stuck call running")
    waiting, waiting_out = in_thread(DirtyClient(pool.path).execute, ECHO, "echo", "waited")
    stuck.join(10)
    assert isinstance(stuck_out.get("error"), DirtyTimeoutError)
    waiting.join(20)
    assert waiting_out == {"value": [["waited"], {}]}


def test_a_corrupted_tiny_timeout_on_the_wire_kills_no_worker(make_pool):
    pool = make_pool(workers=2, args=["--threads", "2"])
    pids = sorted(w["pid"] for w in pool.ready_workers())
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(pool.path)
    n = 200
    sock.sendall(
        b"".join(
            P.frame(P.REQUEST, i + 1, P.encode_request(ECHO, "noop", (), {}, 4e-310))
            for i in range(n)
        )
    )
    reader = P.FrameReader()
    replies = []
    sock.settimeout(10)
    while len(replies) < n:
        replies += reader.feed(sock.recv(65536))
    sock.close()
    kinds = [kind for kind, _, _ in replies]
    assert set(kinds) <= {P.RESULT, P.ERROR}
    for kind, _, payload in replies:
        if kind == P.ERROR:  # clamped to 0.1 s: a busy machine may still time some out
            assert P.decode(payload)["error_type"] == "DirtyTimeoutError"
    assert kinds.count(P.RESULT) > n // 2
    status = pool.status()
    assert status["stats"]["worker_deaths"] == 0
    assert sorted(w["pid"] for w in status["workers"]) == pids
    assert "killing it" not in pool.log()
