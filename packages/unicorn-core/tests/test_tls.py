"""TLS from the SSL settings, with a certificate generated for the test."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess

import pytest
from harness import WORKER, wait_for

from unicorn_core.errors import ConfigError
from unicorn_core.settings import Config, build_registry
from unicorn_core.tls import make_ssl_context

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
]


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    where = tmp_path_factory.mktemp("tls")
    key, crt = where / "key.pem", where / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(crt),
        ],
        check=True,
        capture_output=True,
    )
    return crt, key


def https_get(address: str, cafile, path: str = "/") -> tuple[str, str]:
    host, port = address.removeprefix("https://").removeprefix("http://").rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(cafile))
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        version = tls.version()
        tls.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
        return version, data.decode()


def test_serves_tls(start_server, cert):
    crt, key = cert
    server = start_server("--certfile", str(crt), "--keyfile", str(key))
    server.wait_log("Booting worker")

    def answer():
        try:
            return https_get(server.address, crt)
        except OSError:
            return None

    version, response = wait_for(answer, 10, "a TLS response")
    assert response.startswith("HTTP/1.0 200 OK")
    assert version in ("TLSv1.2", "TLSv1.3")
    # the listener is logged with the scheme it speaks, as gunicorn logs it
    assert server.address.startswith("https://127.0.0.1:")


def test_ssl_context_hook_adjusts_the_default(start_server, cert, tmp_path):
    crt, key = cert
    conf = tmp_path / "tls_conf.py"
    conf.write_text(
        "import ssl\n"
        "def ssl_context(config, default_ssl_context_factory):\n"
        "    ctx = default_ssl_context_factory()\n"
        "    ctx.minimum_version = ssl.TLSVersion.TLSv1_3\n"
        "    return ctx\n"
    )
    server = start_server("--certfile", str(crt), "--keyfile", str(key), "-c", str(conf))
    server.wait_log("Booting worker")
    version, _ = wait_for(lambda: _try(server.address, crt), 10, "a TLS response")
    assert version == "TLSv1.3"


def _try(address, crt):
    try:
        return https_get(address, crt)
    except OSError:
        return None


def test_missing_certificate_is_a_one_line_error(cli, tmp_path):
    result = cli("-k", WORKER, "--certfile", str(tmp_path / "nope.pem"), "apps:app")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: TLS: cannot read {str(tmp_path / 'nope.pem')!r}: No such file or directory"
    ]


def test_context_from_settings(cert):
    crt, key = cert
    cfg = Config(build_registry())
    assert make_ssl_context(cfg) is None
    cfg.certfile, cfg.keyfile = str(crt), str(key)
    cfg.cert_reqs = 2
    cfg.ca_certs = str(crt)
    cfg.ssl_version = "TLSv1_2"
    ctx = make_ssl_context(cfg)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    cfg.ciphers = "NOT-A-CIPHER"
    with pytest.raises(ConfigError, match="no cipher matches"):
        make_ssl_context(cfg)
