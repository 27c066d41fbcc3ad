"""Starting up: --version, --help, app paths, worker lookup, and failures that
exit non-zero with a one-line cause instead of looping."""

from __future__ import annotations

import importlib.metadata
import socket

import pytest
from harness import WORKER, run_unicorn, wait_for

from unicorn_core.errors import APP_LOAD_ERROR

pytestmark = pytest.mark.timeout(30)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "Error" in line or "Reason" in line]


def test_version_lists_core(cli):
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("unicorn-core 0.1.0")


def test_help_lists_settings_by_section():
    result = run_unicorn("--help")
    assert result.returncode == 0
    for flag in ("--workers", "--bind", "--graceful-timeout", "--access-logformat", "--certfile"):
        assert flag in result.stdout
    assert "Server Socket:" in result.stdout


def test_no_app_module_is_a_usage_error(cli):
    result = cli("-k", WORKER)
    assert result.returncode == 2
    assert "Error: no APP_MODULE given" in result.stderr


@pytest.mark.parametrize(
    ("app", "cause"),
    [
        ("no_such_module:app", "no module named 'no_such_module'"),
        ("apps:missing", "'apps' has no attribute 'missing'"),
        ("apps:not_callable", "'apps:not_callable' is not callable"),
        ("broken_app:app", "RuntimeError: broken on purpose"),
        ("apps:factory(os.system('x'))", "factory arguments must be literals"),
    ],
)
def test_bad_app_exits_with_app_load_error_and_cause(app, cause, tmp_path):
    result = run_unicorn(
        "-k", WORKER, "-b", "127.0.0.1:0", "-w", "2", app, cwd=tmp_path, timeout=20
    )
    assert result.returncode == APP_LOAD_ERROR, result.stderr
    reasons = [line for line in result.stderr.splitlines() if "Reason:" in line]
    assert len(reasons) == 1 and cause in reasons[0], result.stderr
    assert "Traceback" not in result.stderr


def test_bad_app_with_preload_fails_before_forking(cli):
    result = cli("-k", WORKER, "--preload", "apps:missing")
    assert result.returncode == APP_LOAD_ERROR
    assert result.stderr.strip().splitlines() == [
        "Error: app failed to load: 'apps' has no attribute 'missing' (from 'apps:missing')"
    ]


def test_worker_that_fails_to_boot_stops_the_server(tmp_path):
    conf = tmp_path / "c.py"
    conf.write_text("def post_worker_init(worker):\n    raise ValueError('no database')\n")
    result = run_unicorn(
        "-k", WORKER, "-b", "127.0.0.1:0", "-c", str(conf), "apps:app", cwd=tmp_path
    )
    assert result.returncode == 3
    assert "Reason: Worker failed to boot: ValueError: no database" in result.stderr


def test_unknown_worker_offers_the_extra_when_it_would_provide_it(cli, monkeypatch):
    from unicorn_core import workers

    # a worker whose distribution is not installed: installing it is the remedy
    monkeypatch.setitem(
        workers.WORKER_SOURCES, "quartz", ("unicorn-quartz-absent", "unicorn[quartz]", None)
    )
    result = cli("-k", "quartz", "apps:app")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "unknown worker class 'quartz' (installed: " in line
    assert 'install it with: pip install "unicorn[quartz]"' in line


def test_unknown_worker_never_offers_a_remedy_that_cannot_work(cli, monkeypatch):
    from unicorn_core import workers

    # its distribution is installed and has no such worker, and the library it
    # would need is importable: installing the extra would change nothing
    monkeypatch.setitem(
        workers.WORKER_SOURCES, "quartz", ("unicorn-core", "unicorn[quartz]", "json")
    )
    result = cli("-k", "quartz", "apps:app")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "pip install" not in line
    assert "unicorn-core 0.1.0 provides no 'quartz' worker" in line
    assert "(json is installed, but no unicorn worker for it)" in line


def test_gevent_message_matches_what_is_installed(cli):
    from unicorn_core.workers import installed_workers

    result = cli("-k", "gevent_pywsgi", "--check-config", "apps:app")
    if "gevent" in installed_workers():
        assert "served by unicorn's 'gevent' worker" in result.stderr
        return
    assert result.returncode == 1
    assert "unknown worker class 'gevent'" in result.stderr
    try:
        importlib.metadata.version("unicorn-workers")
    except importlib.metadata.PackageNotFoundError:
        # the package that provides it is missing: installing it is the remedy
        assert 'pip install "unicorn[gevent]"' in result.stderr
    else:
        # it is installed and has no gevent worker: the extra would not add one
        assert 'pip install "unicorn[gevent]"' not in result.stderr
        assert "provides no 'gevent' worker" in result.stderr


def test_worker_path_must_be_a_worker(cli):
    result = cli("-k", "apps:factory", "apps:app")
    assert result.returncode == 1
    assert "is not a subclass of unicorn_core.workers.Worker" in result.stderr


def test_port_in_use_exits_with_one_line_cause(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_unicorn("-k", WORKER, "-b", f"127.0.0.1:{port}", "apps:app", cwd=tmp_path)
    assert result.returncode == 1
    assert f"Error: cannot bind 127.0.0.1:{port}: address already in use" in result.stderr
    assert result.stderr.count("Retrying") >= 2


def test_factory_apps(start_server):
    server = start_server(app="apps:factory()").ready()
    assert server.get()[2].endswith("app=hi")
    server = start_server(app="apps:factory('hey', punct='!')").ready()
    assert server.get()[2].endswith("app=hey!")


@pytest.mark.parametrize("preload", [True, False])
def test_preload_imports_the_app_once_in_the_master(preload, start_server, tmp_path):
    count = tmp_path / "imports"
    args = ("-w", "2", "--preload") if preload else ("-w", "2")
    server = start_server(*args, app="counting_app:app", env={"COUNT_FILE": str(count)})
    server.ready(workers=2)
    workers = server.workers()
    importers = {int(line) for line in count.read_text().split()}
    if preload:
        assert importers == {server.pid}
    else:
        wait_for(lambda: {int(x) for x in count.read_text().split()} == workers, 10, "imports")


def test_worker_raising_worker_boot_error_from_run_halts_with_its_reason(tmp_path):
    (tmp_path / "late_worker.py").write_text(
        "from unicorn_core.errors import WorkerBootError\n"
        "from unicorn_core.workers import Worker\n"
        "class LateWorker(Worker):\n"
        "    def run(self):\n"
        "        raise WorkerBootError('the cache server is not answering')\n"
    )
    result = run_unicorn(
        "-k", "late_worker.LateWorker", "-b", "127.0.0.1:0", "apps:app", cwd=tmp_path
    )
    assert result.returncode == 3
    assert "Reason: Worker failed to boot: the cache server is not answering" in result.stderr, (
        result.stderr
    )
    assert "Traceback" not in result.stderr
