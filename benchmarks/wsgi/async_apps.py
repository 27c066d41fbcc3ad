"""The applications bench_async.py serves, the same for every server."""

from __future__ import annotations

import asyncio
import time

import tornado.web
from hello_app import app as hello  # noqa: F401  (the WSGI hello world)

BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def wait100(environ, start_response):
    """Waits 100 ms as an application waiting on a database or an API would
    (``time.sleep``: the green workers make it cooperative)."""
    time.sleep(0.1)
    start_response("200 OK", HEADERS)
    return [BODY]


class _Hello(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write(BODY)


class _Wait(tornado.web.RequestHandler):
    async def get(self) -> None:
        await asyncio.sleep(0.1)
        self.write(BODY)


tornado_hello = tornado.web.Application([(r"/", _Hello)])
tornado_wait100 = tornado.web.Application([(r"/", _Wait)])
