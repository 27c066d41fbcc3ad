"""Server hooks: callables a config file sets to run code at points of the
server's life. Each is a setting of type ``callable`` whose arity is checked
when the configuration loads, so a hook with the wrong signature is refused
before anything starts. See docs/hooks.md.
"""

from __future__ import annotations

from typing import Any

from unicorn_core.settings import Setting

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
    _hook(
        "post_request",
        "worker, req, environ, resp",
        "called in the worker after the application has handled a request.",
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
