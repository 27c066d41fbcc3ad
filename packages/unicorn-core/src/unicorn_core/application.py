"""Running unicorn from Python: :class:`BaseApplication`, shaped as gunicorn's
``gunicorn.app.base.BaseApplication``, so a program that embeds gunicorn moves
over by changing its import::

    from unicorn_core.application import BaseApplication

    class StandaloneApplication(BaseApplication):
        def __init__(self, app, options=None):
            self.options = options or {}
            self.application = app
            super().__init__()

        def load_config(self):
            for key, value in self.options.items():
                if key in self.cfg.settings and value is not None:
                    self.cfg.set(key.lower(), value)

        def load(self):
            return self.application

    StandaloneApplication(app, {"bind": "127.0.0.1:8080", "workers": 4}).run()

``load_config()`` fills ``self.cfg`` (it starts at the defaults); ``load()``
returns the application, called in each worker after fork (or once in the
master with ``preload_app``). HUP calls ``load_config()`` again on a fresh
configuration. :class:`Application` adds gunicorn's command-line handling:
its ``load_config()`` reads the command line, the config file and
``UNICORN_CMD_ARGS`` like ``unicorn`` does, and a subclass implements
``init(parser, opts, args)`` (settings of its own, as a dict) and ``load()``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, NoReturn

from unicorn_core.app_loading import AppLoader
from unicorn_core.config import apply_config_file, cmd_args_from_environment, format_config
from unicorn_core.errors import AppImportError, ConfigError
from unicorn_core.settings import Config, build_registry


def _fail(message: object) -> NoReturn:
    print(f"Error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


class _EmbeddedLoader(AppLoader):
    """Workers get the application from ``BaseApplication.load()``."""

    def __init__(self, cfg: Any, application: BaseApplication) -> None:
        super().__init__(cfg, uri="")
        self.application = application

    def load(self) -> Any:
        if self._app is not None:
            return self._app
        try:
            app = self.application.load()
        except AppImportError:
            raise
        except Exception as exc:
            raise AppImportError(
                f"{type(self.application).__name__}.load() failed: {type(exc).__name__}: {exc}"
            ) from exc
        if not callable(app):
            raise AppImportError(
                f"{type(self.application).__name__}.load() returned {app!r}, not an application"
            )
        return app

    def reload_config(self, cfg: Any) -> None:
        self.cfg = cfg
        self._app = None

    def __str__(self) -> str:
        return self.cfg.default_proc_name or type(self.application).__name__


class BaseApplication:
    """Subclass and implement :meth:`load_config` and :meth:`load`; call :meth:`run`."""

    def __init__(self, usage: str | None = None, prog: str | None = None) -> None:
        self.usage = usage
        self.prog = prog
        self.cfg: Config = None  # type: ignore[assignment]
        self.callable: Any = None
        self.logger: Any = None
        self.do_load_config()

    # --- configuration --------------------------------------------------------------

    def do_load_config(self) -> None:
        """Defaults, then :meth:`load_config`; a bad value ends the program with
        one line naming it (exit status 1), as gunicorn does."""
        try:
            self.load_default_config()
            self.load_config()
        except ConfigError as exc:
            _fail(exc)

    def load_default_config(self) -> None:
        self.cfg = Config(build_registry())

    def load_config(self) -> None:
        """Set ``self.cfg`` values (``self.cfg.set(name, value)``). Override."""
        raise NotImplementedError

    def load_config_from_file(self, filename: str) -> None:
        """Apply a config file (a path, or ``python:MODULE``) to ``self.cfg``."""
        path = filename if filename.startswith("python:") else os.path.abspath(filename)
        apply_config_file(self.cfg, path)
        self.cfg.config_path = path

    load_config_from_module_name_or_filename = load_config_from_file

    def init(self, parser: Any, opts: Any, args: Any) -> dict[str, Any] | None:
        raise NotImplementedError

    def load(self) -> Any:
        """Return the WSGI or ASGI application. Override."""
        raise NotImplementedError

    def reload(self) -> None:
        self.do_load_config()

    def wsgi(self) -> Any:
        if self.callable is None:
            self.callable = self.load()
        return self.callable

    # --- running ------------------------------------------------------------------------

    def _reload_config(self) -> Config:
        self.load_default_config()
        self.load_config()
        return self.cfg

    def run(self) -> None:
        """Serve until stopped; exits the process. ``print_config`` and
        ``check_config`` print or check instead, as with the ``unicorn`` command."""
        from unicorn_core.cli import run

        cfg = self.cfg
        if cfg.print_config:
            print(format_config(cfg))
            sys.exit(0)
        loader = _EmbeddedLoader(cfg, self)
        if cfg.check_config:
            try:
                loader.load()
            except AppImportError as exc:
                _fail(exc)
            print("Configuration OK", file=sys.stderr)
            sys.exit(0)
        run(
            cfg,
            reload_config=self._reload_config,
            start_cwd=os.getcwd(),
            app_loader=loader,
            reexec_argv=[sys.executable, *sys.argv],
        )


class Application(BaseApplication):
    """A :class:`BaseApplication` that reads unicorn's command line, config file
    and ``UNICORN_CMD_ARGS``; subclasses implement ``init`` and ``load``."""

    def init(self, parser: Any, opts: Any, args: Any) -> dict[str, Any] | None:
        return None

    def load_config(self) -> None:
        from unicorn_core.cli import build_parser
        from unicorn_core.config import load_config

        registry = self.cfg.registry
        parser = build_parser(registry)
        if self.prog:
            parser.prog = self.prog
        if self.usage:
            parser.usage = self.usage
        opts = parser.parse_args(sys.argv[1:])
        cli = {k: v for k, v in vars(opts).items() if k != "version"}
        env_name, env_text = cmd_args_from_environment(os.environ)
        env_cli: dict[str, Any] = {}
        if env_text.strip():
            import shlex

            env_cli = vars(parser.parse_args(shlex.split(env_text)))
            env_cli.pop("version", None)
        args = [cli["app_module"]] if "app_module" in cli else []
        own = self.init(parser, argparse.Namespace(**cli), args) or {}
        cfg = load_config(registry, cli, env_cli, os.environ, env_name)
        for key, value in own.items():  # below the file, the environment and the flags
            if key.lower() not in cfg.sources:
                cfg.set(key.lower(), value, f"{type(self).__name__}.init")
        self.cfg = cfg
