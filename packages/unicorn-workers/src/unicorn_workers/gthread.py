"""The gthread worker: a pool of threads serving many keep-alive connections.

Theory of operation
-------------------
gunicorn's gthread worker polls in the main thread and hands each readable
connection to a thread pool through a queue, then hands it back when the
response is done: two thread switches and two queue operations per request.
Here the pool threads wait on the poller themselves. Every socket, listeners
included, is registered with ``EPOLLONESHOT``: the kernel reports a ready
socket to exactly one waiting thread and then disarms it, so that thread owns
the connection until it re-arms it. The thread that sees a connection become
readable reads it, runs the application, writes the response and goes on with
any pipelined request already buffered; when the parser needs more bytes it
re-arms the socket and goes back to waiting. No request crosses threads.

The main thread does what needs a clock or a signal: the heartbeat, closing
connections idle for longer than ``keepalive``, and the graceful drain when
the worker stops (stop accepting, close idle connections, let in-flight
requests finish within ``graceful_timeout``). The ``worker_connections`` bound
is kept by leaving the listeners disarmed while the worker holds that many
connections; new clients wait in the kernel's backlog, and responses say
``Connection: close`` until there is room again.

A lock guards the connection table and each connection's *idle* flag (armed
in the poller, owned by nobody): the main thread closes only idle connections
and a pool thread takes only idle ones, so neither closes a socket the other
is using. Bytes of a request head that arrive slowly never hold a thread: a
partial head is kept by the parser and the socket re-armed.

Without epoll (macOS, the BSDs) :class:`SelectorSet` gives the same one-shot
contract with a selector that one thread at a time waits in.
"""

from __future__ import annotations

import os
import select
import selectors
import socket
import threading
import time
from typing import Any

from unicorn_core.workers import Worker
from unicorn_http import NEED_DATA
from unicorn_workers.http2 import HTTP2Support
from unicorn_workers.sync import accept_ready, prepare_client, server_address
from unicorn_workers.wsgi import RECV_SIZE, ClientConnection, WSGIConfig

__all__ = ["ThreadWorker", "ThreadedServer"]

_SWEEP_INTERVAL = 0.25


class EpollSet:
    """One-shot readiness shared by many threads: ``EPOLLONESHOT`` (Linux).

    ``wait()`` gives one ready descriptor to one thread and disarms it until
    ``rearm()``; ``add``/``rearm``/``remove`` are safe while others wait.
    """

    _ARM = select.EPOLLIN | select.EPOLLONESHOT if hasattr(select, "epoll") else 0

    def __init__(self) -> None:
        self._ep = select.epoll()

    def add(self, fd: int) -> None:
        self._ep.register(fd, self._ARM)

    def rearm(self, fd: int) -> None:
        self._ep.modify(fd, self._ARM)

    def remove(self, fd: int) -> None:
        self._ep.unregister(fd)

    def wait(self, timeout: float) -> list[int]:
        return [fd for fd, _ in self._ep.poll(timeout, 1)]


class SelectorSet:
    """The same contract where there is no epoll (macOS, the BSDs).

    One thread at a time waits in the selector (leader/follower); the ready
    descriptor it takes is unregistered before it lets the next thread in,
    which is what one-shot means. A pipe wakes the waiting thread when a
    socket is (re-)armed, since select and poll see changes only on their
    next call.
    """

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._leader = threading.Lock()
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._sel.register(self._r, selectors.EVENT_READ)

    def add(self, fd: int) -> None:
        try:
            self._sel.register(fd, selectors.EVENT_READ)
        except (KeyError, ValueError) as exc:
            raise OSError(str(exc)) from None
        try:
            os.write(self._w, b"!")
        except OSError:
            pass

    rearm = add

    def remove(self, fd: int) -> None:
        try:
            self._sel.unregister(fd)
        except (KeyError, ValueError) as exc:
            raise OSError(str(exc)) from None

    def wait(self, timeout: float) -> list[int]:
        if not self._leader.acquire(timeout=timeout):
            return []
        try:
            for key, _ in self._sel.select(timeout):
                if key.fd == self._r:
                    try:
                        while os.read(self._r, 4096):
                            pass
                    except OSError:
                        pass
                    continue
                self._sel.unregister(key.fd)
                return [key.fd]
            return []
        finally:
            self._leader.release()


