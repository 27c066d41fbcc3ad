"""A real dirty pool for tests: the standalone CLI as a subprocess on a private socket."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from unicorn_dirty import DirtyClient, DirtyConnectionError

HERE = Path(__file__).resolve().parent
ECHO = "sample_apps:EchoApp"


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra)
    return env


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie of ours still answers kill(0): look at its state
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    return False


class Pool:
    """A running `unicorn-dirty` process and a client to it."""

    def __init__(
        self, apps: list[str], workers: int = 2, args: list[str] | None = None, ready: bool = True
    ) -> None:
        self.dir = tempfile.mkdtemp(prefix="ud-")
        self.path = os.path.join(self.dir, "d.sock")
        self.log_path = os.path.join(self.dir, "log")
        self.workers = workers
        cmd = [
            sys.executable,
            "-m",
            "unicorn_dirty.cli",
            *apps,
            "-w",
            str(workers),
            "--socket",
            self.path,
        ]
        cmd += ["--log-file", self.log_path, *(args or [])]
        self.proc = subprocess.Popen(cmd, env=child_env(), cwd=self.dir)
        self.client = DirtyClient(self.path)
        if ready:
            self.wait_ready(workers)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def status(self) -> dict:
        return self.client.status()

    def ready_workers(self) -> list[dict]:
        return [w for w in self.status()["workers"] if w["ready"] and not w["retiring"]]

    def wait_ready(self, n: int, timeout: float = 15.0) -> list[dict]:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"unicorn-dirty exited with {self.proc.returncode}:\n{self.log()}"
                )
            try:
                ws = self.ready_workers()
            except DirtyConnectionError:
                return None
            return ws if len(ws) == n and len(self.status()["workers"]) == n else None

        return wait_for(ready, timeout, what=f"{n} ready dirty workers")

    def log(self) -> str:
        try:
            return Path(self.log_path).read_text()
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
