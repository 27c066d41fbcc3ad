"""The dirty pool's settings, declared once as plain dict specs.

unicorn_core reads them through the ``unicorn.settings`` entry point (see
docs/seams.md); the standalone ``unicorn-dirty`` command line is generated
from the same specs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .protocol import DEFAULT_MAX_PAYLOAD

SECTION = "Dirty Arbiter"
SOCKET_ENV = "UNICORN_DIRTY_SOCKET"
MAX_PAYLOAD_ENV = "UNICORN_DIRTY_MAX_PAYLOAD"


def _noop_1(arg: object) -> None:
    return None


def _noop_2(arg1: object, arg2: object) -> None:
    return None


def _spec(
    name: str, type_: Any, default: Any, doc: str, cli: list[str] | None = None, **kw: Any
) -> dict:
    spec = {
        "name": name,
        "section": SECTION,
        "cli": cli or [],
        "env": None,
        "type": type_,
        "default": default,
        "meta": kw.pop("meta", None),
        "doc": doc,
    }
    spec.update(kw)
    return spec


SETTINGS: list[dict] = [
    _spec(
        "dirty_apps",
        "list",
        [],
        "Dirty applications to load, each `module:Class` or `module:Class:N` "
        "(N: load it in at most N workers, overriding the class's `workers`). "
        "The dirty pool runs only when this list is not empty.",
        ["--dirty-app"],
        meta="STRING",
    ),
    _spec(
        "dirty_workers",
        "positive_int",
        1,
        "Number of dirty worker processes. `TTIN`/`TTOU` sent to the dirty "
        "arbiter change it at run time (never below what per-app limits need). "
        "0 disables the pool: no app is imported and no worker runs, and every "
        "call fails at once with `DirtyNoWorkersAvailableError`.",
        ["--dirty-workers"],
        meta="INT",
    ),
    _spec(
        "dirty_threads",
        "positive_int",
        1,
        "Actions one dirty worker runs at the same time, each in its own thread.",
        ["--dirty-threads"],
        meta="INT",
    ),
    _spec(
        "dirty_timeout",
        "positive_int",
        300,
        "Seconds a call may run (for a stream: between two chunks), and seconds "
        "a worker may go without a heartbeat. Past it the caller gets "
        "`DirtyTimeoutError` and the call is cancelled (see "
        "`dirty_cancel_timeout`); a silent worker is killed and replaced. A "
        "client's per-call timeout overrides it for that call (never below "
        "0.1 s).",
        ["--dirty-timeout"],
        meta="INT",
    ),
    _spec(
        "dirty_graceful_timeout",
        "positive_int",
        30,
        "Seconds the dirty arbiter waits for running and queued calls on "
        "graceful shutdown before killing its workers.",
        ["--dirty-graceful-timeout"],
        meta="INT",
    ),
    _spec(
        "dirty_max_payload",
        "positive_int",
        DEFAULT_MAX_PAYLOAD,
        "Largest frame, in bytes, a dirty socket accepts. A larger request fails "
        "alone with `DirtyPayloadTooLargeError` (the arbiter discards its bytes "
        "and the connection's other calls go on); a client that knows the limit "
        "refuses to send one, and a larger result fails its call.",
        ["--dirty-max-payload"],
        meta="BYTES",
    ),
    _spec(
        "dirty_max_queue",
        "positive_int",
        10000,
        "Calls that may wait for a worker, per app. Past it a call fails at once "
        "with `DirtyNoWorkersAvailableError`.",
        ["--dirty-max-queue"],
        meta="INT",
    ),
    _spec(
        "dirty_max_clients",
        "positive_int",
        1024,
        "Client connections the dirty arbiter keeps open at once. Past it the "
        "oldest connection that has sent nothing for `dirty_client_timeout` is "
        "closed to make room; if there is none, the new connection is closed as "
        "soon as it is accepted (its client gets `DirtyConnectionError`). Both "
        "are logged.",
        ["--dirty-max-clients"],
        meta="INT",
    ),
    _spec(
        "dirty_max_client_buffer",
        "positive_int",
        8 * 1024 * 1024,
        "Bytes of replies the dirty arbiter holds for one client that does not "
        "read them. Above it the arbiter stops reading that client's requests "
        "(and starts none of its queued calls) until it has read half of them; "
        "a client that stays above it for `dirty_client_timeout` is disconnected.",
        ["--dirty-max-client-buffer"],
        meta="BYTES",
    ),
    _spec(
        "dirty_client_timeout",
        "float",
        30.0,
        "Seconds a dirty client may take to send one whole frame, and may leave "
        "its replies unread above `dirty_max_client_buffer`, before the arbiter "
        "disconnects it and logs why.",
        ["--dirty-client-timeout"],
        meta="SECONDS",
    ),
    _spec(
        "dirty_cancel_timeout",
        "float",
        5.0,
        "Seconds a call that timed out (or whose caller went away) gets to stop "
        "after it is cancelled. A worker still running it then takes no new "
        "calls, finishes its other calls and is replaced; its calls not yet "
        "started go back to the queue.",
        ["--dirty-cancel-timeout"],
        meta="SECONDS",
    ),
    _spec(
        "dirty_socket",
        "string",
        None,
        "Path of the dirty arbiter's Unix socket. Default: a fresh private "
        "directory (mode 0700) under the temporary directory (the standalone "
        "command first tries `$XDG_RUNTIME_DIR` when it is private to the user). "
        f"HTTP workers find it in the `{SOCKET_ENV}` environment variable.",
        ["--dirty-socket"],
        meta="PATH",
    ),
    _spec(
        "dirty_backend",
        "choice",
        "local",
        "Where dirty apps run. `local`: worker processes forked by the dirty "
        "arbiter on this machine. `ray`: each app becomes `workers = N` actors on "
        "a Ray cluster (needs `unicorn-dirty[ray]`); clients, errors and the stash "
        "stay the same. See the dirty pool docs, *Beyond one machine: Ray*.",
        ["--dirty-backend"],
        meta="STRING",
        choices=["local", "ray"],
    ),
    _spec(
        "dirty_ray_address",
        "string",
        None,
        'Address of the Ray cluster for `dirty_backend = "ray"` (`HOST:PORT` of '
        "the head node, `auto`, or `ray://HOST:10001`). Default: `RAY_ADDRESS`, "
        "else a Ray started on this machine for the pool alone.",
        ["--dirty-ray-address"],
        meta="ADDRESS",
    ),
    _spec(
        "dirty_ray_namespace",
        "string",
        "unicorn-dirty",
        "Ray namespace of the pool's actors; the stash actor is named `stash` in "
        "it. Two pools on one Ray cluster need two namespaces.",
        ["--dirty-ray-namespace"],
        meta="STRING",
    ),
    _spec(
        "dirty_ray_max_restarts",
        "int",
        -1,
        "How many times Ray restarts a dirty app's actor that died (`-1`: "
        "always). A restarted actor runs the app's `init()` again.",
        ["--dirty-ray-max-restarts"],
        meta="INT",
    ),
    _spec(
        "on_dirty_starting",
        "callable",
        _noop_1,
        "Called in the dirty arbiter just before it starts its workers: `on_dirty_starting(arbiter)`.",
        arity=1,
    ),
    _spec(
        "dirty_post_fork",
        "callable",
        _noop_2,
        "Called in a dirty worker just after fork, before apps load: `dirty_post_fork(arbiter, worker)`.",
        arity=2,
    ),
    _spec(
        "dirty_worker_init",
        "callable",
        _noop_1,
        "Called in a dirty worker after every app's `init()`: `dirty_worker_init(worker)`.",
        arity=1,
    ),
    _spec(
        "dirty_worker_exit",
        "callable",
        _noop_2,
        "Called in a dirty worker as it exits, after every app's `close()`: `dirty_worker_exit(arbiter, worker)`.",
        arity=2,
    ),
]


def settings() -> Iterable[dict]:
    """Entry point of the ``unicorn.settings`` group: fresh copies of the specs."""
    return [dict(s, cli=list(s["cli"])) for s in SETTINGS]


DEFAULTS = {s["name"]: s["default"] for s in SETTINGS}


@dataclass
class DirtyConfig:
    """The settings the dirty arbiter and workers read, from any object with attributes."""

    dirty_apps: list[str] = field(default_factory=list)
    dirty_workers: int = 1
    dirty_threads: int = 1
    dirty_timeout: float = 300
    dirty_graceful_timeout: float = 30
    dirty_max_payload: int = DEFAULT_MAX_PAYLOAD
    dirty_max_queue: int = 10000
    dirty_max_clients: int = 1024
    dirty_max_client_buffer: int = 8 * 1024 * 1024
    dirty_client_timeout: float = 30.0
    dirty_cancel_timeout: float = 5.0
    dirty_socket: str | None = None
    dirty_backend: str = "local"
    dirty_ray_address: str | None = None
    dirty_ray_namespace: str = "unicorn-dirty"
    dirty_ray_max_restarts: int = -1
    on_dirty_starting: Any = _noop_1
    dirty_post_fork: Any = _noop_2
    dirty_worker_init: Any = _noop_1
    dirty_worker_exit: Any = _noop_2
    proc_name: str | None = None

    @classmethod
    def from_object(cls, cfg: object) -> DirtyConfig:
        values = {}
        for name in cls.__dataclass_fields__:
            value = getattr(cfg, name, None)
            if value is None:
                value = DEFAULTS.get(name)
            if name == "dirty_apps":
                value = list(value or [])
            values[name] = value
        return cls(**values)
