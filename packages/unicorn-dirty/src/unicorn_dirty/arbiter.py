"""The dirty arbiter: listens on a Unix socket, supervises dirty workers, routes calls.

Theory of operation
-------------------
One thread, one `selectors` loop. Clients connect to the listening socket and
send REQUEST frames; the arbiter reads only the routing head (app, timeout),
gives the call an arbiter-wide id and forwards the payload untouched to the
least-busy ready worker that holds the app, or appends it to that app's queue.
Replies come back with the worker-side id; the arbiter swaps the 13-byte
header for the client's id and passes the payload through. A worker has
`dirty_threads` slots; when one frees, the oldest queued call among the
worker's apps takes it.

Every call has a deadline (its own timeout, at least MIN_TIMEOUT, else
`dirty_timeout`; for streams it moves forward with each chunk). A queued call
past it is answered with DirtyTimeoutError. A running one too, and it is
cancelled in its worker (ABANDONED); if it is still running
`dirty_cancel_timeout` later, the worker is retired: it takes no new calls, a
replacement starts, and once only such stuck calls are left on it, it is
killed (SIGKILL); its calls not yet started go back to the queue. A worker
that sends nothing, not even a heartbeat, for `dirty_timeout` is killed at
once. Calls running on a worker that dies get DirtyWorkerError; queued calls
are untouched and go to the next worker.

Clients are bounded (the DESIGN rule "every buffer has a bound"): client
frames are taken one at a time, and while a client's unread replies exceed
`dirty_max_client_buffer` it is *paused* -- not read, and its queued calls
are parked instead of started -- until it has read half; paused, or with a
frame begun, for longer than `dirty_client_timeout`, it is dropped. A
request over `dirty_max_payload` is answered from its header and its bytes
skipped. At most `dirty_max_clients` connections are kept.

Allocation: a new worker loads every unlimited app plus each limited app
whose holders are fewer than its limit, so a replacement for a dead worker
loads what the dead one held. HUP replaces workers one at a time (new one
ready, then the old one retires after its running calls); TTIN/TTOU move the
target count. The arbiter exits with its parent (PR_SET_PDEATHSIG and a
getppid() check) and removes its socket on the way out.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import logging
import os
import selectors
import signal
import socket
import stat
import time
from bisect import bisect_left
from collections import deque

from . import protocol as P
from .app import AppSpec, load_app
from .errors import (
    CodecError,
    DirtyAppNotFoundError,
    DirtyError,
    DirtyNoWorkersAvailableError,
    DirtyPayloadTooLargeError,
    DirtyTimeoutError,
    DirtyWorkerError,
    StashError,
    error_to_wire,
)
from .process import (
    SignalQueue,
    reopen_log_files,
    reset_signals,
    set_parent_death_signal,
    set_proc_title,
)
from .settings import MAX_PAYLOAD_ENV, SOCKET_ENV, DirtyConfig
from .stash import StashStore
from .worker import DirtyWorker

ARBITER_SIGNALS = [
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGCHLD,
]

# A call is QUEUED in the arbiter, RUNNING in a worker for a client that
# waits, ABANDONED when it still runs in a worker but nobody waits (it timed
# out or its caller cancelled; the worker was told to stop), DONE once over.
QUEUED, RUNNING, ABANDONED, DONE = 1, 2, 3, 4
# Per-call timeouts below this are raised to it: a deadline shorter than a
# round trip through the arbiter means nothing, and a corrupted one (4e-310 s)
# must not turn every call into a timeout.
MIN_TIMEOUT = 0.1
# A worker may hold one call beyond its `dirty_threads`, waiting, when the calls
# involved take less than this on average: the next call is then already there
# when a slot frees, instead of one arbiter round trip later.
PREFETCH_BELOW = 0.25
#: bounds (seconds) of the call-duration histogram in `status()` (Prometheus' defaults)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
_RECV = 262144


class _Endpoint:
    """A socket the loop reads frames from and writes frames to."""

    __slots__ = ("closed", "mask", "reader", "sock", "wbuf")

    def __init__(self, sock: socket.socket, max_payload: int, skip_oversized: bool = False) -> None:
        self.sock = sock
        self.reader = P.FrameReader(max_payload, skip_oversized)
        self.wbuf = bytearray()
        self.mask = selectors.EVENT_READ
        self.closed = False


class _Client(_Endpoint):
    """A client connection. Flow control: while `paused` (its unread replies are
    over `dirty_max_client_buffer`) its frames are not read and its queued
    calls wait in `parked` instead of starting."""

    __slots__ = ("calls", "opened", "parked", "partial_since", "paused", "paused_since", "used")

    def __init__(self, sock: socket.socket, max_payload: int) -> None:
        super().__init__(sock, max_payload, skip_oversized=True)
        self.opened = time.monotonic()
        self.used = False  # has sent at least one byte
        self.calls: dict[int, _Call] = {}
        self.parked: list[_Call] = []
        self.paused = False
        self.paused_since = 0.0
        self.partial_since = 0.0


class _Worker(_Endpoint):
    __slots__ = (
        "age",
        "apps",
        "booted",
        "dead",
        "inflight",
        "killed",
        "last_seen",
        "pid",
        "ready",
        "retiring",
        "term_sent",
    )

    def __init__(
        self, sock: socket.socket, max_payload: int, pid: int, age: int, apps: tuple[str, ...]
    ) -> None:
        super().__init__(sock, max_payload)
        self.pid = pid
        self.age = age
        self.apps = apps
        self.ready = False
        self.booted = time.monotonic()
        self.retiring = False
        self.term_sent = False
        self.dead = False
        self.killed = ""
        self.last_seen = time.monotonic()
        self.inflight: dict[int, _Call] = {}


class _Call:
    __slots__ = (
        "app",
        "client",
        "deadline",
        "grace",
        "id",
        "overdue",
        "payload",
        "rid",
        "sent",
        "state",
        "timeout",
        "worker",
    )

    def __init__(
        self, client: _Client, rid: int, app: str, payload: bytes, timeout: float, ident: int
    ) -> None:
        self.client = client
        self.rid = rid
        self.app = app
        self.payload = payload
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.id = ident
        self.state = QUEUED
        self.worker: _Worker | None = None
        self.sent = 0.0
        self.grace = False  # the deadline now ends the grace after cancellation
        self.overdue = False  # cancelled, and still running past that grace


def _listening(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


class DirtyArbiter:
    """The dirty pool's supervisor. `run()` blocks until shutdown and returns an exit code."""

    def __init__(
        self,
        cfg: object,
        socket_path: str,
        log: logging.Logger | None = None,
        watch_parent: bool = False,
        remove_dir: bool = False,
        parent_pid: int | None = None,
    ) -> None:
        self.cfg = cfg if isinstance(cfg, DirtyConfig) else DirtyConfig.from_object(cfg)
        self.socket_path = socket_path
        self.log = log or logging.getLogger("unicorn.dirty")
        self.watch_parent = watch_parent
        self.remove_dir = remove_dir
        self.pid = 0
        self.ppid = parent_pid or 0
        self.num_workers = int(self.cfg.dirty_workers)
        self.threads = max(1, int(self.cfg.dirty_threads))
        self.timeout = float(self.cfg.dirty_timeout)
        self.max_payload = int(self.cfg.dirty_max_payload)
        self.max_queue = int(self.cfg.dirty_max_queue)
        self.max_clients = max(1, int(self.cfg.dirty_max_clients))
        self.client_buffer = max(1, int(self.cfg.dirty_max_client_buffer))
        self.client_timeout = max(0.01, float(self.cfg.dirty_client_timeout))
        self.cancel_timeout = max(0.0, float(self.cfg.dirty_cancel_timeout))
        self.clients: set[_Client] = set()
        self._unused: dict[_Client, None] = {}  # clients that sent nothing yet, oldest first
        self._refused = 0
        self._refused_logged = 0.0
        self.specs: dict[str, AppSpec] = {}
        self.workers: list[_Worker] = []
        self.by_pid: dict[int, _Worker] = {}
        self.holders: dict[str, list[_Worker]] = {}
        self.queues: dict[str, deque[_Call]] = {}
        self.depth: dict[str, int] = {}
        self.avg: dict[str, float] = {}  # moving average of call durations, per app
        self.stash = StashStore()
        self.stopping = ""  # "", "graceful", "fast"
        self.stop_deadline = 0.0
        self._ids = itertools.count(1)
        self._ages = itertools.count(1)
        self._timers: list[tuple[float, int, _Call]] = []
        self._reload: list[_Worker] = []
        self._replacing: tuple[_Worker, _Worker] | None = None
        self._boot_failures = 0
        self._next_spawn = 0.0
        self.stats = {
            "calls": 0,
            "timeouts": 0,
            "worker_deaths": 0,
            "workers_replaced_stuck": 0,
            "clients_dropped": 0,
            "clients_refused": 0,
            "oversized_requests": 0,
        }
        #: finished calls per LATENCY_BUCKETS slot (the last: longer), and their sum
        self.latency = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.listener: socket.socket | None = None
        self.sel: selectors.BaseSelector | None = None
        self.signals: SignalQueue | None = None

    # -- setup -------------------------------------------------------------------

    def load_apps(self) -> None:
        for entry in self.cfg.dirty_apps:
            spec = load_app(entry)
            if spec.name in self.specs:
                raise ValueError(f"dirty app {spec.name!r} listed twice")
            self.specs[spec.name] = spec
            self.holders[spec.name] = []
            self.queues[spec.name] = deque()
            self.depth[spec.name] = 0
            self.avg[spec.name] = PREFETCH_BELOW  # unknown: no prefetch until measured
            for table in spec.stashes:
                self.stash.apply("ensure", (table,))
        if not self.specs:
            raise ValueError("no dirty apps configured")

    @property
    def min_workers(self) -> int:
        return max([1] + [s.limit for s in self.specs.values() if s.limit])

    def _bind(self) -> socket.socket:
        path = self.socket_path
        parent = os.path.dirname(path) or "."
        if not os.path.isdir(parent):
            os.makedirs(parent, mode=0o700, exist_ok=True)
        if self.remove_dir:  # our private directory: it must still be ours alone
            st = os.stat(parent)
            if st.st_uid != os.getuid() or st.st_mode & 0o077:
                raise OSError(errno.EPERM, f"{parent} is not a private directory of this user")
        else:
            st = os.stat(parent)
            if st.st_mode & 0o002 and not st.st_mode & stat.S_ISVTX:
                self.log.warning(
                    "dirty arbiter: %s can be written by any user, who could replace "
                    "the socket; give dirty_socket a path in a directory of your own",
                    parent,
                )
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(path)
            if not stat.S_ISSOCK(st.st_mode):
                raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
            if _listening(path):  # a USR2 upgrade's new pool takes over on purpose
                self.log.warning(
                    "dirty arbiter: another process listens at %s; new clients will reach "
                    "this pool instead",
                    path,
                )
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        sock.listen(1024)
        sock.setblocking(False)
        return sock

    def run(self) -> int:
        """Serve until told to stop. Call in the process that should be the arbiter."""
        self.pid = os.getpid()
        self.ppid = self.ppid or os.getppid()
        if self.watch_parent:
            set_parent_death_signal(signal.SIGTERM)
        set_proc_title("unicorn-dirty arbiter")
        self.signals = SignalQueue(ARBITER_SIGNALS)
        # the workers' own clients (stash calls from actions) find the pool here
        os.environ[SOCKET_ENV] = self.socket_path
        os.environ[MAX_PAYLOAD_ENV] = str(self.max_payload)
        try:
            if not self.specs and self.num_workers > 0:
                self.load_apps()
            self.listener = self._bind()
        except Exception:
            self.log.exception("dirty arbiter failed to start")
            self._cleanup_socket()
            return 1
        if self.watch_parent and os.getppid() != self.ppid:
            self._cleanup_socket()
            return 0
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listener, selectors.EVENT_READ, None)
        self.sel.register(self.signals.rsock, selectors.EVENT_READ, self.signals)
        self.log.info(
            "dirty arbiter %s listening at %s with %d worker(s): %s",
            self.pid,
            self.socket_path,
            self.num_workers,
            ", ".join(self.specs) or ", ".join(self.cfg.dirty_apps),
        )
        if self.num_workers == 0:
            self.log.warning(
                "dirty_workers is 0: the dirty pool is disabled (no app imported, no "
                "worker); calls fail at once with DirtyNoWorkersAvailableError"
            )
        try:
            self.cfg.on_dirty_starting(self)
        except Exception:
            self.log.exception("on_dirty_starting hook failed")
        try:
            self._maintain()
            self._loop()
        finally:
            self._shutdown_finish()
        return 0

    # -- the loop --------------------------------------------------------------------

    def _loop(self) -> None:
        sel = self.sel
        next_tick = 0.0
        while True:
            now = time.monotonic()
            wait = max(0.0, min(next_tick - now, self._timers[0][0] - now if self._timers else 1.0))
            for key, mask in sel.select(wait):
                ep = key.data
                if ep is None:
                    self._accept()
                elif ep is self.signals:
                    for sig in self.signals.drain():
                        self._on_signal(sig)
                else:
                    if mask & selectors.EVENT_WRITE:
                        self._flush(ep)
                    if mask & selectors.EVENT_READ and not ep.closed:
                        self._read(ep)
            now = time.monotonic()
            if self._timers and self._timers[0][0] <= now:
                self._expire(now)
            if now >= next_tick:
                next_tick = now + 0.1
                self._tick(now)
                if self.stopping and self._stop_step(now):
                    return

    def _accept(self) -> None:
        for _ in range(64):
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.log.warning("dirty arbiter accept failed: %s", exc)
                return
            if len(self.clients) >= self.max_clients and not self._evict_idle():
                sock.close()
                self._refused += 1
                self.stats["clients_refused"] += 1
                now = time.monotonic()
                if now - self._refused_logged >= 1.0:
                    self.log.warning(
                        "dirty arbiter: refused %d client connection(s): dirty_max_clients "
                        "(%d) are open",
                        self._refused,
                        self.max_clients,
                    )
                    self._refused = 0
                    self._refused_logged = now
                continue
            sock.setblocking(False)
            client = _Client(sock, self.max_payload)
            self.clients.add(client)
            self._unused[client] = None
            self.sel.register(sock, selectors.EVENT_READ, client)

    def _evict_idle(self) -> bool:
        """At dirty_max_clients: close the oldest connection that has sent nothing for
        dirty_client_timeout (a client in use always has), to make room for a new one."""
        victim = next(iter(self._unused), None)
        if victim is None or time.monotonic() - victim.opened < self.client_timeout:
            return False
        self._drop(
            victim,
            f"it sent nothing in {time.monotonic() - victim.opened:.0f}s and "
            f"dirty_max_clients ({self.max_clients}) are open",
        )
        return True

    def _read(self, ep: _Endpoint) -> None:
        try:
            data = ep.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(ep, "")
            return
        if isinstance(ep, _Client):
            if not ep.used:
                ep.used = True
                del self._unused[ep]
            ep.reader.push(data)
            self._drain(ep)
            return
        try:
            frames = ep.reader.feed(data)
        except DirtyError as exc:
            self.log.warning("dirty arbiter: closing worker %s: %s", ep.pid, exc)
            self._close(ep, str(exc))
            return
        ep.last_seen = time.monotonic()
        for kind, ident, payload in frames:
            self._on_worker_frame(ep, kind, ident, payload)

    def _drain(self, client: _Client) -> None:
        """Handle the client's buffered frames, one at a time, until it is paused."""
        reader = client.reader
        completed = False
        while not client.paused:
            try:
                frame = reader.next_frame()
            except DirtyError as exc:
                self._drop(client, str(exc))
                return
            if frame is None:
                break
            completed = True
            kind, rid, payload = frame
            if payload is None:
                self._on_oversized(client, kind, rid, reader.skipped)
            else:
                self._on_client_frame(client, kind, rid, payload)
            if client.closed:
                return
        if client.paused or not reader.incomplete:
            client.partial_since = 0.0
        elif completed or not client.partial_since:
            client.partial_since = time.monotonic()

    def _drop(self, client: _Client, why: str) -> None:
        self.log.warning("dirty arbiter: closing client fd %s: %s", client.sock.fileno(), why)
        self.stats["clients_dropped"] += 1
        self._close(client, why)

    def _events(self, ep: _Endpoint) -> None:
        """Select on what `ep` needs: reading unless paused, writing while bytes wait."""
        mask = selectors.EVENT_WRITE if ep.wbuf else 0
        if not (isinstance(ep, _Client) and ep.paused):
            mask |= selectors.EVENT_READ
        if mask != ep.mask and mask:
            ep.mask = mask
            self.sel.modify(ep.sock, mask, ep)

    def _write(self, ep: _Endpoint, data: bytes) -> None:
        if ep.closed:
            return
        if ep.wbuf:
            ep.wbuf += data
        else:
            try:
                n = ep.sock.send(data)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                self._close(ep, "")
                return
            if n == len(data):
                return
            ep.wbuf += memoryview(data)[n:]
        if isinstance(ep, _Client) and not ep.paused and len(ep.wbuf) > self.client_buffer:
            ep.paused = True
            ep.paused_since = time.monotonic()
        self._events(ep)

    def _flush(self, ep: _Endpoint) -> None:
        try:
            n = ep.sock.send(ep.wbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(ep, "")
            return
        del ep.wbuf[:n]
        if isinstance(ep, _Client) and ep.paused:
            if len(ep.wbuf) > self.client_buffer // 2:
                return
            self._resume(ep)
            return
        if not ep.wbuf:
            self._events(ep)

    def _resume(self, client: _Client) -> None:
        """The client read enough of its replies: read its frames and start its calls again."""
        client.paused = False
        client.paused_since = 0.0
        self._events(client)
        parked, client.parked = client.parked, []
        for call in reversed(parked):
            if call.state == QUEUED:
                self.queues[call.app].appendleft(call)
        if parked:
            for w in self.workers:
                self._fill(w)
        self._drain(client)

    def _close(self, ep: _Endpoint, reason: str) -> None:
        if ep.closed:
            return
        ep.closed = True
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(ep.sock)
        ep.sock.close()
        if isinstance(ep, _Client):
            self.clients.discard(ep)
            self._unused.pop(ep, None)
            for call in list(ep.calls.values()):
                self._cancel(call)
            ep.calls.clear()
            ep.parked.clear()
        else:
            self._worker_gone(ep, reason or "connection closed")

    # -- clients -----------------------------------------------------------------------

    def _on_client_frame(self, client: _Client, kind: int, rid: int, payload: bytes) -> None:
        if kind == P.REQUEST:
            try:
                app, timeout, _ = P.decode_route(payload)
            except CodecError as exc:
                self.log.warning(
                    "dirty arbiter: closing client fd %s: %s", client.sock.fileno(), exc
                )
                self._close(client, str(exc))
                return
            self._submit(client, rid, app, payload, timeout)
        elif kind == P.CREDIT:
            call = client.calls.get(rid)
            if call is not None and call.state == RUNNING:
                self._write(call.worker, P.frame(P.CREDIT, call.id, payload))
        elif kind == P.CANCEL:
            call = client.calls.pop(rid, None)
            if call is not None:
                self._cancel(call)
        elif kind == P.STASH:
            self._on_stash(client, rid, payload)
        elif kind == P.STATUS:
            self._write(client, P.frame(P.RESULT, rid, P.encode(self.status())))
        else:
            self.log.warning(
                "dirty arbiter: closing client fd %s: unexpected frame kind %d",
                client.sock.fileno(),
                kind,
            )
            self._close(client, f"unexpected frame kind {kind}")

    def _on_oversized(self, client: _Client, kind: int, rid: int, size: int) -> None:
        """A frame over dirty_max_payload: its bytes are being skipped; fail that call only."""
        if kind not in (P.REQUEST, P.STASH):
            self._drop(
                client, f"frame of {size} bytes exceeds dirty_max_payload ({self.max_payload})"
            )
            return
        self.stats["oversized_requests"] += 1
        self.log.warning(
            "dirty arbiter: client fd %s sent a request of %d bytes, over dirty_max_payload "
            "(%d): answered DirtyPayloadTooLargeError, its bytes discarded",
            client.sock.fileno(),
            size,
            self.max_payload,
        )
        self._reply_error(
            client,
            rid,
            DirtyPayloadTooLargeError(
                f"request of {size} bytes exceeds dirty_max_payload ({self.max_payload})",
                size,
                self.max_payload,
            ),
        )

    def _reply_error(self, client: _Client, rid: int, exc: DirtyError) -> None:
        self._write(client, P.frame(P.ERROR, rid, P.encode(error_to_wire(exc))))

    def _submit(
        self, client: _Client, rid: int, app: str, payload: bytes, timeout: float | None
    ) -> None:
        if self.num_workers == 0 and not self.workers:
            self._reply_error(
                client,
                rid,
                DirtyNoWorkersAvailableError(
                    app, f"the dirty pool is disabled (dirty_workers is 0): cannot run {app}"
                ),
            )
            return
        if app not in self.specs:
            self._reply_error(
                client,
                rid,
                DirtyAppNotFoundError(
                    app, f"dirty app {app!r} is not configured (known: {', '.join(self.specs)})"
                ),
            )
            return
        if self.stopping:
            self._reply_error(
                client,
                rid,
                DirtyNoWorkersAvailableError(app, "the dirty arbiter is shutting down"),
            )
            return
        if not self.holders[app] and self._boot_failures:
            self._reply_error(
                client,
                rid,
                DirtyNoWorkersAvailableError(
                    app,
                    f"no dirty worker holds {app}: workers fail to boot "
                    f"({self._boot_failures} in a row, see the arbiter's log)",
                ),
            )
            return
        timeout = self.timeout if timeout is None else max(timeout, MIN_TIMEOUT)
        call = _Call(client, rid, app, payload, timeout, next(self._ids))
        self.stats["calls"] += 1
        client.calls[rid] = call
        heapq.heappush(self._timers, (call.deadline, call.id, call))
        best = None
        limit = self.threads + 1 if self.avg[app] < PREFETCH_BELOW else self.threads
        for w in self.holders[app]:
            n = len(w.inflight)
            if n < limit and w.ready and (best is None or n < len(best.inflight)):
                if n >= self.threads and not self._short(w):
                    continue
                best = w
                if n == 0:
                    break
        if best is not None:
            self._dispatch(call, best)
        elif self.depth[app] >= self.max_queue:
            client.calls.pop(rid, None)
            call.state = DONE
            self._reply_error(
                client,
                rid,
                DirtyNoWorkersAvailableError(
                    app, f"queue of dirty app {app!r} is full ({self.max_queue} calls)"
                ),
            )
        else:
            self.queues[app].append(call)
            self.depth[app] += 1

    def _dispatch(self, call: _Call, w: _Worker) -> None:
        call.state = RUNNING
        call.worker = w
        call.sent = time.monotonic()
        w.inflight[call.id] = call
        payload = call.payload
        self._write(w, P.frame_header(P.REQUEST, call.id, len(payload)) + payload)

    def _short(self, w: _Worker) -> bool:
        """Whether every call on `w` is of an app whose calls are short (prefetch is safe)."""
        avg = self.avg
        return all(avg[c.app] < PREFETCH_BELOW for c in w.inflight.values())

    def _started(self, call: _Call) -> bool:
        """Whether the worker has started `call` (it runs its calls in dispatch order)."""
        for i, ident in enumerate(call.worker.inflight):
            if ident == call.id:
                return i < self.threads
        return True

    def _cancel(self, call: _Call) -> None:
        if call.state == QUEUED:
            call.state = DONE
            self.depth[call.app] -= 1
        elif call.state == RUNNING:
            # the worker's terminal frame still frees the slot; the call's
            # deadline still holds, then dirty_cancel_timeout (see _expire)
            call.state = ABANDONED
            self._write(call.worker, P.frame(P.CANCEL, call.id))

    def _finish(self, call: _Call, kind: int, payload: bytes) -> None:
        """Deliver a reply frame to the call's client (if it still waits)."""
        if call.state == DONE or call.state == ABANDONED:
            return
        client = call.client
        if kind != P.CHUNK:
            call.state = DONE
            client.calls.pop(call.rid, None)
        self._write(client, P.frame_header(kind, call.rid, len(payload)) + payload)

    def _fail(self, call: _Call, exc: DirtyError) -> None:
        self._finish(call, P.ERROR, P.encode(error_to_wire(exc)))

    # -- workers -------------------------------------------------------------------------

    def _on_worker_frame(self, w: _Worker, kind: int, wid: int, payload: bytes) -> None:
        if kind == P.CHUNK:
            call = w.inflight.get(wid)
            if call is not None and call.state == RUNNING:
                call.deadline = time.monotonic() + call.timeout
                self._finish(call, kind, payload)
        elif kind == P.RESULT or kind == P.END or kind == P.ERROR:
            call = w.inflight.pop(wid, None)
            if call is not None:
                call.payload = b""
                if call.state == RUNNING:
                    took = time.monotonic() - call.sent
                    self.avg[call.app] += (took - self.avg[call.app]) * 0.2
                    self.latency[bisect_left(LATENCY_BUCKETS, took)] += 1
                    self.latency_sum += took
                self._finish(call, kind, payload)
                call.state = DONE
                if w.retiring:
                    self._maybe_stop_retired(w)
                else:
                    self._fill(w)
        elif kind == P.HEARTBEAT:
            pass
        elif kind == P.READY:
            w.ready = True
            self._boot_failures = 0
            self.log.info("dirty worker %s ready (apps: %s)", w.pid, ", ".join(w.apps))
            if self._replacing and self._replacing[1] is w:
                old = self._replacing[0]
                self._replacing = None
                self._retire(old)
                self._advance_reload()
            self._fill(w)
        else:
            self.log.warning(
                "dirty arbiter: closing worker %s: unexpected frame kind %d", w.pid, kind
            )
            self._kill(w, "protocol error")

    def _fill(self, w: _Worker) -> None:
        if w.retiring or not w.ready or w.dead:
            return
        threads = self.threads
        while len(w.inflight) < threads + 1:
            best_q = None
            best_id = 0
            for app in w.apps:
                q = self.queues[app]
                while q and (q[0].state != QUEUED or q[0].client.paused):
                    call = q.popleft()
                    if call.state == QUEUED:  # its client does not read: wait for it
                        call.client.parked.append(call)
                if q and (best_q is None or q[0].id < best_id):
                    best_q, best_id = q, q[0].id
            if best_q is None:
                return
            call = best_q[0]
            if len(w.inflight) >= threads and not (
                self.avg[call.app] < PREFETCH_BELOW and self._short(w)
            ):
                return
            best_q.popleft()
            self.depth[call.app] -= 1
            self._dispatch(call, w)

    def _assign(self) -> tuple[str, ...]:
        apps = []
        for name, spec in self.specs.items():
            if spec.limit is None or len(self._live_holders(name)) < spec.limit:
                apps.append(name)
        return tuple(apps)

    def _live_holders(self, app: str) -> list[_Worker]:
        return [w for w in self.workers if app in w.apps and not w.dead and not w.retiring]

    def _active(self) -> list[_Worker]:
        return [w for w in self.workers if not w.dead and not w.retiring]

    def _spawn(self, apps: tuple[str, ...] | None = None) -> _Worker | None:
        apps = apps if apps is not None else self._assign()
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        age = next(self._ages)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                parent_sock.close()
                self._close_inherited()
                specs = [self.specs[a] for a in apps]
                code = DirtyWorker(self, age, specs, child_sock, self.cfg, self.log).run()
            except BaseException:
                self.log.exception("dirty worker crashed")
            finally:
                os._exit(code)
        child_sock.close()
        parent_sock.setblocking(False)
        w = _Worker(parent_sock, self.max_payload + 64, pid, age, apps)
        self.workers.append(w)
        self.by_pid[pid] = w
        for app in apps:
            self.holders[app].append(w)
        self.sel.register(parent_sock, selectors.EVENT_READ, w)
        self.log.info("dirty arbiter spawned worker %s (apps: %s)", pid, ", ".join(apps) or "-")
        return w

    def _close_inherited(self) -> None:
        """In a freshly forked worker: drop the arbiter's sockets."""
        if self.signals is not None:
            self.signals.close()
        if self.sel is not None:
            for key in list(self.sel.get_map().values()):
                with contextlib.suppress(OSError):
                    key.fileobj.close()
            self.sel.close()
        reset_signals(ARBITER_SIGNALS)

    def _kill(self, w: _Worker, why: str, sig: int = signal.SIGKILL) -> None:
        if not w.killed:
            w.killed = why
            self.log.error("dirty worker %s %s: killing it", w.pid, why)
        with contextlib.suppress(ProcessLookupError):
            os.kill(w.pid, sig)
        self._close(w, why)

    def _worker_gone(self, w: _Worker, reason: str) -> None:
        """The worker's socket closed: it is dead or dying. Idempotent."""
        if w.dead:
            return
        w.dead = True
        self.stats["worker_deaths"] += 0 if (w.retiring or self.stopping) else 1
        for app in w.apps:
            with contextlib.suppress(ValueError):
                self.holders[app].remove(w)
        if not w.closed:
            self._close(w, reason)
        calls = list(w.inflight.values())
        w.inflight.clear()
        for call in reversed(
            calls[self.threads :]
        ):  # prefetched, never started: try again elsewhere
            if call.state == RUNNING:
                call.state = QUEUED
                call.worker = None
                self.queues[call.app].appendleft(call)
                self.depth[call.app] += 1
        for call in calls[: self.threads]:
            why = w.killed or reason
            self._fail(
                call,
                DirtyWorkerError(
                    f"dirty worker {w.pid} died ({why}) while running a call to {call.app}",
                    worker_id=w.pid,
                ),
            )
            call.state = DONE
        if not w.ready and not w.retiring and not self.stopping:
            self._boot_failures += 1
            delay = min(0.1 * 2 ** min(self._boot_failures, 6), 5.0)
            self._next_spawn = time.monotonic() + delay
            for app in w.apps:  # nothing can serve what waits for it: say so now
                if not self.holders[app]:
                    self._fail_queued(
                        app,
                        f"no dirty worker holds {app}: workers fail to boot "
                        f"({self._boot_failures} in a row, see the arbiter's log)",
                    )
        if self._replacing and self._replacing[1] is w:
            self.log.error("dirty worker %s died before it was ready; reload stopped", w.pid)
            self._replacing = None
            self._reload.clear()
        self._maintain()

    def _fail_queued(self, app: str, why: str) -> None:
        q = self.queues[app]
        while q:
            call = q.popleft()
            if call.state == QUEUED:
                call.state = DONE
                self.depth[app] -= 1
                call.client.calls.pop(call.rid, None)
                self._reply_error(call.client, call.rid, DirtyNoWorkersAvailableError(app, why))

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            w = self.by_pid.pop(pid, None)
            if w is None:
                continue
            with contextlib.suppress(ValueError):
                self.workers.remove(w)
            if not w.retiring and not self.stopping:
                if os.WIFSIGNALED(status):
                    self.log.warning(
                        "dirty worker %s killed by signal %d", pid, os.WTERMSIG(status)
                    )
                elif os.WEXITSTATUS(status):
                    self.log.warning(
                        "dirty worker %s exited with status %d", pid, os.WEXITSTATUS(status)
                    )
            self._worker_gone(w, "exited")

    def _maintain(self) -> None:
        if self.stopping or self.num_workers == 0:
            return
        if not self.specs:  # TTIN on a pool started with dirty_workers = 0
            try:
                self.load_apps()
            except Exception:
                self.log.exception("dirty arbiter: cannot load the dirty apps")
                self.num_workers = 0
                return
        now = time.monotonic()
        if now < self._next_spawn:
            return
        while len(self._active()) < self.num_workers:
            self._spawn()
            if self._boot_failures:
                break  # one at a time while workers fail to boot

    def _retire(self, w: _Worker) -> None:
        if w.dead or w.retiring:
            return
        w.retiring = True
        for app in w.apps:
            with contextlib.suppress(ValueError):
                self.holders[app].remove(w)
        self._maybe_stop_retired(w)

    def _maybe_stop_retired(self, w: _Worker) -> None:
        if w.dead:
            return
        started = list(w.inflight.values())[: self.threads]
        if started and all(c.overdue for c in started):
            # only calls that ignored their cancellation are left: nothing else to wait for
            self._kill(
                w,
                f"did not stop {len(started)} cancelled call(s) within "
                f"dirty_cancel_timeout ({self.cancel_timeout:g}s)",
            )
            return
        if not w.inflight and not w.term_sent:
            w.term_sent = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(w.pid, signal.SIGTERM)

    def _advance_reload(self) -> None:
        while self._reload and self._replacing is None and not self.stopping:
            old = self._reload.pop(0)
            if old.dead or old.retiring:
                continue
            new = self._spawn(old.apps)
            self._replacing = (old, new)

    # -- timers ----------------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, _, call = heapq.heappop(timers)
            if call.state == DONE:
                continue
            if call.deadline > deadline:  # moved by a chunk
                heapq.heappush(timers, (call.deadline, call.id, call))
                continue
            if call.state == QUEUED:
                self.stats["timeouts"] += 1
                self.depth[call.app] -= 1
                call.state = DONE
                call.client.calls.pop(call.rid, None)
                self._reply_error(
                    call.client,
                    call.rid,
                    DirtyTimeoutError(
                        f"call to {call.app} timed out after {call.timeout:g}s waiting for a worker",
                        timeout=call.timeout,
                    ),
                )
                continue
            w = call.worker
            if call.state == RUNNING:
                # the caller hears at once; the worker is asked to stop the call
                self.stats["timeouts"] += 1
                waiting = "" if self._started(call) else " waiting for a worker"
                self._fail(
                    call,
                    DirtyTimeoutError(
                        f"call to {call.app} timed out after {call.timeout:g}s{waiting}",
                        timeout=call.timeout,
                    ),
                )
                call.state = ABANDONED
                self._write(w, P.frame(P.CANCEL, call.id))
            if not call.grace:  # ABANDONED: give it dirty_cancel_timeout to stop
                call.grace = True
                call.deadline = now + self.cancel_timeout
                heapq.heappush(timers, (call.deadline, call.id, call))
                continue
            call.overdue = True
            if not w.dead and self._started(call):
                self._stuck(w, call)

    def _stuck(self, w: _Worker, call: _Call) -> None:
        """`call` ignored its cancellation: replace `w` without failing its other calls."""
        if not w.retiring:
            self.stats["workers_replaced_stuck"] += 1
            self.log.error(
                "dirty worker %s still runs a call to %s %gs after cancelling it (its "
                "timeout was %gs): replacing the worker once its other calls finish",
                w.pid,
                call.app,
                self.cancel_timeout,
                call.timeout,
            )
            self._retire(w)
            self._maintain()
        else:
            self._maybe_stop_retired(w)

    def _tick(self, now: float) -> None:
        limit = self.client_timeout
        for c in [c for c in self.clients if c.paused_since or c.partial_since]:
            if c.paused and now - c.paused_since > limit:
                self._drop(
                    c,
                    f"its replies went unread for {limit:g}s "
                    f"({len(c.wbuf)} bytes pending, over dirty_max_client_buffer)",
                )
            elif not c.paused and c.partial_since and now - c.partial_since > limit:
                self._drop(
                    c,
                    f"a frame stayed incomplete for {limit:g}s "
                    f"({c.reader.buffered} bytes of it received)",
                )
        for w in list(self.workers):
            if not w.dead and now - w.last_seen > self.timeout:
                self._kill(w, f"sent no heartbeat for {self.timeout:g}s")
            elif w.retiring and w.term_sent and now - w.last_seen > self.cfg.dirty_graceful_timeout:
                self._kill(w, "did not exit after TERM")
        if self.watch_parent and not self.stopping and os.getppid() != self.ppid:
            self.log.warning("dirty arbiter: parent %s is gone, shutting down", self.ppid)
            self._begin_stop("graceful")
        self.stash.expire(now)
        self._maintain()

    # -- signals --------------------------------------------------------------------------

    def _on_signal(self, sig: int) -> None:
        if sig == signal.SIGCHLD:
            self._reap()
        elif sig == signal.SIGTERM:
            self._begin_stop("graceful")
        elif sig in (signal.SIGINT, signal.SIGQUIT):
            self._begin_stop("fast")
        elif sig == signal.SIGHUP:
            if self.stopping:
                return
            self.log.info("dirty arbiter: HUP, replacing workers one by one")
            self._reload = [w for w in self._active()]
            self._advance_reload()
        elif sig == signal.SIGUSR1:
            reopen_log_files()
            for w in self.workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.pid, signal.SIGUSR1)
        elif sig == signal.SIGTTIN:
            if not self.stopping:
                self.num_workers += 1
                self.log.info("dirty arbiter: TTIN, %d worker(s)", self.num_workers)
                self._maintain()
        elif sig == signal.SIGTTOU:
            self._decrease()

    def _decrease(self) -> None:
        if self.stopping:
            return
        if self.num_workers <= self.min_workers:
            self.log.warning(
                "dirty arbiter: TTOU ignored, %d worker(s) is the minimum the app limits need",
                self.min_workers,
            )
            return
        self.num_workers -= 1
        target = self.num_workers
        active = self._active()
        if len(active) <= target:
            return
        victim = None
        for w in sorted(active, key=lambda w: w.age, reverse=True):
            ok = all(
                len(self._live_holders(a)) - 1 >= min(self.specs[a].limit or target, target)
                for a in w.apps
                if self.specs[a].limit
            )
            if ok:
                victim = w
                break
        victim = victim or max(active, key=lambda w: w.age)
        self.log.info("dirty arbiter: TTOU, retiring worker %s, %d worker(s)", victim.pid, target)
        self._retire(victim)

    # -- stopping ---------------------------------------------------------------------------

    def _begin_stop(self, how: str) -> None:
        if self.stopping == "fast" or self.stopping == how:
            return
        first = not self.stopping
        self.stopping = how
        if first:
            self.log.info("dirty arbiter: %s shutdown", how)
            if self.listener is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self.sel.unregister(self.listener)
                self.listener.close()
                self.listener = None
                self._cleanup_socket()
        grace = float(self.cfg.dirty_graceful_timeout) if how == "graceful" else 1.0
        deadline = time.monotonic() + grace
        self.stop_deadline = min(self.stop_deadline, deadline) if self.stop_deadline else deadline
        if how == "fast":
            for w in self.workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.pid, signal.SIGQUIT)

    def _stop_step(self, now: float) -> bool:
        """One step of shutdown; True when the arbiter may exit."""
        self._reap()
        # calls parked for a client that does not read its replies do not hold shutdown up
        busy = any(w.inflight for w in self.workers if not w.dead) or any(
            c.state == QUEUED and not c.client.paused for q in self.queues.values() for c in q
        )
        if self.stopping == "graceful" and not busy:
            for w in self.workers:
                if not w.term_sent:
                    w.term_sent = True
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(w.pid, signal.SIGTERM)
        if not self.by_pid:
            return True
        if now >= self.stop_deadline:
            for w in list(self.by_pid.values()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.pid, signal.SIGKILL)
            end = time.monotonic() + 2.0
            while self.by_pid and time.monotonic() < end:
                self._reap()
                time.sleep(0.01)
            return True
        return False

    def _shutdown_finish(self) -> None:
        for q in [*self.queues.values(), *(c.parked for c in self.clients)]:
            for call in q:
                if call.state == QUEUED:
                    self._reply_error(
                        call.client,
                        call.rid,
                        DirtyNoWorkersAvailableError(call.app, "the dirty arbiter shut down"),
                    )
        if self.sel is not None:
            for key in list(self.sel.get_map().values()):
                if isinstance(key.data, _Endpoint):
                    ep = key.data
                    if ep.wbuf:
                        with contextlib.suppress(OSError):
                            ep.sock.setblocking(True)
                            ep.sock.settimeout(0.5)
                            ep.sock.sendall(ep.wbuf)
                    with contextlib.suppress(OSError):
                        ep.sock.close()
            self.sel.close()
        if self.listener is not None:
            self.listener.close()
        self._cleanup_socket()
        if self.signals is not None:
            self.signals.close()
        self.log.info("dirty arbiter %s exiting", self.pid)

    def _cleanup_socket(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.socket_path)
        if self.remove_dir:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(self.socket_path))

    # -- stash and status -------------------------------------------------------------------

    def _on_stash(self, client: _Client, rid: int, payload: bytes) -> None:
        try:
            msg = P.decode(payload)
            if (
                type(msg) is not tuple
                or len(msg) != 2
                or type(msg[0]) is not str
                or type(msg[1]) is not tuple
            ):
                raise CodecError("stash message is not (op, args)")
            result = self.stash.apply(msg[0], msg[1])
        except CodecError as exc:
            self.log.warning("dirty arbiter: closing client fd %s: %s", client.sock.fileno(), exc)
            self._close(client, str(exc))
            return
        except StashError as exc:
            self._reply_error(client, rid, exc)
            return
        try:
            out = P.encode(result)
        except CodecError as exc:
            self._reply_error(client, rid, StashError(str(exc)))
            return
        self._write(client, P.frame(P.RESULT, rid, out))

    def _latency(self) -> dict:
        """Cumulative `[bound, calls]` pairs (bound None: all calls) and the sum."""
        pairs, running = [], 0
        for bound, count in zip((*LATENCY_BUCKETS, None), self.latency, strict=True):
            running += count
            pairs.append([bound, running])
        return {"buckets": pairs, "sum": self.latency_sum}

    def status(self) -> dict:
        """What `DirtyClient.status()` returns: workers, per-app queue depth, counters."""
        return {
            "pid": self.pid,
            "num_workers": self.num_workers,
            "threads": self.threads,
            "workers": [
                {
                    "pid": w.pid,
                    "age": w.age,
                    "apps": list(w.apps),
                    "ready": w.ready,
                    "busy": len(w.inflight),
                    "retiring": w.retiring,
                }
                for w in self.workers
                if not w.dead
            ],
            "apps": {
                name: {
                    "limit": spec.limit,
                    "queued": self.depth[name],
                    "workers": [w.pid for w in self.holders[name]],
                }
                for name, spec in self.specs.items()
            },
            "clients": len(self.clients),
            "paused_clients": sum(1 for c in self.clients if c.paused),
            "stats": dict(self.stats),
            "latency": self._latency(),
            "stopping": self.stopping,
        }
