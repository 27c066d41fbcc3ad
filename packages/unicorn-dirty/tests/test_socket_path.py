"""The standalone pool's default socket lives only in a directory no other user can
write to: a private $XDG_RUNTIME_DIR, else a fresh mkdtemp directory, removed on exit."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from running_pool import ECHO, child_env, wait_for

from unicorn_dirty import DirtyClient

pytestmark = pytest.mark.timeout(30)

NOBODY = 65534


def start(tmp_path: Path, **env: str) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "log"
    environ = child_env(TMPDIR=str(tmp_path), **env)
    if "XDG_RUNTIME_DIR" not in env:
        environ.pop("XDG_RUNTIME_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "unicorn_dirty.cli", ECHO, "-w", "1", "--log-file", str(log)],
        env=environ,
        cwd=tmp_path,
    )
    return proc, log


def socket_of(proc: subprocess.Popen, log: Path) -> str:
    def listening():
        assert proc.poll() is None, log.read_text() if log.exists() else "no log"
        m = re.search(r"listening at (\S+) with", log.read_text() if log.exists() else "")
        return m and m.group(1)

    return wait_for(listening, what="arbiter listening")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def assert_private(directory: str) -> None:
    st = os.lstat(directory)
    assert stat.S_ISDIR(st.st_mode)
    assert st.st_uid == os.getuid()
    assert st.st_mode & 0o777 == 0o700


def test_a_directory_another_user_prepared_is_never_used(tmp_path):
    # what the old default was: $TMPDIR/unicorn-dirty-<uid>, open to anyone to pre-create
    trap = tmp_path / f"unicorn-dirty-{os.getuid()}"
    trap.mkdir()
    trap.chmod(0o777)
    if os.getuid() == 0:
        os.chown(trap, NOBODY, NOBODY)
    proc, log = start(tmp_path)
    try:
        path = socket_of(proc, log)
        directory = os.path.dirname(path)
        assert Path(directory) != trap and list(trap.iterdir()) == []
        assert_private(directory)
        assert f"the socket is {path}" in log.read_text()
        assert DirtyClient(path).execute(ECHO, "echo", 1) == [[1], {}]
    finally:
        stop(proc)
    assert not os.path.exists(directory)  # removed on a normal exit


@pytest.mark.parametrize("mode", [0o700, 0o777], ids=["private", "world-writable"])
def test_xdg_runtime_dir_is_used_only_when_private(tmp_path, mode):
    runtime = tmp_path / "run"
    runtime.mkdir()
    runtime.chmod(mode)
    proc, log = start(tmp_path, XDG_RUNTIME_DIR=str(runtime))
    try:
        path = socket_of(proc, log)
        if mode == 0o700:
            assert path == str(runtime / "unicorn-dirty.sock")
        else:
            assert not path.startswith(str(runtime))
            assert_private(os.path.dirname(path))
        assert DirtyClient(path).execute(ECHO, "noop") is None
    finally:
        stop(proc)
    assert not os.path.exists(path)
    assert runtime.is_dir()  # XDG_RUNTIME_DIR is not ours to remove
