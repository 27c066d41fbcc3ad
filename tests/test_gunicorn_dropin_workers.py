"""The gunicorn drop-in with the real workers (issue 13): Paste Deploy ini
files served by the sync worker, and gunicorn's and uvicorn's worker class
names running unicorn's workers."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

from unicorn_server import Unicorn, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def start(tmp_path):
    servers = []

    def run(app, *args, **kwargs):
        server = Unicorn(tmp_path, app, *args, **kwargs)
        servers.append(server)
        return server

    yield run
    for server in servers:
        server.stop()


def test_paste_ini_with_global_conf_and_its_logging(start, tmp_path):
    pytest.importorskip("paste.deploy")
    applog = tmp_path / "app.log"
    ini = tmp_path / "development.ini"
    ini.write_text(
        textwrap.dedent(
            f"""
            [app:main]
            use = call:paste_app:factory
            greeting = bonjour

            [loggers]
            keys = root, paste_app

            [handlers]
            keys = file

            [formatters]
            keys = plain

            [logger_root]
            level = WARNING
            handlers =

            [logger_paste_app]
            level = INFO
            handlers = file
            qualname = paste_app

            [handler_file]
            class = FileHandler
            args = ({str(applog)!r},)
            formatter = plain

            [formatter_plain]
            format = PASTE %(message)s
            """
        )
    )
    # the ini file stands where APP_MODULE would
    server = start(f"--paste={ini}", "--paste-global", "FOO=bar", "-k", "sync")
    response = httpx.get(server.url + "/")
    assert response.status_code == 200
    assert response.text == "bonjour FOO=bar"
    # its [loggers] section configured logging, as in gunicorn
    wait_for(lambda: applog.exists() and "PASTE loaded with" in applog.read_text(), 10, "app log")
    assert "'FOO'" in applog.read_text()


def test_paste_names_an_app_section(start, tmp_path):
    pytest.importorskip("paste.deploy")
    ini = tmp_path / "multi.ini"
    ini.write_text(
        "[app:main]\nuse = call:paste_app:factory\n\n"
        "[app:admin]\nuse = call:paste_app:factory\ngreeting = admin\n"
    )
    server = start(f"--paste={ini}#admin", "-k", "sync")
    assert httpx.get(server.url + "/").text == "admin FOO=-"


@pytest.mark.parametrize(
    ("name", "target", "app"),
    [
        ("uvicorn.workers.UvicornWorker", "asgi", "asgi_whoami:app"),
        ("uvicorn_worker.UvicornWorker", "asgi", "asgi_whoami:app"),
        ("gunicorn.workers.sync.SyncWorker", "sync", "wsgi_routes:app"),
        ("gunicorn.workers.gthread.ThreadWorker", "gthread", "wsgi_routes:app"),
    ],
)
def test_gunicorn_and_uvicorn_worker_paths_run_unicorns_workers(start, name, target, app):
    server = start(app, "-k", name)
    assert httpx.get(server.url + "/whoami").status_code == 200
    server.wait_log(f"Worker class {name!r} is served by unicorn's {target!r} worker")
