"""A gunicorn project switched to unicorn by changing one word (issue 13).

Each test starts from a project directory as gunicorn users have it
(``gunicorn.conf.py``, ``GUNICORN_CMD_ARGS``, ``logconfig_dict`` with
gunicorn's logger names, a StatsD collector expecting gunicorn's metric
names) and runs real ``unicorn`` processes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from harness import WORKER, free_port, http_get, run_unicorn, server_env, wait_for

pytestmark = pytest.mark.timeout(60)


def write(path, text: str) -> None:
    path.write_text(textwrap.dedent(text))


# --- 1. gunicorn.conf.py and GUNICORN_CMD_ARGS ---------------------------------------------


def test_gunicorn_conf_py_is_read_and_named_in_the_log(start_server, tmp_path):
    marker = tmp_path / "started"
    write(
        tmp_path / "gunicorn.conf.py",
        f"""
        import multiprocessing
        workers = 2
        def on_starting(server):
            open({str(marker)!r}, "w").write("hook ran")
        """,
    )
    server = start_server().ready(workers=2)
    assert marker.read_text() == "hook ran"
    server.wait_log(r"Config file: " + str(tmp_path / "gunicorn.conf.py"))
    assert "multiprocessing" not in server.log()  # a module is not a misspelt setting


def test_hup_rereads_gunicorn_conf_py(start_server, tmp_path):
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text("workers = 1\n")
    server = start_server().ready(workers=1)
    conf.write_text("workers = 2\n")
    server.signal(signal.SIGHUP)
    server.wait_workers(2)


def test_unicorn_conf_py_wins_over_gunicorn_conf_py(cli, tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text("workers = 2\n")
    (tmp_path / "unicorn.conf.py").write_text("workers = 3\n")
    result = cli("--print-config", "apps:app")
    assert "workers" in result.stdout
    assert any(line.split() == ["workers", "=", "3"] for line in result.stdout.splitlines())


def test_gunicorn_cmd_args_is_honoured_and_logged(start_server):
    server = start_server(env={"GUNICORN_CMD_ARGS": "--workers 2"}).ready(workers=2)
    server.wait_log("Settings from GUNICORN_CMD_ARGS")


def test_unicorn_cmd_args_wins_over_gunicorn_cmd_args(start_server):
    env = {"GUNICORN_CMD_ARGS": "--workers 3", "UNICORN_CMD_ARGS": "--workers 2"}
    server = start_server(env=env).ready(workers=2)
    server.wait_log("Settings from UNICORN_CMD_ARGS")
    assert "GUNICORN_CMD_ARGS" not in server.log()


# --- 2. gunicorn's logger names ---------------------------------------------------------------


def test_logconfig_dict_with_gunicorn_logger_names(start_server, tmp_path):
    errors, access = tmp_path / "errors.txt", tmp_path / "access.txt"
    config = {
        "version": 1,
        "formatters": {"tagged": {"format": "TAGGED %(name)s %(message)s"}},
        "handlers": {
            "errors": {
                "class": "logging.FileHandler",
                "filename": str(errors),
                "formatter": "tagged",
            },
            "access": {
                "class": "logging.FileHandler",
                "filename": str(access),
                "formatter": "tagged",
            },
        },
        "loggers": {
            "gunicorn.error": {"handlers": ["errors"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }
    (tmp_path / "gunicorn.conf.py").write_text(f"logconfig_dict = {config!r}\n")
    server = start_server(app="apps:gunicorn_logger")
    wait_for(lambda: errors.exists() and "Listening at:" in errors.read_text(), 10, "error log")
    address = errors.read_text().split("Listening at: ")[1].split()[0]
    assert http_get(address, "/from-app")[0] == 200
    # unicorn's own lines and the application's gunicorn.error lines both reach it
    wait_for(lambda: "app says /from-app" in errors.read_text(), 10, "the app's line")
    assert "TAGGED unicorn.error Listening at:" in errors.read_text()
    wait_for(lambda: access.exists() and "GET /from-app" in access.read_text(), 10, "access")
    assert access.read_text().startswith("TAGGED unicorn.access 127.0.0.1")
    assert server.log() == ""  # the configuration the user wrote is the one that writes


def test_application_logging_to_gunicorn_error_reaches_the_error_log(start_server):
    server = start_server(app="apps:gunicorn_logger").ready()
    assert server.get("/hello")[0] == 200
    server.wait_log(r"\[INFO\] app says /hello")


def test_gunicorn_error_follows_the_log_level(start_server):
    address = f"http://127.0.0.1:{free_port()}"
    server = start_server("--log-level", "warning", app="apps:gunicorn_logger", bind=address[7:])
    status = wait_for(lambda: _try_get(address, "/quiet"), 10, "a response")[0]
    assert status == 200
    # the app logs before it answers: at level warning its INFO line is dropped
    server.signal(signal.SIGTTIN)
    server.wait_workers(2)
    assert "app says" not in server.log()


# --- 3. StatsD as gunicorn sends it -------------------------------------------------------------


def _collect(sock: socket.socket, wanted, timeout: float = 10.0) -> set[str]:
    """Lines received until ``wanted(lines)`` holds (recv raises on the deadline)."""
    sock.settimeout(timeout)
    seen: set[str] = set()
    while not wanted(seen):
        seen.update(sock.recv(65536).decode().splitlines())
    return seen


def test_statsd_names_tags_backlog_and_log_counters(start_server):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        collector.bind(("127.0.0.1", 0))
        port = collector.getsockname()[1]
        server = start_server(
            "--statsd-host",
            f"127.0.0.1:{port}",
            "--statsd-prefix",
            "shop",
            "--dogstatsd-tags",
            "env:test,team:web",
            "--enable-backlog-metric",
        ).ready()
        assert server.get()[0] == 200
        tags = "|#env:test,team:web"
        seen = _collect(
            collector,
            lambda s: (
                {f"shop.gunicorn.requests:1|c{tags}", f"shop.gunicorn.workers:1|g{tags}"} <= s
                and any(line.startswith("shop.gunicorn.backlog:") for line in s)
            ),
        )
        assert f"shop.gunicorn.request.status.200:1|c{tags}" in seen
        assert any(
            line.startswith("shop.gunicorn.request.duration:") and line.endswith(f"|ms{tags}")
            for line in seen
        )
        backlog = next(line for line in seen if line.startswith("shop.gunicorn.backlog:"))
        assert backlog.endswith(f"|h{tags}")
        assert all(line.startswith("shop.gunicorn.") for line in seen)
        # an error-log line counts as gunicorn.log.error
        (worker,) = server.workers()
        os.kill(worker, signal.SIGKILL)
        _collect(collector, lambda s: f"shop.gunicorn.log.error:1|c{tags}" in s)


def test_backlog_metric_counts_waiting_connections(start_server):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        collector.bind(("127.0.0.1", 0))
        port = collector.getsockname()[1]
        server = start_server(
            "--statsd-host", f"127.0.0.1:{port}", "--enable-backlog-metric"
        ).ready()
        host, port_text = server.address.removeprefix("http://").rsplit(":", 1)
        # the one single-threaded worker is held by a request that never ends,
        # so three more connections wait in the accept queue
        clients = [socket.create_connection((host, int(port_text))) for _ in range(4)]
        try:
            clients[0].sendall(b"GET /stuck HTTP/1.0\r\n\r\n")
            _collect(collector, lambda s: "gunicorn.backlog:3|h" in s)
        finally:
            for client in clients:
                client.close()


def test_statsd_namespace_chooses_other_names(start_server):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        collector.bind(("127.0.0.1", 0))
        port = collector.getsockname()[1]
        server = start_server(
            "--statsd-host", f"localhost:{port}", "--statsd-namespace", "unicorn"
        ).ready()
        assert server.get()[0] == 200
        _collect(collector, lambda s: "unicorn.requests:1|c" in s)


def test_statsd_over_a_unix_socket(start_server, tmp_path):
    path = tmp_path / "statsd.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as collector:
        collector.bind(str(path))
        server = start_server("--statsd-host", f"unix://{path}").ready()
        assert server.get()[0] == 200
        _collect(collector, lambda s: "gunicorn.requests:1|c" in s)


# --- 4. the settings unicorn lacked ---------------------------------------------------------------


def test_syslog_gets_error_and_access_lines_tagged_as_gunicorn_does(start_server):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as syslog:
        syslog.bind(("127.0.0.1", 0))
        port = syslog.getsockname()[1]
        server = start_server(
            "--log-syslog",
            "--log-syslog-to",
            f"udp://127.0.0.1:{port}",
            "--log-syslog-prefix",
            "shop",
            "--log-syslog-facility",
            "local3",
            "--access-logfile",
            "-",
        ).ready()
        assert server.get("/seen")[0] == 200
        seen = _collect(
            syslog,
            lambda s: any("GET /seen" in line for line in s) and any("Listening" in x for x in s),
        )
        # <PRI> = facility local3 (19) * 8 + severity info (6) = 158
        listening = next(line for line in seen if "Listening at:" in line)
        assert listening.startswith("<158>gunicorn.shop.error: [")
        access = next(line for line in seen if "GET /seen" in line)
        assert access.startswith("<158>gunicorn.shop.access: [")


def test_syslog_over_a_unix_datagram_socket(start_server, tmp_path):
    path = tmp_path / "log.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as syslog:
        syslog.bind(str(path))
        start_server("--log-syslog", "--log-syslog-to", f"unix://{path}#dgram", "-n", "api:v2")
        seen = _collect(syslog, lambda s: any("Listening at:" in line for line in s))
        line = next(line for line in seen if "Listening at:" in line)
        # <PRI> = user (1) * 8 + info (6); the ':' of the name becomes '.', as in gunicorn
        assert line.startswith("<14>gunicorn.api.v2.error: [")


def test_disable_redirect_access_to_syslog(start_server):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as syslog:
        syslog.bind(("127.0.0.1", 0))
        port = syslog.getsockname()[1]
        server = start_server(
            "--log-syslog",
            "--log-syslog-to",
            f"udp://127.0.0.1:{port}",
            "--disable-redirect-access-to-syslog",
            "--access-logfile",
            "-",
        ).ready()
        assert server.get("/unseen")[0] == 200
        server.signal(signal.SIGTTIN)  # logs an error-log line after the request
        seen = _collect(syslog, lambda s: any("Handling signal: ttin" in line for line in s))
        assert not any("/unseen" in line for line in seen)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("--log-syslog-to=udp:/nowhere", "'syslog_addr'"),
        ("--log-syslog-facility=kitchen", "'syslog_facility'"),
    ],
)
def test_bad_syslog_settings_are_refused(cli, value, error):
    result = cli(value, "apps:app")
    assert result.returncode == 1
    assert error in result.stderr


def test_logger_class(start_server, cli):
    server = start_server("--logger-class", "compat_loggers.MarkingLogger").ready()
    assert "MARKED Listening at:" in server.log()
    for name in ("gunicorn.glogging.Logger", "gunicorn.instrument.statsd.Statsd"):
        assert (
            cli("-k", WORKER, "--logger-class", name, "--check-config", "apps:app").returncode == 0
        )
    result = cli(
        "-k", WORKER, "--logger-class", "compat_loggers.FromGunicorn", "--check-config", "apps:app"
    )
    assert result.returncode == 1
    assert "extends gunicorn's Logger" in result.stderr
    assert "subclass unicorn_core.logs.Logger instead" in result.stderr


def test_logconfig_json(start_server, tmp_path):
    out = tmp_path / "json.txt"
    config = {
        "version": 1,
        "formatters": {"j": {"format": "JSON %(message)s"}},
        "handlers": {"f": {"class": "logging.FileHandler", "filename": str(out), "formatter": "j"}},
        "loggers": {"gunicorn.error": {"handlers": ["f"], "level": "INFO"}},
    }
    (tmp_path / "log.json").write_text(json.dumps(config))
    start_server("--log-config-json", str(tmp_path / "log.json"))
    wait_for(lambda: out.exists() and "JSON Listening at:" in out.read_text(), 10, "json log")


def test_logconfig_json_errors_name_the_file(cli, tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    result = cli("-k", WORKER, "--log-config-json", "bad.json", "--check-config", "apps:app")
    assert result.returncode == 1
    assert "logconfig_json file 'bad.json' is not JSON" in result.stderr


@pytest.mark.parametrize("inherit", [True, False])
def test_enable_stdio_inheritance_keeps_a_daemons_output(tmp_path, inherit):
    pidfile = tmp_path / "d.pid"
    output = tmp_path / "out.txt"
    (tmp_path / "gunicorn.conf.py").write_text(
        "def on_starting(server):\n    print('stdio kept', flush=True)\n"
    )
    args = [sys.executable, "-m", "unicorn_core", "-D", "-p", str(pidfile), "-k", WORKER]
    args += ["-b", "127.0.0.1:0", "--error-logfile", str(tmp_path / "e.log")]
    args += ["-R"] if inherit else []
    with open(output, "wb") as out:
        subprocess.run(
            [*args, "apps:app"], env=server_env(), cwd=tmp_path, stdout=out, stderr=out, timeout=20
        )
    pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, "pid"))
    try:
        wait_for(lambda: "Booting worker" in (tmp_path / "e.log").read_text(), 10, "a worker")
        assert ("stdio kept" in output.read_text()) is inherit
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not pidfile.exists(), 10, "the daemon to stop")


def test_spew_traces_every_line(start_server):
    server = start_server("--spew")
    server.wait_log("Booting worker", timeout=30)
    server.output.flush()
    output = Path(server.output.name)
    text = wait_for(
        lambda: (out := output.read_text()) and "arbiter.py:" in out and out, 10, "trace lines"
    )
    line = next(line for line in text.splitlines() if "arbiter.py:" in line)
    pid, where, _ = line.split(" ", 2)
    assert pid.isdigit() and where.split(":")[1].isdigit()


def test_tmp_upload_dir_is_where_workers_spool(start_server, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    (tmp_path / "c.py").write_text(f"tmp_upload_dir = {str(spool)!r}\n")
    server = start_server("-c", str(tmp_path / "c.py"), app="apps:tmpdir").ready()
    assert server.get()[2].endswith(f"app={spool}")


def test_tmp_upload_dir_must_exist(cli, tmp_path):
    (tmp_path / "c.py").write_text("tmp_upload_dir = '/no/such/dir'\n")
    result = cli("-k", WORKER, "-c", "c.py", "--check-config", "apps:app")
    assert result.returncode == 1
    assert (
        "'tmp_upload_dir': '/no/such/dir'" in result.stderr and "no such directory" in result.stderr
    )


def test_default_proc_name_names_the_processes(start_server, tmp_path):
    pytest.importorskip("setproctitle")  # titles need the [setproctitle] extra
    (tmp_path / "gunicorn.conf.py").write_text("default_proc_name = 'shop-frontend'\n")
    server = start_server().ready()
    (worker,) = server.workers()

    def title(pid):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode().strip()

    wait_for(lambda: title(server.pid) == "unicorn: master [shop-frontend]", 10, "master title")
    assert title(worker) == "unicorn: worker [shop-frontend]"


def test_worker_tmp_dir_says_it_is_ignored_in_help():
    result = run_unicorn("--help")
    help_text = " ".join(result.stdout.split())
    assert "--worker-tmp-dir DIR Accepted for gunicorn compatibility and ignored:" in help_text


def test_paste_without_paste_deploy_says_what_to_install(cli, tmp_path):
    # the application served through Paste Deploy is tested in tests/test_paste_deploy.py
    (tmp_path / "development.ini").write_text("[app:main]\nuse = call:apps:factory\n")
    try:
        import paste.deploy  # noqa: F401
    except ImportError:
        result = cli("-k", WORKER, "--paste", "development.ini", "--check-config")
        assert result.returncode == 4
        assert "pip install PasteDeploy" in result.stderr
    else:
        result = cli("-k", WORKER, "--paste", "development.ini", "--check-config")
        assert result.returncode == 0, result.stderr


def test_paste_file_must_exist(cli):
    result = cli("-k", WORKER, "--paste", "missing.ini", "--check-config")
    assert result.returncode == 1
    assert "paste:" in result.stderr and "missing.ini' not found" in result.stderr


# --- 5. nothing ignored silently ----------------------------------------------------------------


def _unsupported_gunicorn_name() -> str:
    """A gunicorn setting unicorn does not have yet (the list shrinks as they land)."""
    from unicorn_core.gunicorn_settings import GUNICORN_SETTINGS
    from unicorn_core.settings import build_registry

    missing = sorted(GUNICORN_SETTINGS - {s.name for s in build_registry()})
    return missing[0] if missing else ""


def test_unknown_and_unsupported_names_are_warnings(start_server, cli, tmp_path):
    unsupported = _unsupported_gunicorn_name()
    write(
        tmp_path / "gunicorn.conf.py",
        f"""
        import os
        worker = 2
        TIMEOUT = 5
        {unsupported or "_unused"} = 1
        def helper():
            return 1
        """,
    )
    server = start_server().ready()
    log = server.log()
    assert "[WARNING] " in log
    assert "'worker' is not a setting; it is ignored; did you mean 'workers'?" in log
    if unsupported:
        assert f"'{unsupported}' is a gunicorn setting unicorn does not support" in log
    assert "'TIMEOUT' is not a setting; it is ignored; did you mean 'timeout'?" in log
    assert "helper" not in log and "'os'" not in log
    result = cli("-k", WORKER, "--check-config", "apps:app")
    assert result.returncode == 0
    assert "Warning: " in result.stderr and "did you mean 'workers'?" in result.stderr
    if unsupported:
        assert f"'{unsupported}' is a gunicorn setting unicorn does not support" in result.stderr


def test_a_gunicorn_name_missing_from_the_registry_is_named_as_unsupported():
    from unicorn_core.config import unknown_setting_note
    from unicorn_core.settings import build_registry

    registry = build_registry()
    note = unknown_setting_note([s for s in registry if s.name != "workers"], "workers", 2)
    assert note and "is a gunicorn setting unicorn does not support" in note


# --- 6. worker names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("gevent_pywsgi", "gevent"),
        ("gevent_wsgi", "gevent"),
        ("uvicorn.workers.UvicornWorker", "asgi"),
        ("uvicorn_worker.UvicornWorker", "asgi"),
        ("gunicorn.workers.sync.SyncWorker", "sync"),
        ("gunicorn.workers.gthread.ThreadWorker", "gthread"),
        ("egg:gunicorn#gthread", "gthread"),
    ],
)
def test_gunicorn_and_uvicorn_worker_names_map_to_unicorns(name, target):
    from unicorn_core.workers import resolve_worker_name

    assert resolve_worker_name(name) == (
        target,
        f"Worker class {name!r} is served by unicorn's {target!r} worker",
    )


def test_a_misspelt_worker_gets_the_closest_name(cli):
    result = cli("-k", "gthraed", "apps:app")
    assert result.returncode == 1
    assert "did you mean 'gthread'?" in result.stderr


# --- 7. values gunicorn accepts -----------------------------------------------------------------


@pytest.mark.parametrize("params", ["worker, req", "worker, req, environ"])
def test_short_post_request_hooks_are_called(start_server, tmp_path, params):
    seen = tmp_path / "seen.txt"
    write(
        tmp_path / "gunicorn.conf.py",
        f"""
        def post_request({params}):
            names = ",".join(sorted(locals()))
            with open({str(seen)!r}, "a") as f:
                f.write(req.path + " " + names + "\\n")
        """,
    )
    server = start_server().ready()
    assert server.get("/hooked")[0] == 200
    names = ",".join(sorted(p.strip() for p in params.split(",")))
    wait_for(lambda: seen.exists() and f"/hooked {names}\n" in seen.read_text(), 10, "the hook")


def test_post_request_with_one_argument_is_refused(cli, tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text("def post_request(worker):\n    pass\n")
    result = cli("-k", WORKER, "--check-config", "apps:app")
    assert result.returncode == 1
    assert "post_request takes (worker, req, environ, resp)" in result.stderr


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("SSLv23", "'TLS'"),
        ("SSLv3", "'TLS'"),
        ("TLSv1_2", "'TLSv1_2'"),
        ("PROTOCOL_TLSv1_2", "'TLSv1_2'"),
        ("tls_server", "'TLS_SERVER'"),
        ("5", "'TLSv1_2'"),
    ],
)
def test_ssl_version_values_gunicorn_accepts(cli, given, stored):
    result = cli("--ssl-version", given, "--print-config")
    assert result.returncode == 0, result.stderr
    assert any(line.split() == ["ssl_version", "=", stored] for line in result.stdout.splitlines())


def test_ssl_version_from_the_ssl_module_in_a_config_file(cli, tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text("import ssl\nssl_version = ssl.PROTOCOL_TLSv1_2\n")
    result = cli("--print-config")
    assert any(
        line.split() == ["ssl_version", "=", "'TLSv1_2'"] for line in result.stdout.splitlines()
    )


# --- 9. embedding -------------------------------------------------------------------------------------


def test_base_application_runs_a_server(tmp_path):
    port = free_port()
    script = tmp_path / "serve.py"
    write(
        script,
        f"""
        from unicorn_core.application import BaseApplication

        def app(path):
            return "embedded"

        class StandaloneApplication(BaseApplication):
            def __init__(self, app, options=None):
                self.options = options or {{}}
                self.application = app
                super().__init__()

            def load_config(self):
                config = {{k: v for k, v in self.options.items()
                          if k in self.cfg.settings and v is not None}}
                for key, value in config.items():
                    self.cfg.set(key.lower(), value)

            def load(self):
                return self.application

        StandaloneApplication(app, {{
            "bind": "127.0.0.1:{port}", "workers": 2, "worker_class": {WORKER!r},
            "errorlog": {str(tmp_path / "e.log")!r},
        }}).run()
        """,
    )
    proc = subprocess.Popen([sys.executable, str(script)], env=server_env(), cwd=tmp_path)
    try:
        status, _, body = wait_for(
            lambda: _try_get(f"http://127.0.0.1:{port}"), 20, "the embedded server"
        )
        assert status == 200 and body.endswith("app=embedded")
        assert "Booting worker" in (tmp_path / "e.log").read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_base_application_bad_setting_exits_with_one_line(tmp_path):
    script = tmp_path / "bad.py"
    write(
        script,
        """
        from unicorn_core.application import BaseApplication

        class App(BaseApplication):
            def load_config(self):
                self.cfg.set("workers", "many")

            def load(self):
                return None

        App().run()
        """,
    )
    result = subprocess.run(
        [sys.executable, str(script)], env=server_env(), capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("Error: invalid value for setting 'workers': 'many'")


def _try_get(address, path="/"):
    try:
        return http_get(address, path)
    except OSError:
        return None


def test_application_reads_the_command_line_and_init_defaults(tmp_path):
    port = free_port()
    script = tmp_path / "cliapp.py"
    write(
        script,
        f"""
        from unicorn_core.application import Application

        class App(Application):
            def init(self, parser, opts, args):
                # below the command line: -w 2 wins over workers = 3
                return {{"workers": 3, "worker_class": {WORKER!r}}}

            def load(self):
                return lambda path: "cli-app"

        App().run()
        """,
    )
    cmd = [sys.executable, str(script), "-w", "2", "-b", f"127.0.0.1:{port}"]
    cmd += ["--error-logfile", str(tmp_path / "e.log")]
    proc = subprocess.Popen(cmd, env=server_env(), cwd=tmp_path)
    try:
        _, _, body = wait_for(
            lambda: _try_get(f"http://127.0.0.1:{port}"), 20, "the embedded server"
        )
        assert body.endswith("app=cli-app")
        wait_for(lambda: (tmp_path / "e.log").read_text().count("Booting worker") == 2, 10, "2")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert (tmp_path / "e.log").read_text().count("Booting worker") == 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- a flag whose value may be left out (gunicorn's --proxy-protocol shape) ---------------


@pytest.mark.parametrize(
    ("argv", "mode", "app"),
    [
        (["--mode"], "auto", None),
        (["--mode", "v2", "app:app"], "v2", "app:app"),
        (["--mode", "app:app"], "auto", "app:app"),
        (["app:app", "--mode"], "auto", "app:app"),
        (["--mode=v1", "app:app"], "v1", "app:app"),
    ],
)
def test_a_flag_with_an_optional_value(argv, mode, app):
    from unicorn_core.cli import build_parser
    from unicorn_core.settings import Registry, Setting

    def modes(value):
        if value not in ("off", "v1", "v2", "auto"):
            raise ValueError("off, v1, v2 or auto")
        return value

    registry = Registry()
    registry.add(Setting(name="mode", section="Test", cli=("--mode",), type=modes, const="auto"))
    args = vars(build_parser(registry).parse_args(argv))
    assert args["mode"] == mode
    assert args.get("app_module") == app
