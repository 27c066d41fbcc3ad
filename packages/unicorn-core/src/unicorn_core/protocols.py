"""The ``unicorn.protocols`` seam: wire protocol name -> connection factory.

Core never imports a protocol. ``unicorn-http`` registers ``http`` and
``unicorn-uwsgi`` registers ``uwsgi``; a worker asks :func:`load_protocol`
once when it starts for the factory the ``protocol`` setting names, and calls
it for each accepted socket (see ``unicorn_http.connection`` for what the
factory returns).
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

from unicorn_core.errors import ConfigError

PROTOCOLS_GROUP = "unicorn.protocols"

#: where protocols that are not installed come from
PROTOCOL_EXTRAS = {
    "http": "unicorn",
    "uwsgi": "unicorn[uwsgi]",
}


def installed_protocols() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=PROTOCOLS_GROUP)}


def protocol_hint(name: str) -> str:
    """Why ``name`` cannot be used, and what to do about it."""
    have = ", ".join(sorted(installed_protocols())) or "none"
    message = f"unknown protocol {name!r} (installed: {have})"
    extra = PROTOCOL_EXTRAS.get(name)
    if extra is not None:
        message += f'; install it with: pip install "{extra}"'
    return message


def load_protocol(name: str) -> Any:
    """The connection factory registered as ``name``."""
    entry = installed_protocols().get(name)
    if entry is None:
        raise ConfigError(protocol_hint(name))
    try:
        return entry.load()
    except Exception as exc:
        raise ConfigError(
            f"protocol {name!r} failed to import: {type(exc).__name__}: {exc}"
        ) from None
