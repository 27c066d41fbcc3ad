"""Every signal the master handles changes what it should."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from harness import http_get, wait_for

pytestmark = pytest.mark.timeout(40)


def test_ttin_and_ttou_change_the_worker_count(start_server):
    server = start_server("-w", "2").ready(workers=2)
    server.signal(signal.SIGTTIN)
    three = server.wait_workers(3)
    # one signal at a time: the kernel merges a signal still pending
    server.signal(signal.SIGTTOU)
    server.wait_workers(2)
    server.signal(signal.SIGTTOU)
    one = server.wait_workers(1)
    assert one < three  # the youngest survives; nobody new was started
    server.signal(signal.SIGTTOU)  # never below one: the next TTIN makes two
    server.wait_log("Handling signal: ttou", count=3)
    server.signal(signal.SIGTTIN)
    assert len(server.wait_workers(2)) == 2


def test_hup_replaces_every_worker(start_server):
    server = start_server("-w", "2").ready(workers=2)
    before = server.workers()
    server.signal(signal.SIGHUP)
    after = server.wait_replaced(2, before)
    assert server.get()[0] == 200
    assert int(server.get()[1]["X-Pid"]) in after


def test_hup_rereads_the_config_file(start_server, tmp_path):
    conf = tmp_path / "unicorn.conf.py"
    conf.write_text("workers = 1\n")
    server = start_server("-c", str(conf)).ready(workers=1)
    conf.write_text("workers = 3\n")
    server.signal(signal.SIGHUP)
    server.wait_workers(3)


def test_killed_worker_is_replaced(start_server):
    server = start_server("-w", "2").ready(workers=2)
    victim = min(server.workers())
    os.kill(victim, signal.SIGKILL)
    server.wait_replaced(2, {victim})
    server.wait_log(rf"Worker \(pid:{victim}\) was sent SIGKILL")


def test_stuck_worker_is_aborted_after_timeout_and_replaced(start_server, tmp_path):
    marker = tmp_path / "aborted"
    conf = tmp_path / "hooks.py"
    conf.write_text(
        "def worker_abort(worker):\n"
        f"    open({str(marker)!r}, 'a').write(str(worker.pid) + '\\n')\n"
    )
    server = start_server("-t", "1", "-c", str(conf)).ready()
    (stuck,) = server.workers()
    with pytest.raises(OSError):
        server.get("/stuck", timeout=4)
    server.wait_log(rf"WORKER TIMEOUT \(pid:{stuck}\)")
    wait_for(lambda: marker.exists() and marker.read_text().strip() == str(stuck), 10, "abort hook")
    new = server.wait_replaced(1, {stuck})
    assert server.get()[0] == 200
    assert int(server.get()[1]["X-Pid"]) in new


def test_usr1_reopens_log_files(start_server, tmp_path):
    access = tmp_path / "access.log"
    server = start_server("--access-logfile", str(access)).ready()
    server.get("/one")
    wait_for(lambda: access.exists() and "/one" in access.read_text(), 5, "first line")
    rotated = tmp_path / "access.log.1"
    access.rename(rotated)
    error_log = server.log_path
    error_rotated = error_log.with_suffix(".old")
    error_log.rename(error_rotated)
    server.signal(signal.SIGUSR1)
    # the master reopens the error log; each worker its access log

    tries = iter(range(10**6))

    def reopened():
        path = f"/after-{next(tries)}"
        server.get(path)
        return path if access.exists() and path in access.read_text() else None

    path = wait_for(reopened, 10, "the access log to be reopened")
    assert path + " " not in rotated.read_text()
    assert error_log.exists()


def test_term_stops_within_graceful_timeout(start_server, tmp_path):
    marker = tmp_path / "in-request"
    conf = tmp_path / "hooks.py"
    conf.write_text(f"def pre_request(worker, req):\n    open({str(marker)!r}, 'w').close()\n")
    server = start_server("-w", "2", "--graceful-timeout", "1", "-c", str(conf)).ready(workers=2)
    marker.unlink()
    workers = server.workers()
    # a request stuck in the app ignores the graceful stop; the master kills it
    threading.Thread(target=lambda: _swallow(server.address, "/stuck"), daemon=True).start()
    wait_for(marker.exists, 5, "the stuck request")
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.wait_exit(10) == 0
    assert time.monotonic() - started < 5
    for pid in workers:
        assert not os.path.exists(f"/proc/{pid}") or _zombie(pid)


def test_int_stops_fast(start_server):
    server = start_server("-w", "2").ready(workers=2)
    started = time.monotonic()
    server.signal(signal.SIGINT)
    assert server.wait_exit(10) == 0
    assert time.monotonic() - started < 5


def test_max_requests_recycles_the_worker(start_server):
    server = start_server("--max-requests", "3").ready()
    (first,) = server.workers()
    pids = set()
    for _ in range(6):
        try:
            pids.add(int(server.get()[1]["X-Pid"]))
        except OSError:
            pass
    # wait_workers via ready() already made one request: the first worker served 3
    assert first in pids
    wait_for(lambda: first not in server.workers() and len(server.workers()) == 1, 10, "recycle")
    server.wait_log("Autorestarting worker after current request")


def test_usr2_upgrades_without_failed_requests(start_server, tmp_path):
    pidfile = tmp_path / "unicorn.pid"
    # a relative config path and --chdir: the new master must start where the old one did
    (tmp_path / "up.conf.py").write_text("workers = 2\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    server = start_server("-c", "up.conf.py", "--chdir", str(elsewhere), "-p", str(pidfile)).ready(
        workers=2
    )
    address = server.address
    old_workers = server.workers()
    failures: list[Exception] = []
    served_by: list[int] = []
    stop = threading.Event()

    def client():
        while not stop.is_set():
            try:
                served_by.append(int(http_get(address)[1]["X-Pid"]))
            except Exception as exc:
                failures.append(exc)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    server.signal(signal.SIGUSR2)
    second = tmp_path / "unicorn.pid.2"
    new_master = int(wait_for(lambda: second.exists() and second.read_text().strip(), 10, ".2"))
    try:
        _finish_upgrade(server, pidfile, new_master, old_workers, served_by, failures, stop)
    finally:
        stop.set()
        thread.join(5)
        try:
            os.kill(new_master, signal.SIGQUIT)
        except ProcessLookupError:
            pass


def _finish_upgrade(server, pidfile, new_master, old_workers, served_by, failures, stop):
    tmp_path = pidfile.parent
    second = tmp_path / "unicorn.pid.2"
    # as in gunicorn: PIDFILE still names the old master mid-upgrade (a deploy
    # script's `kill -TERM $(cat PIDFILE)` reaches it), PIDFILE.2 the new one
    assert pidfile.read_text().strip() == str(server.pid)
    assert second.read_text().strip() == str(new_master)
    assert not (tmp_path / "unicorn.pid.oldbin").exists()
    new_workers = server.wait_workers(2, pid=new_master)
    wait_for(lambda: set(served_by) & new_workers, 10, "the new workers to serve")
    # the old master keeps serving until told to stop
    assert server.proc.poll() is None
    server.signal(signal.SIGTERM)
    assert server.wait_exit(10) == 0
    wait_for(
        lambda: pidfile.exists() and pidfile.read_text().strip() == str(new_master), 10, "promotion"
    )
    assert not second.exists()
    served_by.clear()
    wait_for(lambda: len(served_by) > 3, 10, "requests after the upgrade")
    stop.set()
    assert failures == []
    assert set(served_by) <= new_workers
    assert old_workers.isdisjoint(new_workers)
    os.kill(new_master, signal.SIGTERM)
    wait_for(lambda: not os.path.exists(f"/proc/{new_master}") or _zombie(new_master), 10, "exit")
    assert not pidfile.exists()


def test_usr2_backed_out_leaves_pidfile_naming_the_old_master(start_server, tmp_path):
    pidfile = tmp_path / "unicorn.pid"
    server = start_server("-p", str(pidfile)).ready()
    server.signal(signal.SIGUSR2)
    second = tmp_path / "unicorn.pid.2"
    new_master = int(wait_for(lambda: second.exists() and second.read_text().strip(), 10, ".2"))
    server.wait_workers(1, pid=new_master)
    assert pidfile.read_text().strip() == str(server.pid)
    os.kill(new_master, signal.SIGTERM)  # back out: stop the new master
    wait_for(lambda: not second.exists(), 10, "the new master to remove PIDFILE.2")
    server.wait_log("The new master .* exited; this master goes on")
    assert pidfile.read_text().strip() == str(server.pid)
    assert server.get()[0] == 200


def test_winch_is_ignored_when_not_daemonized(start_server):
    server = start_server("-w", "2", "--log-level", "debug").ready(workers=2)
    before = server.workers()
    server.signal(signal.SIGWINCH)
    server.wait_log("SIGWINCH ignored")
    assert server.workers() == before


def _swallow(address: str, path: str) -> None:
    try:
        http_get(address, path, timeout=10)
    except Exception:
        pass


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_ttou_kills_a_worker_that_outlives_graceful_timeout(start_server, tmp_path):
    marker = tmp_path / "in-request"
    conf = tmp_path / "hooks.py"
    conf.write_text(f"def pre_request(worker, req):\n    open({str(marker)!r}, 'w').close()\n")
    server = start_server("-w", "2", "--graceful-timeout", "1", "-c", str(conf)).ready(workers=2)
    oldest = min(server.workers())  # pids grow with age here: the oldest is stopped
    marker.unlink()
    # keep both workers busy so the oldest is surely stuck in a request
    for _ in range(2):
        threading.Thread(target=lambda: _swallow(server.address, "/stuck"), daemon=True).start()
    wait_for(marker.exists, 5, "a stuck request")
    started = time.monotonic()
    server.signal(signal.SIGTTOU)
    server.wait_log(rf"Worker \(pid:{oldest}\) outlived graceful_timeout")
    wait_for(lambda: oldest not in server.workers(), 5, "the kill")
    assert time.monotonic() - started < 5


def test_hup_with_a_broken_config_keeps_the_old_one(start_server, tmp_path):
    conf = tmp_path / "unicorn.conf.py"
    conf.write_text("workers = 1\n")
    server = start_server("-c", str(conf)).ready()
    before = server.workers()
    conf.write_text("workers = 'lots'\n")
    server.signal(signal.SIGHUP)
    server.wait_log("Reload failed, keeping the old configuration: .*'workers': 'lots'")
    assert server.workers() == before
    assert server.get()[0] == 200


def test_hup_rebinds_when_bind_changes(start_server, tmp_path):
    conf = tmp_path / "unicorn.conf.py"
    path = tmp_path / "after.sock"
    conf.write_text("bind = ['127.0.0.1:0']\n")
    server = start_server("-c", str(conf), bind=None).ready()
    conf.write_text(f"bind = ['unix:{path}']\n")
    server.signal(signal.SIGHUP)
    server.wait_log(f"Listening at: unix:{path}")
    assert wait_for(lambda: _answers(f"unix:{path}"), 10, "the new listener")


def _answers(address: str) -> bool:
    try:
        return http_get(address)[0] == 200
    except OSError:
        return False
