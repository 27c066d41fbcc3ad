"""Listening sockets: TCP (v4/v6), Unix paths, inherited fds, systemd activation.

The arbiter creates the listeners once and every worker inherits them. On a
USR2 upgrade their fds pass to the new master in ``UNICORN_FD``; under systemd
socket activation they arrive as ``LISTEN_FDS`` starting at fd 3.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import struct
import time
from collections.abc import Iterable, Mapping
from typing import Any

from unicorn_core.errors import ConfigError
from unicorn_core.settings import Setting

SECTION = "Server Socket"
INHERIT_ENV = "UNICORN_FD"
SD_LISTEN_FDS_START = 3
#: gunicorn tries a busy address five times, a pause between tries
BIND_ATTEMPTS = 5
BIND_RETRY_DELAY = 0.5


def _bind_from_port(port: str) -> list[str]:
    return [f"0.0.0.0:{port}"]


SETTINGS = (
    Setting(
        name="bind",
        section=SECTION,
        cli=("-b", "--bind"),
        env="PORT",
        from_env=_bind_from_port,
        type="list",
        meta="ADDRESS",
        default=["127.0.0.1:8000"],
        doc="The socket to bind; repeat the flag to bind several. `HOST:PORT`, "
        "`[IPV6]:PORT`, `:PORT` (all interfaces), `unix:PATH` or `fd://FD`. "
        "When the `PORT` environment variable is set the default is `0.0.0.0:$PORT`. "
        "Port 0 picks a free port; the address actually bound is logged.",
    ),
    Setting(
        name="backlog",
        section=SECTION,
        cli=("--backlog",),
        type="positive_int",
        meta="INT",
        default=2048,
        doc="The most connections that may wait to be accepted on each listener. "
        "The kernel caps it at `net.core.somaxconn`.",
    ),
    Setting(
        name="reuse_port",
        section=SECTION,
        cli=("--reuse-port",),
        type="bool",
        default=False,
        doc="Set `SO_REUSEPORT` on the listeners so several servers can bind the "
        "same address and the kernel balances connections between them.",
    ),
)


class Listener:
    """A listening socket and the address it was asked for.

    Workers use ``listener.sock`` (a plain ``socket.socket``) or the delegated
    ``accept()``/``fileno()``; ``str(listener)`` is the address as logged.
    """

    __slots__ = ("bind", "family", "sock", "tls")

    def __init__(self, sock: socket.socket, bind: str | None = None, tls: bool = False) -> None:
        self.sock = sock
        self.family = sock.family
        self.bind = bind
        #: connections are wrapped in TLS (logged as https://)
        self.tls = tls

    @property
    def is_unix(self) -> bool:
        return self.family == socket.AF_UNIX

    @property
    def address(self) -> Any:
        return self.sock.getsockname()

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept(self) -> tuple[socket.socket, Any]:
        return self.sock.accept()

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)

    def getsockname(self) -> Any:
        return self.sock.getsockname()

    def close(self) -> None:
        self.sock.close()

    def backlog(self) -> int:
        """Connections waiting to be accepted (Linux TCP only; 0 elsewhere).

        For a listening socket the kernel reports the accept queue's length in
        ``tcp_info.tcpi_unacked``: the 13th field, after eight one-byte fields
        and four 32-bit ones (include/uapi/linux/tcp.h)."""
        if self.family == socket.AF_UNIX or not hasattr(socket, "TCP_INFO"):
            return 0
        try:
            info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        except OSError:
            return 0
        if len(info) < _TCPI_UNACKED.size + 8 + 16:
            return 0
        return _TCPI_UNACKED.unpack_from(info, 8 + 16)[0]

    def __str__(self) -> str:
        return describe_address(self.family, self.address, self.tls)

    def __repr__(self) -> str:
        return f"<Listener {self}>"


_TCPI_UNACKED = struct.Struct("I")


def describe_address(family: int, address: Any, tls: bool = False) -> str:
    if family == socket.AF_UNIX:
        if isinstance(address, bytes):
            address = address.decode()
        return f"unix:{address}"
    host, port = address[0], address[1]
    scheme = "https" if tls else "http"
    if family == socket.AF_INET6:
        return f"{scheme}://[{host}]:{port}"
    return f"{scheme}://{host}:{port}"


def parse_address(bind: str, default_port: int = 8000) -> tuple[int, Any]:
    """``bind`` text -> (family, address); fd binds give (-1, fd)."""
    text = bind.strip()
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise ConfigError(f"bind {bind!r}: a unix socket needs a path")
        return socket.AF_UNIX, path
    if text.startswith("fd://"):
        try:
            return -1, int(text[5:])
        except ValueError:
            raise ConfigError(f"bind {bind!r}: fd:// needs an integer") from None
    if text.startswith("tcp://"):
        text = text[6:]
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ConfigError(f"bind {bind!r}: unclosed '[' in an IPv6 address")
        port_text = rest[1:] if rest.startswith(":") else ""
        family = socket.AF_INET6
    elif text.count(":") > 1:
        host, port_text, family = text, "", socket.AF_INET6
    else:
        host, _, port_text = text.partition(":")
        host = host or "0.0.0.0"
        family = socket.AF_INET
    if port_text:
        if not port_text.isdigit() or int(port_text) > 65535:
            raise ConfigError(f"bind {bind!r}: port {port_text!r} is not a port number")
        port = int(port_text)
    else:
        port = default_port
    if family == socket.AF_INET and not _is_ipv4(host):
        # a host name: resolve it and bind its first address
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ConfigError(f"bind {bind!r}: cannot resolve {host!r}: {exc}") from None
        # prefer IPv4, as gunicorn binds "localhost:8000" to 127.0.0.1
        info = next((i for i in infos if i[0] == socket.AF_INET), infos[0])
        return info[0], info[4][:2]
    return family, (host, port)


def _is_ipv4(host: str) -> bool:
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def _remove_stale_unix_socket(path: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ConfigError(f"bind unix:{path}: the path exists and is not a socket")
    os.unlink(path)


def _warn_if_world_writable(path: str, log: Any) -> None:
    """gunicorn's rule stands (the socket takes the process umask), but say so when
    that lets every local user connect: connecting to a Unix socket needs write
    permission on it, and nothing else stands between them and the application."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if mode & 0o002:
        log.warning(
            "Unix socket %s is world-writable (mode %03o): any local user can connect. "
            "Set --umask (e.g. 0o007 with --group of the proxy) or bind it in a "
            "directory only the proxy can enter.",
            path,
            mode & 0o777,
        )


