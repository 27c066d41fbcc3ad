"""Prometheus metrics served by the master, counted in shared memory.

Theory of operation. Each worker owns a heartbeat mapping
(:mod:`unicorn_core.heartbeat`) that the master created before fork. Behind
the heartbeat page lie 64-bit counter slots; the worker bumps them in place
on every request and the master reads them only when ``/metrics`` is
scraped, so a request pays a handful of bytecodes (an index, an add, a
``bisect``) and no lock, no system call and no file. When a worker exits the
master folds its slots into running totals before the mapping is closed, so
every counter stays monotonic across restarts and the sums add up exactly.

Why not ``prometheus_client``'s multiprocess mode: it keeps one mmapped file
per process and metric kind, takes a lock and packs a struct per ``inc()``,
resolves label children through a dict and a lock, and makes the scraper
read and merge every file a dead process left. Measured in the ASGI worker
(docs/operations.md, "Metrics cost"), that path costs several times ours per
request; ours is a few percent of a hello-world request. The text format is
the same, so nothing downstream can tell.

A worker records requests in one of two ways. A worker class with
``counts_requests = True`` calls ``Worker.request_started()`` when a request
head is parsed and ``Worker.request_finished(method, status, seconds)`` when
its response is done: two direct calls. For the others, with ``metrics_bind``
set, :func:`instrument` uses the two edges every worker already has:

* ``pre_request`` (requests begun: in flight = begun - served), wrapped
  whether or not the user set a hook;
* ``log.access(...)`` (method, status, duration), which workers call when
  ``log.access_enabled`` or ``log.statsd`` is set; :class:`MeteredLog` stands
  in for the worker's logger and sets both as they were, plus a no-op statsd
  when there was none, so the workers call it for every request.

The edges cost more than the slots themselves: the worker builds a hook
request object and the access-log arguments for every request. Without
``metrics_bind`` nothing is installed and a request pays one slot store
(requests served, in ``handled_request``).
"""

from __future__ import annotations

import os
import socket
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

from unicorn_core.errors import ConfigError
from unicorn_core.heartbeat import COUNTS_STARTS, FIRST_METRIC, STARTED, SUM_SLOT, Heartbeat
from unicorn_core.settings import Setting

SECTION = "Metrics"


