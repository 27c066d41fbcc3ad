"""Chaos: wrk keeps a keep-alive load on while the server's processes come and go.

In one run (issue 12): HUP (reload), TTIN and TTOU (more and fewer workers),
max_requests recycling, kill -9 of one worker, and a USR2 upgrade whose old
master is then stopped with TERM. The only requests allowed to fail are those
in flight in the worker killed with SIGKILL: at most one per connection it held.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess

import pytest

from tests.support.unicorn_server import Unicorn, wait_for

pytestmark = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (make test installs it)"
)

_MASTER = re.compile(r"\[(\d+)\] \[INFO\] Starting unicorn")
_BOOTED = re.compile(r"Booting worker with pid: (\d+)")
_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
CONNECTIONS = 16


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _client_connections(pid: int, port: int) -> int:
    """Established TCP connections to ``port`` that process ``pid`` holds open."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "01" and int(local.rsplit(":", 1)[1], 16) == port and inode in inodes:
                    count += 1
    return count


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


@pytest.mark.parametrize(
    ("worker", "app"), [("gthread", "fault_apps:wsgi"), ("asgi", "fault_apps:asgi")]
)
def test_wrk_keeps_its_requests_while_processes_come_and_go(tmp_path, worker, app):
    srv = Unicorn(
        tmp_path,
        app,
        "-k",
        worker,
        "-w",
        "2",
        "--threads",
        "4",
        "--max-requests",
        "4000",
        "--max-requests-jitter",
        "500",
        "--graceful-timeout",
        "10",
    )
    new_master = None
    held = 0
    wrk = subprocess.Popen(
        ["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", "14s", "--timeout", "10s", srv.url + "/"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        old = srv.proc.pid

        def workers_of(master: int) -> list[int]:
            return _children(master)

        def wait_workers(master: int, n: int) -> None:
            wait_for(lambda: len(workers_of(master)) == n, 20, f"{n} workers of {master}")

        wait_workers(old, 2)
        booted = len(_BOOTED.findall(srv.log()))
        srv.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: len(_BOOTED.findall(srv.log())) >= booted + 2, 20, "HUP's new workers")
        wait_workers(old, 2)
        srv.proc.send_signal(signal.SIGTTIN)
        wait_workers(old, 3)
        srv.proc.send_signal(signal.SIGTTOU)
        wait_workers(old, 2)
        # kill -9 of one worker: its in-flight requests are the only ones allowed to fail
        victim = workers_of(old)[0]
        # Stopped first, it takes no connection between the count and the kill.
        os.kill(victim, signal.SIGSTOP)
        held = _client_connections(victim, srv.port)
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: victim not in workers_of(old) and len(workers_of(old)) == 2, 20, "a replacement"
        )
        # USR2: a new master beside the old one, then TERM to the old
        srv.proc.send_signal(signal.SIGUSR2)
        found = wait_for(
            lambda: [int(p) for p in _MASTER.findall(srv.log()) if int(p) != old],
            20,
            "a new master",
        )
        new_master = found[0]
        wait_workers(new_master, 2)
        srv.proc.send_signal(signal.SIGTERM)
        srv.proc.wait(20)
        out, _ = wrk.communicate(timeout=40)
    finally:
        if wrk.poll() is None:
            wrk.kill()
        if new_master is not None and _alive(new_master):
            os.kill(new_master, signal.SIGTERM)
            wait_for(lambda: not _alive(new_master), 20, "the new master to stop")
        srv.stop()
    assert "requests in" in out, out
    errors = _ERRORS.search(out)
    failed = sum(int(n) for n in errors.groups()) if errors else 0
    assert "Non-2xx" not in out, out
    # The requests in flight in the killed worker: one per connection it held.
    # Nothing else: the gthread residue (up to one more per run) was a client a
    # pool thread had accepted but not registered when the drain found no
    # connection left and the worker exited; the drain now waits for it.
    assert failed <= held, (held, out)
