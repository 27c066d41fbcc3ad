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


def test_http_workers_call_the_sidecar_pool_and_kill_9_of_the_master_leaves_nothing(tmp_path):
    port = free_port()
    master = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "unicorn_core",
            "dirty_wsgi_app:application",
            "--bind",
            f"127.0.0.1:{port}",
            "-w",
            "2",
            "--dirty-app",
            "sample_apps:EchoApp",
            "--dirty-workers",
            "2",
        ],
        env=child_env(),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        info = wait_for(
            lambda: (
                (s := answering(port))
                and sum(w["ready"] for w in s["status"]["workers"]) == 2
                and s
            ),
            timeout=20,
            what="unicorn with its dirty pool",
        )
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
