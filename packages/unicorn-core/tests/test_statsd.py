"""StatsD: request metrics from the access path, worker gauge from the master."""

from __future__ import annotations

import socket

import pytest

pytestmark = pytest.mark.timeout(30)


def test_metrics_are_sent(start_server):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        collector.bind(("127.0.0.1", 0))
        collector.settimeout(10)
        port = collector.getsockname()[1]
        server = start_server("--statsd-host", f"127.0.0.1:{port}", "--statsd-prefix", "shop")
        server.ready()
        expected = {
            "shop.gunicorn.requests:1|c",
            "shop.gunicorn.workers:1|g",
            "shop.gunicorn.request.status.200:1|c",
            "duration",
        }
        seen: set[str] = set()
        while not expected <= seen:  # recv times out (and fails) if one never comes
            for line in collector.recv(4096).decode().splitlines():
                seen.add("duration" if ".request.duration:" in line and "|ms" in line else line)


@pytest.mark.parametrize("address", ["localhost:port", "localhost:70000", "unix://", ":8125"])
def test_bad_statsd_address(cli, address):
    result = cli("--statsd-host", address, "apps:app")
    assert result.returncode == 1
    assert f"'statsd_host': {address!r}" in result.stderr
