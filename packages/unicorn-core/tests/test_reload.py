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
