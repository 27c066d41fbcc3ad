"""Settings precedence: defaults < env defaults < config file < UNICORN_CMD_ARGS < CLI."""

from __future__ import annotations

import pytest
from harness import run_unicorn

from unicorn_core.config import load_config
from unicorn_core.errors import ConfigError
from unicorn_core.settings import Config, Setting, build_registry

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def registry():
    return build_registry()


def printed(result) -> dict[str, str]:
    assert result.returncode == 0, result.stderr
    out = {}
    for line in result.stdout.splitlines():
        name, _, value = line.partition(" = ")
        out[name.strip()] = value
    return out


def test_defaults(registry, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(registry, {}, {}, {})
    assert cfg.workers == 1
    assert cfg.bind == ["127.0.0.1:8000"]
    assert cfg.worker_class == "sync"
    assert cfg.timeout == 30 and cfg.graceful_timeout == 30 and cfg.keepalive == 2
    assert cfg.limit_request_line == 4094 and cfg.backlog == 2048


def test_environment_defaults(registry, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(registry, {}, {}, {"WEB_CONCURRENCY": "5", "PORT": "9001"})
    assert cfg.workers == 5
    assert cfg.bind == ["0.0.0.0:9001"]
    assert cfg.sources["workers"] == "environment WEB_CONCURRENCY"


def test_each_source_overrides_the_one_before(registry, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    conf = tmp_path / "unicorn.conf.py"
    conf.write_text("workers = 3\ntimeout = 7\nbacklog = 10\nkeepalive = 9\nhelper = 1\n")
    environ = {"WEB_CONCURRENCY": "2"}
    cfg = load_config(registry, {}, {}, environ)  # ./unicorn.conf.py is read by default
    assert (cfg.workers, cfg.timeout) == (3, 7)
    cfg = load_config(registry, {}, {"timeout": "8", "backlog": "11"}, environ)
    assert (cfg.workers, cfg.timeout, cfg.backlog) == (3, 8, 11)
    cfg = load_config(registry, {"backlog": "12"}, {"timeout": "8", "backlog": "11"}, environ)
    assert (cfg.workers, cfg.timeout, cfg.backlog, cfg.keepalive) == (3, 8, 12, 9)


def test_precedence_end_to_end(tmp_path):
    conf = tmp_path / "unicorn.conf.py"
    conf.write_text("workers = 3\ntimeout = 7\nbacklog = 10\n")
    result = run_unicorn(
        "--print-config",
        "--backlog",
        "12",
        env={"WEB_CONCURRENCY": "2", "UNICORN_CMD_ARGS": "--timeout 8 --backlog 11"},
        cwd=tmp_path,
    )
    values = printed(result)
    assert values["workers"] == "3"
    assert values["timeout"] == "8"
    assert values["backlog"] == "12"


def test_config_from_python_module(cli, tmp_path, monkeypatch):
    (tmp_path / "myconf_module.py").write_text("workers = 4\nbind = ['unix:/tmp/x.sock']\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = cli("--print-config", "-c", "python:myconf_module")
    values = printed(result)
    assert values["workers"] == "4"
    assert values["bind"] == "['unix:/tmp/x.sock']"


def test_explicit_config_file_must_exist(cli, tmp_path):
    result = cli("-c", str(tmp_path / "nope.py"), "apps:app")
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: config file {str(tmp_path / 'nope.py')!r} not found"


def test_config_file_error_is_one_line(cli, tmp_path):
    conf = tmp_path / "bad.py"
    conf.write_text("workers = (\n")
    result = cli("-c", str(conf), "apps:app")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "SyntaxError" in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("-w", "many"),
            "invalid value for setting 'workers': 'many'; expected a non-negative integer",
        ),
        (("-t", "-1"), "setting 'timeout': '-1'"),
        (("--log-level", "loud"), "one of 'debug', 'info', 'warning', 'error', 'critical'"),
        (("-e", "NOEQUALS"), "'NOEQUALS' is not KEY=VALUE"),
        (("--forwarded-allow-ips", "1.2.3.x"), "'1.2.3.x' is not an IP address"),
        (("--access-logformat", "%(zz)s"), "unknown atom %(zz)s"),
    ],
)
def test_bad_value_names_setting_value_and_what_is_accepted(args, expected, cli):
    result = cli(*args, "apps:app")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert expected in lines[0]


def test_bad_value_in_config_file(registry, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "unicorn.conf.py").write_text("workers = 'x'\n")
    with pytest.raises(ConfigError, match="'workers': 'x'"):
        load_config(registry, {}, {}, {})


def test_hook_arity_is_checked(registry, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "unicorn.conf.py").write_text("def pre_fork(server):\n    pass\n")
    with pytest.raises(ConfigError, match=r"'pre_fork'.*cannot be called with 2 argument"):
        load_config(registry, {}, {}, {})


def test_print_config_and_check_config(cli):
    values = printed(cli("--print-config", "-w", "6"))
    assert values["workers"] == "6"
    ok = cli("--check-config", "-k", "fixed_worker:FixedWorker", "apps:app")
    assert ok.returncode == 0, ok.stderr
    bad = cli("--check-config", "-k", "fixed_worker:FixedWorker", "apps:nope")
    assert bad.returncode != 0
    assert "has no attribute 'nope'" in bad.stderr


def test_duplicate_settings_name_both_owners(registry):
    dup = Setting.from_spec({"name": "workers", "section": "X"}, "unicorn-dirty")
    with pytest.raises(ConfigError, match="declared twice: by unicorn-core and by unicorn-dirty"):
        build_registry(extra=[dup])


def test_dict_specs_are_validated(registry):
    with pytest.raises(ConfigError, match="unknown keys"):
        Setting.from_spec({"name": "x", "colour": "red"}, "pkg")
    with pytest.raises(ConfigError, match="unknown type"):
        Setting.from_spec({"name": "x", "type": "complex"}, "pkg")
    spec = Setting.from_spec(
        {
            "name": "fake_count",
            "section": "Fake",
            "cli": ["--fake-count"],
            "type": "int",
            "default": 0,
            "doc": "How many.",
        },
        "fake-dist",
    )
    cfg = Config(build_registry(extra=[spec]))
    cfg.set("fake_count", "3", "test")
    assert cfg.fake_count == 3


def test_umask_and_bool_text(registry):
    cfg = Config(registry)
    cfg.set("umask", "0077", "test")
    assert cfg.umask == 0o077
    cfg.set("umask", "0o22", "test")
    assert cfg.umask == 0o22
    cfg.set("preload_app", "yes", "test")
    assert cfg.preload_app is True
