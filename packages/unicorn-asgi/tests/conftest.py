"""A real asyncio server running H1Protocol in a thread, for tests with real sockets."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from types import SimpleNamespace

import pytest

from unicorn_asgi import ASGIConfig, H1Protocol


class Log:
    """The parts of core's logger the protocol uses, recording what it is told."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.access_enabled = False
        self.statsd = None
        self._log = logging.getLogger("unicorn_asgi.tests")

    def _add(self, level: str, msg: str, *args, **kw) -> None:
        text = msg % args if args else msg
        exc = kw.get("exc_info")
        if exc is not None and not isinstance(exc, bool):
            text += f" [{type(exc).__name__}: {exc}]"
        self.lines.append((level, text))

    def error(self, msg, *args, **kw):
        self._add("error", msg, *args, **kw)

    def exception(self, msg, *args, **kw):
        self._add("error", msg, *args, **kw)

    def warning(self, msg, *args, **kw):
        self._add("warning", msg, *args, **kw)

    def info(self, msg, *args, **kw):
        self._add("info", msg, *args, **kw)

    def debug(self, msg, *args, **kw):
        self._add("debug", msg, *args, **kw)

    def text(self) -> str:
        return "\n".join(f"{lv}: {t}" for lv, t in self.lines)


class Served:
    def __init__(self, app, settings: dict, state: dict | None, ssl=None) -> None:
        self.ssl = ssl
        self.log = Log()
        self.loop = asyncio.new_event_loop()
        cfg = SimpleNamespace(keepalive=5, **settings)
        self.config = ASGIConfig(app, cfg, self.log, loop=self.loop, state=state)
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        assert ready.wait(10)
        self.url = f"http://127.0.0.1:{self.port}"
        self.addr = ("127.0.0.1", self.port)

    def _run(self, ready: threading.Event) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        config = self.config
        self.server = loop.run_until_complete(
            loop.create_server(
                lambda: H1Protocol(config, self.ssl is not None), sock=sock, ssl=self.ssl
            )
        )
        ready.set()
        loop.run_forever()
        self.server.close()
        for proto in list(config.connections):
            proto.abort()
        loop.run_until_complete(asyncio.sleep(0.01))
        loop.close()

    def call(self, fn, *args):
        """Run ``fn(*args)`` on the server's loop and return its result."""
        done = threading.Event()
        box = []

        def go():
            box.append(fn(*args))
            done.set()

        self.loop.call_soon_threadsafe(go)
        assert done.wait(5)
        return box[0]

    def raw(self, data: bytes, timeout: float = 5.0) -> bytes:
        """Send ``data`` on a fresh socket and read until the server closes it."""
        return raw(self.addr, data, timeout=timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture
def serve():
    """``serve(app, **settings)`` -> a running server with ``.url`` and ``.log``."""
    running: list[Served] = []

    def start(app, state: dict | None = None, ssl=None, **settings) -> Served:
        served = Served(app, settings, state, ssl)
        running.append(served)
        return served

    yield start
    for served in running:
        served.stop()


def raw(addr, data: bytes, *, timeout: float = 5.0) -> bytes:
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out
