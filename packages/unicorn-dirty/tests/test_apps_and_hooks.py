"""DirtyApp dispatch and loading, and the hooks and config file of the standalone command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

import pytest
from running_pool import ECHO, HERE, child_env, wait_for

from unicorn_dirty import DirtyActionNotFoundError, DirtyApp, DirtyClient
from unicorn_dirty.app import load_app, parse_app_path

pytestmark = pytest.mark.timeout(30)


class Sample(DirtyApp):
    value = 3

    def act(self, x, y=1):
        return x + y

    def _hidden(self):
        return "no"


def test_call_dispatches_to_public_methods_only():
    app = Sample()
    assert app("act", 1, y=2) == 3
    for action in ["_hidden", "init", "close", "value", "missing", "__init__", ""]:
        with pytest.raises(DirtyActionNotFoundError, match=rf"{__name__}:Sample has no action"):
            app(action)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [("a.b:C", ("a.b:C", None)), ("a:C:3", ("a:C", 3)), (" a:C ", ("a:C", None))],
)
def test_app_paths_parse(entry, expected):
    assert parse_app_path(entry) == expected


@pytest.mark.parametrize("entry", ["a", "a:", ":C", "a:C:0", "a:C:x:y"])
def test_bad_app_paths_are_refused(entry):
    with pytest.raises(ValueError):
        parse_app_path(entry)


def test_load_app_reads_the_class_limit_and_the_override():
    assert load_app("sample_apps:LimitedApp").limit == 1
    assert load_app("sample_apps:LimitedApp:2").limit == 2
    assert load_app(ECHO).limit is None
    with pytest.raises(ImportError):
        load_app("sample_apps:Nope")


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_hooks_run_in_order_and_config_file_settings_apply():
    d = tempfile.mkdtemp(prefix="ud-")
    out = os.path.join(d, "hooks")
    path = os.path.join(d, "s.sock")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "unicorn_dirty.cli",
            ECHO,
            "-c",
            str(HERE / "hooks_config.py"),
            "--socket",
            path,
            "--log-file",
            os.path.join(d, "log"),
            "--pid",
            os.path.join(d, "pid"),
        ],
        env=child_env(HOOKS_OUT=out),
    )
    try:
        wait_for(
            lambda: os.path.exists(out) and "worker_init" in read(out),
            what="worker_init hook",
        )
        client = DirtyClient(path)
        status = client.status()
        assert status["threads"] == 2 and status["num_workers"] == 1
        assert int(read(os.path.join(d, "pid"))) == proc.pid
        client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        lines = [line.split()[0] for line in read(out).splitlines()]
        assert lines == ["starting", "post_fork", "worker_init", "worker_exit"]
        text = read(out)
        assert f"apps={ECHO}" in text and f"loaded={ECHO}" in text
        assert not os.path.exists(os.path.join(d, "pid"))
    finally:
        proc.kill()
        proc.wait()


def test_cli_without_apps_explains_itself():
    proc = subprocess.run(
        [sys.executable, "-m", "unicorn_dirty.cli"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 1
    assert "no dirty apps given" in proc.stderr
