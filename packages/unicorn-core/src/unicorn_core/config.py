"""Where settings come from, in gunicorn's order of precedence.

defaults < environment defaults (``WEB_CONCURRENCY``, ``PORT`` ...) < config
file (``-c unicorn.conf.py`` or ``-c python:module``; ``./unicorn.conf.py``
when present) < ``UNICORN_CMD_ARGS`` < the command line.
"""

from __future__ import annotations

import importlib
import os
import runpy
from collections.abc import Mapping
from typing import Any

from unicorn_core.errors import ConfigError
from unicorn_core.settings import Config, Registry, Setting

DEFAULT_CONFIG_FILE = "./unicorn.conf.py"
CMD_ARGS_ENV = "UNICORN_CMD_ARGS"

SECTION = "Config File"

SETTINGS = (
    Setting(
        name="config",
        section=SECTION,
        cli=("-c", "--config"),
        meta="CONFIG",
        default=DEFAULT_CONFIG_FILE,
        doc="The configuration file to load: a path to a Python file, or "
        "`python:MODULE_NAME` to import a module. Every module-level name that "
        "matches a setting sets it. By default `./unicorn.conf.py` is read when "
        "it exists; values from the command line and `UNICORN_CMD_ARGS` override it.",
    ),
    Setting(
        name="wsgi_app",
        section=SECTION,
        meta="STRING",
        doc="The application to serve, as `MODULE:ATTR`, `MODULE:FACTORY()` or "
        "`MODULE:FACTORY(args)`, for config files that name it instead of the "
        "command line. A positional `APP_MODULE` on the command line wins.",
    ),
    Setting(
        name="check_config",
        section=SECTION,
        cli=("--check-config",),
        type="bool",
        default=False,
        doc="Load the configuration, the worker class and the application, report "
        "the first problem found, and exit: 0 when everything loads, 1 otherwise.",
    ),
    Setting(
        name="print_config",
        section=SECTION,
        cli=("--print-config",),
        type="bool",
        default=False,
        doc="Print every setting with its final value, one per line as `name = value`, and exit.",
    ),
)


def _file_values(path: str) -> Mapping[str, Any]:
    if path.startswith("python:"):
        module_name = path[len("python:") :]
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise ConfigError(
                f"config module {module_name!r} failed to import: {type(exc).__name__}: {exc}"
            ) from None
        return vars(module)
    if not os.path.exists(path):
        raise ConfigError(f"config file {path!r} not found")
    try:
        return runpy.run_path(path, run_name="__config__")
    except SystemExit:
        raise
    except BaseException as exc:
        raise ConfigError(
            f"config file {path!r} failed: {type(exc).__name__}: {exc}".replace("\n", " ")
        ) from None


def apply_config_file(cfg: Config, path: str) -> None:
    """Set every setting the file names; other names (imports, helpers) are ignored."""
    values = _file_values(path)
    source = f"config file {path}"
    for key, value in values.items():
        if key.startswith("_") or key not in cfg.registry:
            continue
        cfg.set(key, value, source)


def apply_environment(cfg: Config, environ: Mapping[str, str]) -> None:
    """Environment variables that settings name as their default (``WEB_CONCURRENCY``)."""
    for setting in cfg.registry:
        if setting.env and environ.get(setting.env):
            text = environ[setting.env]
            value = setting.from_env(text) if setting.from_env else text
            cfg.set(setting.name, value, f"environment {setting.env}")


def load_config(
    registry: Registry,
    cli: Mapping[str, Any],
    env_cli: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the final configuration from every source, lowest precedence first.

    ``cli`` and ``env_cli`` are the options given on the command line and in
    ``UNICORN_CMD_ARGS``, keyed by setting name (plus ``app_module``).
    """
    environ = os.environ if environ is None else environ
    env_cli = env_cli or {}
    cfg = Config(registry)
    apply_environment(cfg, environ)

    explicit = cli.get("config") or env_cli.get("config")
    path = explicit or DEFAULT_CONFIG_FILE
    if explicit or os.path.exists(path):
        if not path.startswith("python:"):
            path = os.path.abspath(path)
        apply_config_file(cfg, path)
        cfg.config_path = path

    for source, values in ((CMD_ARGS_ENV, env_cli), ("command line", cli)):
        for key, value in values.items():
            if key in registry:
                cfg.set(key, value, source)
    cfg.app_uri = cli.get("app_module") or env_cli.get("app_module") or cfg.wsgi_app
    return cfg


def format_config(cfg: Config) -> str:
    """``--print-config``: one ``name = value`` line per setting, sorted."""
    names = sorted(name for name, _ in cfg.items())
    width = max(len(n) for n in names)
    lines = []
    for name in names:
        value = cfg.get(name)
        if callable(value):
            shown = f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', value)}"
        else:
            shown = repr(value)
        lines.append(f"{name:<{width}} = {shown}")
    return "\n".join(lines)
