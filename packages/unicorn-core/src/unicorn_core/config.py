"""Where settings come from, in gunicorn's order of precedence.

defaults < environment defaults (``WEB_CONCURRENCY``, ``PORT`` ...) < config
file (``-c unicorn.conf.py`` or ``-c python:module``; ``./unicorn.conf.py``
when present, else ``./gunicorn.conf.py``) < ``UNICORN_CMD_ARGS`` (or
``GUNICORN_CMD_ARGS`` when it is unset) < the command line.

Nothing in a config file is ignored silently: a gunicorn setting unicorn does
not provide and a name that is no setting at all (with the closest setting
name) each leave a warning in ``cfg.notes``, which the arbiter logs and
``--check-config`` prints.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import os
import runpy
from collections.abc import Mapping
from typing import Any

from unicorn_core.errors import ConfigError
from unicorn_core.gunicorn_settings import GUNICORN_SETTINGS
from unicorn_core.paste_deploy import apply_paste
from unicorn_core.settings import Config, Registry, Setting

DEFAULT_CONFIG_FILE = "./unicorn.conf.py"
#: read when there is no ./unicorn.conf.py, so a gunicorn project starts as it did
GUNICORN_CONFIG_FILE = "./gunicorn.conf.py"
CMD_ARGS_ENV = "UNICORN_CMD_ARGS"
GUNICORN_CMD_ARGS_ENV = "GUNICORN_CMD_ARGS"

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
        "it exists, else `./gunicorn.conf.py`; the start-up log names the file "
        "used. Values from the command line and `UNICORN_CMD_ARGS` (or "
        "`GUNICORN_CMD_ARGS` when that is unset) override it. A name in the file "
        "that is no unicorn setting is logged as a warning, with the closest "
        "setting name.",
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
    """Set every setting the file names; warn about every other public name.

    Modules (``import multiprocessing``) are skipped; functions and classes
    only when no setting name is close to theirs, as they are usually helpers.
    """
    values = _file_values(path)
    source = f"config file {path}"
    for key, value in values.items():
        if key.startswith("_"):
            continue
        if key in cfg.registry:
            cfg.set(key, value, source)
            continue
        note = unknown_setting_note(cfg.registry, key, value)
        if note:
            cfg.notes.append((logging.WARNING, f"{path}: {note}"))


def unknown_setting_note(registry: Registry, name: str, value: Any) -> str | None:
    """What to say about a name in a config file that is not a setting."""
    if inspect.ismodule(value):
        return None
    if name in GUNICORN_SETTINGS:
        return (
            f"{name!r} is a gunicorn setting unicorn does not support; it is ignored "
            "(docs/migrating-from-gunicorn.md lists the differences)"
        )
    known = [s.name for s in registry]
    match = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.75)
    if not match and (inspect.isfunction(value) or inspect.isclass(value)):
        return None
    hint = f"; did you mean {match[0]!r}?" if match else ""
    return f"{name!r} is not a setting; it is ignored{hint}"


def cmd_args_from_environment(environ: Mapping[str, str]) -> tuple[str, str]:
    """(variable name, text) of the extra command line from the environment:
    ``UNICORN_CMD_ARGS``, or ``GUNICORN_CMD_ARGS`` when the former is unset."""
    for name in (CMD_ARGS_ENV, GUNICORN_CMD_ARGS_ENV):
        text = environ.get(name)
        if text is not None:
            return name, text
    return CMD_ARGS_ENV, ""


def default_config_file() -> str | None:
    """``./unicorn.conf.py`` when it exists, else ``./gunicorn.conf.py``, else None."""
    for path in (DEFAULT_CONFIG_FILE, GUNICORN_CONFIG_FILE):
        if os.path.exists(path):
            return path
    return None


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
    env_cli_name: str = CMD_ARGS_ENV,
) -> Config:
    """Build the final configuration from every source, lowest precedence first.

    ``cli`` and ``env_cli`` are the options given on the command line and in
    the ``env_cli_name`` variable (``UNICORN_CMD_ARGS`` or
    ``GUNICORN_CMD_ARGS``), keyed by setting name (plus ``app_module``).
    """
    environ = os.environ if environ is None else environ
    env_cli = env_cli or {}
    cfg = Config(registry)
    apply_environment(cfg, environ)

    explicit = cli.get("config") or env_cli.get("config")
    path = explicit or default_config_file()
    if path:
        if not path.startswith("python:"):
            path = os.path.abspath(path)
        apply_config_file(cfg, path)
        cfg.config_path = path
        cfg.notes.insert(0, (logging.INFO, f"Config file: {path}"))

    if env_cli:
        cfg.notes.append((logging.INFO, f"Settings from {env_cli_name}"))
    for source, values in ((env_cli_name, env_cli), ("command line", cli)):
        for key, value in values.items():
            if key in registry:
                cfg.set(key, value, source)
    cfg.app_uri = cli.get("app_module") or env_cli.get("app_module") or cfg.wsgi_app
    apply_paste(cfg)  # --paste names the application instead
    return cfg


def log_notes(log: Any, cfg: Config) -> None:
    """Log what loading the configuration noticed (files read, names ignored)."""
    for level, message in cfg.notes:
        log.log(level, "%s", message)


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
