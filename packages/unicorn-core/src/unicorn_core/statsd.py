"""A tiny StatsD client: request counts and durations from the access path,
worker counts (and the listen backlog) from the arbiter, log-line counters
from the error log, sent as datagrams that never block.

Metric names are gunicorn's by default (``<prefix>gunicorn.requests``,
``gunicorn.request.duration``, ``gunicorn.request.status.200``,
``gunicorn.workers``, ``gunicorn.backlog``, ``gunicorn.log.error`` ...), so
dashboards built for gunicorn keep their data; ``statsd_namespace`` chooses
another first part. ``dogstatsd_tags`` are appended to every metric.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from unicorn_core.settings import Setting

SECTION = "Metrics"
DEFAULT_PORT = 8125


def parse_statsd_address(value: str) -> tuple[int, Any]:
    """``HOST``, ``HOST:PORT``, ``[IPV6]:PORT``, ``unix://PATH`` or ``unix:PATH``
    -> (address family, address). Without a port, 8125."""
    text = value.strip()
    for scheme in ("unix://", "unix:"):
        if text.startswith(scheme):
            path = text[len(scheme) :]
            if not path:
                raise ValueError("unix:// needs a path")
            return socket.AF_UNIX, path
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError("HOST:PORT")
    elif text.count(":") > 1:  # a bare IPv6 address
        host, port = text, ""
    else:
        host, _, port = text.partition(":")
    if not host:
        raise ValueError("HOST:PORT")
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        raise ValueError(f"{port!r} is not a port number")
    return socket.AF_INET, (host, int(port or DEFAULT_PORT))


def _statsd_address(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("")
    parse_statsd_address(value)
    return value.strip()


def _tags(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("")
    text = value.strip()
    if any(c in text for c in "|#\n"):
        raise ValueError("tags are `key:value` pairs separated by commas, without | or #")
    return text


SETTINGS = (
    Setting(
        name="statsd_host",
        section=SECTION,
        cli=("--statsd-host",),
        type=_statsd_address,
        meta="STATSD_ADDR",
        doc="The StatsD server to send metrics to: `HOST:PORT` (port 8125 when "
        "left out) or `unix://PATH` for a Unix datagram socket. Sends request "
        "counts, durations and status codes, the number of workers, and counts of "
        "error-log lines, under gunicorn's metric names. Off by default.",
    ),
    Setting(
        name="statsd_prefix",
        section=SECTION,
        cli=("--statsd-prefix",),
        meta="STATSD_PREFIX",
        default="",
        doc="A prefix for every metric name, such as `myapp` (a dot is added).",
    ),
    Setting(
        name="statsd_namespace",
        section=SECTION,
        cli=("--statsd-namespace",),
        meta="NAME",
        default="gunicorn",
        doc="The first part of every metric name after `statsd_prefix`: "
        "`gunicorn` (so `myapp.gunicorn.requests`), as gunicorn sends them, so "
        "existing dashboards keep working. Set `unicorn` or any name for others.",
    ),
    Setting(
        name="dogstatsd_tags",
        section=SECTION,
        cli=("--dogstatsd-tags",),
        type=_tags,
        meta="DOGSTATSD_TAGS",
        default="",
        doc="Datadog (DogStatsD) tags appended to every metric, comma-separated "
        "`key:value` pairs such as `env:prod,service:shop`.",
    ),
    Setting(
        name="enable_backlog_metric",
        section=SECTION,
        cli=("--enable-backlog-metric",),
        type="bool",
        default=False,
        doc="Also send `gunicorn.backlog`, a histogram of the connections waiting "
        "in the listeners' accept queues, each time the master looks at its "
        "workers (about once a second). Linux only; elsewhere it reads 0.",
    ),
)


class Statsd:
    """Fire-and-forget metrics over UDP or a Unix datagram socket; failures are ignored."""

    def __init__(
        self,
        family: int,
        address: Any,
        prefix: str = "",
        namespace: str = "gunicorn",
        tags: str = "",
    ) -> None:
        self.prefix = prefix
        #: what our own metrics' names start with (``shop.gunicorn.``)
        self.own_prefix = prefix + (namespace + "." if namespace else "")
        self.suffix = f"|#{tags}" if tags else ""
        if family != socket.AF_UNIX:
            # resolve once: a name lookup per datagram would cost more than the metric
            host, port = address
            try:
                family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
            except socket.gaierror:
                family = socket.AF_INET
        self.address = address
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)

    @classmethod
    def from_config(cls, cfg: Any) -> Statsd | None:
        if not cfg.statsd_host:
            return None
        family, address = parse_statsd_address(cfg.statsd_host)
        prefix = cfg.statsd_prefix.strip(".")
        return cls(
            family,
            address,
            prefix + "." if prefix else "",
            getattr(cfg, "statsd_namespace", "gunicorn"),
            getattr(cfg, "dogstatsd_tags", ""),
        )

    def _send(self, *metrics: str, prefix: str | None = None) -> None:
        """One datagram carrying one metric per line, each named with our prefix."""
        start = self.own_prefix if prefix is None else prefix
        text = "\n".join(f"{start}{m}{self.suffix}" for m in metrics)
        try:
            self.sock.sendto(text.encode(), self.address)
        except OSError:
            pass

    def request(self, status: Any, request_time: float) -> None:
        self._send(
            "requests:1|c",
            f"request.duration:{request_time * 1000:.3f}|ms",
            f"request.status.{str(status)[:3]}:1|c",
        )

    def gauge(self, name: str, value: float) -> None:
        self._send(f"{name}:{value}|g")

    def increment(self, name: str, value: int = 1) -> None:
        self._send(f"{name}:{value}|c")

    def decrement(self, name: str, value: int = 1) -> None:
        self._send(f"{name}:-{value}|c")

    def histogram(self, name: str, value: float) -> None:
        self._send(f"{name}:{value}|h")

    def timer(self, name: str, value: float) -> None:
        self._send(f"{name}:{value}|ms")

    _TYPES = {"gauge": "g", "counter": "c", "histogram": "h", "timer": "ms"}

    def log_line(self, level: str | None, kwargs: Mapping[str, Any]) -> None:
        """After an error-log call: count it (``log.error`` ...) and send the metric
        its ``extra`` names, as gunicorn's logger does."""
        if level:
            self._send(f"log.{level}:1|c")
        extra = kwargs.get("extra")
        if isinstance(extra, Mapping):
            name, value = extra.get("metric"), extra.get("value")
            kind = self._TYPES.get(extra.get("mtype"))  # type: ignore[arg-type]
            if name and value is not None and kind:
                # the caller's own name, under statsd_prefix only (as in gunicorn)
                self._send(f"{name}:{value}|{kind}", prefix=self.prefix)
