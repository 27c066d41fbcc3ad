"""The Worker base class: what concrete workers rely on, without forking."""

from __future__ import annotations

import os

import pytest

from unicorn_core.app_loading import AppLoader
from unicorn_core.errors import ConfigError
from unicorn_core.settings import Config, build_registry
from unicorn_core.workers import Worker, load_worker_class


class Log:
    def __init__(self):
        self.lines = []

    def info(self, msg, *args):
        self.lines.append(msg % args)


def make_worker(**settings) -> Worker:
    cfg = Config(build_registry(), settings)
    cfg.app_uri = "apps:app"
    return Worker(1, os.getpid(), [], AppLoader(cfg), cfg.timeout, cfg, Log())


def test_max_requests_with_jitter_stays_in_range():
    limits = {make_worker(max_requests=100, max_requests_jitter=10).max_requests for _ in range(50)}
    assert min(limits) >= 100 and max(limits) <= 110 and len(limits) > 1


def test_handled_request_stops_after_max_requests():
    worker = make_worker(max_requests=3)
    for _ in range(2):
        worker.handled_request()
    assert worker.alive
    worker.handled_request()
    assert not worker.alive and worker.nr == 3
    assert worker.log.lines == ["Autorestarting worker after current request."]


def test_no_max_requests_means_never():
    worker = make_worker()
    for _ in range(1000):
        worker.handled_request()
    assert worker.alive


def test_heartbeat_and_notify_interval():
    worker = make_worker(timeout=10)
    assert worker.notify_interval == 5
    worker.heartbeat.beat()
    assert worker.heartbeat.age() < 1
    worker.heartbeat.write_note("boom")
    assert worker.heartbeat.read_note() == "boom"


def test_default_request_hooks_are_skipped():
    worker = make_worker()
    assert worker.pre_request_hook is None and worker.post_request_hook is None

    def pre(worker, req):
        return None

    assert make_worker(pre_request=pre).pre_request_hook is pre


def test_run_is_abstract():
    with pytest.raises(NotImplementedError):
        make_worker().run()


def test_worker_lookup_by_path():
    assert issubclass(load_worker_class("fixed_worker:FixedWorker"), Worker)
    assert issubclass(load_worker_class("fixed_worker.FixedWorker"), Worker)
    with pytest.raises(ConfigError, match="not a subclass"):
        load_worker_class("apps.app")


def test_public_names_resolve():
    import unicorn_core

    for name in unicorn_core.__all__:
        assert getattr(unicorn_core, name) is not None
    assert unicorn_core.Worker is Worker
