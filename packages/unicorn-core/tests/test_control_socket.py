"""The control socket and ``unicornc`` against a running master (real processes)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading

import pytest
from harness import Server, server_env, wait_for

pytestmark = pytest.mark.timeout(60)


def unicornc(sock, *words: str, json_out: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "unicorn_core.unicornc", "-s", str(sock)]
    if json_out:
        cmd.append("-j")
    return subprocess.run(
        [*cmd, *words], capture_output=True, text=True, timeout=15, env=server_env()
    )


def result(sock, *words: str):
    done = unicornc(sock, *words)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def worker_pids(sock) -> set[int]:
    return {w["pid"] for w in result(sock, "show", "workers")}


@pytest.fixture
def ctl(tmp_path):
    return tmp_path / "run" / "app.ctl"


def test_socket_is_private_and_removed_at_exit(tmp_path, ctl):
    server = Server(tmp_path, "--control-socket", str(ctl)).ready()
    try:
        server.wait_log("Control socket at: ")
        assert stat.S_IMODE(os.stat(ctl).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(ctl.parent).st_mode) == 0o700
        assert result(ctl, "shutdown") == {"shutdown": "graceful"}
        assert server.wait_exit() == 0
        assert not ctl.exists()
    finally:
        server.stop()


def test_show_add_remove_and_reload(tmp_path, ctl):
    server = Server(tmp_path, "--control-socket", str(ctl)).ready()
    try:
        first = worker_pids(ctl)
        assert first == server.workers() and len(first) == 1

        (row,) = result(ctl, "show", "workers")
        served = row["requests"]  # ready() asked once already
        for _ in range(3):
            assert server.get("/")[0] == 200
        (row,) = result(ctl, "show", "workers")
        assert row["requests"] == served + 3
        assert row["state"] == "idle"
        assert row["rss"] > 1024 * 1024
        assert result(ctl, "show", "stats")["requests"] == served + 3

        assert result(ctl, "worker", "add") == {"added": 1, "previous": 1, "total": 2}
        two = server.wait_workers(2)
        wait_for(lambda: worker_pids(ctl) == two, 10, "unicornc to list both workers")

        before = worker_pids(ctl)
        assert result(ctl, "reload")["reload"] == "started"
        after = server.wait_replaced(1, before)  # HUP: back to the configured count
        wait_for(lambda: worker_pids(ctl) == after, 10, "unicornc to list the new pids")

        assert result(ctl, "worker", "add", "2")["total"] == 3
        server.wait_workers(3)
        assert result(ctl, "worker", "remove", "2")["total"] == 1
        server.wait_workers(1)
    finally:
        server.stop()


def test_busy_worker_shows_busy(tmp_path, ctl):
    hold = tmp_path / "hold"
    hold.write_text("")
    server = Server(tmp_path, "--control-socket", str(ctl), env={"HOLD_FILE": str(hold)}).ready()
    try:
        answer: list = []
        client = threading.Thread(target=lambda: answer.append(server.get("/hold")))
        client.start()
        wait_for(
            lambda: [w["state"] for w in result(ctl, "show", "workers")] == ["busy"],
            10,
            "the worker to show busy",
        )
        hold.unlink()
        client.join(10)
        assert answer and answer[0][0] == 200
        assert [w["state"] for w in result(ctl, "show", "workers")] == ["idle"]
    finally:
        server.stop()


def test_config_table_and_errors(tmp_path, ctl):
    server = Server(tmp_path, "-w", "1", "--control-socket", str(ctl), "--timeout", "17").ready()
    try:
        config = result(ctl, "show", "config")
        assert config["timeout"] == 17
        assert config["control_socket"] == str(ctl)
        assert isinstance(config["post_fork"], str)  # a hook, by its dotted name

        table = unicornc(ctl, "show", "workers", json_out=False)
        assert table.returncode == 0
        assert table.stdout.splitlines()[0].split() == [
            "PID", "AGE", "UPTIME", "REQUESTS", "RSS", "STATE", "LAST_BEAT",
        ]  # fmt: skip
        assert "Total: 1 workers" in table.stdout

        bogus = unicornc(ctl, "frobnicate", json_out=False)
        assert bogus.returncode == 1 and "unknown command 'frobnicate'" in bogus.stderr
        too_many = unicornc(ctl, "worker", "remove", "1", json_out=False)
        assert too_many.returncode == 1 and "at least 1 stays" in too_many.stderr
        bad_count = unicornc(ctl, "worker", "add", "many", json_out=False)
        assert bad_count.returncode == 1 and "positive number" in bad_count.stderr
        assert unicornc(ctl, "show", "dirty").stdout.strip() == "{}"
    finally:
        server.stop()
    gone = unicornc(ctl, "show", "workers", json_out=False)
    assert gone.returncode == 2 and "is unicorn running?" in gone.stderr


def test_second_server_leaves_a_held_socket_alone(tmp_path, ctl):
    first = Server(tmp_path, "--control-socket", str(ctl)).ready()
    second = Server(tmp_path, "--control-socket", str(ctl)).ready()
    try:
        second.wait_log("is in use by another server")
        assert result(ctl, "show", "stats")["pid"] == first.pid
    finally:
        second.stop()
        first.stop()


def test_public_directory_is_refused(tmp_path):
    public = tmp_path / "public"
    public.mkdir()
    public.chmod(0o777)
    server = Server(tmp_path, "--control-socket", str(public / "u.ctl"))
    try:
        assert server.wait_exit() != 0
        assert "writable by everyone" in server.log()
    finally:
        server.stop()


def test_usr2_upgrade_hands_the_socket_to_the_new_master(tmp_path, ctl):
    pidfile = tmp_path / "unicorn.pid"
    server = Server(tmp_path, "--control-socket", str(ctl), "-p", str(pidfile)).ready()
    new_master = 0
    try:
        server.signal(signal.SIGUSR2)
        second = tmp_path / "unicorn.pid.2"
        new_master = int(wait_for(lambda: second.exists() and second.read_text().strip(), 10))
        server.wait_workers(1, pid=new_master)
        # both run: the old master keeps its socket, the new one waits for it
        assert result(ctl, "show", "stats")["pid"] == server.pid
        server.signal(signal.SIGTERM)
        assert server.wait_exit() == 0
        wait_for(
            lambda: ctl.exists() and unicornc(ctl, "show", "stats").returncode == 0,
            15,
            "the new master's socket",
        )
        assert result(ctl, "show", "stats")["pid"] == new_master
    finally:
        if new_master:
            try:
                os.kill(new_master, signal.SIGQUIT)
            except ProcessLookupError:
                pass
        server.stop()
