"""Exceptions and the exit codes that carry their meaning to the arbiter."""

from __future__ import annotations

#: a worker exits with this code when it could not boot (bad worker, bad hook)
WORKER_BOOT_ERROR = 3
#: a worker exits with this code when the application failed to import
APP_LOAD_ERROR = 4


class UnicornError(Exception):
    """Base class of unicorn_core's errors."""


class ConfigError(UnicornError):
    """A setting, config file or command line is wrong; the message says how."""


class AppImportError(UnicornError):
    """The application named by APP_MODULE could not be loaded."""


class WorkerBootError(UnicornError):
    """A worker could not start serving, for a reason found after ``init_process``
    handed over to ``run()`` (an ASGI lifespan startup that failed, say).

    Raise it from ``run()`` before the worker serves anything: the arbiter
    treats it like any boot failure. The message reaches the master through the
    heartbeat's note, the server halts with ``WORKER_BOOT_ERROR`` (3), and the
    reason is printed as ``Worker failed to boot: <message>``, without a
    traceback. Any other exception from ``run()`` counts as a crash of a booted
    worker, and the worker is replaced.
    """


class HaltServer(UnicornError):
    """Raised inside the arbiter to stop it with a reason and an exit status."""

    def __init__(self, reason: str, exit_status: int = 1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_status = exit_status
