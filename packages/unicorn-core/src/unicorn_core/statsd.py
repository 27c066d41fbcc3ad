"""A tiny StatsD client: request counts and durations from the access path,
worker counts from the arbiter, sent as UDP datagrams that never block."""

from __future__ import annotations

import socket
from typing import Any

from unicorn_core.settings import Setting

SECTION = "Metrics"


def _statsd_address(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("")
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("HOST:PORT")
    return value


SETTINGS = (
    Setting(
        name="statsd_host",
        section=SECTION,
        cli=("--statsd-host",),
        type=_statsd_address,
        meta="STATSD_ADDR",
        doc="`HOST:PORT` of a StatsD server to send metrics to (request counts, "
        "request durations, status classes, worker counts). Off by default.",
    ),
    Setting(
        name="statsd_prefix",
        section=SECTION,
        cli=("--statsd-prefix",),
        meta="STATSD_PREFIX",
        default="",
        doc="A prefix for every metric name, such as `myapp.`.",
    ),
)


class Statsd:
    """Fire-and-forget UDP metrics; failures are ignored."""

    def __init__(self, host: str, port: int, prefix: str = "") -> None:
        self.prefix = prefix + "unicorn."
        # resolve once: a name lookup per datagram would cost more than the metric
        try:
            family, _, _, _, self.address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[
                0
            ]
        except socket.gaierror:
            family, self.address = socket.AF_INET, (host, port)
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)

    @classmethod
    def from_config(cls, cfg: Any) -> Statsd | None:
        if not cfg.statsd_host:
            return None
        host, _, port = cfg.statsd_host.rpartition(":")
        prefix = cfg.statsd_prefix
        if prefix and not prefix.endswith("."):
            prefix += "."
        return cls(host.strip("[]"), int(port), prefix)

    def _send(self, metric: str) -> None:
        try:
            self.sock.sendto((self.prefix + metric).encode(), self.address)
        except OSError:
            pass

    def request(self, status: Any, request_time: float) -> None:
        self._send(f"requests:1|c\n{self.prefix}request.duration:{request_time * 1000:.3f}|ms")
        self._send(f"request.status.{str(status)[:3]}:1|c")

    def gauge(self, name: str, value: float) -> None:
        self._send(f"{name}:{value}|g")

    def increment(self, name: str, value: int = 1) -> None:
        self._send(f"{name}:{value}|c")
