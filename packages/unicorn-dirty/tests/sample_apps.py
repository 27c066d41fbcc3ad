"""Dirty apps the tests run in real worker processes (imported by path, see conftest)."""

from __future__ import annotations

import asyncio
import os
import time

from unicorn_dirty import DirtyApp, is_cancelled, stash


class EchoApp(DirtyApp):
    def init(self) -> None:
        self.pid = os.getpid()
        self.inits = getattr(self, "inits", 0) + 1

    def echo(self, *args, **kwargs):
        return [list(args), kwargs]

    def noop(self):
        return None

    def whoami(self):
        return self.pid

    def sleep(self, seconds: float):
        time.sleep(seconds)
        return seconds

    def boom(self, message: str = "boom"):
        raise ValueError(message)

    def big(self, n: int):
        return b"x" * n

    def unencodable(self):
        return object()

    def count(self, n: int, delay: float = 0.0):
        for i in range(n):
            if delay:
                time.sleep(delay)
            yield i

    async def acount(self, n: int, delay: float = 0.0):
        for i in range(n):
            if delay:
                await asyncio.sleep(delay)
            yield {"i": i}

    async def aadd(self, a, b):
        await asyncio.sleep(0.001)
        return a + b

    def stream_then_fail(self):
        yield 1
        raise RuntimeError("mid-stream")

    def cooperative(self, marker: str, seconds: float = 10.0):
        """Loops until cancelled, then leaves a mark the test can see."""
        stash.put("marks", marker, "running")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if is_cancelled():
                stash.put("marks", marker, "cancelled")
                return "cancelled"
            time.sleep(0.01)
        stash.put("marks", marker, "finished")
        return "finished"

    def endless(self, marker: str):
        try:
            i = 0
            while True:
                yield i
                i += 1
                time.sleep(0.005)
        finally:
            stash.put("marks", marker, "closed")

    async def aendless(self, marker: str):
        try:
            while True:
                await asyncio.sleep(0.005)
                yield b"tick"
        finally:
            stash.put("marks", marker, "closed")

    async def await_forever(self, marker: str):
        stash.put("marks", marker, "running")
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stash.put("marks", marker, "cancelled")
            raise

    def incr_many(self, table: str, key: str, n: int):
        for _ in range(n):
            stash.incr(table, key)
        return n

    def _private(self):
        return "secret"


class LimitedApp(DirtyApp):
    workers = 1

    def whoami(self):
        return os.getpid()


class PairApp(DirtyApp):
    def whoami(self):
        return os.getpid()


class FailingInitApp(DirtyApp):
    def init(self) -> None:
        raise RuntimeError("cannot load model")


class StashedApp(DirtyApp):
    stashes = ["declared_a", "declared_b"]

    def noop(self):
        return None
