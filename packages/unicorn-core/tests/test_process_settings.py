"""Process-level settings: raw_env, chdir, capture_output, logconfig_dict,
proc_name, daemon (with WINCH)."""

from __future__ import annotations

import json
import os
import signal

import pytest
from harness import WORKER, child_pids, http_get, run_unicorn, wait_for

pytestmark = pytest.mark.timeout(30)


def test_raw_env_reaches_workers(start_server):
    server = start_server("-e", "GREETING=hello there", "-e", "OTHER=x=y", app="apps:env").ready()
    assert server.get("/GREETING")[2].endswith("app=hello there")
    assert server.get("/OTHER")[2].endswith("app=x=y")


def test_chdir_and_pythonpath(start_server, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "here_app.py").write_text("def app(path):\n    return 'from chdir'\n")
    server = start_server("--chdir", str(project), app="here_app:app").ready()
    assert server.get()[2].endswith("app=from chdir")


def test_capture_output_sends_prints_to_the_error_log(start_server, tmp_path):
    conf = tmp_path / "c.py"
    conf.write_text(
        "import sys\n"
        "def post_worker_init(worker):\n"
        "    print('printed by the worker', flush=True)\n"
        "    sys.stderr.write('written to stderr\\n'); sys.stderr.flush()\n"
    )
    server = start_server("--capture-output", "-c", str(conf)).ready()
    server.wait_log("printed by the worker")
    server.wait_log("written to stderr")


def test_logconfig_dict(start_server, tmp_path):
    custom = tmp_path / "custom.log"
    config = {
        "version": 1,
        "formatters": {"plain": {"format": "CUSTOM %(levelname)s %(message)s"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(custom), "formatter": "plain"}
        },
        "loggers": {"unicorn.error": {"handlers": ["file"], "level": "INFO"}},
    }
    start_server("--log-config-dict", json.dumps(config))
    text = wait_for(
        lambda: (
            custom.exists()
            and "CUSTOM INFO Listening at:" in custom.read_text()
            and custom.read_text()
        ),
        10,
        "the custom log",
    )
    address = text.split("Listening at: ")[1].split()[0]
    assert wait_for(lambda: _ok(address), 10, "a response")


def test_bad_logconfig_dict_is_one_line(cli):
    bad = json.dumps({"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}})
    result = cli("-k", WORKER, "--log-config-dict", bad, "apps:app")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: logconfig_dict rejected:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_proc_name(start_server):
    pytest.importorskip("setproctitle")
    server = start_server("-n", "shop").ready()
    (worker,) = server.workers()

    def cmdline(pid):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()

    wait_for(lambda: "unicorn: master [shop]" in cmdline(server.pid), 5, "master title")
    assert "unicorn: worker [shop]" in cmdline(worker)


def test_daemon_pidfile_and_winch(tmp_path):
    pidfile = tmp_path / "d.pid"
    log = tmp_path / "d.log"
    result = run_unicorn(
        "-D",
        "-p",
        str(pidfile),
        "-k",
        WORKER,
        "-b",
        "127.0.0.1:0",
        "-w",
        "2",
        "--error-logfile",
        str(log),
        "apps:app",
        cwd=tmp_path,
    )
    assert result.returncode == 0  # the foreground process returns at once
    master = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, "pid"))
    try:
        address = (
            wait_for(
                lambda: log.exists() and ("Listening at: " in log.read_text()) and log.read_text(),
                10,
            )
            .split("Listening at: ")[1]
            .split()[0]
        )
        assert wait_for(lambda: _ok(address), 10, "a response")
        os.kill(master, signal.SIGWINCH)
        wait_for(lambda: "graceful stop of workers" in log.read_text(), 5, "WINCH")
        wait_for(lambda: not child_pids(master), 10, "workers gone")
        assert _is_alive(master)
    finally:
        os.kill(master, signal.SIGTERM)
    wait_for(lambda: not _is_alive(master), 10, "the daemon to exit")
    assert not pidfile.exists()


def _ok(address):
    try:
        return http_get(address)[0] == 200
    except OSError:
        return False


def _is_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_workers_switch_user_and_group(start_server):
    import pwd

    if os.geteuid() != 0:
        pytest.skip("needs root to switch users")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")
    server = start_server("-u", "nobody", "-g", str(nobody.pw_gid)).ready()
    (worker,) = server.workers()
    with open(f"/proc/{worker}/status") as f:
        status = dict(line.split(":", 1) for line in f.read().splitlines())
    assert status["Uid"].split()[0] == str(nobody.pw_uid)
    assert status["Gid"].split()[0] == str(nobody.pw_gid)
    with open(f"/proc/{server.pid}/status") as f:
        assert "Uid:\t0\t" in f.read()  # the master keeps its user


@pytest.mark.parametrize("qualname", ["unicorn.error", "gunicorn.error"])
def test_logconfig_ini_file_with_either_logger_name(start_server, tmp_path, qualname):
    custom = tmp_path / "ini.log"
    ini = tmp_path / "logging.ini"
    ini.write_text(
        "[loggers]\nkeys=root,error\n\n"
        "[handlers]\nkeys=file\n\n"
        "[formatters]\nkeys=plain\n\n"
        "[logger_root]\nlevel=WARNING\nhandlers=\n\n"
        f"[logger_error]\nlevel=INFO\nhandlers=file\npropagate=0\nqualname={qualname}\n\n"
        f"[handler_file]\nclass=FileHandler\nformatter=plain\nargs=({str(custom)!r},)\n\n"
        "[formatter_plain]\nformat=INI %(message)s\n"
    )
    server = start_server("--log-config", str(ini))
    wait_for(lambda: custom.exists() and "INI Listening at:" in custom.read_text(), 10, "ini log")
    assert "Listening at:" not in server.log()  # the configured handler replaced the default


def test_systemd_notify_ready_and_stopping(start_server, tmp_path):
    import socket

    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(path))
        notify.settimeout(10)
        server = start_server(env={"NOTIFY_SOCKET": str(path)})
        assert notify.recv(256) == b"READY=1"
        server.signal(signal.SIGTERM)
        assert notify.recv(256) == b"STOPPING=1"
        assert server.wait_exit() == 0
