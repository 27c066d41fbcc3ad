"""What per-request metrics cost the ASGI worker: none, unicorn's shared-memory
counters, and prometheus_client's multiprocess mode recording the same things.

No sockets (as in bench_protocol.py): the protocol object gets a hello request
through ``data_received`` N times inside a uvloop loop. Each variant records
requests begun (the pre_request edge), requests by method and status, and a
latency histogram per request:

* ``none``: no metrics; the access path is off (``log.access`` not called).
* ``unicorn (edges)``: what a worker runs with ``metrics_bind`` set today:
  ``unicorn_core.metrics.instrument`` on a worker with a real heartbeat page,
  through the pre_request and access-log edges.
* ``unicorn (direct)``: the cost of the two direct calls a worker with
  ``counts_requests = True`` makes instead (``request_started()`` and the
  recorder), timed alone and added to ``none``.
* ``prometheus_client``: the same three records made with prometheus_client's
  multiprocess mode (a Counter with method/status labels, a Histogram, a
  livesum Gauge for in-flight), in a fresh ``PROMETHEUS_MULTIPROC_DIR``.
  Needs ``prometheus-client`` importable (it is not a dependency of unicorn:
  ``uv pip install prometheus-client`` into a scratch environment and put it
  on PYTHONPATH).

    uv run --no-sync python benchmarks/asgi/bench_metrics.py [-n 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
from types import SimpleNamespace

from apps import app
from bench_protocol import REQUEST, measure


class _Worker:
    """The part of unicorn_core.workers.Worker the ASGI protocol touches."""

    def __init__(self, log) -> None:
        from unicorn_core.heartbeat import SERVED, Heartbeat

        self.heartbeat = Heartbeat()
        self.pre_request_hook = None
        self.post_request_hook = None
        self.log = log
        self.cfg = SimpleNamespace(metrics_bind="127.0.0.1:0")
        self._served = SERVED
        self.nr = 0
        self.max_requests = 1 << 62
        self.counts_requests = False
        self.alive = True

    def handled_request(self) -> None:
        self.nr += 1
        self.heartbeat.counts[self._served] = self.nr


def _proto(worker, log, loop):
    from unicorn_asgi.http11 import ASGIConfig, H1Protocol

    cfg = SimpleNamespace(keepalive=5, root_path="")
    config = ASGIConfig(app, cfg, log, worker=worker, loop=loop, state={})
    return H1Protocol(config)


_ERRORS = logging.getLogger("bench")


def _log(**kwargs):
    return SimpleNamespace(error=_ERRORS.error, exception=_ERRORS.exception, **kwargs)


def plain(app_, loop):
    log = _log(access_enabled=False, statsd=None)
    worker = _Worker(log)
    return _proto(worker, log, loop)


def unicorn(app_, loop):
    from unicorn_core.metrics import instrument

    log = _log(access_enabled=False, statsd=None, access=None)
    worker = _Worker(log)
    instrument(worker)
    return _proto(worker, worker.log, loop)


def prometheus(app_, loop):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bench-prom-")
    import prometheus_client as pc

    registry = pc.CollectorRegistry()
    requests = pc.Counter("requests", "requests", ["method", "status"], registry=registry)
    duration = pc.Histogram("request_duration_seconds", "latency", registry=registry)
    in_flight = pc.Gauge("in_flight", "in flight", multiprocess_mode="livesum", registry=registry)

    class Log:
        error = _ERRORS.error
        exception = _ERRORS.exception
        access_enabled = False
        statsd = SimpleNamespace(request=lambda *a: None)

        def access(self, remote, method, target, version, status, length, request_time, *a):
            requests.labels(method, status).inc()
            duration.observe(request_time)
            in_flight.dec()

    log = Log()
    worker = _Worker(log)
    worker.pre_request_hook = lambda worker, req: in_flight.inc()
    return _proto(worker, log, loop)


def _direct_calls_us(n: int = 200_000) -> float:
    import timeit

    from unicorn_core.heartbeat import STARTED, Heartbeat
    from unicorn_core.metrics import make_recorder

    page = Heartbeat()
    counts = page.counts
    record = make_recorder(page)

    def one_request() -> None:
        counts[STARTED] += 1
        record("GET", 200, 0.0001)

    def nothing() -> None:
        pass

    calls = min(timeit.repeat(one_request, number=n, repeat=3))
    empty = min(timeit.repeat(nothing, number=n, repeat=3))
    return (calls - empty) / n * 1e6


def main() -> None:
    import uvloop

    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=100_000)
    args = parser.parse_args()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    variants = [("none", plain), ("unicorn (edges)", unicorn)]
    try:
        import prometheus_client  # noqa: F401

        variants.append(("prometheus_client", prometheus))
    except ImportError:
        print("(prometheus_client not importable: its row is left out)")
    best = {}
    for _ in range(3):  # take turns, so load from elsewhere hits every variant alike
        for name, make in variants:
            us = loop.run_until_complete(measure(make, app, REQUEST, args.n))[0]
            best[name] = min(best.get(name, us), us)
    best["unicorn (direct)"] = best["none"] + _direct_calls_us()
    variants.insert(2, ("unicorn (direct)", None))
    base = best["none"]
    for name, _ in variants:
        extra = best[name] - base
        print(f"{name:18s} {best[name]:6.2f} us/req   +{extra:5.2f} us   +{extra / base:6.1%}")


if __name__ == "__main__":
    main()
