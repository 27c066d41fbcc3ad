"""unicorn's pre-fork arbiter, settings registry and command line.

The public names below are imported lazily (PEP 562), so a worker package
importing ``unicorn_core.workers`` does not pay for the arbiter or the CLI.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "Worker": "unicorn_core.workers",
    "load_worker_class": "unicorn_core.workers",
    "Setting": "unicorn_core.settings",
    "Config": "unicorn_core.settings",
    "build_registry": "unicorn_core.settings",
    "load_config": "unicorn_core.config",
    "Arbiter": "unicorn_core.arbiter",
    "AppLoader": "unicorn_core.app_loading",
    "import_app": "unicorn_core.app_loading",
    "Listener": "unicorn_core.sockets",
    "make_ssl_context": "unicorn_core.tls",
    "wrap_socket": "unicorn_core.tls",
    "Logger": "unicorn_core.logs",
    "ConfigError": "unicorn_core.errors",
    "AppImportError": "unicorn_core.errors",
    "WORKER_BOOT_ERROR": "unicorn_core.errors",
    "APP_LOAD_ERROR": "unicorn_core.errors",
    "WorkerBootError": "unicorn_core.errors",
    "main": "unicorn_core.cli",
    "BaseApplication": "unicorn_core.application",
    "Application": "unicorn_core.application",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'unicorn_core' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
