"""A real two-node Ray cluster on 127.0.0.1 for tests: a head and a second node joining it.

Both are started with `ray start` in their own process group and their own temp
dir; `stop()` kills those process groups (never every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Ray otherwise replays a `uv run` of the driver in every worker (its uv hook),
# and workers started that way cannot import ray from this environment.
RAY_ENV = {
    "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    # a local ray.init() elsewhere may have left ~/.ray/auth_token: these clusters use none
    "RAY_AUTH_MODE": "disabled",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_command() -> list[str]:
    exe = Path(sys.executable).with_name("ray")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ray.scripts.scripts"]


class RayCluster:
    """`ray start --head` plus one `ray start --address`, each with `cpus` CPUs.

    A raylet starts at most min(cores, its CPUs) worker processes at a time, so
    nodes get 2 CPUs: one worker that is slow to start does not hold up the rest.
    """

    def __init__(self, cpus: int = 2, object_store: int = 200_000_000) -> None:
        self.dir = tempfile.mkdtemp(prefix="ud-ray-", dir="/tmp")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, **RAY_ENV}
        self.groups: list[int] = []
        common = [
            "--node-ip-address",
            "127.0.0.1",
            "--num-cpus",
            str(cpus),
            "--object-store-memory",
            str(object_store),
            "--disable-usage-stats",
        ]
        try:
            self._start(
                [
                    "start",
                    "--head",
                    "--port",
                    str(self.port),
                    "--temp-dir",
                    os.path.join(self.dir, "head"),
                    "--include-dashboard=false",
                    "--min-worker-port",
                    "0",
                    "--max-worker-port",
                    "0",
                    *common,
                ]
            )
            node = ["--temp-dir", os.path.join(self.dir, "node")]
            # a second node: its own raylet and object store, so calls cross nodes.
            # `ray start` gives a raylet 30 s to register; a loaded machine may
            # need a second try.
            try:
                self._start(["start", "--address", self.address, *node, *common])
            except RuntimeError:
                _kill_group(self.groups.pop())
                self._start(["start", "--address", self.address, *node, *common])
        except BaseException:
            self.stop()
            raise

    def _start(self, args: list[str]) -> None:
        proc = subprocess.Popen(
            [*ray_command(), *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its daemons stay in this group: stop() kills it
            cwd=self.dir,
        )
        self.groups.append(proc.pid)
        out, _ = proc.communicate(timeout=90)
        if proc.returncode != 0:
            raise RuntimeError(f"ray {' '.join(args[:2])} failed:\n{out.decode(errors='replace')}")

    def stop(self) -> None:
        # the cluster's state is thrown away with its temp dir: no need to be gentle
        for group in self.groups:
            _kill_group(group)
        shutil.rmtree(self.dir, ignore_errors=True)


def _kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)
    end = time.monotonic() + 10
    while time.monotonic() < end and _group_alive(group):
        time.sleep(0.05)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # zombies of the group answer too: look for a live member
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) == group and fields[0] not in ("Z", "X"):
                return True
    return False
