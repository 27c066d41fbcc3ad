"""The Worker base class and worker-class lookup.

A concrete worker (``sync``, ``gthread``, ``asgi`` ...) subclasses
:class:`Worker` and implements one method, :meth:`Worker.run`. Everything a
pre-fork worker shares lives here: signals, heartbeat, application loading,
TLS context, ``max_requests`` recycling, the reloader and the hooks.

What ``run()`` must do (also in the package README, "Writing a worker"):

* serve connections accepted from ``self.listeners`` (each has ``.sock``, a
  listening ``socket.socket`` in blocking mode) while ``self.alive`` is true;
* call ``self.notify()`` at least every ``self.notify_interval`` seconds, also
  when idle, or the arbiter kills the worker after ``timeout``;
* include ``self.wakeup_fd`` in its select/poll set (or asyncio reader): a
  byte arrives there when the worker should re-check ``self.alive``;
* call ``self.handled_request()`` after each request (max_requests);
* with ``counts_requests = True``: call ``self.request_started()`` when a
  request head is parsed and ``self.request_finished(method, status,
  seconds)`` when its response is done (unicornc's busy/idle, /metrics);
* call ``self.log.access(...)`` per request when ``self.log.access_enabled``,
  and ``self.pre_request_hook``/``self.post_request_hook`` when not None;
* stop accepting when ``self.alive`` turns false, finish in-flight requests
  within ``cfg.graceful_timeout``, and check ``self.is_parent_alive()``;
* return (exit status 0) when done.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import importlib.util
import itertools
import os
import random
import select
import signal
import socket
import ssl
import sys
import tempfile
import traceback
from typing import Any

from unicorn_core.errors import AppImportError, ConfigError, WorkerBootError
from unicorn_core.heartbeat import SERVED, STARTED, Heartbeat
from unicorn_core.hooks import is_default_hook
from unicorn_core.metrics import instrument
from unicorn_core.process import (
    drop_privileges,
    process_name,
    set_parent_death_signal,
    set_process_title,
)
from unicorn_core.settings import Setting, import_object
from unicorn_core.tls import make_ssl_context, wrap_socket

SECTION = "Worker Processes"
WORKERS_GROUP = "unicorn.workers"


def _directory(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("")
    if not os.path.isdir(value):
        raise ValueError("no such directory")
    return os.path.abspath(value)


SETTINGS = (
    Setting(
        name="threads",
        section=SECTION,
        cli=("--threads",),
        type="positive_int",
        meta="INT",
        default=1,
        doc="Threads per worker for the threaded (`gthread`) worker; each thread "
        "handles one request at a time.",
    ),
    Setting(
        name="worker_connections",
        section=SECTION,
        cli=("--worker-connections",),
        type="positive_int",
        meta="INT",
        default=1000,
        doc="The most simultaneous client connections one worker holds (gthread, "
        "asyncio and greenlet workers); further connections wait in the backlog.",
    ),
    Setting(
        name="max_requests",
        section=SECTION,
        cli=("--max-requests",),
        type="positive_int",
        meta="INT",
        default=0,
        doc="Restart a worker after it has handled this many requests, a simple "
        "guard against memory leaks. 0 never restarts.",
    ),
    Setting(
        name="max_requests_jitter",
        section=SECTION,
        cli=("--max-requests-jitter",),
        type="positive_int",
        meta="INT",
        default=0,
        doc="Add a random number between 0 and this to each worker's "
        "`max_requests`, so workers do not all restart at once.",
    ),
    Setting(
        name="keepalive",
        section=SECTION,
        cli=("--keep-alive",),
        type="positive_int",
        meta="INT",
        default=2,
        doc="Seconds an idle keep-alive connection is kept open waiting for the "
        "next request. The sync worker does not keep connections alive.",
    ),
    Setting(
        name="tmp_upload_dir",
        section="Server Mechanics",
        type=_directory,
        meta="DIR",
        doc="The directory for temporary files made while request data is read: "
        "each worker sets Python's `tempfile` directory to it, so the files "
        "frameworks spool large uploads to (Django, Werkzeug, multipart) go "
        "there. It must exist and be writable by the workers' `user`. By default "
        "the system's temporary directory.",
    ),
)

#: where each worker comes from: (distribution, what to pip install, library it needs)
WORKER_SOURCES = {
    "sync": ("unicorn-workers", "unicorn-workers", None),
    "gthread": ("unicorn-workers", "unicorn-workers", None),
    "asgi": ("unicorn-asgi", "unicorn[asgi]", None),
    "gevent": ("unicorn-workers", "unicorn[gevent]", "gevent"),
    "eventlet": ("unicorn-workers", "unicorn[eventlet]", "eventlet"),
    "tornado": ("unicorn-workers", "unicorn[tornado]", "tornado"),
}

#: worker names gunicorn and uvicorn users give, -> unicorn's worker
WORKER_ALIASES = {
    "gevent_wsgi": "gevent",
    "gevent_pywsgi": "gevent",
    "egg:gunicorn#sync": "sync",
    "egg:gunicorn#gthread": "gthread",
    "egg:gunicorn#gevent": "gevent",
    "egg:gunicorn#eventlet": "eventlet",
    "egg:gunicorn#tornado": "tornado",
    "gunicorn.workers.sync.SyncWorker": "sync",
    "gunicorn.workers.gthread.ThreadWorker": "gthread",
    "gunicorn.workers.ggevent.GeventWorker": "gevent",
    "gunicorn.workers.ggevent.GeventPyWSGIWorker": "gevent",
    "gunicorn.workers.geventlet.EventletWorker": "eventlet",
    "gunicorn.workers.gtornado.TornadoWorker": "tornado",
    "gunicorn.workers.gasgi.ASGIWorker": "asgi",
    "uvicorn.workers.UvicornWorker": "asgi",
    "uvicorn.workers.UvicornH11Worker": "asgi",
    "uvicorn_worker.UvicornWorker": "asgi",
    "uvicorn_worker.UvicornH11Worker": "asgi",
}


def installed_workers() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=WORKERS_GROUP)}


def resolve_worker_name(name: str) -> tuple[str, str | None]:
    """(unicorn's worker name, a log line saying so) for gunicorn's and uvicorn's
    names (``gevent_pywsgi``, ``uvicorn.workers.UvicornWorker``,
    ``gunicorn.workers.sync.SyncWorker``); other names are returned unchanged."""
    key = name.replace(":", ".") if name.count(":") == 1 and "#" not in name else name
    target = WORKER_ALIASES.get(key)
    if target is None:
        return name, None
    return target, f"Worker class {name!r} is served by unicorn's {target!r} worker"


def _distribution_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _unknown_worker(name: str, installed: dict[str, Any]) -> ConfigError:
    """The error for a worker name nothing provides, with only remedies that work."""
    have = ", ".join(sorted(installed)) or "none"
    msg = f"unknown worker class {name!r} (installed: {have})"
    source = WORKER_SOURCES.get(name)
    if source is not None:
        dist, extra, library = source
        version = _distribution_version(dist)
        if version is None:
            return ConfigError(f'{msg}; install it with: pip install "{extra}"')
        # the distribution that would provide it is here and does not: installing
        # its extra would only add the library, not the worker
        msg = f"{msg}; {dist} {version} provides no {name!r} worker"
        if library and importlib.util.find_spec(library) is not None:
            msg += f" ({library} is installed, but no unicorn worker for it)"
        alternatives = [w for w in ("gthread", "asgi") if w in installed]
        if alternatives:
            msg += "; use " + " or ".join(f"-k {w}" for w in alternatives) + " instead"
        return ConfigError(msg)
    names = [*installed, *WORKER_SOURCES, *WORKER_ALIASES]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if close:
        msg += f"; did you mean {close[0]!r}?"
    missing = [
        f'{n}: pip install "{extra}"'
        for n, (dist, extra, _) in WORKER_SOURCES.items()
        if n not in installed and _distribution_version(dist) is None
    ]
    if missing:
        msg += "; others come with " + ", ".join(missing)
    return ConfigError(msg)


def load_worker_class(name: str) -> type[Worker]:
    """``-k NAME`` through the ``unicorn.workers`` entry points, or a dotted path
    (gunicorn's and uvicorn's worker names map to unicorn's, see WORKER_ALIASES)."""
    installed = installed_workers()
    name = resolve_worker_name(name)[0]
    if name in installed:
        try:
            cls = installed[name].load()
        except Exception as exc:
            raise ConfigError(
                f"worker class {name!r} failed to import: {type(exc).__name__}: {exc}"
            ) from None
    elif "." in name or ":" in name:
        try:
            cls = import_object(name)
        except ValueError as exc:
            raise ConfigError(f"worker class {name!r}: {exc}") from None
    else:
        raise _unknown_worker(name, installed)
    if not (isinstance(cls, type) and issubclass(cls, Worker)):
        raise ConfigError(f"worker class {name!r} is not a subclass of unicorn_core.workers.Worker")
    return cls


class Worker:
    """Base class of every worker process. Subclasses implement :meth:`run`.

    Constructed in the master, before fork, as
    ``Worker(age, ppid, listeners, app_loader, timeout, cfg, log)``.
    """

    #: the worker can serve HTTP/2 (ALPN offers h2 only then)
    supports_http2 = False

    #: signals whose master-side handlers are replaced in the worker
    IGNORED_SIGNALS = (
        signal.SIGHUP,
        signal.SIGUSR2,
        signal.SIGWINCH,
        signal.SIGTTIN,
        signal.SIGTTOU,
    )

    def __init__(
        self,
        age: int,
        ppid: int,
        listeners: list[Any],
        app_loader: Any,
        timeout: float,
        cfg: Any,
        log: Any,
    ) -> None:
        self.age = age
        self.ppid = ppid
        self.listeners = listeners
        self.sockets = listeners  # gunicorn's name for the same list
        self.app_loader = app_loader
        self.timeout = timeout
        self.cfg = cfg
        self.log = log

        self.pid: int | str = "[booting]"
        self.alive = True
        self.booted = False
        self.aborted = False
        #: set by the master when it asked this worker to stop gracefully
        self.stop_requested: float | None = None
        #: monotonic time of the fork, set by the master
        self.spawned_at = 0.0
        #: why the master stopped this worker (metrics: exits by cause), "" if it did not
        self.stop_cause = ""
        #: monotonic time max_worker_lifetime retires it at (0: never), set by the master
        self.retire_at = 0.0
        self.nr = 0
        self._request_count = itertools.count(1)
        jitter = random.randint(0, cfg.max_requests_jitter) if cfg.max_requests_jitter else 0
        self.max_requests = cfg.max_requests + jitter if cfg.max_requests > 0 else sys.maxsize
        self.heartbeat = Heartbeat()
        self.wsgi: Any = None
        self.ssl_context: ssl.SSLContext | None = None
        self.reloader: Any = None
        self.pre_request_hook = None if is_default_hook(cfg.pre_request) else cfg.pre_request
        self.post_request_hook = None if is_default_hook(cfg.post_request) else cfg.post_request
        self._wakeup_r = -1
        self._wakeup_w = -1

    def __str__(self) -> str:
        return f"<{type(self).__name__} {self.pid}>"

    # --- what the concrete worker implements ------------------------------------

    def run(self) -> None:
        """Serve until ``self.alive`` is false. Must be overridden."""
        raise NotImplementedError

    # --- what the concrete worker calls ------------------------------------------

    @property
    def application(self) -> Any:
        """The loaded application (WSGI or ASGI callable); alias of ``self.wsgi``."""
        return self.wsgi

    @property
    def notify_interval(self) -> float:
        """Call :meth:`notify` at least this often (seconds)."""
        return self.timeout / 2.0 if self.timeout else 1.0

    @property
    def wakeup_fd(self) -> int:
        """Readable when the worker should look at ``self.alive`` again."""
        return self._wakeup_r

    def notify(self) -> None:
        """The heartbeat: tell the arbiter this worker is not stuck."""
        self.heartbeat.beat()

    def handled_request(self) -> None:
        """Count one request; past ``max_requests`` the worker stops gracefully."""
        # next() on a count is atomic under the GIL, unlike += on an attribute:
        # the gthread worker calls this from many threads at once.
        self.nr = count = next(self._request_count)
        self.heartbeat.counts[SERVED] = count
        if count >= self.max_requests and self.alive:
            self.heartbeat.set_exit_cause("max_requests")
            self.log.info("Autorestarting worker after current request.")
            self.alive = False
            self.wakeup()

    #: True for a worker class that calls request_started()/request_finished()
    #: itself; the others are counted through the pre_request and access edges
    counts_requests = False

    def request_started(self) -> None:
        """A request head was parsed (busy/idle, in-flight requests): one slot add."""
        self.heartbeat.counts[STARTED] += 1

    def request_finished(self, method: str, status: int, seconds: float) -> None:
        """A response is done. Replaced by the metrics recorder when
        ``metrics_bind`` is set; otherwise does nothing."""

    def is_parent_alive(self) -> bool:
        """False once the master that forked us is gone (then exit)."""
        return os.getppid() == self.ppid

    def wakeup(self) -> None:
        """Make ``wakeup_fd`` readable (safe from signal handlers and threads)."""
        if self._wakeup_w >= 0:
            try:
                os.write(self._wakeup_w, b"!")
            except (BlockingIOError, OSError):
                pass

    def drain_wakeup(self) -> None:
        """Empty ``wakeup_fd`` after it was readable."""
        try:
            while os.read(self._wakeup_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def wrap_socket(self, sock: socket.socket) -> socket.socket:
        """Wrap an accepted connection in TLS when TLS is configured."""
        if self.ssl_context is None:
            return sock
        return wrap_socket(self.ssl_context, sock, self.cfg)

    def load_app(self) -> Any:
        """Load the application into ``self.wsgi`` (raises AppImportError)."""
        self.wsgi = self.app_loader.load()
        return self.wsgi

    # --- the life of the process ----------------------------------------------------

    def init_process(self) -> None:
        """Called in the child after fork (and the post_fork hook). Ends in run()."""
        set_parent_death_signal(signal.SIGTERM)
        set_process_title(f"worker [{process_name(self.cfg, self.app_loader)}]")
        drop_privileges(self.cfg.user, self.cfg.group, self.cfg.initgroups)
        if self.cfg.tmp_upload_dir:
            if not os.access(self.cfg.tmp_upload_dir, os.W_OK | os.X_OK):
                raise WorkerBootError(
                    f"tmp_upload_dir {self.cfg.tmp_upload_dir!r} is not writable by uid {os.geteuid()}"
                )
            tempfile.tempdir = self.cfg.tmp_upload_dir
        random.seed()
        self._wakeup_r, self._wakeup_w = os.pipe()
        for fd in (self._wakeup_r, self._wakeup_w):
            os.set_blocking(fd, False)
        self.init_signals()
        self.ssl_context = make_ssl_context(self.cfg, http2=self.supports_http2)
        if self.cfg.reload:
            from unicorn_core.reloader import make_reloader

            self.reloader = make_reloader(
                self.cfg.reload_engine, self.cfg.reload_extra_files, self.on_source_change
            )
        try:
            self.load_app()
        except AppImportError as exc:
            if self.reloader is None:
                raise
            self._wait_for_a_fix(exc)
            return
        if self.reloader is not None:
            self.reloader.start()
        self.cfg.post_worker_init(self)
        instrument(self)
        self.booted = True
        self.notify()
        self.run()

    def _wait_for_a_fix(self, exc: AppImportError) -> None:
        """With ``reload``, a broken application does not stop the server: the
        worker watches the files involved and exits (to be replaced) once one
        changes, as a developer fixing the error expects."""
        files = {frame.filename for frame in traceback.extract_tb(exc.__traceback__)}
        cause = exc.__cause__
        while cause is not None:
            files |= {frame.filename for frame in traceback.extract_tb(cause.__traceback__)}
            if isinstance(cause, SyntaxError) and cause.filename:
                files.add(cause.filename)
            cause = cause.__cause__
        self.reloader.extra_files |= {os.path.abspath(f) for f in files if os.path.exists(f)}
        self.reloader.start()  # watching before we say so: no change is missed
        self.log.error("Failed to load the application: %s; waiting for a change", exc)
        self.booted = True
        while self.alive and self.is_parent_alive():
            self.notify()
            select.select([self._wakeup_r], [], [], self.notify_interval)
            self.drain_wakeup()

    def init_signals(self) -> None:
        """Install the worker's handlers; subclasses running an event loop may
        override this (keep the same meanings)."""
        for sig in self.IGNORED_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, self.handle_exit)
        signal.signal(signal.SIGQUIT, self.handle_quit)
        signal.signal(signal.SIGINT, self.handle_quit)
        signal.signal(signal.SIGUSR1, self.handle_usr1)
        signal.signal(signal.SIGABRT, self.handle_abort)
        signal.set_wakeup_fd(-1)

    def handle_exit(self, sig: int, frame: Any) -> None:
        """TERM: graceful stop."""
        self.alive = False
        self.wakeup()

    def handle_quit(self, sig: int, frame: Any) -> None:
        """INT/QUIT: fast stop."""
        self.alive = False
        self.cfg.worker_int(self)
        sys.exit(0)

    def handle_abort(self, sig: int, frame: Any) -> None:
        """ABRT: sent by the arbiter to a worker that missed its heartbeat."""
        self.alive = False
        self.cfg.worker_abort(self)
        sys.exit(1)

    def handle_usr1(self, sig: int, frame: Any) -> None:
        """USR1: reopen log files."""
        self.log.reopen_files()

    def on_source_change(self, path: str) -> None:
        """The reloader saw ``path`` change: stop so the arbiter starts a fresh worker."""
        self.log.info("Worker reloading: %s modified", path)
        self.heartbeat.set_exit_cause("reloader")
        self.alive = False
        self.wakeup()
        os.kill(os.getpid(), signal.SIGTERM)
