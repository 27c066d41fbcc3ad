"""Supervision: timeouts, a worker killed mid-call, TTIN/TTOU, HUP, per-app allocation."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from running_pool import ECHO, pid_gone, wait_for

from unicorn_dirty import DirtyClient, DirtyTimeoutError, DirtyWorkerError

pytestmark = pytest.mark.timeout(40)

LIMITED = "sample_apps:LimitedApp"
PAIR = "sample_apps:PairApp"


def run_in_thread(fn, *args, **kwargs):
    out: dict = {}

    def target():
        try:
            out["value"] = fn(*args, **kwargs)
        except BaseException as exc:
            out["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, out


def busy_worker(pool) -> dict:
    return wait_for(
        lambda: next((w for w in pool.status()["workers"] if w["busy"]), None), what="a busy worker"
    )


def test_call_past_its_timeout_is_cancelled_then_its_stuck_worker_replaced(make_pool):
    pool = make_pool(workers=2, args=["--cancel-timeout", "0.5"])
    pids_before = {w["pid"] for w in pool.ready_workers()}
    other = DirtyClient(pool.path)
    t, out = run_in_thread(other.execute, ECHO, "sleep", 0.8)
    busy_worker(pool)  # the slow call is running on one worker
    start = time.monotonic()
    with pytest.raises(DirtyTimeoutError, match=r"timed out after 0\.3s") as info:
        pool.client.execute(ECHO, "sleep", 30, timeout=0.3)
    assert info.value.timeout == 0.3
    # the caller hears at the deadline, not after the grace
    assert time.monotonic() - start < 0.3 + 0.4
    # the caller on the other worker is unaffected
    t.join(10)
    assert out == {"value": 0.8}
    # time.sleep ignores the cancellation: after the grace its worker is replaced
    wait_for(lambda: "did not stop 1 cancelled call(s)" in pool.log(), what="stuck worker killed")
    after = {w["pid"] for w in pool.wait_ready(2)}
    assert len(after - pids_before) == 1
    assert pool.client.execute(ECHO, "noop") is None
    assert "still runs a call to sample_apps:EchoApp 0.5s after cancelling it" in pool.log()


def test_dirty_timeout_setting_applies_without_a_per_call_timeout(make_pool):
    pool = make_pool(workers=1, args=["--timeout", "1", "--cancel-timeout", "0.2"])
    (stuck,) = pool.ready_workers()
    with pytest.raises(DirtyTimeoutError):
        pool.client.execute(ECHO, "sleep", 30)
    wait_for(
        lambda: [w["pid"] for w in pool.ready_workers()] not in ([], [stuck["pid"]]),
        what="replacement worker",
    )
    assert pool.client.execute(ECHO, "sleep", 0.1) == 0.1


def warm_up(pool) -> None:
    """Quick calls make the app's average duration short: the arbiter then prefetches."""
    for _ in range(10):
        pool.client.execute(ECHO, "noop")


@pytest.mark.parametrize(
    "prefetch", [False, True], ids=["queued in arbiter", "prefetched to worker"]
)
def test_queued_call_times_out_without_killing_anyone(make_pool, prefetch):
    pool = make_pool(workers=1)
    if prefetch:
        warm_up(pool)
    t, out = run_in_thread(DirtyClient(pool.path).execute, ECHO, "sleep", 0.8)
    pid = busy_worker(pool)["pid"]
    with pytest.raises(DirtyTimeoutError, match="waiting for a worker"):
        pool.client.execute(ECHO, "noop", timeout=0.2)
    t.join(10)
    assert out == {"value": 0.8}
    assert [w["pid"] for w in pool.ready_workers()] == [pid]


