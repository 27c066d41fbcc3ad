"""Fixtures for core's tests; the helpers live in support/harness.py beside the
test worker and apps, found relative to this file (never from the source tree)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

from harness import Server


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def start(*args: str, **kwargs) -> Server:
        server = Server(tmp_path, *args, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def cli(monkeypatch, capsys, tmp_path):
    """Run ``unicorn`` in this process (for runs that stop before serving):
    cheaper than a subprocess, same result object as ``harness.run_unicorn``."""
    import os
    from types import SimpleNamespace

    from unicorn_core.cli import main

    def run(*args: str, env: dict | None = None, cwd=None) -> SimpleNamespace:
        for key in list(os.environ):
            if key.startswith("UNICORN_") or key in ("WEB_CONCURRENCY", "PORT"):
                monkeypatch.delenv(key)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(cwd or tmp_path)
        monkeypatch.setattr(sys, "path", list(sys.path))
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out, stderr=err)

    return run
