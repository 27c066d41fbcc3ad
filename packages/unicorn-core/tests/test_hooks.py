"""Server hooks run where and when docs/hooks.md says."""

from __future__ import annotations

import signal

import pytest
from harness import wait_for

pytestmark = pytest.mark.timeout(30)

HOOKS = """
import os
LOG = {log!r}

def _note(*parts):
    with open(LOG, "a") as f:
        f.write(" ".join(str(p) for p in parts) + "\\n")

def on_starting(server): _note("on_starting", os.getpid())
def when_ready(server): _note("when_ready", os.getpid(), len(server.LISTENERS))
def on_reload(server): _note("on_reload", os.getpid())
def pre_fork(server, worker): _note("pre_fork", os.getpid(), worker.age)
def post_fork(server, worker): _note("post_fork", os.getpid(), worker.pid)
def post_worker_init(worker): _note("post_worker_init", os.getpid(), worker.wsgi is not None)
def pre_request(worker, req): _note("pre_request", os.getpid(), req.path)
def post_request(worker, req, environ, resp): _note("post_request", os.getpid(), environ["PATH_INFO"])
def worker_int(worker): _note("worker_int", os.getpid())
def child_exit(server, worker): _note("child_exit", os.getpid(), worker.pid)
def worker_exit(server, worker): _note("worker_exit", os.getpid())
def nworkers_changed(server, new, old): _note("nworkers_changed", new, old)
def on_exit(server): _note("on_exit", os.getpid())
"""


def calls(log) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def test_hooks_run_in_the_right_process(start_server, tmp_path):
    log = tmp_path / "hooks.log"
    conf = tmp_path / "hooks_conf.py"
    conf.write_text(HOOKS.format(log=str(log)))
    server = start_server("-c", str(conf)).ready()
    master = str(server.pid)
    (worker,) = (str(p) for p in server.workers())
    server.get("/hooked")

    def seen(name):
        return [c for c in calls(log) if c[0] == name]

    wait_for(lambda: seen("post_request"), 5, "post_request")
    assert seen("on_starting") == [["on_starting", master]]
    assert seen("when_ready") == [["when_ready", master, "1"]]
    assert seen("nworkers_changed")[0] == ["nworkers_changed", "1", "None"]
    assert ["pre_fork", master, "1"] in seen("pre_fork")
    assert ["post_fork", worker, worker] in seen("post_fork")
    assert ["post_worker_init", worker, "True"] in seen("post_worker_init")
    assert ["pre_request", worker, "/hooked"] in seen("pre_request")
    assert ["post_request", worker, "/hooked"] in seen("post_request")
    names = [c[0] for c in calls(log)]
    assert names.index("on_starting") < names.index("when_ready") < names.index("pre_fork")

    server.signal(signal.SIGTTIN)
    wait_for(lambda: ["nworkers_changed", "2", "1"] in seen("nworkers_changed"), 5, "TTIN")
    server.signal(signal.SIGHUP)
    wait_for(lambda: seen("on_reload"), 5, "on_reload")
    wait_for(lambda: seen("child_exit"), 10, "child_exit after HUP")
    assert seen("child_exit")[0][1] == master
    # the worker HUP started must be up, or QUIT would find it without handlers
    wait_for(lambda: len(seen("post_worker_init")) >= 3, 10, "the new worker")

    server.signal(signal.SIGINT)
    assert server.wait_exit() == 0
    assert seen("on_exit") == [["on_exit", master]]
    assert seen("worker_int")
    assert all(c[1] != master for c in seen("worker_exit"))