def test_kill_9_of_a_worker_mid_call_fails_only_that_call(pool):
    t, out = run_in_thread(DirtyClient(pool.path).execute, ECHO, "sleep", 20)
    victim = busy_worker(pool)["pid"]
    os.kill(victim, signal.SIGKILL)
    t.join(10)
    assert isinstance(out.get("error"), DirtyWorkerError)
    assert str(victim) in str(out["error"])
    workers = pool.wait_ready(2)
    assert victim not in {w["pid"] for w in workers}
    # every worker answers again
    results = [pool.client.execute(ECHO, "echo", i) for i in range(6)]
    assert results == [[[i], {}] for i in range(6)]


def test_queued_calls_survive_the_death_of_the_busy_worker(make_pool):
    pool = make_pool(workers=1)
    t1, out1 = run_in_thread(DirtyClient(pool.path).execute, ECHO, "sleep", 20)
    victim = busy_worker(pool)["pid"]
    t2, out2 = run_in_thread(DirtyClient(pool.path).execute, ECHO, "echo", "queued")
    wait_for(lambda: pool.status()["apps"][ECHO]["queued"] == 1, what="queued call")
    os.kill(victim, signal.SIGKILL)
    t1.join(10)
    t2.join(10)
    assert isinstance(out1.get("error"), DirtyWorkerError)
    assert out2 == {"value": [["queued"], {}]}


def test_prefetched_call_on_a_killed_worker_runs_on_its_replacement(make_pool):
    pool = make_pool(workers=1)
    warm_up(pool)
    t1, out1 = run_in_thread(DirtyClient(pool.path).execute, ECHO, "sleep", 20)
    victim = busy_worker(pool)["pid"]
    t2, out2 = run_in_thread(DirtyClient(pool.path).execute, ECHO, "echo", "prefetched")
    wait_for(lambda: pool.status()["workers"][0]["busy"] == 2, what="prefetched call")
    os.kill(victim, signal.SIGKILL)
    t1.join(10)
    t2.join(10)
    assert isinstance(out1.get("error"), DirtyWorkerError)
    assert out2 == {"value": [["prefetched"], {}]}


def test_ttin_and_ttou_change_the_worker_count(pool):
    pool.signal(signal.SIGTTIN)
    pool.wait_ready(3)
    assert pool.status()["num_workers"] == 3
    pool.signal(signal.SIGTTOU)
    pool.wait_ready(2)
    pool.signal(signal.SIGTTOU)
    pool.wait_ready(1)
    pool.signal(signal.SIGTTOU)  # never below one
    wait_for(lambda: "TTOU ignored" in pool.log(), what="TTOU refusal")
    assert len(pool.ready_workers()) == 1
    assert pool.client.execute(ECHO, "noop") is None


def test_ttou_never_goes_below_what_app_limits_need(make_pool):
    pool = make_pool([ECHO, f"{PAIR}:2"], workers=2)
    pool.signal(signal.SIGTTOU)
    wait_for(lambda: "TTOU ignored, 2 worker(s) is the minimum" in pool.log(), what="TTOU refusal")
    assert len(pool.ready_workers()) == 2


def test_limited_app_loads_only_in_its_workers_and_routes_there(make_pool):
    pool = make_pool([ECHO, LIMITED], workers=3)
    status = pool.status()
    holders = status["apps"][LIMITED]["workers"]
    assert len(holders) == 1
    assert len(status["apps"][ECHO]["workers"]) == 3
    assert {pool.client.execute(LIMITED, "whoami") for _ in range(6)} == set(holders)


def test_module_class_n_overrides_the_class_limit(make_pool):
    pool = make_pool([ECHO, f"{PAIR}:2"], workers=3)
    holders = pool.status()["apps"][PAIR]["workers"]
    assert len(holders) == 2
    assert pool.status()["apps"][PAIR]["limit"] == 2


def test_replacement_for_a_dead_worker_loads_the_same_apps(make_pool):
    pool = make_pool([ECHO, LIMITED], workers=2)
    holder = pool.status()["apps"][LIMITED]["workers"][0]
    os.kill(holder, signal.SIGKILL)
    wait_for(lambda: pid_gone(holder), what="holder to die")

    def new_holder():
        ws = pool.status()["apps"][LIMITED]["workers"]
        return ws if ws and ws[0] != holder and len(pool.ready_workers()) == 2 else None

    (replacement,) = wait_for(new_holder, what="replacement holder")
    assert pool.client.execute(LIMITED, "whoami") == replacement


