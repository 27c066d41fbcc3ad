"""The ASGI ``tls`` scope extension over a real TLS connection: the server's
certificate, the client's certificate chain and its RFC 4514 name, the TLS
version and the cipher suite's IANA number; absent on plain connections."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import websockets

sys.path.insert(0, str(Path(__file__).parent / "support"))

from unicorn_server import Unicorn

from unicorn_asgi.tls_scope import distinguished_name

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
]
APP = "asgi_tls:app"


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all from it."""
    d = tmp_path_factory.mktemp("pki")
    # Extensions as strict X.509 checking (Python 3.13's default) wants them.
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=Test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"))  # fmt: skip
    leaf = "basicConstraints=CA:FALSE\nauthorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    for name, subject, ext in (
        ("server", "/CN=localhost", leaf + "subjectAltName=IP:127.0.0.1"),
        ("client", "/C=FR/O=Example, Inc./CN=alice", leaf + "extendedKeyUsage=clientAuth"),
    ):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
                "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"))  # fmt: skip
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"),
                "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "2",
                "-extfile", str(d / f"{name}.ext"), "-out", str(d / f"{name}.pem"))  # fmt: skip
    return d


@pytest.fixture(scope="module")
def server(pki, tmp_path_factory):
    srv = Unicorn(
        tmp_path_factory.mktemp("tls"),
        APP,
        "-k", "asgi",
        "--certfile", str(pki / "server.pem"),
        "--keyfile", str(pki / "server.key"),
        "--ca-certs", str(pki / "ca.pem"),
        "--cert-reqs", "1",  # optional: clients may come with or without a certificate
        ssl_context=client_context(pki, True),
    )  # fmt: skip
    yield srv
    srv.stop()


def client_context(pki: Path, with_cert: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if with_cert:
        ctx.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
    return ctx


def pem(path: Path) -> str:
    text = path.read_text()
    return text[text.index("-----BEGIN CERTIFICATE-----") :]


def test_http_scope_carries_the_tls_extension(server, pki):
    url = f"https://127.0.0.1:{server.port}/"
    answer = httpx.get(url, verify=client_context(pki, True)).json()
    assert answer["scheme"] == "https"
    tls = answer["tls"]
    assert tls["server_cert"] == pem(pki / "server.pem")
    assert tls["client_cert_chain"][0] == pem(pki / "client.pem")
    if sys.version_info >= (3, 13):  # the whole verified chain, up to our CA
        assert tls["client_cert_chain"][1:] == [pem(pki / "ca.pem")]
    else:
        assert len(tls["client_cert_chain"]) == 1
    assert tls["client_cert_name"] == r"CN=alice,O=Example\, Inc.,C=FR"
    assert tls["client_cert_error"] is None
    assert tls["tls_version"] in (0x0303, 0x0304)
    with ssl.create_connection(("127.0.0.1", server.port)) as raw:  # the same suite, by name
        ctx = client_context(pki, True)
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
            name = conn.cipher()[0]
    ids = {c["name"]: c["id"] & 0xFFFF for c in client_context(pki, True).get_ciphers()}
    assert tls["cipher_suite"] == ids[name]


def test_a_client_without_a_certificate_has_an_empty_chain(server, pki):
    url = f"https://127.0.0.1:{server.port}/"
    tls = httpx.get(url, verify=client_context(pki, False)).json()["tls"]
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None
    assert tls["server_cert"] == pem(pki / "server.pem")


def test_websocket_scope_carries_it_too(server, pki):
    async def main():
        async with websockets.connect(
            f"wss://127.0.0.1:{server.port}/ws", ssl=client_context(pki, True)
        ) as ws:
            return json.loads(await ws.recv())

    answer = asyncio.run(asyncio.wait_for(main(), 20))
    assert answer["scheme"] == "wss"
    assert answer["tls"]["client_cert_name"] == r"CN=alice,O=Example\, Inc.,C=FR"


def test_plain_connections_have_no_tls_extension(tmp_path):
    srv = Unicorn(tmp_path, APP, "-k", "asgi")
    try:
        answer = httpx.get(srv.url + "/").json()
        assert answer == {"scheme": "http", "tls": None}
    finally:
        srv.stop()


def test_distinguished_names_are_escaped_as_rfc_4514_says():
    subject = (
        (("countryName", "US"),),
        (("organizationName", "A+B; C"),),
        (("commonName", " lead"), ("userId", "x=1")),
    )
    assert distinguished_name(subject) == r"CN=\ lead+UID=x\=1,O=A\+B\; C,C=US"
