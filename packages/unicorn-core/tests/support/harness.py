"""Helpers that start real ``unicorn`` processes and talk to them (imported by the tests).

The test worker and apps live in ``support/`` beside this file; subprocesses
find them through PYTHONPATH, so the suite works from the source tree and
against an installed wheel alike.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

SUPPORT = Path(__file__).parent
WORKER = "fixed_worker:FixedWorker"
LISTENING = re.compile(r"Listening at: (\S+) \((\d+)\)")


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def child_pids(pid: int) -> set[int]:
    """Live, non-zombie children of ``pid`` (from /proc)."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(entry))
    return out


def http_get(address: str, path: str = "/", headers: dict | None = None, timeout: float = 5.0):
    """A raw HTTP/1.0 GET; returns (status, headers dict, body text)."""
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = address[5:]
    else:
        host, port = address.removeprefix("http://").rsplit(":", 1)
        family = socket.AF_INET6 if host.startswith("[") else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        target = (host.strip("[]"), int(port))
    sock.settimeout(timeout)
    with sock:
        sock.connect(target)
        lines = [f"GET {path} HTTP/1.0", "Host: test"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    if not data:
        raise ConnectionError("the server closed the connection without a response")
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = dict(h.split(": ", 1) for h in header_lines)
    return int(status_line.split()[1]), parsed, body.decode()


def server_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UNICORN_", "LISTEN_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SUPPORT), env.get("PYTHONPATH")]))
    env.pop("WEB_CONCURRENCY", None)
    env.pop("PORT", None)
    extra = dict(extra or {})
    if "PYTHONPATH" in extra:
        env["PYTHONPATH"] = extra.pop("PYTHONPATH") + os.pathsep + env["PYTHONPATH"]
    env.update(extra)
    return env


class Server:
    """One ``unicorn`` master started with the test worker."""

    def __init__(
        self,
        tmp_path: Path,
        *args: str,
        app: str | None = "apps:app",
        env: dict | None = None,
        bind: str | None = "127.0.0.1:0",
        worker: str | None = WORKER,
        pass_fds: tuple = (),
        cwd: Path | None = None,
    ) -> None:
        self.log_path = tmp_path / f"error-{time.monotonic_ns()}.log"
        cmd = [sys.executable, "-m", "unicorn_core", "--error-logfile", str(self.log_path)]
        if worker:
            cmd += ["-k", worker]
        if bind:
            cmd += ["-b", bind]
        cmd += list(args)
        if app:
            cmd.append(app)
        self.output = open(tmp_path / f"output-{time.monotonic_ns()}.txt", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd,
            env=server_env(env),
            stdout=self.output,
            stderr=subprocess.STDOUT,
            pass_fds=pass_fds,
            cwd=cwd or tmp_path,
        )
        self.pid = self.proc.pid
        self._address: str | None = None

    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern: str, timeout: float = 10.0, count: int = 1) -> re.Match:
        def found():
            matches = list(re.finditer(pattern, self.log()))
            return matches[count - 1] if len(matches) >= count else None

        try:
            return wait_for(found, timeout, f"log line {pattern!r}")
        except AssertionError:
            raise AssertionError(f"no {pattern!r} in log:\n{self.log()}") from None

    @property
    def address(self) -> str:
        if self._address is None:
            self._address = self.wait_log(LISTENING.pattern).group(1).split(",")[0]
        return self._address

    def workers(self, pid: int | None = None) -> set[int]:
        return child_pids(self.pid if pid is None else pid)

    def wait_workers(self, count: int, timeout: float = 10.0, pid: int | None = None) -> set[int]:
        def exact() -> set[int] | None:
            pids = self.workers(pid)
            return pids if len(pids) == count else None

        return wait_for(exact, timeout, f"{count} workers")

    def wait_replaced(self, count: int, old: set[int], timeout: float = 10.0) -> set[int]:
        """Wait until ``count`` workers run and none of them is in ``old``."""

        def replaced() -> set[int] | None:
            pids = self.workers()
            return pids if len(pids) == count and not pids & old else None

        return wait_for(replaced, timeout, f"{count} workers other than {sorted(old)}")

    def get(self, path: str = "/", **kwargs):
        return http_get(self.address, path, **kwargs)

    def ready(self, workers: int = 1) -> Server:
        self.address  # noqa: B018 - waits for the listening line
        self.wait_workers(workers)
        wait_for(lambda: self._answers(), 10, "a response")
        return self

    def _answers(self) -> bool:
        try:
            return self.get()[0] == 200
        except OSError:
            return False

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait_exit(self, timeout: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"server did not exit; log:\n{self.log()}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            kids = self.workers()
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            for pid in kids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.output.close()


def run_unicorn(*args: str, env: dict | None = None, cwd=None, timeout: float = 20.0):
    """Run ``unicorn`` to completion; returns the CompletedProcess (text)."""
    return subprocess.run(
        [sys.executable, "-m", "unicorn_core", *args],
        env=server_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
