"""A dirty worker: a process forked by the dirty arbiter that holds app instances.

The main thread reads frames from the arbiter, sends heartbeats and watches
signals; `dirty_threads` long-lived threads run actions. Async actions run on
one event loop thread per worker, started on first use, driven from the
action's thread so that the same slot accounting and credit waits apply.
Every request gets exactly one terminal frame (RESULT, END or ERROR), also
when it was cancelled: the arbiter frees the slot on it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import queue
import selectors
import signal
import socket
import threading
import time
import traceback
import types

from . import protocol as P
from .app import CallContext, _current
from .errors import CodecError, DirtyAppError, DirtyAppNotFoundError, DirtyError, error_to_wire
from .process import SignalQueue, reopen_log_files, set_parent_death_signal, set_proc_title

WORKER_SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1]
_SPECIAL = frozenset({types.GeneratorType, types.AsyncGeneratorType, types.CoroutineType})
IGNORED_SIGNALS = [signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGWINCH]


class _Call(CallContext):
    """A request being served; the CallContext an action sees, plus stream credit."""

    __slots__ = ("args", "credit", "future", "id", "kwargs", "lock")

    def __init__(self, ident: int, app: str, action: str, args: tuple, kwargs: dict) -> None:
        self.id = ident
        self.app = app
        self.action = action
        self.args = args
        self.kwargs = kwargs
        self.cancelled = False
        self.credit = P.STREAM_WINDOW
        self.lock: threading.Condition | None = None
        self.future: concurrent.futures.Future | None = None

    def cancel(self) -> None:
        self.cancelled = True
        lock = self.lock
        if lock is not None:
            with lock:
                lock.notify_all()
        fut = self.future
        if fut is not None:
            fut.cancel()

    def add_credit(self, n: int) -> None:
        lock = self.lock
        if lock is None:
            self.credit += n
            return
        with lock:
            self.credit += n
            lock.notify_all()

    def take_credit(self) -> bool:
        """Wait for room to send one more chunk; False once cancelled. Streams only."""
        with self.lock:
            while self.credit <= 0 and not self.cancelled:
                self.lock.wait(0.5)
            if self.cancelled:
                return False
            self.credit -= 1
            return True


class DirtyWorker:
    """The worker as hooks see it: `pid`, `age`, `app_names`, `apps` (name -> instance)."""

    def __init__(
        self, arbiter, age: int, specs: list, sock: socket.socket, cfg, log: logging.Logger
    ) -> None:
        self.arbiter = arbiter
        self.age = age
        self.specs = specs
        self.app_names = [s.name for s in specs]
        self.apps: dict[str, object] = {}
        self.sock = sock
        self.cfg = cfg
        self.log = log
        self.pid = 0
        self.ppid = 0
        self.alive = True
        self._send_lock = threading.Lock()
        self._calls: dict[int, _Call] = {}
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()
        self._max_payload = int(cfg.dirty_max_payload)

    # -- life cycle (runs in the forked child) --------------------------------

    def run(self) -> int:
        self.pid = os.getpid()
        self.ppid = getattr(self.arbiter, "pid", 0) or os.getppid()
        set_parent_death_signal(signal.SIGTERM)
        for sig in IGNORED_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        signals = SignalQueue(WORKER_SIGNALS)
        set_proc_title(f"unicorn-dirty worker [{','.join(self.app_names)}]")
        if os.getppid() != self.ppid:
            return 0
        try:
            self.cfg.dirty_post_fork(self.arbiter, self)
            for spec in self.specs:
                app = spec.cls()
                app.init()
                self.apps[spec.name] = app
            self.cfg.dirty_worker_init(self)
        except BaseException:
            self.log.exception("dirty worker %s failed to load its apps", self.pid)
            self._close_apps()
            return 3
        for i in range(max(1, int(self.cfg.dirty_threads))):
            t = threading.Thread(target=self._thread_main, name=f"dirty-action-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        try:
            self._send(P.READY, 0, P.encode(self.app_names))
            self._main_loop(signals)
        finally:
            self._close_apps()
            with contextlib.suppress(BaseException):
                self.cfg.dirty_worker_exit(self.arbiter, self)
        return 0

    def _main_loop(self, signals: SignalQueue) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ, "arbiter")
        sel.register(signals.rsock, selectors.EVENT_READ, "signal")
        reader = P.FrameReader(self._max_payload + 64)
        interval = min(max(float(self.cfg.dirty_timeout) / 4.0, 0.05), 1.0)
        last_beat = time.monotonic()
        draining = False
        while True:
            for key, _ in sel.select(interval):
                if key.data == "arbiter":
                    try:
                        data = self.sock.recv(262144)
                    except OSError:
                        data = b""
                    if not data:
                        # the arbiter is gone: nobody is left to answer
                        return
                    try:
                        frames = reader.feed(data)
                    except DirtyError as exc:
                        self.log.error("dirty worker %s: bad frame from arbiter: %s", self.pid, exc)
                        return
                    for kind, ident, payload in frames:
                        self._on_frame(kind, ident, payload, draining)
                else:
                    for sig in signals.drain():
                        if sig == signal.SIGUSR1:
                            reopen_log_files()
                        elif sig == signal.SIGTERM:
                            draining = True
                        else:  # INT, QUIT: leave now
                            return
            now = time.monotonic()
            if now - last_beat >= interval:
                last_beat = now
                self._send(P.HEARTBEAT, 0)
            if os.getppid() != self.ppid:
                return
            if draining and not self._calls:
                return

    def _close_apps(self) -> None:
        for name, app in reversed(list(self.apps.items())):
            try:
                app.close()
            except Exception:
                self.log.exception("dirty app %s failed to close", name)

    # -- frames from the arbiter ------------------------------------------------

    def _on_frame(self, kind: int, ident: int, payload: bytes, draining: bool) -> None:
        if kind == P.REQUEST:
            try:
                app, _timeout, offset = P.decode_route(payload)
                action, args, kwargs = P.decode_request_body(payload, offset)
            except CodecError as exc:
                self._send_error(ident, exc)
                return
            if app not in self.apps:
                self._send_error(
                    ident,
                    DirtyAppNotFoundError(
                        app, f"dirty app {app!r} is not loaded in worker {self.pid}"
                    ),
                )
                return
            call = _Call(ident, app, action, args, kwargs)
            self._calls[ident] = call
            self._jobs.put(call)
        elif kind == P.CANCEL:
            call = self._calls.get(ident)
            if call is not None:
                call.cancel()
        elif kind == P.CREDIT:
            call = self._calls.get(ident)
            if call is not None:
                try:
                    n = P.decode(payload)
                except CodecError:
                    return
                if type(n) is int and n > 0:
                    call.add_credit(n)

    # -- action threads ----------------------------------------------------------

    def _thread_main(self) -> None:
        while True:
            call = self._jobs.get()
            try:
                self._run(call)
            except BaseException:  # never let a slot die silently
                self.log.exception("dirty worker %s: unexpected error", self.pid)
            finally:
                self._calls.pop(call.id, None)

    def _run(self, call: _Call) -> None:
        if call.cancelled:  # cancelled while it waited for a thread
            self._send(P.END, call.id)
            return
        token = _current.set(call)
        try:
            try:
                result = self.apps[call.app](call.action, *call.args, **call.kwargs)
                kind = type(result)
                if kind in _SPECIAL:
                    if kind is types.GeneratorType:
                        self._stream_sync(call, result)
                        return
                    if kind is types.AsyncGeneratorType:
                        self._stream_async(call, result)
                        return
                    result = self._await(call, result)
            except (asyncio.CancelledError, concurrent.futures.CancelledError):
                self._send(P.END, call.id)
                return
            except BaseException as exc:
                self._send_error(call.id, exc, traceback.format_exc(), call)
                return
            self._send_value(P.RESULT, call.id, result)
        finally:
            _current.reset(token)

    def _send_value(self, kind: int, ident: int, value: object) -> bool:
        try:
            payload = P.encode(value)
        except CodecError as exc:
            self._send_error(
                ident, DirtyAppError(f"result is not encodable: {exc}", error_type="CodecError")
            )
            return False
        if len(payload) > self._max_payload:
            self._send_error(
                ident,
                P.DirtyPayloadTooLargeError(
                    f"result of {len(payload)} bytes exceeds dirty_max_payload ({self._max_payload})",
                    len(payload),
                    self._max_payload,
                ),
            )
            return False
        self._send(kind, ident, payload)
        return True

    def _stream_sync(self, call: _Call, gen) -> None:
        call.lock = threading.Condition(threading.Lock())
        try:
            for chunk in gen:
                if not call.take_credit() or not self._send_value(P.CHUNK, call.id, chunk):
                    gen.close()
                    if call.cancelled:
                        self._send(P.END, call.id)
                    return
        except BaseException as exc:
            self._send_error(call.id, exc, traceback.format_exc(), call)
            return
        self._send(P.END, call.id)

    def _stream_async(self, call: _Call, agen) -> None:
        call.lock = threading.Condition(threading.Lock())
        loop = self._event_loop()
        try:
            while True:
                fut = asyncio.run_coroutine_threadsafe(_anext(agen), loop)
                call.future = fut
                if call.cancelled:
                    fut.cancel()
                try:
                    chunk = fut.result()
                except StopAsyncIteration:
                    break
                finally:
                    call.future = None
                if not call.take_credit() or not self._send_value(P.CHUNK, call.id, chunk):
                    with contextlib.suppress(BaseException):
                        asyncio.run_coroutine_threadsafe(_aclose(agen), loop).result(5)
                    if call.cancelled:
                        self._send(P.END, call.id)
                    return
        except (asyncio.CancelledError, concurrent.futures.CancelledError):
            with contextlib.suppress(BaseException):
                asyncio.run_coroutine_threadsafe(_aclose(agen), loop).result(5)
            self._send(P.END, call.id)
            return
        except BaseException as exc:
            self._send_error(call.id, exc, traceback.format_exc(), call)
            return
        self._send(P.END, call.id)

    def _await(self, call: _Call, coro) -> object:
        fut = asyncio.run_coroutine_threadsafe(coro, self._event_loop())
        call.future = fut
        if call.cancelled:
            fut.cancel()
        try:
            return fut.result()
        finally:
            call.future = None

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._loop_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="dirty-asyncio", daemon=True).start()
                self._loop = loop
            return self._loop

    # -- sending -------------------------------------------------------------------

    def _send(self, kind: int, ident: int, payload: bytes = b"") -> None:
        data = P.frame(kind, ident, payload)
        try:
            with self._send_lock:
                self.sock.sendall(data)
        except OSError:
            pass  # the main loop sees the arbiter go and exits

    def _send_error(
        self, ident: int, exc: BaseException, tb: str = "", call: _Call | None = None
    ) -> None:
        app, action = (call.app, call.action) if call is not None else (None, None)
        info = error_to_wire(exc, tb, app, action)
        try:
            payload = P.encode(info)
        except CodecError:  # details the codec cannot carry: keep the rest
            info["details"] = {k: str(v) for k, v in info["details"].items()}
            payload = P.encode(info)
        self._send(P.ERROR, ident, payload)


async def _anext(agen):
    return await agen.__anext__()


async def _aclose(agen):
    await agen.aclose()
