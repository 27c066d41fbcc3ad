"""--reload: a changed source file restarts the workers, which load the new code."""

from __future__ import annotations

import os
import time

import pytest
from harness import wait_for

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("engine", ["poll", "inotify"])
def test_changed_module_restarts_workers(engine, start_server, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    module = code / "reloaded_app.py"
    module.write_text("def app(path):\n    return 'one'\n")
    server = start_server(
        "--reload", "--reload-engine", engine, "--pythonpath", str(code), app="reloaded_app:app"
    ).ready()
    (old,) = server.workers()
    assert server.get()[2].endswith("app=one")
    server.wait_log("Booting worker")
    module.write_text("def app(path):\n    return 'two'\n")
    later = time.time() + 5
    os.utime(module, (later, later))
    server.wait_log("Worker reloading: .*reloaded_app.py modified")
    server.wait_replaced(1, {old})

    def new_code():
        try:
            return server.get()[2].endswith("app=two")
        except OSError:
            return False

    wait_for(new_code, 10, "the new code")


def test_extra_files_are_watched(start_server, tmp_path):
    extra = tmp_path / "template.html"
    extra.write_text("a")
    server = start_server(
        "--reload", "--reload-engine", "poll", "--reload-extra-file", str(extra)
    ).ready()
    (old,) = server.workers()
    later = time.time() + 5
    extra.write_text("b")
    os.utime(extra, (later, later))
    server.wait_log("template.html modified")
    server.wait_replaced(1, {old})


def test_broken_app_waits_for_a_fix_instead_of_stopping(start_server, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    module = code / "fixme_app.py"
    module.write_text("def app(path):\n    return 'ok'\ndef broken(:\n")
    server = start_server(
        "--reload", "--reload-engine", "poll", "--pythonpath", str(code), app="fixme_app:app"
    )
    server.wait_log(r"Failed to load the application: .*SyntaxError.*fixme_app.py:3.*waiting")
    assert server.proc.poll() is None
    module.write_text("def app(path):\n    return 'fixed'\n")
    later = time.time() + 5
    os.utime(module, (later, later))

    def fixed():
        try:
            return server.get()[2].endswith("app=fixed")
        except OSError:
            return False

    wait_for(fixed, 15, "the fixed app")
