"""One contract, served by ``unicorn -k asgi``, for small Starlette, FastAPI, Django,
Quart and Litestar apps; WebSocket echo and lifespan where the framework has them.

Django has no WebSockets, and its ASGI handler refuses the lifespan scope: with
``--asgi-lifespan on`` the server must stop and say why (``auto`` goes on without it).
Django also reads the body of every request, a GET's too: it is the framework that
showed the worker's first receive() must give an empty http.request.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

from unicorn_server import Unicorn, wait_for

pytestmark = pytest.mark.timeout(60)

APPS = {
    "starlette": "asgi_frameworks:starlette_app",
    "fastapi": "asgi_frameworks:fastapi_app",
    "django": "asgi_more_frameworks:django_app",
    "quart": "asgi_more_frameworks:quart_app",
    "litestar": "asgi_more_frameworks:litestar_app",
}
# What /info reports as lifespan state: None where the framework has no lifespan.
GREETING = dict.fromkeys(APPS, "hello from lifespan") | {"django": None}
WITH_WEBSOCKETS = ["starlette", "fastapi", "quart", "litestar"]
# Frameworks whose own startup/shutdown hooks print a line the test can wait for.
WITH_LIFESPAN_HOOKS = ["quart", "litestar"]


def output(srv: Unicorn) -> str:
    """The error log and the process's stdout/stderr: some frameworks log there."""
    return srv.log() + Path(srv.out.name).read_text(errors="replace")


def wait_output(srv: Unicorn, text: str, timeout: float = 10.0) -> None:
    wait_for(lambda: text in output(srv), timeout, f"{text!r} in the output:\n{output(srv)}")


def start(tmp: Path, name: str, *args: str) -> Unicorn:
    pytest.importorskip(name)
    return Unicorn(tmp, APPS[name], "-k", "asgi", *args)


@pytest.fixture(scope="module", params=list(APPS))
def framework(request, tmp_path_factory):
    srv = start(tmp_path_factory.mktemp(request.param), request.param)
    srv.name = request.param
    yield srv
    srv.stop()


def test_hello_and_keep_alive(framework):
    with httpx.Client(base_url=framework.url) as client:
        for _ in range(3):
            r = client.get("/")
            assert r.status_code == 200 and r.text == "hello"
            assert r.headers["content-length"] == "5"
            assert r.headers["server"] == "unicorn"


def test_echo_large_body(framework):
    payload = bytes(range(256)) * 1000
    r = httpx.post(framework.url + "/echo", content=payload)
    assert r.status_code == 200
    assert r.content == payload


def test_streaming_response(framework):
    r = httpx.get(framework.url + "/stream")
    assert r.text == "".join(f"line {i}\n" for i in range(5))
    assert r.headers["transfer-encoding"] == "chunked"


def test_scope_reaches_the_framework(framework):
    info = httpx.get(framework.url + "/info", params={"q": "caf\u00e9"}).json()
    assert info == {
        "path": "/info",
        "query": {"q": "caf\u00e9"},
        "client": "127.0.0.1",
        "state": GREETING[framework.name],
        "scheme": "http",
    }
    info = httpx.get(framework.url + "/info", headers={"X-Forwarded-Proto": "https"}).json()
    assert info["scheme"] == "https"  # 127.0.0.1 is a trusted front end by default


def test_exception_is_a_500_and_logged(framework):
    r = httpx.get(framework.url + "/boom")
    assert r.status_code == 500
    wait_output(framework, "framework boom")
    assert httpx.get(framework.url + "/").status_code == 200


def test_websocket_echo(framework):
    if framework.name not in WITH_WEBSOCKETS:
        pytest.skip(f"{framework.name} has no WebSocket support of its own")
    from websockets.asyncio.client import connect

    async def main():
        async with connect(f"ws://{framework.host}:{framework.port}/ws") as ws:
            for message in ["hello", "caf\u00e9 " * 10000, b"\x00\x01binary"]:
                await ws.send(message)
                assert await ws.recv() == message

    asyncio.run(asyncio.wait_for(main(), 30))


@pytest.mark.parametrize("name", WITH_LIFESPAN_HOOKS)
def test_lifespan_startup_and_shutdown_run(name, tmp_path):
    srv = start(tmp_path, name, "--asgi-lifespan", "on")
    try:
        assert f"{name} lifespan startup" in output(srv)  # before the first request
        assert httpx.get(srv.url + "/info").json()["state"] == "hello from lifespan"
        assert f"{name} lifespan shutdown" not in output(srv)
    finally:
        srv.stop()
    assert srv.proc.returncode == 0
    wait_output(srv, f"{name} lifespan shutdown")


def test_django_refusing_lifespan_stops_the_server_when_lifespan_is_on(tmp_path):
    pytest.importorskip("django")
    with pytest.raises(AssertionError, match="Django can only handle ASGI/HTTP connections"):
        Unicorn(tmp_path, APPS["django"], "-k", "asgi", "--asgi-lifespan", "on")
