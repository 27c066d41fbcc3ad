"""The dirty pool as a sidecar of unicorn's master (the `unicorn.sidecars` contract)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from importlib.metadata import entry_points
from types import SimpleNamespace

import pytest
from running_pool import ECHO, HERE, child_env, pid_gone, wait_for

from unicorn_dirty import SOCKET_ENV, DirtyClient, DirtyConnectionError
from unicorn_dirty.settings import SETTINGS, settings
from unicorn_dirty.sidecar import DirtySidecar

pytestmark = pytest.mark.timeout(30)

SPEC_TYPES = {
    "int",
    "positive_int",
    "float",
    "bool",
    "string",
    "list",
    "dict",
    "callable",
    "choice",
}


def start_parent(*apps: str) -> tuple[subprocess.Popen, int, str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "sidecar_parent.py"), *apps],
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    info = json.loads(proc.stdout.readline())
    return proc, info["pid"], info["env"][SOCKET_ENV]


def ready_status(path: str) -> dict | None:
    try:
        status = DirtyClient(path).status()
    except DirtyConnectionError:
        return None
    return status if sum(w["ready"] for w in status["workers"]) == 2 else None


def test_respawned_sidecar_serves_on_the_same_path():
    parent, arbiter, path = start_parent(ECHO)
    try:
        wait_for(lambda: ready_status(path), what="sidecar pool")
        os.kill(arbiter, signal.SIGKILL)  # the arbiter dies; its workers follow it
        wait_for(lambda: pid_gone(arbiter), what="arbiter death")
        parent.stdin.write("respawn\n")
        parent.stdin.flush()
        new = json.loads(parent.stdout.readline())
        assert new["env"][SOCKET_ENV] == path and new["pid"] != arbiter
        status = wait_for(lambda: ready_status(path), what="respawned pool")
        assert status["pid"] == new["pid"]
    finally:
        parent.kill()
        parent.wait()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_parent_death_leaves_no_process_and_no_socket_behind(how):
    parent, arbiter, path = start_parent(ECHO)
    try:
        status = wait_for(lambda: ready_status(path), what="sidecar pool")
        assert status["pid"] == arbiter
        workers = [w["pid"] for w in status["workers"]]
        assert DirtyClient(path).execute(ECHO, "echo", 1) == [[1], {}]
        parent.send_signal(how)
        parent.wait(5)
        wait_for(
            lambda: all(pid_gone(p) for p in [arbiter, *workers]), what="sidecar processes to exit"
        )
        assert not os.path.exists(path)
        assert not os.path.exists(os.path.dirname(path))
    finally:
        parent.kill()
        parent.wait()


def test_sidecar_contract_members(tmp_path):
    cfg = SimpleNamespace(dirty_apps=[], dirty_socket=None, dirty_max_payload=1234)
    sidecar = DirtySidecar(cfg, None)
    assert sidecar.name == "dirty"
    assert not sidecar.enabled()
    cfg.dirty_apps = [ECHO]
    assert sidecar.enabled()
    env = sidecar.worker_env()
    path = env[SOCKET_ENV]
    assert env["UNICORN_DIRTY_MAX_PAYLOAD"] == "1234"
    assert sidecar.worker_env()[SOCKET_ENV] == path  # stable across calls
    directory = os.path.dirname(path)
    assert os.stat(directory).st_mode & 0o777 == 0o700
    sidecar.cleanup()
    assert not os.path.exists(directory)
    # a respawn after cleanup keeps the path the HTTP workers already have
    assert sidecar.worker_env()[SOCKET_ENV] == path
    cfg.dirty_socket = str(tmp_path / "fixed.sock")
    assert sidecar.worker_env()[SOCKET_ENV] == cfg.dirty_socket


def test_entry_points_name_the_sidecar_and_the_settings():
    (sidecar,) = [e for e in entry_points(group="unicorn.sidecars") if e.name == "dirty"]
    assert sidecar.load() is DirtySidecar
    (spec_ep,) = [e for e in entry_points(group="unicorn.settings") if e.name == "dirty"]
    assert spec_ep.load() is settings


def test_setting_specs_follow_the_seam_contract():
    specs = list(settings())
    names = [s["name"] for s in specs]
    assert len(names) == len(set(names))
    for required in (
        "dirty_apps",
        "dirty_workers",
        "dirty_timeout",
        "dirty_threads",
        "dirty_graceful_timeout",
        "on_dirty_starting",
        "dirty_post_fork",
        "dirty_worker_init",
        "dirty_worker_exit",
    ):
        assert required in names
    for s in specs:
        assert {"name", "section", "cli", "env", "type", "default", "meta", "doc"} <= set(s)
        assert s["type"] in SPEC_TYPES
        assert s["doc"] and s["section"] == "Dirty Arbiter"
        if s["type"] == "callable":
            assert s["arity"] in (1, 2) and callable(s["default"])
            assert s["default"](*([None] * s["arity"])) is None
    # the entry point hands out copies: core may not mutate ours
    specs[0]["cli"].append("--x")
    assert "--x" not in SETTINGS[0]["cli"]
