"""TLS through the protocol, and the lifespan protocol's outcomes."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess

import httpx
import pytest

from unicorn_asgi import Lifespan, LifespanFailure

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    where = tmp_path_factory.mktemp("tls")
    key, crt = where / "key.pem", where / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(crt)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return crt, key


def test_tls_scheme_and_streaming(serve, cert):
    crt, key = cert

    async def app(scope, receive, send):
        body = b""
        more = True
        while more:
            message = await receive()
            body += message["body"]
            more = message["more_body"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["scheme"].encode() + body})

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(crt, key)
    srv = serve(app, ssl=ctx, forwarded_allow_ips=[])
    url = srv.url.replace("http://", "https://")
    with httpx.Client(verify=ssl.create_default_context(cafile=str(crt))) as client:
        assert client.post(url, content=b"x" * 200_000).content == b"https" + b"x" * 200_000
        assert client.post(url, content=b"again").content == b"httpsagain"


class _Log:
    def __init__(self):
        self.lines = []

    def info(self, msg, *args, **kw):
        self.lines.append(msg % args)

    error = warning = debug = info


def run(coro):
    return asyncio.run(coro)


def test_startup_failure_carries_the_apps_message():
    async def app(scope, receive, send):
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    async def go():
        lifespan = Lifespan(app, "auto", _Log())
        with pytest.raises(LifespanFailure, match="no database"):
            await lifespan.startup()

    run(go())


def test_startup_exception_is_failure_when_on_and_unsupported_when_auto():
    async def app(scope, receive, send):
        raise ValueError("not for lifespan")

    async def go(mode):
        lifespan = Lifespan(app, mode, _Log())
        await lifespan.startup()
        return lifespan

    with pytest.raises(LifespanFailure, match="ValueError: not for lifespan"):
        run(go("on"))
    assert run(go("auto")).supported is False


def test_state_and_shutdown():
    events = []

    async def app(scope, receive, send):
        assert scope["type"] == "lifespan"
        await receive()
        scope["state"]["pool"] = "ready"
        await send({"type": "lifespan.startup.complete"})
        events.append((await receive())["type"])
        await send({"type": "lifespan.shutdown.complete"})

    async def go():
        lifespan = Lifespan(app, "on", _Log())
        await lifespan.startup()
        assert lifespan.state == {"pool": "ready"} and lifespan.supported
        await lifespan.shutdown(5)

    run(go())
    assert events == ["lifespan.shutdown"]


def test_settings_are_registered():
    from unicorn_asgi.settings import settings

    names = {s.name: s for s in settings()}
    assert names["asgi_loop"].cli == ("--asgi-loop",)
    assert names["asgi_lifespan"].choices == ("auto", "on", "off")


def test_worker_is_the_asgi_entry_point():
    from unicorn_asgi import ASGIWorker
    from unicorn_core.workers import load_worker_class

    assert load_worker_class("asgi") is ASGIWorker
