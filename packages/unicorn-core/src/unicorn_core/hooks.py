"""Server hooks: callables a config file sets to run code at points of the
server's life. Each is a setting of type ``callable`` whose arity is checked
when the configuration loads, so a hook with the wrong signature is refused
before anything starts. See docs/hooks.md.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from unicorn_core.settings import Setting, _check_arity, import_object

SECTION = "Server Hooks"


def _hook(name: str, params: str, doc: str) -> Setting:
    arity = len([p for p in params.split(",") if p.strip()])

    # each default is its own function so ``is_default_hook`` can tell them apart
    def default(*args: Any) -> None:
        return None

    default.__name__ = default.__qualname__ = f"default_{name}"
    default.__unicorn_default_hook__ = True  # type: ignore[attr-defined]
    return Setting(
        name=name,
        section=SECTION,
        type="callable",
        arity=arity,
        default=default,
        doc=f"`{name}({params})`: {doc}",
    )


def _post_request(value: Any) -> Any:
    """``post_request(worker, req, environ, resp)``; as in gunicorn a hook taking
    only ``(worker, req, environ)`` or ``(worker, req)`` is accepted and called
    with the arguments it takes."""
    if isinstance(value, str):
        value = import_object(value)
    if not callable(value):
        raise TypeError("")
    if is_default_hook(value) or _check_arity(value, 4):
        return value
    arity = next((n for n in (3, 2) if _check_arity(value, n)), None)
    if arity is None:
        raise ValueError(
            "post_request takes (worker, req, environ, resp), (worker, req, environ) "
            "or (worker, req)"
        )
    hook = value

    @functools.wraps(hook)
    def call(worker: Any, req: Any, environ: Any, resp: Any) -> Any:
        return hook(*(worker, req, environ)[:arity])

    return call


def is_default_hook(func: Any) -> bool:
    """True when a hook was left at its no-op default (callers may skip it)."""
    return bool(getattr(func, "__unicorn_default_hook__", False))


SETTINGS = (
    _hook("on_starting", "server", "called in the master before it binds or forks anything."),
    _hook(
        "on_reload",
        "server",
        "called in the master on SIGHUP, before the configuration is read again.",
    ),
    _hook(
        "when_ready",
        "server",
        "called in the master once the listeners are bound, before the first workers fork.",
    ),
    _hook("pre_fork", "server, worker", "called in the master just before a worker forks."),
    _hook(
        "post_fork",
        "server, worker",
        "called in the new worker right after the fork, before it initialises.",
    ),
    _hook(
        "post_worker_init",
        "worker",
        "called in the worker once it has loaded the application, before it serves.",
    ),
    _hook(
        "worker_int",
        "worker",
        "called in the worker when it receives SIGINT or SIGQUIT (fast shutdown).",
    ),
    _hook(
        "worker_abort",
        "worker",
        "called in the worker when it receives SIGABRT, which the master sends "
        "to a worker that missed its heartbeat for `timeout` seconds.",
    ),
    _hook(
        "pre_exec",
        "server",
        "called in the new master's process just before it execs itself on SIGUSR2.",
    ),
    _hook(
        "pre_request",
        "worker, req",
        "called in the worker before the application handles a request.",
    ),
    dataclasses.replace(
        _hook(
            "post_request",
            "worker, req, environ, resp",
            "called in the worker after the application has handled a request. "
            "A hook taking `(worker, req, environ)` or `(worker, req)` is called "
            "with those, as in gunicorn.",
        ),
        type=_post_request,
        arity=None,
    ),
    _hook(
        "child_exit",
        "server, worker",
        "called in the master once a worker has exited and been reaped.",
    ),
    _hook(
        "worker_exit",
        "server, worker",
        "called in the worker as it exits, after it stopped serving.",
    ),
    _hook(
        "nworkers_changed",
        "server, new_value, old_value",
        "called in the master when the number of workers changes (TTIN, TTOU, "
        "HUP); `old_value` is None on the first call.",
    ),
    _hook("on_exit", "server", "called in the master just before it exits."),
)
