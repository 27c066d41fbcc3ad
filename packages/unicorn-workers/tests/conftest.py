"""Drive a ClientConnection over a real socketpair, and read raw HTTP responses.

Tests get the helpers through the ``h`` fixture (``h.exchange``, ``h.parse`` ...).
"""

from __future__ import annotations

import socket
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from unicorn_http import NEED_DATA
from unicorn_workers.wsgi import ClientConnection, WSGIConfig


class RecordingLog:
    """The logger interface the workers use, keeping what was logged."""

    def __init__(self, access: bool = False) -> None:
        self.records: list[tuple[str, str]] = []
        self.access_enabled = access
        self.statsd = None
        self.lines: list[tuple[Any, ...]] = []

    def _add(self, level: str, msg: str, *args: Any, **kw: Any) -> None:
        text = msg % args if args else msg
        if level == "exception":
            import traceback

            text += "\n" + traceback.format_exc()
        self.records.append((level, text))

    def debug(self, msg: str, *a: Any, **k: Any) -> None:
        self._add("debug", msg, *a)

    def info(self, msg: str, *a: Any, **k: Any) -> None:
        self._add("info", msg, *a)

    def warning(self, msg: str, *a: Any, **k: Any) -> None:
        self._add("warning", msg, *a)

    def error(self, msg: str, *a: Any, **k: Any) -> None:
        self._add("error", msg, *a)

    def exception(self, msg: str, *a: Any, **k: Any) -> None:
        self._add("exception", msg, *a)

    def access(self, *args: Any) -> None:
        self.lines.append(args)

    def text(self, level: str | None = None) -> str:
        return "\n".join(t for lv, t in self.records if level is None or lv == level)


def make_config(app: Any, log: RecordingLog | None = None, **settings: Any) -> WSGIConfig:
    keepalive = settings.pop("keepalive", True)
    multithread = settings.pop("multithread", False)
    cfg = SimpleNamespace(timeout=5, **settings)
    return WSGIConfig(app, cfg, log or RecordingLog(), keepalive=keepalive, multithread=multithread)


def serve(conn: ClientConnection) -> int:
    """Serve requests on ``conn`` until it ends; returns how many were handled."""
    handled = 0
    while True:
        req = conn.next_request()
        if req is NEED_DATA:
            conn.fill()
            continue
        if req is None:
            break
        conn.handle(req)  # type: ignore[arg-type]
        handled += 1
        if conn.must_close:
            break
    return handled


def exchange(
    app: Any,
    raw: bytes,
    *,
    log: RecordingLog | None = None,
    peer: Any = ("10.0.0.7", 40000),
    is_ssl: bool = False,
    eof: bool = True,
    **settings: Any,
) -> tuple[bytes, ClientConnection]:
    """Send ``raw``, serve it on the other end, return all the bytes answered."""
    client, server = socket.socketpair()
    client.settimeout(5)
    server.settimeout(5)
    config = make_config(app, log, **settings)
    conn = ClientConnection(server, peer, config, is_ssl=is_ssl, server=("127.0.0.1", 8000))
    received: list[bytes] = []

    def reader() -> None:
        try:
            while data := client.recv(65536):
                received.append(data)
        except OSError:
            pass

    def writer() -> None:
        try:
            client.sendall(raw)
            if eof:
                client.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server closed early (an error response)

    threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
    for t in threads:
        t.start()
    try:
        serve(conn)
    finally:
        conn.close()
        for t in threads:
            t.join(5)
        client.close()
    return b"".join(received), conn


def parse_responses(data: bytes) -> list[tuple[int, dict[str, str], bytes, list[tuple[str, str]]]]:
    """Split raw bytes into (status, headers (lower-case, joined), body, raw header list)."""
    out = []
    while data:
        head, sep, data = data.partition(b"\r\n\r\n")
        assert sep, f"incomplete head: {head!r}"
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        pairs = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            pairs.append((name.strip(), value.strip()))
        headers: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            headers[key] = headers[key] + "," + value if key in headers else value
        body = b""
        if status < 200 or status in (204, 304):
            pass
        elif "content-length" in headers:
            n = int(headers["content-length"])
            body, data = data[:n], data[n:]
        elif headers.get("transfer-encoding") == "chunked":
            parts = []
            while True:
                size_line, _, data = data.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    _, _, data = data.partition(b"\r\n")
                    break
                parts.append(data[:size])
                data = data[size + 2 :]
            body = b"".join(parts)
        else:
            body, data = data, b""
        out.append((status, headers, body, pairs))
    return out


@pytest.fixture
def h() -> SimpleNamespace:
    return SimpleNamespace(
        exchange=exchange,
        parse=parse_responses,
        Log=RecordingLog,
        make_config=make_config,
        serve=serve,
    )
