"""Per-request CPU cost of the protocol layer alone: unicorn's H1Protocol vs uvicorn's.

No sockets: each server's protocol object gets a request through
``data_received`` and writes its response into a transport that keeps
nothing, inside a running uvloop loop, N times. The time per request is the
server's own Python work (parsing, scope, the app call, serializing), which is
what decides throughput once the socket is cheap; it is far less noisy than
wrk on a shared machine.

    uv run --no-sync python benchmarks/asgi/bench_protocol.py [-n 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from types import SimpleNamespace

from apps import app  # bench_asgi's application: hello at /, the body back at /echo

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
BODY = b"x" * 4096
POST = (
    b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Length: 4096\r\n\r\n" + BODY
)


class NullTransport(asyncio.Transport):
    def __init__(self):
        super().__init__()
        self.out = 0

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def write(self, data):
        self.out += len(data)

    def writelines(self, parts):
        for p in parts:
            self.out += len(p)

    def is_closing(self):
        return False

    def close(self):
        pass

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass

    def set_write_buffer_limits(self, high=None, low=None):
        pass

    def get_write_buffer_size(self):
        return 0


def unicorn_proto(app, loop):
    from unicorn_asgi.http11 import ASGIConfig, H1Protocol

    cfg = SimpleNamespace(keepalive=5, root_path="")
    log = SimpleNamespace(access_enabled=False, statsd=None)
    config = ASGIConfig(app, cfg, log, loop=loop, state={})
    return H1Protocol(config)


def uvicorn_proto(app, loop):
    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    config = Config(app, http="httptools", loop="none", access_log=False, lifespan="off")
    config.load()
    return HttpToolsProtocol(config, ServerState(), app_state={}, _loop=loop)


def new_queries(n: int) -> list[bytes]:
    """``n`` hello requests, each with its own query string: no request line repeats."""
    return [REQUEST.replace(b"GET / ", b"GET /?n=%d " % i) for i in range(n)]


async def measure(make, app, request, n):
    """CPU microseconds per request; ``request`` is one request, sent ``n`` times,
    or a list of ``n + 1000`` requests sent in turn."""
    loop = asyncio.get_running_loop()
    proto = make(app, loop)
    transport = NullTransport()
    proto.connection_made(transport)
    feed = proto.data_received
    soon = loop.call_soon
    requests = request if isinstance(request, list) else [request] * (n + 1000)
    # data_received is called from a loop callback, as a transport calls it: never
    # from inside a task.
    for data in requests[:1000]:
        soon(feed, data)
        await asyncio.sleep(0)
    cpu = time.process_time()
    for data in requests[1000 : n + 1000]:
        soon(feed, data)
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    cpu = time.process_time() - cpu
    return cpu / n * 1e6, transport.out


def main() -> None:
    import uvloop

    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=100_000)
    args = parser.parse_args()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    loads = (
        ("hello", REQUEST),
        ("hello, new query", new_queries(args.n + 1000)),
        ("echo 4 KiB", POST),
    )
    for name, request in loads:
        results = {}
        for server, make in (("unicorn", unicorn_proto), ("uvicorn", uvicorn_proto)):
            best = min(
                loop.run_until_complete(measure(make, app, request, args.n))[0] for _ in range(3)
            )
            results[server] = best
        ratio = results["uvicorn"] / results["unicorn"]
        print(
            f"{name:17s} unicorn {results['unicorn']:6.2f} us/req   "
            f"uvicorn {results['uvicorn']:6.2f} us/req   ratio {ratio:4.2f}x"
        )


if __name__ == "__main__":
    main()
