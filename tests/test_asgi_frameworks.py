"""The same contract, served by ``unicorn -k asgi``, for small Starlette and FastAPI apps."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

from unicorn_server import Unicorn

pytestmark = pytest.mark.timeout(60)

APPS = {
    "starlette": "asgi_frameworks:starlette_app",
    "fastapi": "asgi_frameworks:fastapi_app",
}


@pytest.fixture(scope="module", params=sorted(APPS))
def framework(request, tmp_path_factory):
    pytest.importorskip(request.param)
    srv = Unicorn(tmp_path_factory.mktemp(request.param), APPS[request.param], "-k", "asgi")
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
        "state": "hello from lifespan",
        "scheme": "http",
    }
    info = httpx.get(framework.url + "/info", headers={"X-Forwarded-Proto": "https"}).json()
    assert info["scheme"] == "https"  # 127.0.0.1 is a trusted front end by default


def test_exception_is_a_500_and_logged(framework):
    r = httpx.get(framework.url + "/boom")
    assert r.status_code == 500
    framework.wait_log("framework boom")
    assert httpx.get(framework.url + "/").status_code == 200