def _readable(conn: ClientConnection) -> bool:
    """Bytes (or the peer's EOF) wait on ``conn``'s socket: it is not idle."""
    sock = conn.sock
    if conn.is_ssl and sock.pending():
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    try:
        return bool(poller.poll(0))
    except OSError:
        return False


def make_poller() -> EpollSet | SelectorSet:
    return EpollSet() if hasattr(select, "epoll") else SelectorSet()


class ThreadedServer:
    """Serve ``listeners`` with ``threads`` threads until ``control.alive`` turns false."""

    def __init__(
        self,
        listeners: list[socket.socket],
        config: WSGIConfig,
        control: Any,
        *,
        threads: int = 1,
        worker_connections: int = 1000,
        keepalive: float = 2.0,
        graceful_timeout: float = 30.0,
        poller: EpollSet | SelectorSet | None = None,
        http2: Any = None,
    ) -> None:
        self.config = config
        self.control = control
        self.threads = max(1, threads)
        self.worker_connections = max(1, worker_connections)
        self.keepalive = keepalive
        self.graceful_timeout = graceful_timeout
        self.listeners = {ls.fileno(): ls for ls in listeners}
        self._names = {fd: server_address(ls) for fd, ls in self.listeners.items()}
        self.conns: dict[int, ClientConnection] = {}
        self.lock = threading.Lock()
        self.poller = poller if poller is not None else make_poller()
        self.accepting = False
        #: pool threads inside ``_accept``: they may hold accepted sockets that are
        #: not in ``conns`` yet, which the drain must wait for
        self.arriving = 0
        #: the listeners were left disarmed at the connection bound
        self.paused = False
        self.running = False
        self.pool: list[threading.Thread] = []
        #: HTTP/2 (``unicorn_workers.http2.HTTP2Support``), None when not offered
        self.http2 = http2
        #: cleartext connections whose first bytes say whether they are HTTP/2
        self._h2_probe: set[int] = set()
        self._h2_streams: Any = None

    # -- the main thread ------------------------------------------------------------------

    def serve(self) -> None:
        control = self.control
        for fd, ls in self.listeners.items():
            ls.setblocking(False)
            self.poller.add(fd)
        self.accepting = True
        self.running = True
        for n in range(self.threads):
            thread = threading.Thread(target=self._loop, name=f"unicorn-gthread-{n}", daemon=True)
            thread.start()
            self.pool.append(thread)
        wakeup = control.wakeup_fd
        interval = min(control.notify_interval, _SWEEP_INTERVAL)
        try:
            while control.alive:
                control.notify()
                try:
                    ready, _, _ = select.select([wakeup], [], [], interval)
                except InterruptedError:
                    ready = []
                if ready:
                    control.drain_wakeup()
                if not control.is_parent_alive():
                    control.alive = False
                now = time.monotonic()
                self._sweep(now)
                self._past_timeout(now)
            self._drain()
        finally:
            self.running = False

    def _drain(self) -> None:
        """Stop accepting, serve what is on the wire, wait for in-flight requests.

        Idle keep-alive connections are not closed at once: a request already
        on its way would be lost. Until its keep-alive time is up, a request
        arriving on one is served with ``Connection: close``; one that nothing
        reaches is then closed by the sweep, as it would have been anyway."""
        control = self.control
        self.config.close_after_response = True
        with self.lock:
            self.accepting = False
            for fd in self.listeners:
                try:
                    self.poller.remove(fd)
                except OSError:
                    pass
        deadline = time.monotonic() + self.graceful_timeout
        while True:
            self._sweep(time.monotonic(), draining=True)
            # A thread still in _accept may hold a client it took before accepting
            # stopped: leaving now would close that socket unanswered.
            if not (self.conns or self.arriving) or time.monotonic() >= deadline:
                break
            control.notify()
            try:
                select.select([control.wakeup_fd], [], [], 0.05)
            except InterruptedError:
                pass
            control.drain_wakeup()
        if self.conns:
            self.config.log.warning(
                "Graceful timeout: closing %d connection(s) with requests in flight",
                len(self.conns),
            )

    def _past_timeout(self, now: float) -> None:
        """A request running longer than ``timeout`` is logged with its request line
        and the worker replaced gracefully: the heartbeat comes from this thread, so
        the master would never see a stuck request; healthy ones finish."""
        limit = self.config.timeout
        if not limit:
            return
        with self.lock:
            overdue = [
                c
                for c in self.conns.values()
                if c.current is not None and not c.overdue and now - c.started > limit
            ]
        for conn in overdue:
            conn.overdue = True
            req = conn.current
            if req is None:
                continue
            self.config.log.error(
                "Request %s %s has run %.0f s, past timeout (%g s): replacing worker %s gracefully",
                req.method.decode("latin-1"),
                req.target.decode("latin-1"),
                now - conn.started,
                limit,
                os.getpid(),
            )
            control = self.control
            if control.alive:
                heartbeat = getattr(control, "heartbeat", None)
                if heartbeat is not None:
                    heartbeat.set_exit_cause("request_timeout")
                control.alive = False

    def _sweep(self, now: float, draining: bool = False) -> None:
        """Close idle connections whose wait is over.

        A connection with bytes waiting in the kernel is never idle, however
        long every thread stays busy: a thread serves it when one frees. A head
        still incomplete ``client_header_timeout`` after the connection became
        idle gets 408 (trickling bytes do not move that clock), and a new
        connection waits as long for its first request (``keepalive``, even 0,
        only bounds the wait between requests). Otherwise an idle connection is
        closed after ``keepalive``.
        """
        header_timeout = self.config.header_timeout
        keepalive = self.keepalive
        timed_out = []
        expired = []
        with self.lock:
            for fd, conn in self.conns.items():
                if not conn.idle:
                    continue
                waited = now - conn.last_active
                if conn.partial_head:
                    if header_timeout and waited > header_timeout:
                        timed_out.append(fd)
                elif conn.requests == 0 and not draining:
                    if header_timeout and waited > header_timeout:
                        expired.append(fd)
                elif waited > keepalive:
                    expired.append(fd)
            if expired:
                expired = [fd for fd in expired if not _readable(self.conns[fd])]
            closing = [(fd, self.conns.pop(fd)) for fd in timed_out + expired]
            for fd, conn in closing:
                conn.idle = False
                try:
                    self.poller.remove(fd)
                except OSError:
                    pass
            if closing:
                self._resume_accepting()
        for fd, conn in closing:
            if fd in timed_out:
                conn.time_out_head(header_timeout)
            conn.close()

    def _crowded(self) -> None:
        """At the bound (lock held), responses end their connections so the
        clients waiting in the backlog get a turn (gunicorn likewise stops
        keep-alive near the bound)."""
        if self.accepting:
            self.config.close_after_response = len(self.conns) >= self.worker_connections

    def _resume_accepting(self) -> None:
        """Re-arm the listeners (lock held) if the bound had paused them."""
        self._crowded()
        if self.paused and self.accepting and len(self.conns) < self.worker_connections:
            self.paused = False
            for fd in self.listeners:
                try:
                    self.poller.rearm(fd)
                except OSError:
                    pass

    # -- the pool threads -------------------------------------------------------------

    def _loop(self) -> None:
        wait = self.poller.wait
        listeners = self.listeners
        conns = self.conns
        lock = self.lock
        while self.running:
            try:
                events = wait(1.0)
            except InterruptedError:
                continue
            except (OSError, ValueError):
                # select/poll fallback: a socket closed while another thread waited
                if not self.running:
                    return
                time.sleep(0.001)
                continue
            for fd in events:
                if fd in listeners:
                    try:
                        self._accept(fd)
                    except Exception:
                        self.config.log.exception("Error accepting connections")
                    continue
                with lock:
                    conn = conns.get(fd)
                    if conn is None or not conn.idle:
                        continue
                    conn.idle = False
                try:
                    self._serve(conn, fd)
                except Exception:
                    self.config.log.exception("Error serving a connection")
                    self._close(conn, fd)

    def _accept(self, lfd: int) -> None:
        """Accept what is waiting, re-arm the listener, then serve or park each client.

        The thread counts itself in ``arriving`` before it accepts, under the lock
        the drain stops accepting with: the drain then waits for every socket
        already taken until it is in ``conns`` (and served)."""
        with self.lock:
            if not self.accepting:
                return
            self.arriving += 1
        try:
            self._accept_batch(lfd)
        finally:
            with self.lock:
                self.arriving -= 1

    def _accept_batch(self, lfd: int) -> None:
        config = self.config
        control = self.control
        ls = self.listeners[lfd]
        accepted = []
        try:
            room = self.worker_connections - len(self.conns)
            while len(accepted) < room and self.accepting:
                pair = accept_ready(ls)
                if pair is None:
                    break
                accepted.append(pair)
        finally:
            with self.lock:
                if self.accepting and len(self.conns) + len(accepted) < self.worker_connections:
                    try:
                        self.poller.rearm(lfd)
                    except OSError:
                        pass
                elif self.accepting:
                    self.paused = True
        server = self._names[lfd]
        is_ssl = control.ssl_context is not None
        last = len(accepted) - 1
        for i, (client, peer) in enumerate(accepted):
            prepare_client(client, config.timeout)
            if is_ssl:
                try:
                    client = control.wrap_socket(client)
                except OSError as exc:
                    config.log.debug("TLS handshake with %s failed: %s", peer, exc)
                    client.close()
                    self._resume_after_close()
                    continue
            conn = ClientConnection(client, peer, config, is_ssl=is_ssl, server=server)
            if not conn.admitted:
                conn.close()
                self._resume_after_close()
                continue
            fd = client.fileno()
            mode = None
            if self.http2 is not None:
                try:
                    mode = self.http2.negotiate(conn)
                except OSError as exc:
                    config.log.debug("TLS handshake with %s failed: %s", peer, exc)
                    conn.close()
                    self._resume_after_close()
                    continue
            with self.lock:
                self.conns[fd] = conn
                self._crowded()
                if mode == "probe":
                    self._h2_probe.add(fd)
            if mode == "h2":
                self._to_http2(conn, fd)
                continue
            # Clients usually send the request right after connecting: serve it now
            # rather than after a round through the poller. Only the last of a
            # batch: the others go to the poller at once, where the other threads
            # take them, so no request waits behind another's application.
            data = None
            if not is_ssl and i == last and mode is None:
                try:
                    data = client.recv(RECV_SIZE, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    data = b""
            if data is None:
                with self.lock:
                    conn.idle = True
                    conn.registered = True
                    self.poller.add(fd)
                continue
            conn.feed(data)
            try:
                self._serve(conn, fd, registered=False)
            except Exception:
                config.log.exception("Error serving a connection")
                self._close(conn, fd)

    def _resume_after_close(self) -> None:
        with self.lock:
            self._resume_accepting()

    def _serve(self, conn: ClientConnection, fd: int, registered: bool = True) -> None:
        """Serve a connection that became readable, until it needs bytes again."""
        control = self.control
        if self._h2_probe and fd in self._h2_probe:
            self._h2_probe.discard(fd)
            verdict = self.http2.probe(conn)
            if verdict:
                self._to_http2(conn, fd)
                return
            if conn.broken:
                self._close(conn, fd)
                return
        if registered and conn.fill_ready() is None:
            # Reported readable but empty: the report was for an earlier socket
            # with the same descriptor. Wait for this one's bytes in the poller.
            with self.lock:
                conn.idle = True
                try:
                    self.poller.rearm(fd)
                    return
                except OSError:
                    conn.idle = False
            self._close(conn, fd)
            return
        while True:
            req = conn.next_request()
            if req is NEED_DATA:
                if conn.broken:
                    break
                if conn.is_ssl and conn.sock.pending():
                    conn.fill()  # TLS: bytes already decrypted never wake the poller
                    continue
                with self.lock:
                    conn.idle = True
                    try:
                        if registered:
                            self.poller.rearm(fd)
                        else:
                            self.poller.add(fd)
                            conn.registered = True
                    except OSError:
                        conn.idle = False
                        break
                return
            if req is None:
                break
            if req.upgrade == b"h2c" and self.http2 is not None:  # type: ignore[union-attr]
                upgraded = self.http2.upgrade_h2c(conn, req)  # type: ignore[arg-type]
                if upgraded is not None:
                    self._to_http2(conn, fd, *upgraded)
                    return
                if conn.broken:
                    break
            if not control.alive:
                conn.wire.keep_alive = False
            conn.handle(req)  # type: ignore[arg-type]
            control.handled_request()
            if conn.must_close:
                break
        self._close(conn, fd)

    def _to_http2(
        self, conn: ClientConnection, fd: int, upgraded: tuple | None = None, rest: bytes = b""
    ) -> None:
        """The connection is HTTP/2: a connection thread of its own serves it, its
        streams run on a pool of ``threads`` threads (unicorn_workers.http2).
        ``upgraded`` and ``rest``: after an h2c Upgrade (``upgrade_h2c``)."""
        from concurrent.futures import ThreadPoolExecutor

        from unicorn_workers.http2 import H2Session

        with self.lock:
            conn.idle = False
            if conn.registered:
                conn.registered = False
                try:
                    self.poller.remove(fd)
                except OSError:
                    pass
            if self._h2_streams is None:
                self._h2_streams = ThreadPoolExecutor(
                    max_workers=self.threads, thread_name_prefix="unicorn-h2-stream"
                )
        pool = self._h2_streams
        session = H2Session(
            conn,
            self.http2,
            self.control,
            pool.submit,
            keepalive=self.keepalive,
            graceful_timeout=self.graceful_timeout,
            upgraded=upgraded,
        )

        def run() -> None:
            try:
                session.serve(rest)
            except Exception:
                self.config.log.exception("Error serving an HTTP/2 connection")
            finally:
                self._close(conn, fd)

        threading.Thread(target=run, name=f"unicorn-h2-{fd}", daemon=True).start()

    def _close(self, conn: ClientConnection, fd: int) -> None:
        with self.lock:
            if self.conns.get(fd) is conn:
                del self.conns[fd]
                if conn.registered:
                    try:
                        self.poller.remove(fd)
                    except OSError:
                        pass
            conn.close()
            self._resume_accepting()


def serve_threaded(worker: Worker) -> None:
    """Run ``worker`` (any Worker) as gthread until it stops."""
    cfg = worker.cfg
    config = WSGIConfig(
        worker.wsgi,
        cfg,
        worker.log,
        worker=worker,
        multithread=cfg.threads > 1,
        keepalive=cfg.keepalive > 0,
    )
    ThreadedServer(
        [listener.sock for listener in worker.listeners],
        config,
        worker,
        threads=cfg.threads,
        worker_connections=cfg.worker_connections,
        keepalive=cfg.keepalive,
        graceful_timeout=cfg.graceful_timeout,
        http2=HTTP2Support.from_cfg(cfg, worker.log) if worker.supports_http2 else None,
    ).serve()


class ThreadWorker(Worker):
    """``-k gthread``: ``threads`` threads per process, keep-alive connections."""

    #: ALPN offers h2 and prior knowledge is honoured (unicorn_workers.http2)
    supports_http2 = True

    def run(self) -> None:
        serve_threaded(self)
