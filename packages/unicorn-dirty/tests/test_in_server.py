"""The dirty pool inside unicorn: started by the master through the sidecar entry point,
reached by HTTP workers, gone with the master. Skipped where unicorn_core is not installed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest
from running_pool import child_env, pid_gone, wait_for

pytest.importorskip("unicorn_core")
pytestmark = pytest.mark.timeout(40)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def answering(port: int):
    try:
        return get(port, "/status")
    except OSError:
        return None


def ready(port: int):
    status = answering(port)
    if status and sum(w["ready"] for w in status["status"]["workers"]) == 2:
        return status
    return None


def start_unicorn(tmp_path) -> tuple[subprocess.Popen, int, dict]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "unicorn_core",
        "dirty_wsgi_app:application",
        "--bind",
        f"127.0.0.1:{port}",
    ]
    cmd += ["-w", "2", "--dirty-app", "sample_apps:EchoApp", "--dirty-workers", "2"]
    master = subprocess.Popen(
        cmd, env=child_env(), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        info = wait_for(lambda: ready(port), timeout=20, what="unicorn with its dirty pool")
    except BaseException:
        master.kill()
        master.wait()
        raise
    return master, port, info


def test_http_workers_call_the_sidecar_pool_and_kill_9_of_the_master_leaves_nothing(tmp_path):
    master, port, info = start_unicorn(tmp_path)
    try:
        assert get(port, "/hello") == [["/hello"], {}]
        assert get(port, "/stream") == [0, 1, 2]
        arbiter = info["status"]["pid"]
        workers = [w["pid"] for w in info["status"]["workers"]]
        path = info["socket"]
        assert os.path.exists(path)
        master.send_signal(signal.SIGKILL)
        master.wait(5)
        wait_for(
            lambda: all(pid_gone(p) for p in [arbiter, *workers]), what="dirty processes to exit"
        )
        assert not os.path.exists(path)
        assert not os.path.exists(os.path.dirname(path))
    finally:
        master.kill()
        master.wait()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sse_from_a_dirty_stream_and_client_disconnect_cancels_the_work(tmp_path, kind):
    httpx = pytest.importorskip("httpx")
    master, port, _ = start_unicorn(tmp_path)
    marker = f"sse-{kind}"
    try:
        events = []
        with httpx.stream("GET", f"http://127.0.0.1:{port}/sse/{kind}/{marker}", timeout=10) as r:
            assert r.headers["content-type"] == "text/event-stream"
            for line in r.iter_lines():
                if line.startswith("data: "):
                    events.append(line)
                if len(events) == 5:
                    break  # the HTTP client goes away mid-stream
        assert len(events) == 5
        # the dirty worker's generator was closed: the work stopped
        wait_for(lambda: get(port, f"/mark?{marker}") == "closed", what="dirty stream cancelled")
    finally:
        master.send_signal(signal.SIGTERM)
        master.wait(15)


def test_dirty_workers_0_disables_the_pool_and_calls_fail_at_once(tmp_path):
    port = free_port()
    cmd = [sys.executable, "-m", "unicorn_core", "dirty_wsgi_app:application"]
    cmd += ["--bind", f"127.0.0.1:{port}", "-w", "1"]
    cmd += ["--dirty-app", "sample_apps:EchoApp", "--dirty-workers", "0"]
    master = subprocess.Popen(
        cmd, env=child_env(), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        info = wait_for(lambda: answering(port), timeout=20, what="unicorn answering")
        assert info["status"]["workers"] == [] and info["status"]["num_workers"] == 0
        answer = get(port, "/try")
        assert answer["error"]["error_type"] == "DirtyNoWorkersAvailableError"
        assert "dirty_workers is 0" in answer["error"]["message"]
        assert answer["error"]["details"]["app_path"] == "sample_apps:EchoApp"
        assert answer["seconds"] < 1.0
    finally:
        master.send_signal(signal.SIGTERM)
        master.wait(15)
