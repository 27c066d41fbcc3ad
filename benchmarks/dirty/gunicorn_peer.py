"""gunicorn's dirty pool running the same tasks, for a side-by-side run (only when gunicorn is installed).

`application` answers with the dirty socket path gunicorn gave its workers.
"""

from __future__ import annotations

import os
import time

from gunicorn.dirty import DirtyApp


class PeerBenchApp(DirtyApp):
    def sleep(self, ms: float = 10.0) -> None:
        time.sleep(ms / 1000.0)

    def noop(self) -> None:
        return None

    def stream(self, n: int = 5):
        yield from range(n)


def application(environ, start_response):
    body = os.environ.get("GUNICORN_DIRTY_SOCKET", "").encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
