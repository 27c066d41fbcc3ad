"""A unicorn-dirty config file (-c) used by the hook tests: settings plus the four hooks."""

import os

dirty_workers = 1
dirty_threads = 2
_out = os.environ["HOOKS_OUT"]


def _mark(line):
    with open(_out, "a") as f:
        f.write(line + "\n")


def on_dirty_starting(arbiter):
    _mark(f"starting {arbiter.pid}")


def dirty_post_fork(arbiter, worker):
    _mark(f"post_fork {worker.pid} apps={','.join(worker.app_names)}")


def dirty_worker_init(worker):
    _mark(f"worker_init {worker.pid} loaded={','.join(worker.apps)}")


def dirty_worker_exit(arbiter, worker):
    _mark(f"worker_exit {worker.pid}")
