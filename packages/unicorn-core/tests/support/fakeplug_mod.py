"""A plug-in package for core's entry-point tests: settings as plain dicts (as
a package that may not import unicorn_core declares them) and a sidecar."""

from __future__ import annotations

import os
import signal
import sys
import time


def settings():
    return [
        {
            "name": "fake_sidecar",
            "section": "Fake Plugin",
            "cli": ["--fake-sidecar"],
            "type": "bool",
            "default": False,
            "doc": "Run the fake sidecar.",
        },
        {
            "name": "fake_dir",
            "section": "Fake Plugin",
            "cli": ["--fake-dir"],
            "env": "FAKE_DIR",
            "type": "string",
            "default": None,
            "meta": "DIR",
            "doc": "Where the fake sidecar leaves its traces.",
        },
        {
            "name": "fake_level",
            "section": "Fake Plugin",
            "cli": ["--fake-level"],
            "type": "choice",
            "choices": ["low", "high"],
            "default": "low",
            "doc": "A choice.",
        },
    ]


class FakeSidecar:
    name = "fake"

    def __init__(self, cfg, log):
        self.cfg = cfg
        self.log = log

    def enabled(self) -> bool:
        return bool(self.cfg.fake_sidecar)

    def worker_env(self) -> dict:
        return {"FAKE_SIDECAR_DIR": self.cfg.fake_dir}

    def spawn(self) -> int:
        pid = os.fork()
        if pid:
            return pid
        try:
            self._main()
        finally:
            os._exit(0)

    def _main(self) -> None:
        parent = os.getppid()
        directory = self.cfg.fake_dir
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(sig, lambda s, f: _note(directory, f"got-{s}"))
        signal.signal(signal.SIGTERM, lambda s, f: sys.exit(0))
        signal.signal(signal.SIGQUIT, lambda s, f: sys.exit(0))
        with open(os.path.join(directory, f"sidecar-{os.getpid()}"), "w") as f:
            f.write("up")
        while os.getppid() == parent:
            time.sleep(0.05)

    def cleanup(self) -> None:
        _note(self.cfg.fake_dir, "cleanup")


def _note(directory: str, text: str) -> None:
    with open(os.path.join(directory, "events"), "a") as f:
        f.write(text + "\n")
