"""Finding the application: ``APP_MODULE`` parsing, import, preload.

``module:attr``, ``module:attr.sub``, ``module:factory()`` and
``module:factory(1, name="x")`` are accepted. A call is parsed with ``ast``
and only literal arguments are allowed, so an app path cannot run arbitrary
code. Without ``:attr`` the attribute ``application`` is used, as gunicorn does.
"""

from __future__ import annotations

import ast
import importlib
import os
import sys
import traceback
from dataclasses import dataclass
from typing import Any

from unicorn_core.errors import AppImportError, ConfigError
from unicorn_core.settings import Setting

SECTION = "Application"

SETTINGS = (
    Setting(
        name="preload_app",
        section=SECTION,
        cli=("--preload",),
        type="bool",
        default=False,
        doc="Load the application in the master before forking workers. Workers "
        "then share its memory pages and start faster, and an import error stops "
        "the server at once; but HUP cannot reload the application's code and "
        "`reload` has no effect on it.",
    ),
    Setting(
        name="pythonpath",
        section=SECTION,
        cli=("--pythonpath",),
        meta="STRING",
        doc="Comma-separated directories put in front of `sys.path` before the "
        "application is imported, e.g. `/home/app/src,/home/app/lib`.",
    ),
)


@dataclass(frozen=True, slots=True)
class AppSpec:
    """A parsed ``APP_MODULE``: the module, the attribute path, the call (if any)."""

    module: str
    attrs: tuple[str, ...]
    call: tuple[tuple[Any, ...], dict[str, Any]] | None = None

    def __str__(self) -> str:
        text = f"{self.module}:{'.'.join(self.attrs)}"
        if self.call is not None:
            args = [repr(a) for a in self.call[0]]
            args += [f"{k}={v!r}" for k, v in self.call[1].items()]
            text += f"({', '.join(args)})"
        return text


def parse_app_uri(uri: str) -> AppSpec:
    """Parse ``module:expression``; raises AppImportError saying what is wrong."""
    module, sep, expression = uri.strip().partition(":")
    if not module or not all(part.isidentifier() for part in module.split(".")):
        raise AppImportError(f"{uri!r} is not a valid application path (MODULE:ATTR)")
    expression = expression.strip() if sep else "application"
    if not expression:
        raise AppImportError(f"{uri!r} names no attribute after ':'")
    try:
        node = ast.parse(expression, mode="eval").body
    except SyntaxError:
        raise AppImportError(
            f"{expression!r} in {uri!r} is not an attribute name or function call"
        ) from None
    call = None
    if isinstance(node, ast.Call):
        try:
            args = tuple(ast.literal_eval(a) for a in node.args)
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
        except ValueError:
            raise AppImportError(
                f"{expression!r} in {uri!r}: factory arguments must be literals"
            ) from None
        if any(k is None for k in kwargs):
            raise AppImportError(f"{expression!r} in {uri!r}: **kwargs is not supported")
        call = (args, kwargs)  # type: ignore[assignment]
        node = node.func
    attrs: list[str] = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise AppImportError(f"{expression!r} in {uri!r} is not an attribute name or function call")
    attrs.append(node.id)
    return AppSpec(module, tuple(reversed(attrs)), call)


def import_app(uri: str) -> Any:
    """Import and return the application ``uri`` names (calling a factory)."""
    spec = parse_app_uri(uri)
    try:
        module = importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        if exc.name and spec.module.startswith(exc.name):
            raise AppImportError(f"no module named {exc.name!r} (from {uri!r})") from None
        raise AppImportError(
            f"importing {spec.module!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    except SyntaxError as exc:
        raise AppImportError(
            f"importing {spec.module!r} failed: SyntaxError: {exc.msg} "
            f"({exc.filename}:{exc.lineno})"
        ) from exc
    except Exception as exc:
        last = traceback.extract_tb(exc.__traceback__)[-1]
        raise AppImportError(
            f"importing {spec.module!r} failed: {type(exc).__name__}: {exc} "
            f"({last.filename}:{last.lineno})"
        ) from exc
    obj: Any = module
    for index, attr in enumerate(spec.attrs):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            where = ".".join((spec.module, *spec.attrs[:index]))
            raise AppImportError(f"{where!r} has no attribute {attr!r} (from {uri!r})") from None
    if spec.call is not None:
        if not callable(obj):
            raise AppImportError(f"{spec.module}:{'.'.join(spec.attrs)} is not callable")
        args, kwargs = spec.call
        try:
            obj = obj(*args, **kwargs)
        except TypeError as exc:
            raise AppImportError(f"calling the factory in {uri!r} failed: {exc}") from exc
    if obj is None:
        raise AppImportError(f"{uri!r} is None; a factory must return the application")
    if not callable(obj):
        raise AppImportError(f"{uri!r} is not callable (got {type(obj).__name__})")
    return obj


def prepare_import_path(cfg: Any) -> None:
    """``chdir`` and ``pythonpath``: the directories the import looks in."""
    if cfg.chdir:
        try:
            os.chdir(cfg.chdir)
        except OSError as exc:
            raise ConfigError(f"cannot chdir to {cfg.chdir!r}: {exc.strerror}") from None
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    if cfg.pythonpath:
        for path in reversed([p.strip() for p in cfg.pythonpath.split(",") if p.strip()]):
            path = os.path.abspath(path)
            if path not in sys.path:
                sys.path.insert(0, path)


class AppLoader:
    """What workers call to get the application (``worker.app_loader.load()``).

    With ``preload_app`` the master loads it once before forking and every
    worker reuses that object; otherwise each worker imports it after fork.
    """

    def __init__(self, cfg: Any, uri: str | None = None) -> None:
        self.cfg = cfg
        self.uri = uri if uri is not None else cfg.app_uri
        self._app: Any = None

    @property
    def loaded(self) -> bool:
        return self._app is not None

    def preload(self) -> Any:
        self._app = self.load()
        return self._app

    def load(self) -> Any:
        if self._app is not None:
            return self._app
        if getattr(self.cfg, "paste", None):
            from unicorn_core.paste_deploy import load_paste_app

            return load_paste_app(self.cfg)
        if not self.uri:
            raise AppImportError("no application given (APP_MODULE or wsgi_app)")
        return import_app(self.uri)

    def reload_config(self, cfg: Any) -> None:
        """After HUP: forget a preloaded app so it is imported again."""
        self.cfg = cfg
        self.uri = cfg.app_uri or self.uri
        self._app = None

    def __str__(self) -> str:
        return str(self.uri)
