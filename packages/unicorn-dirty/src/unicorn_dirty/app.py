"""`DirtyApp`, the base class of dirty applications, and how `dirty_apps` entries are loaded."""

from __future__ import annotations

import contextvars
import importlib
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import DirtyActionNotFoundError


class DirtyApp:
    """A stateful application living in dirty workers.

    Subclass it and write actions as public methods. `init()` runs once in each
    worker that loads the app, after fork; `close()` runs when that worker exits.
    A method that returns a generator or async generator streams its chunks.

    Class attributes:

    - ``workers``: load the app in at most this many workers (``None``: all).
    - ``stashes``: stash tables created when the arbiter starts.
    - ``num_cpus``, ``num_gpus``, ``memory`` (bytes), ``resources`` (custom
      Ray resources), ``ray_options`` (any other ``ray.remote`` option): what
      each of the app's actors asks of the cluster with ``dirty_backend =
      "ray"``; the local backend ignores them.
    """

    workers: int | None = None
    stashes: Sequence[str] = ()
    num_cpus: float | None = None
    num_gpus: float | None = None
    memory: int | None = None
    resources: dict | None = None
    ray_options: dict | None = None

    def init(self) -> None:
        """Load models, open pools: called once per worker after fork."""

    def close(self) -> None:
        """Release what `init` took: called once when the worker exits."""

    def __call__(self, action: str, *args: object, **kwargs: object) -> object:
        method = _public_action(self, action)
        if method is None:
            cls = type(self)
            raise DirtyActionNotFoundError(
                f"dirty app {cls.__module__}:{cls.__qualname__} has no action {action!r}"
            )
        return method(*args, **kwargs)


_BASE_NAMES = frozenset(dir(DirtyApp))


def _public_action(app: DirtyApp, action: object):
    if type(action) is not str or not action or action.startswith("_") or action in _BASE_NAMES:
        return None
    method = getattr(app, action, None)
    if method is None or not callable(method) or isinstance(method, type):
        return None
    return method


@dataclass(frozen=True, slots=True)
class AppSpec:
    """One `dirty_apps` entry: ``module:Class`` or ``module:Class:N``."""

    name: str
    cls: type
    limit: int | None

    @property
    def stashes(self) -> Sequence[str]:
        return tuple(getattr(self.cls, "stashes", ()) or ())


def parse_app_path(entry: str) -> tuple[str, int | None]:
    """('module:Class', N or None) from ``module:Class[:N]``."""
    parts = entry.strip().split(":")
    if len(parts) == 3 and parts[2].isdigit():
        n = int(parts[2])
        if n < 1:
            raise ValueError(f"dirty app {entry!r}: worker count must be at least 1")
        return f"{parts[0]}:{parts[1]}", n
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise ValueError(f"dirty app {entry!r} is not of the form module:Class or module:Class:N")
    return entry.strip(), None


def load_app(entry: str) -> AppSpec:
    name, limit = parse_app_path(entry)
    module_name, _, attr = name.partition(":")
    module = importlib.import_module(module_name)
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ImportError(f"dirty app {name!r}: {module_name} has no attribute {attr!r}")
    if not isinstance(obj, type):
        raise TypeError(f"dirty app {name!r} is not a class")
    if limit is None:
        limit = getattr(obj, "workers", None)
        if limit is not None and (type(limit) is not int or limit < 1):
            raise ValueError(f"dirty app {name!r}: workers must be a positive int or None")
    return AppSpec(name, obj, limit)


# -- the call a worker thread is running ----------------------------------------


class CallContext:
    """What an action can learn about the call it serves: `app`, `action`, `cancelled`."""

    __slots__ = ("action", "app", "cancelled")

    def __init__(self, app: str, action: str) -> None:
        self.app = app
        self.action = action
        self.cancelled = False


_current: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar(
    "unicorn_dirty_call", default=None
)


def current_call() -> CallContext | None:
    """The call this thread or task is serving inside a dirty worker, or None."""
    return _current.get()


def is_cancelled() -> bool:
    """True once the caller of the current action went away or cancelled it.

    Long sync actions should check it between steps and return early; streams
    and async actions are stopped for you.
    """
    ctx = _current.get()
    return ctx is not None and ctx.cancelled
