"""Applications for core's tests. The FixedWorker calls ``app(path)``."""

from __future__ import annotations

import time


def app(path: str) -> str:
    if path == "/stuck":
        time.sleep(600)
    if path == "/hold":  # busy until the test removes the file HOLD_FILE names
        import os

        deadline = time.monotonic() + 10
        while os.path.exists(os.environ["HOLD_FILE"]) and time.monotonic() < deadline:
            time.sleep(0.01)
    return "hello"


def factory(greeting: str = "hi", punct: str = "") -> object:
    return lambda path: greeting + punct


not_callable = 42


def env(path: str) -> str:
    """Answers with the environment variable the path names."""
    import os

    return os.environ.get(path.strip("/"), "-")


def gunicorn_logger(path: str) -> str:
    """Logs through gunicorn's logger name, as application code written for gunicorn does."""
    import logging

    logging.getLogger("gunicorn.error").info("app says %s", path)
    return "logged"


def tmpdir(path: str) -> str:
    """Answers with the directory Python's tempfile module writes to."""
    import tempfile

    return tempfile.gettempdir()
