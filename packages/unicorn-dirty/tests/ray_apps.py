"""Dirty apps the ray backend tests run as Ray actors (imported by path, see conftest)."""

from __future__ import annotations

import os
import time

from sample_apps import EchoApp

from unicorn_dirty import DirtyApp, get_dirty_client, stash


class RayEchoApp(EchoApp):
    """EchoApp on two actors of two CPUs each: with two CPUs per node, one actor per node."""

    workers = 2
    num_cpus = 2

    def init(self) -> None:
        super().init()
        stash.incr("ray_inits", "echo")  # from an actor's constructor, through the stash actor

    def node(self) -> dict:
        import ray

        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id()}

    def counted(self, marker: str):
        """Endless, counting in the stash what it produced: the test sees how far it ran ahead."""
        i = 0
        while True:
            stash.incr("produced", marker)
            yield i
            i += 1

    def slow_echo(self, seconds: float, value: object):
        time.sleep(seconds)
        return value


class RelayApp(DirtyApp):
    """Calls another app from inside an actor, as the example's scheduler does."""

    workers = 1

    def relay(self, action: str, *args):
        return get_dirty_client().execute("ray_apps:RayEchoApp", action, *args, timeout=10)

    def relay_stream(self, n: int):
        return list(get_dirty_client().stream("ray_apps:RayEchoApp", "count", n))

    async def arelay(self, a, b):
        from unicorn_dirty import get_dirty_client_async

        client = await get_dirty_client_async()
        return await client.execute_async("ray_apps:RayEchoApp", "aadd", a, b)
