"""A native tornado application (served by tornado's HTTPServer under -k tornado)."""

from __future__ import annotations

import asyncio
import os

import tornado.web


class Hello(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("hello from tornado")


class WhoAmI(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write(f"{os.getpid()} {self.request.connection.stream.socket.getpeername()[1]}")


class Sleep(tornado.web.RequestHandler):
    async def get(self) -> None:
        mark = os.environ.get("ROUTES_MARK_DIR")
        if mark:  # lets a test see that the request is in the application
            with open(os.path.join(mark, "entered"), "w"):
                pass
        await asyncio.sleep(float(self.get_argument("s", "0.1")))
        self.write("slept")


class Echo(tornado.web.RequestHandler):
    def post(self) -> None:
        self.write(self.request.body)


app = tornado.web.Application(
    [(r"/", Hello), (r"/whoami", WhoAmI), (r"/sleep", Sleep), (r"/echo", Echo)]
)
