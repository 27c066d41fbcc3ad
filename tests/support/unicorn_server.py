"""Start a real ``unicorn`` process on an ephemeral port and wait until it answers."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

APPS = Path(__file__).resolve().parent.parent / "apps"
_LISTENING = re.compile(r"Listening at: https?://([\d.]+):(\d+)")


def wait_for(check: Callable[[], object], timeout: float = 15.0, what: str = "it") -> object:
    """Poll ``check`` until it returns something truthy (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Unicorn:
    """``python -m unicorn_core ARGS APP`` with the error log in a file."""

    def __init__(
        self,
        tmp: Path,
        app: str,
        *args: str,
        env: dict | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        #: the client context to reach a TLS server with (None: plain HTTP)
        self.ssl_context = ssl_context
        self.log_path = tmp / f"unicorn-{time.monotonic_ns()}.log"
        cmd = [
            sys.executable,
            "-m",
            "unicorn_core",
            "-b",
            "127.0.0.1:0",
            "--error-logfile",
            str(self.log_path),
            *args,
            app,
        ]
        environ = {k: v for k, v in os.environ.items() if not k.startswith("UNICORN_")}
        environ.pop("WEB_CONCURRENCY", None)
        environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(APPS), environ.get("PYTHONPATH")])
        )
        environ.update(env or {})
        self.out = open(tmp / f"unicorn-{time.monotonic_ns()}.out", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, cwd=APPS, env=environ, stdout=self.out, stderr=subprocess.STDOUT
        )
        match = wait_for(self._listening, what=f"unicorn to listen; log:\n{self.log()}")
        self.host, self.port = match.group(1), int(match.group(2))  # type: ignore[union-attr]
        self.url = f"http://{self.host}:{self.port}"
        self.addr = (self.host, self.port)
        wait_for(self._answers, what=f"a response; log:\n{self.log()}")

    def _listening(self) -> re.Match | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"unicorn exited with {self.proc.returncode}:\n{self.log()}")
        return _LISTENING.search(self.log())

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"unicorn exited with {self.proc.returncode}:\n{self.log()}")
        try:
            with socket.create_connection(self.addr, timeout=2) as s:
                if self.ssl_context is not None:
                    s = self.ssl_context.wrap_socket(s, server_hostname=self.host)
                s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                return s.recv(12).startswith(b"HTTP/1.1")
        except OSError:
            return False

    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ""

    def wait_log(self, text: str, timeout: float = 10.0) -> None:
        wait_for(lambda: text in self.log(), timeout, f"{text!r} in the log:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.out.close()