def _metrics_address(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError("")
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError("HOST:PORT, such as 127.0.0.1:9100")
    return value


SETTINGS = (
    Setting(
        name="metrics_bind",
        section=SECTION,
        cli=("--metrics-bind",),
        type=_metrics_address,
        meta="ADDRESS",
        doc="`HOST:PORT` where the master serves Prometheus metrics at `/metrics` "
        "(requests by method and status, a latency histogram, in-flight requests, "
        "open connections, worker starts and exits, the listen backlog, the dirty "
        "pool). Port 0 picks a free port, logged as `Metrics at:`. Off by default; "
        "bind it to a private address, the endpoint has no authentication.",
    ),
)

#: histogram bucket bounds in seconds (Prometheus' default buckets)
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
#: methods counted by name; any other is counted as "other"
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")
_CODES = 501  # 100..599, and one slot for a status outside that range
_HIST = FIRST_METRIC
_BY_CODE = _HIST + len(BUCKETS) + 1
_METHOD_BASE = {m: _BY_CODE + i * _CODES for i, m in enumerate(METHODS)}
_OTHER_BASE = _BY_CODE + len(METHODS) * _CODES
LAST_SLOT = _OTHER_BASE + _CODES


class _NoStatsd:
    """Present where the worker's logger had no statsd: workers test
    ``log.statsd is not None`` to decide whether to call ``log.access``."""

    def request(self, status: Any, request_time: float) -> None:
        pass

    def gauge(self, name: str, value: float) -> None:
        pass

    def increment(self, name: str, value: int = 1) -> None:
        pass


def make_recorder(heartbeat: Heartbeat) -> Callable[[str, int, float], None]:
    """``record(method, status, seconds)``: one finished request into the worker's slots."""
    counts = heartbeat.counts
    floats = heartbeat.floats
    method_base = _METHOD_BASE.get

    def record(
        method: str,
        status: int,
        seconds: float,
        _other: int = _OTHER_BASE,
        _hist: int = _HIST,
        _bounds: tuple[float, ...] = BUCKETS,
        _sum: int = SUM_SLOT,
    ) -> None:
        counts[method_base(method, _other) + (status - 100 if 100 <= status < 600 else 500)] += 1
        counts[_hist + bisect_left(_bounds, seconds)] += 1
        floats[_sum] += seconds

    return record


class MeteredLog:
    """The worker's logger with every ``access()`` counted first (the edge for
    workers that do not call ``Worker.request_finished`` themselves)."""

    def __init__(self, log: Any, heartbeat: Heartbeat) -> None:
        self._log = log
        self.access_enabled = log.access_enabled
        self.statsd = log.statsd if log.statsd is not None else _NoStatsd()
        record = make_recorder(heartbeat)
        inner = log.access if (log.access_enabled or log.statsd is not None) else None

        if inner is None:

            def access(
                remote: Any, method: str, target: Any, version: Any, status: int,
                length: Any, request_time: float, *args: Any, **kwargs: Any,
            ) -> None:  # fmt: skip
                record(method, status, request_time)

        else:

            def access(
                remote: Any, method: str, target: Any, version: Any, status: int,
                length: Any, request_time: float, *args: Any, **kwargs: Any,
            ) -> None:  # fmt: skip
                record(method, status, request_time)
                inner(remote, method, target, version, status, length, request_time,
                      *args, **kwargs)  # fmt: skip

        self.access = access

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


def instrument(worker: Any) -> None:
    """In the worker, before ``run()``, with ``metrics_bind`` set: record every
    request. A worker class with ``counts_requests = True`` calls
    ``request_started()`` and ``request_finished()`` itself (cheapest); for the
    others the pre_request edge and the access-log edge do it."""
    counts = worker.heartbeat.counts
    if worker.counts_requests:
        counts[COUNTS_STARTS] = 1
    if not worker.cfg.metrics_bind:
        return
    record = make_recorder(worker.heartbeat)
    if worker.counts_requests:
        worker.request_finished = record
        return
    counts[COUNTS_STARTS] = 1
    user_hook = worker.pre_request_hook

    if user_hook is None:

        def request_started(worker: Any, req: Any) -> None:
            counts[STARTED] += 1

    else:

        def request_started(worker: Any, req: Any) -> None:
            counts[STARTED] += 1
            user_hook(worker, req)

    worker.pre_request_hook = request_started
    worker.log = MeteredLog(worker.log, worker.heartbeat)


# --- the master side -----------------------------------------------------------------


class Totals:
    """Counter slots summed over exited workers, plus the master's own events."""

    def __init__(self) -> None:
        self.counts = [0] * LAST_SLOT
        self.duration_sum = 0.0
        self.worker_starts = 0
        self.worker_exits: dict[str, int] = {}

    def fold(self, heartbeat: Heartbeat) -> None:
        """A worker is gone: keep what it counted."""
        if heartbeat.closed:
            return
        counts = self.counts
        live = heartbeat.counts
        for i in range(LAST_SLOT):
            value = live[i]
            if value:
                counts[i] += value
        self.duration_sum += heartbeat.floats[SUM_SLOT]

    def exited(self, cause: str) -> None:
        self.worker_exits[cause] = self.worker_exits.get(cause, 0) + 1


def _sum_slots(totals: Totals, pages: Iterable[Heartbeat]) -> tuple[list[int], float]:
    counts = list(totals.counts)
    duration = totals.duration_sum
    for page in pages:
        if page.closed:
            continue
        live = page.counts.tolist()[:LAST_SLOT]
        for i, value in enumerate(live):
            if value:
                counts[i] += value
        duration += page.floats[SUM_SLOT]
    return counts, duration


class Exposition:
    """Builds the text exposition format (version 0.0.4), one family at a time."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: dict[str, Any] | None = None) -> None:
        if labels:
            inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
            name = f"{name}{{{inner}}}"
        self.lines.append(f"{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _bound(value: float) -> str:
    return repr(float(value))


def render(arbiter: Any, totals: Totals) -> str:
    """Everything ``/metrics`` shows, read at scrape time."""
    out = Exposition()
    workers = list(arbiter.workers.values())
    pages = [w.heartbeat for w in workers]
    counts, duration = _sum_slots(totals, pages)

    out.family("unicorn_requests_total", "counter", "HTTP requests served, by method and status.")
    names = [*METHODS, "other"]
    for i, method in enumerate(names):
        base = _BY_CODE + i * _CODES
        for offset in range(_CODES):
            value = counts[base + offset]
            if value:
                code = str(100 + offset) if offset < 500 else "other"
                out.sample("unicorn_requests_total", value, {"method": method, "status": code})

    out.family(
        "unicorn_request_duration_seconds", "histogram", "Time from request head to response end."
    )
    running = 0
    for i, bound in enumerate(BUCKETS):
        running += counts[_HIST + i]
        out.sample("unicorn_request_duration_seconds_bucket", running, {"le": _bound(bound)})
    running += counts[_HIST + len(BUCKETS)]
    out.sample("unicorn_request_duration_seconds_bucket", running, {"le": "+Inf"})
    out.sample("unicorn_request_duration_seconds_sum", duration)
    out.sample("unicorn_request_duration_seconds_count", running)

    out.family("unicorn_requests_in_flight", "gauge", "Requests begun and not finished.")
    out.sample("unicorn_requests_in_flight", sum(p.in_flight() or 0 for p in pages if not p.closed))

    out.family("unicorn_workers", "gauge", "HTTP worker processes running.")
    out.sample("unicorn_workers", len(workers))
    out.family("unicorn_worker_starts_total", "counter", "HTTP worker processes started.")
    out.sample("unicorn_worker_starts_total", totals.worker_starts)
    out.family("unicorn_worker_exits_total", "counter", "HTTP worker exits, by cause.")
    for cause, value in sorted(totals.worker_exits.items()):
        out.sample("unicorn_worker_exits_total", value, {"cause": cause})

    listeners = list(arbiter.listeners)
    conns = open_connections(listeners, [w.pid for w in workers])
    out.family("unicorn_open_connections", "gauge", "Client connections held by HTTP workers.")
    out.sample("unicorn_open_connections", conns)
    out.family(
        "unicorn_listen_backlog",
        "gauge",
        "Connections waiting in a TCP listener's accept queue.",
    )
    for lis, (queued, _) in listen_queues(listeners).items():
        out.sample("unicorn_listen_backlog", queued, {"listener": lis})

    for name, status in arbiter.sidecars.statuses():
        _render_sidecar(out, name, status)
    return out.text()


def _render_sidecar(out: Exposition, name: str, status: dict) -> None:
    """The dirty pool's status (docs/seams.md, ``status()``) as metrics."""
    if name != "dirty" or not isinstance(status, dict):
        return
    stats = status.get("stats") or {}
    out.family("unicorn_dirty_workers", "gauge", "Dirty pool worker processes.")
    out.sample("unicorn_dirty_workers", len(status.get("workers") or ()))
    out.family("unicorn_dirty_calls_total", "counter", "Calls submitted to the dirty pool.")
    out.sample("unicorn_dirty_calls_total", int(stats.get("calls", 0)))
    out.family("unicorn_dirty_timeouts_total", "counter", "Dirty calls that timed out.")
    out.sample("unicorn_dirty_timeouts_total", int(stats.get("timeouts", 0)))
    out.family("unicorn_dirty_queue_depth", "gauge", "Dirty calls waiting for a worker, by app.")
    for app, info in sorted((status.get("apps") or {}).items()):
        out.sample("unicorn_dirty_queue_depth", int(info.get("queued", 0)), {"app": app})
    latency = status.get("latency")
    if isinstance(latency, dict) and latency.get("buckets"):
        out.family("unicorn_dirty_call_duration_seconds", "histogram", "Dirty call durations.")
        running = 0
        for bound, value in latency["buckets"]:
            running = int(value)
            label = "+Inf" if bound is None else _bound(bound)
            out.sample("unicorn_dirty_call_duration_seconds_bucket", running, {"le": label})
        out.sample("unicorn_dirty_call_duration_seconds_sum", float(latency.get("sum", 0.0)))
        out.sample("unicorn_dirty_call_duration_seconds_count", running)


# --- what /proc says about sockets ------------------------------------------------------


def _listener_key(lis: Any) -> tuple[str, Any] | None:
    sock = getattr(lis, "sock", None)
    if sock is None:
        return None
    try:
        name = sock.getsockname()
    except OSError:
        return None
    if sock.family == socket.AF_UNIX:
        return ("unix", name if isinstance(name, str) else name.decode(errors="replace"))
    return ("tcp", name[1])


def _proc_tcp() -> Iterable[tuple[int, int, int, int]]:
    """(local port, state, rx_queue, inode) of every TCP socket in this namespace."""
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) < 10:
                        continue
                    port = int(fields[1].rsplit(":", 1)[1], 16)
                    rx = int(fields[4].split(":")[1], 16)
                    yield port, int(fields[3], 16), rx, int(fields[9])
        except OSError:
            continue


