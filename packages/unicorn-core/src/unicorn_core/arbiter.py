"""The arbiter: the pre-fork master process.

It binds the listeners, forks workers and keeps their number right, kills
workers that miss their heartbeat, runs the sidecars, and turns signals into
actions. Signal handlers only queue the signal; the wakeup fd makes the main
loop's ``select`` return and the loop does the work:

=========  =============================================================
TERM       graceful stop: workers finish their requests (graceful_timeout)
INT, QUIT  fast stop
HUP        reload the configuration, start new workers, stop the old ones
TTIN/TTOU  one worker more / one fewer
USR1       reopen log files (and tell workers and sidecars to)
USR2       exec a new master that inherits the listeners
WINCH      stop all workers, keep the master (only when daemonized)
CHLD       reap exited workers and sidecars
=========  =============================================================
"""

from __future__ import annotations

import errno
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from unicorn_core import __version__
from unicorn_core.app_loading import AppLoader
from unicorn_core.config import log_notes
from unicorn_core.errors import (
    APP_LOAD_ERROR,
    WORKER_BOOT_ERROR,
    AppImportError,
    ConfigError,
    HaltServer,
    WorkerBootError,
)
from unicorn_core.logs import Logger, make_logger
from unicorn_core.operations import Operations
from unicorn_core.process import (
    Pidfile,
    daemonize,
    process_name,
    sd_notify,
    set_process_title,
)
from unicorn_core.settings import Config, Setting
from unicorn_core.sidecars import Backoff, Sidecars
from unicorn_core.sockets import (
    INHERIT_ENV,
    close_listeners,
    create_listeners,
    inherited_fds,
    systemd_fds,
)
from unicorn_core.workers import Worker, load_worker_class, resolve_worker_name

SECTION = "Worker Processes"
MASTER_PID_ENV = "UNICORN_PID"

SETTINGS = (
    Setting(
        name="workers",
        section=SECTION,
        cli=("-w", "--workers"),
        env="WEB_CONCURRENCY",
        type="positive_int",
        meta="INT",
        default=1,
        doc="The number of worker processes. Start with 2-4 per CPU core and "
        "measure. The `WEB_CONCURRENCY` environment variable sets the default.",
    ),
    Setting(
        name="worker_class",
        section=SECTION,
        cli=("-k", "--worker-class"),
        meta="STRING",
        default="sync",
        doc="The worker type: a name registered in the `unicorn.workers` entry "
        "points (`sync`, `gthread`, `asgi`, ...) or the dotted path to a "
        "`unicorn_core.workers.Worker` subclass (`pkg.module:Class`).",
    ),
    Setting(
        name="timeout",
        section=SECTION,
        cli=("-t", "--timeout"),
        type="positive_int",
        meta="INT",
        default=30,
        doc="A worker silent for longer than this many seconds is sent SIGABRT, "
        "then SIGKILL, and replaced. For the sync worker this bounds a request. "
        "0 disables the check.",
    ),
    Setting(
        name="graceful_timeout",
        section=SECTION,
        cli=("--graceful-timeout",),
        type="positive_int",
        meta="INT",
        default=30,
        doc="On a graceful stop (TERM, HUP, TTOU, max_requests) workers get this "
        "many seconds to finish their requests before they are killed.",
    ),
)

_SIGNALS = {
    signal.SIGHUP: "hup",
    signal.SIGQUIT: "quit",
    signal.SIGINT: "int",
    signal.SIGTERM: "term",
    signal.SIGTTIN: "ttin",
    signal.SIGTTOU: "ttou",
    signal.SIGUSR1: "usr1",
    signal.SIGUSR2: "usr2",
    signal.SIGWINCH: "winch",
}
_LOOP_TIMEOUT = 1.0
_BLOCKED_AT_FORK = (*_SIGNALS, signal.SIGCHLD)


