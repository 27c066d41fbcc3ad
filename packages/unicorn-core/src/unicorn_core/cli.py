"""The ``unicorn`` command: ``unicorn [OPTIONS] APP_MODULE``.

The parser is generated from the settings registry, so every installed
package's flags appear in ``--help`` and nothing else does.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from unicorn_core import __version__
from unicorn_core.config import cmd_args_from_environment, format_config, load_config
from unicorn_core.errors import APP_LOAD_ERROR, AppImportError, ConfigError
from unicorn_core.settings import Config, Registry, build_registry

DESCRIPTION = (
    "A pre-fork application server for Python. APP_MODULE is MODULE:ATTR, "
    "MODULE:FACTORY() or MODULE:FACTORY(args); settings can also come from a "
    "config file (-c; ./unicorn.conf.py or ./gunicorn.conf.py by default) and the "
    "UNICORN_CMD_ARGS (or GUNICORN_CMD_ARGS) environment variable."
)


def _help(setting: Any) -> str:
    text = setting.summary
    default = setting.default
    if setting.type == "bool":
        pass
    elif default not in (None, "", [], {}):
        text += f" [{default}]" if not isinstance(default, list) else f" [{','.join(default)}]"
    if setting.env:
        text += f" (env {setting.env})"
    return text.replace("%", "%%")


class _OptionalValue(argparse.Action):
    """A flag whose value may be left out (``--proxy-protocol`` alone means
    ``auto``). argparse gives such a flag the next word even when that word is
    ``APP_MODULE``; a word the setting refuses is taken as ``APP_MODULE`` then,
    so ``--proxy-protocol app:app`` means what it says."""

    def __init__(self, *args: Any, setting: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setting = setting

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        if values is not None and getattr(namespace, "app_module", None) is None:
            try:
                self.setting.validate(values)
            except ConfigError:
                namespace.app_module = values
                values = None
        setattr(namespace, self.dest, self.const if values is None else values)


def build_parser(registry: Registry) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unicorn",
        usage="%(prog)s [OPTIONS] [APP_MODULE]",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v", "--version", action="store_true", help="Print the versions installed and exit."
    )
    parser.add_argument(
        "app_module",
        nargs="?",
        metavar="APP_MODULE",
        default=argparse.SUPPRESS,
        help="The application: MODULE:ATTR, MODULE:FACTORY() or MODULE:FACTORY(literal args).",
    )
    for section, settings in registry.sections().items():
        flagged = [s for s in settings if s.cli]
        if not flagged:
            continue
        group = parser.add_argument_group(section)
        for setting in flagged:
            kwargs: dict[str, Any] = {
                "dest": setting.name,
                "default": argparse.SUPPRESS,
                "help": _help(setting),
            }
            if setting.type == "bool":
                kwargs.update(action="store_const", const=setting.flag_value)
            else:
                kwargs["metavar"] = setting.meta or "VALUE"
                if setting.const is not None:
                    kwargs.update(
                        nargs="?", const=setting.const, action=_OptionalValue, setting=setting
                    )
                if setting.repeatable:
                    kwargs["action"] = "append"
                elif setting.type == "choice":
                    kwargs["metavar"] = "{" + ",".join(map(str, setting.choices)) + "}"
            group.add_argument(*setting.cli, **kwargs)
    return parser


def version_text() -> str:
    lines = [f"unicorn-core {__version__}"]
    seen = {"unicorn-core"}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if (name == "unicorn" or name.startswith("unicorn-")) and name not in seen:
            seen.add(name)
            lines.append(f"{name} {dist.version}")
    return "\n".join(sorted(lines[:1]) + sorted(lines[1:]))


def fail(message: object, code: int = 1) -> NoReturn:
    """One line on stderr naming the cause, then exit."""
    print(f"Error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def check_config(cfg: Config) -> int:
    """``--check-config``: load everything a start would, serve nothing."""
    from unicorn_core.app_loading import AppLoader, prepare_import_path
    from unicorn_core.logs import make_logger
    from unicorn_core.tls import make_ssl_context
    from unicorn_core.workers import load_worker_class, resolve_worker_name

    for level, message in cfg.notes:
        if level >= logging.WARNING:
            print(f"Warning: {message}", file=sys.stderr)
    try:
        name, note = resolve_worker_name(cfg.worker_class)
        if note:
            print(note, file=sys.stderr)
        load_worker_class(name)
        make_logger(cfg)
        make_ssl_context(cfg)
        if not cfg.app_uri:
            raise ConfigError("no APP_MODULE given")
        prepare_import_path(cfg)
        AppLoader(cfg).load()
    except AppImportError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return APP_LOAD_ERROR
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print("Configuration OK", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``unicorn`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    start_cwd = os.getcwd()  # USR2 re-executes from here, before any --chdir
    try:
        registry = build_registry()
    except ConfigError as exc:
        fail(exc)
    parser = build_parser(registry)
    args = vars(parser.parse_args(argv))
    if args.pop("version", False):
        print(version_text())
        return
    env_name, env_text = cmd_args_from_environment(os.environ)
    env_args: dict[str, Any] = {}
    if env_text.strip():
        env_args = vars(parser.parse_args(shlex.split(env_text)))
        env_args.pop("version", None)

    try:
        cfg = load_config(registry, args, env_args, os.environ, env_name)
    except ConfigError as exc:
        fail(exc)
    config_path = cfg.config_path

    def reload_config() -> Config:
        cli = dict(args)
        if config_path:
            cli["config"] = config_path
        return load_config(registry, cli, env_args, os.environ, env_name)

    if cfg.print_config:
        print(format_config(cfg))
        return
    if cfg.check_config:
        sys.exit(check_config(cfg))
    if not cfg.app_uri:
        parser.print_usage(sys.stderr)
        fail("no APP_MODULE given (or wsgi_app in the config file)", 2)
    run(cfg, reload_config, argv, start_cwd)


def run(
    cfg: Config,
    reload_config: Any = None,
    argv: Sequence[str] = (),
    start_cwd: str | None = None,
    app_loader: Any = None,
    reexec_argv: Sequence[str] | None = None,
) -> None:
    """Start the arbiter for ``cfg``; exits the process when the server stops.

    ``app_loader`` replaces the import of ``cfg.app_uri`` (embedding, see
    ``unicorn_core.application``); ``reexec_argv`` is what USR2 executes."""
    from unicorn_core.app_loading import prepare_import_path
    from unicorn_core.arbiter import Arbiter
    from unicorn_core.logs import make_logger
    from unicorn_core.tls import make_ssl_context
    from unicorn_core.tracing import install_spew

    for key, value in cfg.env.items():
        os.environ[key] = value
    try:
        prepare_import_path(cfg)
        log = make_logger(cfg)
        make_ssl_context(cfg)  # a bad certificate stops us here, not in every worker
        arbiter = Arbiter(
            cfg,
            log,
            reload_config=reload_config,
            start_args=list(argv),
            start_cwd=start_cwd,
            app_loader=app_loader,
            reexec_argv=reexec_argv,
        )
        if cfg.preload_app:
            arbiter.app_loader.preload()
    except AppImportError as exc:
        fail(f"app failed to load: {exc}", APP_LOAD_ERROR)
    except ConfigError as exc:
        fail(exc)
    if cfg.spew:
        install_spew()
    arbiter.run()