def _proc_unix() -> Iterable[tuple[str, int, int]]:
    """(path, state, inode) of every Unix socket with a path."""
    try:
        with open("/proc/net/unix") as f:
            next(f, None)
            for line in f:
                fields = line.split()
                if len(fields) >= 8:
                    yield fields[7], int(fields[5], 16), int(fields[6])
    except OSError:
        return


_TCP_LISTEN = 0x0A
_UNIX_CONNECTED = 0x03


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    base = f"/proc/{pid}/fd"
    try:
        names = os.listdir(base)
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(f"{base}/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def open_connections(listeners: list[Any], pids: list[int]) -> int:
    """Connections accepted from our listeners that the workers hold now."""
    keys = {k for k in (_listener_key(lis) for lis in listeners) if k is not None}
    ports = {v for kind, v in keys if kind == "tcp"}
    paths = {v for kind, v in keys if kind == "unix"}
    ours: set[int] = set()
    if ports:
        ours |= {inode for port, st, _, inode in _proc_tcp() if port in ports and st != _TCP_LISTEN}
    if paths:
        ours |= {
            inode for path, st, inode in _proc_unix() if path in paths and st == _UNIX_CONNECTED
        }
    held: set[int] = set()
    for pid in pids:
        held |= _socket_inodes(pid) & ours
    return len(held)


def listen_queues(listeners: list[Any]) -> dict[str, tuple[int, int]]:
    """Listener text -> (connections waiting to be accepted, 0) for TCP listeners."""
    inodes = {}
    for lis in listeners:
        sock = getattr(lis, "sock", None)
        if sock is None or sock.family == socket.AF_UNIX:
            continue
        try:
            inodes[os.fstat(sock.fileno()).st_ino] = str(lis)
        except OSError:
            continue
    out: dict[str, tuple[int, int]] = {}
    if not inodes:
        return out
    for _, st, rx, inode in _proc_tcp():
        if st == _TCP_LISTEN and inode in inodes:
            out[inodes[inode]] = (rx, 0)
    for text in inodes.values():
        out.setdefault(text, (0, 0))
    return out


# --- the HTTP endpoint ---------------------------------------------------------------


def http_request_size(data: bytes) -> int:
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = data.find(b"\n\n")
        return end + 2 if end >= 0 else 0
    return end + 4


def http_reply(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


EXPOSITION_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def bind_metrics(address: str) -> socket.socket:
    """Listen on ``HOST:PORT`` for scrapes (ConfigError naming what to change)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"metrics_bind {address!r}: cannot resolve {host!r}: {exc}") from None
    family, _, _, _, sockaddr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(sockaddr)
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"metrics_bind {address!r}: {exc.strerror}; choose another address"
        ) from None
    return sock
