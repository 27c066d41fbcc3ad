"""Listeners: TCP v4/v6, unix sockets (mode, stale file, cleanup), fd://, systemd."""

from __future__ import annotations

import os
import signal
import socket
import stat
import sys

import pytest
from harness import WORKER, http_get, server_env, wait_for

from unicorn_core.errors import ConfigError
from unicorn_core.sockets import parse_address, systemd_fds

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("bind", "expected"),
    [
        ("127.0.0.1:9000", (socket.AF_INET, ("127.0.0.1", 9000))),
        (":9000", (socket.AF_INET, ("0.0.0.0", 9000))),
        ("127.0.0.1", (socket.AF_INET, ("127.0.0.1", 8000))),
        ("[::1]:9000", (socket.AF_INET6, ("::1", 9000))),
        ("[::]:0", (socket.AF_INET6, ("::", 0))),
        ("unix:/run/app.sock", (socket.AF_UNIX, "/run/app.sock")),
        ("fd://5", (-1, 5)),
        ("tcp://127.0.0.1:80", (socket.AF_INET, ("127.0.0.1", 80))),
        ("localhost:8080", (socket.AF_INET, ("127.0.0.1", 8080))),
    ],
)
def test_parse_address(bind, expected):
    assert parse_address(bind) == expected


@pytest.mark.parametrize("bind", ["unix:", "fd://x", "[::1:80", "127.0.0.1:http", "1.2.3.4:70000"])
def test_parse_address_rejects(bind):
    with pytest.raises(ConfigError, match="bind"):
        parse_address(bind)


def test_systemd_fds_need_our_pid():
    assert systemd_fds({"LISTEN_PID": "1", "LISTEN_FDS": "2"}, pid=5) == []
    assert systemd_fds({"LISTEN_PID": "5", "LISTEN_FDS": "2"}, pid=5) == [3, 4]


def test_unix_socket_mode_stale_file_and_cleanup(start_server, tmp_path):
    path = tmp_path / "app.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # leaves a socket file nobody listens on
    server = start_server("-m", "0o007", bind=f"unix:{path}").ready()
    assert server.address == f"unix:{path}"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o770
    assert server.get()[0] == 200
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    assert not path.exists()


def test_a_world_writable_unix_socket_is_warned_about(start_server, tmp_path):
    path = tmp_path / "open.sock"
    server = start_server("-m", "0", bind=f"unix:{path}").ready()
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o002
    assert "world-writable" in server.log() and str(path) in server.log()
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    private = tmp_path / "private.sock"
    server = start_server("-m", "0o007", bind=f"unix:{private}").ready()
    assert "world-writable" not in server.log()
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0


def test_unix_socket_refuses_to_replace_a_regular_file(start_server, tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("keep me")
    server = start_server(bind=f"unix:{path}")
    assert server.wait_exit() == 1
    assert "exists and is not a socket" in server.log()
    assert path.read_text() == "keep me"


def test_several_binds(start_server, tmp_path):
    path = tmp_path / "s.sock"
    server = start_server("-b", f"unix:{path}").ready()
    line = server.wait_log(r"Listening at: (\S+)").group(1)
    tcp, unix = line.split(",")
    assert http_get(tcp)[0] == 200
    assert http_get(unix)[0] == 200


def test_ipv6(start_server):
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    server = start_server(bind="[::1]:0").ready()
    assert server.address.startswith("http://[::1]:")


def test_fd_bind(start_server):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    fd = listener.fileno()
    server = start_server(bind=f"fd://{fd}", pass_fds=(fd,)).ready()
    listener.close()
    assert http_get(f"http://127.0.0.1:{port}")[0] == 200
    assert server.address == f"http://127.0.0.1:{port}"


def test_systemd_socket_activation(tmp_path):
    import subprocess

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    log = tmp_path / "error.log"
    # like systemd: the socket on fd 3, LISTEN_PID naming the exec'd process
    launcher = (
        "import os, sys\n"
        f"os.dup2({listener.fileno()}, 3)\n"
        "os.environ['LISTEN_PID'] = str(os.getpid())\n"
        "os.environ['LISTEN_FDS'] = '1'\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'unicorn_core', '-k', "
        f"{WORKER!r}, '--error-logfile', {str(log)!r}, 'apps:app'])\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", launcher], env=server_env(), pass_fds=(listener.fileno(),)
    )
    listener.close()
    try:
        wait_for(lambda: log.exists() and "Booting worker" in log.read_text(), 10, "boot")
        assert f"Listening at: http://127.0.0.1:{port}" in log.read_text()
        assert wait_for(lambda: _ok(f"http://127.0.0.1:{port}"), 10, "a response")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def _ok(address: str) -> bool:
    try:
        return http_get(address)[0] == 200
    except OSError:
        return False
