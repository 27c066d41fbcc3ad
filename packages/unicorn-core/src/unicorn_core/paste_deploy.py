"""Paste Deploy applications: ``unicorn --paste development.ini[#name]``.

The ini file's ``[app:...]`` (or ``[pipeline:...]``, ``[composite:...]``)
section is loaded with ``paste.deploy.loadapp``, with ``--paste-global
KEY=VALUE`` pairs as its global configuration. As in gunicorn, the file
also names the processes (``default_proc_name``) and, when it has a
``[loggers]`` section, becomes the ``logconfig`` unless one is set.
Paste Deploy is not a dependency: ``pip install PasteDeploy`` to use this.
"""

from __future__ import annotations

import configparser
import os
import re
from typing import Any

from unicorn_core.errors import AppImportError, ConfigError
from unicorn_core.settings import Setting

SECTION = "Application"


def _global_conf(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise TypeError("")
    for item in value:
        if not isinstance(item, str) or not re.search(r"(?<!\\)=", item):
            raise ValueError(f"{item!r} is not KEY=VALUE")
    return list(value)


SETTINGS = (
    Setting(
        name="paste",
        section=SECTION,
        cli=("--paste", "--paster"),
        meta="STRING",
        doc="Load the application from a Paste Deploy ini file, optionally with "
        "`#name` for the app section (`production.ini#admin`); it takes the place "
        "of `APP_MODULE`. The file's `[loggers]` section, if any, configures "
        "logging unless `logconfig` is set. Needs `pip install PasteDeploy`.",
    ),
    Setting(
        name="raw_paste_global_conf",
        section=SECTION,
        cli=("--paste-global",),
        type=_global_conf,
        repeat=True,
        meta="CONF",
        default=[],
        doc="A Paste Deploy global configuration variable as `KEY=VALUE` (write "
        "`\\=` for an `=` in the key); repeat the flag for several. Passed to "
        "the ini file as its `global_conf`.",
    ),
)


def paste_file(uri: str) -> str:
    """The ini path in ``uri`` (``file.ini#name`` -> absolute ``file.ini``)."""
    return os.path.abspath(uri.partition("#")[0])


def apply_paste(cfg: Any) -> None:
    """After the configuration is read: the ini names the app, the processes and
    possibly the logging. Raises ConfigError when the file does not exist."""
    if not cfg.paste:
        return
    path = paste_file(cfg.paste)
    if not os.path.exists(path):
        raise ConfigError(f"paste: {path!r} not found")
    cfg.app_uri = path + ("#" + cfg.paste.partition("#")[2] if "#" in cfg.paste else "")
    if not cfg.default_proc_name:
        cfg.set("default_proc_name", path, "paste")
    if not cfg.logconfig and not cfg.logconfig_dict and not cfg.logconfig_json:
        parser = configparser.ConfigParser()
        try:
            parser.read([path])
        except configparser.Error as exc:
            raise ConfigError(f"paste: {path!r} is not an ini file: {exc}") from None
        if parser.has_section("loggers"):
            cfg.set("logconfig", path, "paste")


def global_conf(cfg: Any) -> dict[str, str]:
    """``raw_paste_global_conf`` as a dict (``\\=`` escapes an ``=``)."""
    out = {}
    for item in cfg.raw_paste_global_conf or ():
        key, value = re.split(r"(?<!\\)=", item, maxsplit=1)
        out[key.replace("\\=", "=")] = value.replace("\\=", "=")
    return out


def load_paste_app(cfg: Any) -> Any:
    """The WSGI application the ini file describes."""
    try:
        from paste.deploy import loadapp
    except ImportError:
        raise AppImportError(
            "--paste needs Paste Deploy, which is not installed: pip install PasteDeploy"
        ) from None
    path = paste_file(cfg.paste)
    name = cfg.paste.partition("#")[2] or None
    try:
        return loadapp(
            "config:" + path,
            name=name,
            relative_to=os.getcwd(),
            global_conf=global_conf(cfg),
        )
    except Exception as exc:
        raise AppImportError(
            f"paste: loading {cfg.paste!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