class Arbiter:
    """The master. Hooks receive it as ``server``."""

    SIG_QUEUE_MAX = 5

    def __init__(
        self,
        cfg: Config,
        log: Logger | None = None,
        reload_config: Callable[[], Config] | None = None,
        start_args: list[str] | None = None,
        start_cwd: str | None = None,
        app_loader: AppLoader | None = None,
        reexec_argv: list[str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.log = log or make_logger(cfg)
        self.reload_config = reload_config
        self.start_args = list(sys.argv[1:] if start_args is None else start_args)
        self.start_cwd = start_cwd or os.getcwd()
        #: what USR2 executes: ``python -m unicorn_core ARGS``, or an embedding program
        self.reexec_argv = (
            list(reexec_argv)
            if reexec_argv is not None
            else [sys.executable, "-m", "unicorn_core", *self.start_args]
        )
        self.pid = os.getpid()
        self.app_loader = app_loader or AppLoader(cfg)
        self.worker_class: type[Worker] = load_worker_class(cfg.worker_class)
        self.workers: dict[int, Worker] = {}
        self.listeners: list[Any] = []
        self.pidfile: Pidfile | None = None
        self.master_pid = 0
        self.reexec_pid = 0
        self.systemd = False
        self.master_name = "Master"
        self.worker_age = 0
        self.sig_queue: list[int] = []
        self.timeout = cfg.timeout
        self._num_workers: int | None = None
        self._pipe: tuple[int, int] = (-1, -1)
        self._spawn_backoff = Backoff()
        self._next_spawn = 0.0
        self.running = False
        self.sidecars = Sidecars(self, self.log)
        #: control socket, /metrics, recycling by memory and age (operations.py)
        self.ops = Operations(self)

    # gunicorn names, for hooks written against it
    @property
    def WORKERS(self) -> dict[int, Worker]:
        return self.workers

    @property
    def LISTENERS(self) -> list[Any]:
        return self.listeners

    @property
    def num_workers(self) -> int:
        return self._num_workers or 0

    @num_workers.setter
    def num_workers(self, value: int) -> None:
        old = self._num_workers
        self._num_workers = value
        if old != value:
            self.cfg.nworkers_changed(self, value, old)

    # --- start ---------------------------------------------------------------------

    def start(self) -> None:
        self.log.info("Starting unicorn %s", __version__)
        log_notes(self.log, self.cfg)
        if MASTER_PID_ENV in os.environ:
            self.master_pid = int(os.environ.pop(MASTER_PID_ENV))
            self.master_name = "Master (upgrade)"
        elif self.cfg.daemon:
            daemonize(self.cfg.enable_stdio_inheritance)
        self.pid = os.getpid()
        self.cfg.on_starting(self)
        self.init_signals()
        self.num_workers = self.cfg.workers

        if self.cfg.pidfile:
            name = self.cfg.pidfile + (".2" if self.master_pid else "")
            self.pidfile = Pidfile(name)
            self.pidfile.create(self.pid)

        fds = inherited_fds(os.environ)
        if not fds:
            fds = systemd_fds(os.environ)
            self.systemd = bool(fds)
        for key in (INHERIT_ENV, "LISTEN_FDS", "LISTEN_PID"):
            os.environ.pop(key, None)
        if not self.listeners:
            self.listeners = create_listeners(self.cfg, self.log, fds)
        self.log.info(
            "Listening at: %s (%s)", ",".join(str(lis) for lis in self.listeners), self.pid
        )
        self.log.info("Using worker: %s", self.cfg.worker_class)
        note = resolve_worker_name(self.cfg.worker_class)[1]
        if note:
            self.log.info("%s", note)
        self.running = True
        self.sidecars.start()
        self.ops.start()
        self.cfg.when_ready(self)
        sd_notify("READY=1")

    def init_signals(self) -> None:
        r, w = os.pipe()
        for fd in (r, w):
            os.set_blocking(fd, False)
        self._pipe = (r, w)
        for sig in _SIGNALS:
            signal.signal(sig, self._queue_signal)
        signal.signal(signal.SIGCHLD, self._on_chld)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)

    def _queue_signal(self, sig: int, frame: Any) -> None:
        if len(self.sig_queue) < self.SIG_QUEUE_MAX:
            self.sig_queue.append(sig)

    def _on_chld(self, sig: int, frame: Any) -> None:
        pass  # the wakeup fd already woke the loop; reaping happens there

    # --- the main loop ---------------------------------------------------------------

    def run(self) -> None:
        """Start and supervise until stopped; exits the process."""
        try:
            self.start()
            set_process_title(f"master [{self.proc_name}]")
            self.manage_workers()
            while True:
                self.maybe_promote_master()
                if self.sig_queue:
                    sig = self.sig_queue.pop(0)
                    name = _SIGNALS[sig]
                    self.log.info("Handling signal: %s", name)
                    getattr(self, f"handle_{name}")()
                    continue
                self.sleep(self._loop_timeout())
                self.reap_workers()
                self.murder_workers()
                self.ops.tick()
                self.sidecars.tick()
                self.manage_workers()
        except StopIteration:
            self.halt()
        except HaltServer as exc:
            self.halt(exc.reason, exc.exit_status)
        except ConfigError as exc:
            self.log.error("Error: %s", exc)
            self.halt(str(exc), 1)
        except SystemExit:
            raise
        except Exception:
            self.log.error("Unhandled exception in the main loop:\n%s", traceback.format_exc())
            self.stop(graceful=False)
            if self.pidfile is not None:
                self.pidfile.unlink()
            sys.exit(1)

    def _loop_timeout(self) -> float:
        """Sleep no longer than until the next respawn is due."""
        if len(self.workers) < self.num_workers:
            return min(_LOOP_TIMEOUT, max(0.0, self._next_spawn - time.monotonic()))
        return _LOOP_TIMEOUT

    @property
    def proc_name(self) -> str:
        return process_name(self.cfg, self.app_loader)

    def sleep(self, timeout: float = _LOOP_TIMEOUT) -> None:
        """Wait for a signal or the loop timeout."""
        try:
            readable = [self._pipe[0], *self.ops.read_fds()]
            ready, writable, _ = select.select(readable, self.ops.write_fds(), [], timeout)
        except OSError as exc:
            if exc.errno != errno.EINTR:
                raise
            return
        if len(ready) > (self._pipe[0] in ready) or writable:
            self.ops.ready(ready, writable)
        if self._pipe[0] in ready:
            try:
                while os.read(self._pipe[0], 4096):
                    pass
            except (BlockingIOError, InterruptedError):
                pass

    def halt(self, reason: str | None = None, exit_status: int = 0) -> None:
        sd_notify("STOPPING=1")
        self.stop()
        self.log.info("Shutting down: %s", self.master_name)
        if reason is not None:
            self.log.error("Reason: %s", reason)
        if self.pidfile is not None:
            self.pidfile.unlink()
        self.cfg.on_exit(self)
        sys.exit(exit_status)

    def stop(self, graceful: bool = True) -> None:
        """Stop workers and sidecars, bounded by graceful_timeout."""
        self.running = False
        unlink = self.reexec_pid == self.master_pid == 0 and not self.systemd
        unlink = unlink and not self.cfg.reuse_port
        close_listeners(self.listeners, unlink)
        self.listeners = []
        sig = signal.SIGTERM if graceful else signal.SIGQUIT
        deadline = time.monotonic() + self.cfg.graceful_timeout
        self.kill_workers(sig, cause="shutdown")
        self.sidecars.stop(graceful)
        while (self.workers or self.sidecars.running()) and time.monotonic() < deadline:
            self.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
            self.reap_workers(halting=True)
            if graceful and any(s in (signal.SIGINT, signal.SIGQUIT) for s in self.sig_queue):
                self.sig_queue.clear()
                graceful = False
                self.kill_workers(signal.SIGQUIT)
                self.sidecars.stop(graceful=False)
        if self.workers or self.sidecars.running():
            self.kill_workers(signal.SIGKILL)
            self.sidecars.kill()
            end = time.monotonic() + 2.0
            while (self.workers or self.sidecars.running()) and time.monotonic() < end:
                self.sleep(0.05)
                self.reap_workers(halting=True)
        self.ops.close()

    # --- signals ----------------------------------------------------------------------

    def handle_term(self) -> None:
        raise StopIteration

    def handle_int(self) -> None:
        self.stop(graceful=False)
        raise StopIteration

    handle_quit = handle_int

    def handle_hup(self) -> None:
        self.log.info("Hang up: %s", self.master_name)
        self.reload()

    def handle_ttin(self) -> None:
        self.num_workers += 1
        self.manage_workers()

    def handle_ttou(self) -> None:
        if self.num_workers <= 1:
            return
        self.num_workers -= 1
        self.manage_workers()

    def handle_usr1(self) -> None:
        self.log.reopen_files()
        self.kill_workers(signal.SIGUSR1)
        self.sidecars.forward(signal.SIGUSR1)

    def handle_usr2(self) -> None:
        self.reexec()

    def handle_winch(self) -> None:
        if self.cfg.daemon:
            self.log.info("graceful stop of workers")
            self.num_workers = 0
            self.kill_workers(signal.SIGTERM)
        else:
            self.log.debug("SIGWINCH ignored. Not daemonized")

    # --- reload and upgrade -------------------------------------------------------------

    def reload(self) -> None:
        self.cfg.on_reload(self)
        if self.reload_config is None:
            new_cfg = self.cfg
        else:
            try:
                new_cfg = self.reload_config()
                worker_class = load_worker_class(new_cfg.worker_class)
                self.log.setup(new_cfg)
                log_notes(self.log, new_cfg)
            except ConfigError as exc:
                self.log.error("Reload failed, keeping the old configuration: %s", exc)
                self.log.setup(self.cfg)
                return
            self.worker_class = worker_class
        if list(self.cfg.bind) != list(new_cfg.bind):
            try:
                listeners = create_listeners(new_cfg, self.log)
            except ConfigError as exc:
                self.log.error("Reload failed, keeping the old configuration: %s", exc)
                self.log.setup(self.cfg)
                return
            close_listeners(self.listeners, unlink=True)
            self.listeners = listeners
            self.log.info(
                "Listening at: %s (%s)", ",".join(str(lis) for lis in self.listeners), self.pid
            )
        old_cfg, self.cfg = self.cfg, new_cfg
        self.app_loader.reload_config(new_cfg)
        if new_cfg.preload_app:
            try:
                self.app_loader.preload()
            except AppImportError as exc:
                self.log.error("Reload: the application failed to load again: %s", exc)
        if old_cfg.pidfile != new_cfg.pidfile:
            if self.pidfile is not None:
                self.pidfile.unlink()
            self.pidfile = None
            if new_cfg.pidfile:
                self.pidfile = Pidfile(new_cfg.pidfile)
                self.pidfile.create(self.pid)
        self.timeout = new_cfg.timeout
        self.sidecars.reload()
        self.ops.reload()
        set_process_title(f"master [{self.proc_name}]")
        for _ in range(new_cfg.workers):
            self.spawn_worker()
        self.num_workers = new_cfg.workers
        self.manage_workers()

    def reexec(self) -> None:
        """USR2: fork and exec a new master that inherits the listeners."""
        if self.reexec_pid != 0:
            self.log.warning("USR2 signal ignored. Child exists.")
            return
        if self.master_pid != 0:
            self.log.warning("USR2 signal ignored. Parent exists.")
            return
        master_pid = os.getpid()
        # this master keeps PIDFILE; the new one writes PIDFILE.2 until we exit
        pid = os.fork()
        if pid != 0:
            self.reexec_pid = pid
            return
        try:
            self.cfg.pre_exec(self)
            environ = dict(os.environ)
            environ[MASTER_PID_ENV] = str(master_pid)
            for lis in self.listeners:
                os.set_inheritable(lis.fileno(), True)
            if self.systemd:
                environ["LISTEN_PID"] = str(os.getpid())
                environ["LISTEN_FDS"] = str(len(self.listeners))
            else:
                environ[INHERIT_ENV] = ",".join(str(lis.fileno()) for lis in self.listeners)
            os.chdir(self.start_cwd)
            os.execve(self.reexec_argv[0], self.reexec_argv, environ)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(1)

    def maybe_promote_master(self) -> None:
        """After an upgrade, the new master takes over once the old one exits."""
        if self.master_pid == 0 or self.master_pid == os.getppid():
            return
        self.log.info("Master has been promoted.")
        self.master_name = "Master"
        self.master_pid = 0
        if self.pidfile is not None and self.cfg.pidfile:
            self.pidfile.rename(self.cfg.pidfile)
        set_process_title(f"master [{self.proc_name}]")

    # --- workers -------------------------------------------------------------------------

    def manage_workers(self) -> None:
        if not self.running:
            return
        # workers already told to stop are finishing their requests: their
        # successors start now, and they are not stopped twice
        active = {pid: w for pid, w in self.workers.items() if w.stop_requested is None}
        if len(active) < self.num_workers and time.monotonic() >= self._next_spawn:
            for _ in range(self.num_workers - len(active)):
                self.spawn_worker()
        by_age = sorted(active.items(), key=lambda item: item[1].age)
        while len(by_age) > self.num_workers:
            pid, _ = by_age.pop(0)
            self.kill_worker(pid, signal.SIGTERM, cause="retired")
        statsd = self.log.statsd
        if statsd is not None:
            statsd.gauge("workers", len(self.workers))
            if self.cfg.enable_backlog_metric:
                statsd.histogram("backlog", sum(lis.backlog() for lis in self.listeners))

    def spawn_worker(self) -> int:
        self.worker_age += 1
        try:
            worker = self.worker_class(
                self.worker_age,
                self.pid,
                self.listeners,
                self.app_loader,
                self.timeout,
                self.cfg,
                self.log,
            )
        except Exception as exc:
            raise HaltServer(
                f"Worker failed to boot: {type(exc).__name__}: {exc}", WORKER_BOOT_ERROR
            ) from exc
        self.cfg.pre_fork(self, worker)
        env = self.sidecars.worker_env()
        # Signals stay blocked across the fork: a TERM arriving before the child
        # dropped the master's handlers would otherwise be queued there and lost.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED_AT_FORK)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            raise
        if pid != 0:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            worker.pid = pid
            worker.spawned_at = time.monotonic()
            self.workers[pid] = worker
            self.ops.worker_started(worker)
            return pid
        self._run_worker(worker, env, mask)
        raise AssertionError("unreachable")  # pragma: no cover

    def _run_worker(self, worker: Worker, env: dict[str, str], mask: Any = ()) -> None:
        """In the child: run the worker and exit with a status that says how it ended."""
        code = 0
        try:
            # until the worker installs its handlers: stop requests stop it at
            # once, the rest (HUP, USR1, TTIN ...) are ignored, not fatal
            for sig in _SIGNALS:
                fatal = sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
                signal.signal(sig, signal.SIG_DFL if fatal else signal.SIG_IGN)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            for fd in self._pipe:
                os.close(fd)
            self.ops.close_in_child()
            os.environ.update(env)
            worker.pid = os.getpid()
            self.log.info("Booting worker with pid: %s", worker.pid)
            self.cfg.post_fork(self, worker)
            worker.init_process()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except AppImportError as exc:
            worker.heartbeat.write_note(str(exc))
            self.log.error("Failed to load the application: %s", exc)
            if exc.__cause__ is not None:
                self.log.debug("".join(traceback.format_exception(exc.__cause__)))
            code = APP_LOAD_ERROR
        except WorkerBootError as exc:
            worker.heartbeat.write_note(str(exc))
            self.log.error("Worker failed to boot: %s", exc)
            code = WORKER_BOOT_ERROR
        except BaseException as exc:
            if worker.booted:
                self.log.exception("Exception in worker process")
                code = 1
            else:
                worker.heartbeat.write_note(f"{type(exc).__name__}: {exc}")
                self.log.exception("Exception in worker process during boot")
                code = WORKER_BOOT_ERROR
        finally:
            try:
                self.log.info("Worker exiting (pid: %s)", worker.pid)
                self.cfg.worker_exit(self, worker)
            except BaseException:
                pass
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
            os._exit(code)

    def kill_workers(self, sig: int, cause: str = "") -> None:
        for pid in list(self.workers):
            self.kill_worker(pid, sig, cause)

    def kill_worker(self, pid: int, sig: int, cause: str = "") -> None:
        """Signal a worker; ``cause`` names why the master stops it (metrics)."""
        worker = self.workers.get(pid)
        if sig == signal.SIGTERM and worker is not None and worker.stop_requested is None:
            worker.stop_requested = time.monotonic()
        if cause and worker is not None and not worker.stop_cause:
            worker.stop_cause = cause
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            worker = self.workers.pop(pid, None)
            if worker is not None:
                self.ops.worker_gone(worker, None)
                worker.heartbeat.close()

    def murder_workers(self) -> None:
        """Abort, then kill, workers that missed their heartbeat for ``timeout``;
        kill workers told to stop (HUP, TTOU) that outlive ``graceful_timeout``."""
        now = time.monotonic()
        for pid, worker in list(self.workers.items()):
            asked = worker.stop_requested
            if asked is not None and now - asked > self.cfg.graceful_timeout:
                self.log.warning("Worker (pid:%s) outlived graceful_timeout; killing it", pid)
                self.kill_worker(pid, signal.SIGKILL)
                continue
            if not self.timeout or worker.heartbeat.age() <= self.timeout:
                continue
            if not worker.aborted:
                self.log.critical("WORKER TIMEOUT (pid:%s)", pid)
                worker.aborted = True
                self.kill_worker(pid, signal.SIGABRT)
            else:
                self.kill_worker(pid, signal.SIGKILL)

    def reap_workers(self, halting: bool = False) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.reexec_pid:
                self.reexec_pid = 0
                self.log.error("The new master (pid: %s) exited; this master goes on", pid)
                continue
            if self.sidecars.reap(pid, status, running=self.running):
                continue
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            note = worker.heartbeat.read_note()
            self.ops.worker_gone(worker, code)
            worker.heartbeat.close()
            if not halting and code == WORKER_BOOT_ERROR:
                raise HaltServer(f"Worker failed to boot: {note}", WORKER_BOOT_ERROR)
            if not halting and code == APP_LOAD_ERROR:
                raise HaltServer(f"App failed to load: {note}", APP_LOAD_ERROR)
            if code > 0:
                self.log.error("Worker (pid:%s) exited with code %s", pid, code)
            elif code == -signal.SIGKILL:
                self.log.error("Worker (pid:%s) was sent SIGKILL! Perhaps out of memory?", pid)
            elif code < 0 and code != -signal.SIGTERM:
                self.log.error("Worker (pid:%s) was sent %s!", pid, signal.Signals(-code).name)
            lifetime = time.monotonic() - worker.spawned_at
            delay = self._spawn_backoff.exited(lifetime if code else Backoff.HEALTHY_AFTER)
            self._next_spawn = time.monotonic() + delay
            self.cfg.child_exit(self, worker)