def _new_socket(family: int, address: Any, cfg: Any, log: Any) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family != socket.AF_UNIX:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if cfg.reuse_port and hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
        else:
            _remove_stale_unix_socket(address)
            old = os.umask(cfg.umask)
            try:
                sock.bind(address)
            finally:
                os.umask(old)
            uid = -1 if cfg.user is None else cfg.user
            gid = -1 if cfg.group is None else cfg.group
            if (uid, gid) != (-1, -1):
                os.chown(address, uid, gid)
            _warn_if_world_writable(address, log)
        sock.listen(cfg.backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_listener(bind: str, cfg: Any, log: Any) -> Listener:
    """Create one listener, retrying a busy address a few times as gunicorn does."""
    family, address = parse_address(bind)
    if family == -1:
        return Listener(_socket_from_fd(address), bind)
    for attempt in range(1, BIND_ATTEMPTS + 1):
        try:
            return Listener(_new_socket(family, address, cfg, log), bind)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and attempt < BIND_ATTEMPTS:
                log.error("Connection in use: %s", bind)
                log.error("Retrying in %s second(s).", BIND_RETRY_DELAY)
                time.sleep(BIND_RETRY_DELAY)
                continue
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"cannot bind {bind}: address already in use") from None
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EACCES, errno.ENOENT, errno.EAFNOSUPPORT):
                raise ConfigError(f"cannot bind {bind}: {exc.strerror}") from None
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def _socket_from_fd(fd: int) -> socket.socket:
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ConfigError(f"fd://{fd}: not a usable socket: {exc.strerror}") from None
    if sock.type != socket.SOCK_STREAM:
        raise ConfigError(f"fd://{fd}: not a stream socket")
    return sock


def systemd_fds(environ: Mapping[str, str], pid: int | None = None) -> list[int]:
    """The fds systemd passed us (``LISTEN_PID`` must name this process)."""
    pid = os.getpid() if pid is None else pid
    try:
        if int(environ.get("LISTEN_PID", "0")) != pid:
            return []
        count = int(environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    return list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count))


def inherited_fds(environ: Mapping[str, str]) -> list[int]:
    """Fds a previous master passed on a USR2 upgrade."""
    text = environ.get(INHERIT_ENV, "")
    return [int(part) for part in text.split(",") if part.strip()]


def create_listeners(cfg: Any, log: Any, fds: Iterable[int] = ()) -> list[Listener]:
    """Listeners from inherited fds when given, otherwise from ``cfg.bind``."""
    fds = list(fds)
    tls = bool(getattr(cfg, "is_ssl", False))
    if fds:
        listeners = []
        for fd in fds:
            sock = socket.socket(fileno=fd)
            bind = describe_address(sock.family, sock.getsockname())
            listeners.append(Listener(sock, bind, tls))
        return listeners
    listeners = []
    try:
        for bind in cfg.bind:
            listener = bind_listener(bind, cfg, log)
            listener.tls = tls
            listeners.append(listener)
    except BaseException:
        close_listeners(listeners, unlink=True)
        raise
    return listeners


def close_listeners(listeners: Iterable[Listener], unlink: bool = True) -> None:
    """Close every listener; remove Unix socket files when ``unlink``."""
    for listener in listeners:
        path = None
        if listener.is_unix and unlink:
            try:
                path = listener.address
            except OSError:
                path = None
        try:
            listener.close()
        except OSError:
            pass
        if path:
            try:
                os.unlink(path)
            except OSError:
                pass