def test_hup_replaces_every_worker_without_dropping_queued_calls(make_pool):
    pool = make_pool(workers=2)
    old = {w["pid"] for w in pool.ready_workers()}
    threads = [run_in_thread(DirtyClient(pool.path).execute, ECHO, "sleep", 0.2) for _ in range(8)]
    pool.signal(signal.SIGHUP)
    for t, _ in threads:
        t.join(20)
    assert [out for _, out in threads] == [{"value": 0.2}] * 8

    def replaced():
        ws = pool.ready_workers()
        return len(ws) == 2 and not old & {w["pid"] for w in ws}

    wait_for(replaced, timeout=20, what="all workers replaced")
    assert pool.client.execute(ECHO, "noop") is None


def test_worker_that_cannot_load_its_app_is_retried_with_backoff():
    from running_pool import Pool

    pool = Pool(["sample_apps:FailingInitApp"], workers=1, ready=False)
    try:
        wait_for(lambda: pool.log().count("failed to load its apps") >= 2, what="two boot attempts")
        assert "cannot load model" in pool.log()
        assert pool.proc.poll() is None  # the arbiter keeps going
    finally:
        pool.stop()


def test_a_worker_that_stops_heartbeating_is_replaced(make_pool):
    pool = make_pool(workers=1, args=["--timeout", "1"])
    (worker,) = pool.ready_workers()
    os.kill(worker["pid"], signal.SIGSTOP)
    wait_for(lambda: "sent no heartbeat for 1s" in pool.log(), what="heartbeat timeout")
    (replacement,) = pool.wait_ready(1)
    assert replacement["pid"] != worker["pid"]
    assert pool.client.execute(ECHO, "noop") is None


def test_graceful_shutdown_is_bounded_by_the_graceful_timeout(make_pool):
    pool = make_pool(workers=1, args=["--graceful-timeout", "1"])
    t, out = run_in_thread(DirtyClient(pool.path).execute, ECHO, "sleep", 30)
    worker = busy_worker(pool)["pid"]
    start = time.monotonic()
    pool.signal(signal.SIGTERM)
    assert pool.proc.wait(10) == 0
    assert time.monotonic() - start < 5
    t.join(5)
    assert "error" in out
    wait_for(lambda: pid_gone(worker), what="worker killed")
    assert not os.path.exists(pool.path)


def test_usr1_reopens_the_log_file(make_pool):
    pool = make_pool(workers=1)
    os.rename(pool.log_path, pool.log_path + ".1")
    pool.signal(signal.SIGUSR1)
    wait_for(lambda: os.path.exists(pool.log_path), what="log file reopened")
    pool.signal(signal.SIGTTIN)
    pool.wait_ready(2)
    wait_for(lambda: "TTIN, 2 worker(s)" in pool.log(), what="new lines in the new file")


def test_a_full_queue_refuses_new_calls_at_once(make_pool):
    from unicorn_dirty import DirtyNoWorkersAvailableError

    pool = make_pool(workers=1, args=["--max-queue", "1"])
    t1, out1 = run_in_thread(DirtyClient(pool.path).execute, ECHO, "sleep", 0.5)
    busy_worker(pool)
    t2, out2 = run_in_thread(DirtyClient(pool.path).execute, ECHO, "echo", "queued")
    wait_for(lambda: pool.status()["apps"][ECHO]["queued"] == 1, what="queued call")
    start = time.monotonic()
    with pytest.raises(DirtyNoWorkersAvailableError, match=r"queue of dirty app .* is full"):
        pool.client.execute(ECHO, "noop")
    assert time.monotonic() - start < 0.3
    t1.join(10)
    t2.join(10)
    assert out1 == {"value": 0.5} and out2 == {"value": [["queued"], {}]}
