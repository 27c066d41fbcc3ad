"""The dirty pool seen from the master: `unicornc show dirty` and `/metrics` read
the pool's status through the sidecar's `status()`. Skipped without unicorn_core."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import urllib.request

import pytest
from running_pool import child_env, wait_for

pytest.importorskip("unicorn_core")
pytest.importorskip("unicorn_workers")
pytestmark = pytest.mark.timeout(60)

APP = "sample_apps:EchoApp"


def unicornc(ctl, *words):
    done = subprocess.run(
        [sys.executable, "-m", "unicorn_core.unicornc", "-s", str(ctl), "-j", *words],
        capture_output=True,
        text=True,
        timeout=15,
        env=child_env(),
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_show_dirty_and_metrics_report_the_pool(tmp_path):
    ctl = tmp_path / "run" / "u.ctl"
    log = tmp_path / "error.log"
    cmd = [
        sys.executable, "-m", "unicorn_core", "dirty_wsgi_app:application",
        "-b", "127.0.0.1:0", "-w", "1", "--error-logfile", str(log),
        "--dirty-app", APP, "--dirty-workers", "1",
        "--control-socket", str(ctl), "--metrics-bind", "127.0.0.1:0",
    ]  # fmt: skip
    master = subprocess.Popen(cmd, env=child_env(), cwd=tmp_path)
    try:
        text = lambda: log.read_text() if log.exists() else ""  # noqa: E731
        wait_for(lambda: "Metrics at:" in text() and "Control socket at:" in text(), 15)
        metrics = re.search(r"Metrics at: (\S+)", text()).group(1)

        def ready():
            pool = unicornc(ctl, "show", "dirty").get("dirty", {})
            return pool if [w["ready"] for w in pool.get("workers", [])] == [True] else None

        pool = wait_for(ready, 20, what="the dirty worker")
        assert pool["apps"][APP]["queued"] == 0
        config = unicornc(ctl, "show", "config")  # the dirty settings are there too
        assert config["dirty_apps"] == [APP]

        from unicorn_dirty import DirtyClient

        dirty_socket = json.loads(
            urllib.request.urlopen(
                re.search(r"Listening at: (\S+)", text()).group(1) + "/status", timeout=10
            ).read()
        )["socket"]
        calls = []

        def slow():
            calls.append(DirtyClient(dirty_socket).execute(APP, "sleep", 1.0))

        threads = [threading.Thread(target=slow) for _ in range(4)]
        for t in threads:
            t.start()
        # one worker, one thread: some of the four calls wait in the queue
        wait_for(
            lambda: unicornc(ctl, "show", "dirty")["dirty"]["apps"][APP]["queued"] >= 1,
            5,
            what="a queued dirty call",
        )
        body = urllib.request.urlopen(metrics, timeout=10).read().decode()
        depth = re.search(r'unicorn_dirty_queue_depth\{app="sample_apps:EchoApp"\} (\d+)', body)
        assert depth and int(depth.group(1)) >= 1
        for t in threads:
            t.join(20)
        assert calls == [1.0] * 4
        body = urllib.request.urlopen(metrics, timeout=10).read().decode()
        calls_total = int(re.search(r"^unicorn_dirty_calls_total (\d+)$", body, re.M).group(1))
        assert calls_total == 4  # status requests are not calls
        count = re.search(r"^unicorn_dirty_call_duration_seconds_count (\d+)$", body, re.M)
        assert int(count.group(1)) == 4
        slow_bucket = re.search(
            r'unicorn_dirty_call_duration_seconds_bucket\{le="0.75"\} (\d+)', body
        )
        assert int(count.group(1)) - int(slow_bucket.group(1)) == 4  # the 1 s calls
    finally:
        master.send_signal(signal.SIGTERM)
        master.wait(20)
