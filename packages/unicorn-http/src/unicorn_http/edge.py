"""The connection edge: what every worker does around its protocol, written once.

Between the socket and the application, every worker (WSGI or ASGI, sync,
threaded, greenlet or asyncio) has the same few things to decide, and they
must mean the same everywhere:

- which wire protocol the connection speaks (the ``unicorn.protocols``
  factory the ``protocol`` setting names) and whether this peer may speak it
  (``uwsgi_allow_ips``);
- the PROXY protocol header at the start of the stream, from the peers in
  ``proxy_allow_ips``, whose client address replaces the balancer's;
- what a trusted front end (``forwarded_allow_ips``) may tell us in headers:
  the scheme (``secure_scheme_headers``), the client (``X-Forwarded-For``)
  and the mount point (``SCRIPT_NAME`` among ``forwarder_headers``);
- the request facts that ``pre_request``/``post_request`` hooks and the access
  log see;
- how a refused request is logged and answered.

:class:`EdgeRules` holds what one worker's connections share; a
:class:`ConnectionEdge` is one accepted socket. The workers apply the
results to an environ or a scope; the rules themselves live only here.

The forwarded headers mean one thing (docs/http.md, "Behind a proxy"): a
scheme header's value is compared without regard to case, and two scheme
headers that disagree refuse the request with 400, as gunicorn does. The
client is the nearest ``X-Forwarded-For`` hop that is not itself a trusted
proxy (all of a request's ``X-Forwarded-For`` lines read as one list). Only
a trusted peer's headers are read; everyone else's pass to the application
untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .connection import ProtocolFactory, ServerConnection
from .errors import LocalProtocolError, RemoteProtocolError
from .events import Headers, Request
from .proxy_protocol import parse_proxy_header

__all__ = [
    "CONNECT_REFUSED",
    "METHOD_NAMES",
    "PROTOCOL_NAMES",
    "ConnectionEdge",
    "EdgeRules",
    "Forwarded",
    "RequestInfo",
    "log_access",
]

#: request methods as text, for the common ones without a decode
METHOD_NAMES = {
    m.encode(): m
    for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")
}
#: ``Request.http_version`` -> the protocol's name (``SERVER_PROTOCOL``, the access log)
PROTOCOL_NAMES = {b"1.1": "HTTP/1.1", b"1.0": "HTTP/1.0", b"2": "HTTP/2", b"3": "HTTP/3"}

_XFF = b"x-forwarded-for"
_SCRIPT_NAME = b"script_name"

Matcher = Callable[[str | None], bool]


def _nobody(host: str | None) -> bool:
    return False


class Forwarded:
    """What a trusted front end's headers said about one request (None: nothing)."""

    __slots__ = ("client", "scheme", "script_name")

    def __init__(self, scheme: str | None, client: str | None, script_name: str | None) -> None:
        self.scheme = scheme
        self.client = client
        self.script_name = script_name


class EdgeRules:
    """What every connection of one worker shares: its protocol and its trust rules.

    Built once per worker from plain values (core's ``edge_options(cfg)`` reads
    them from the settings). ``forwarded_allow``, ``proxy_from`` and
    ``protocol_allow`` are ``host -> bool`` tests, ``host`` None for a Unix
    socket peer.
    """

    def __init__(
        self,
        *,
        protocol: ProtocolFactory,
        options: dict[str, Any] | None = None,
        protocol_name: str = "http",
        forwarded_allow: Matcher = _nobody,
        secure_scheme_headers: dict[str, str] | None = None,
        forwarder_headers: Iterable[str] = ("SCRIPT_NAME", "PATH_INFO"),
        proxy_from: Matcher | None = None,
        proxy_versions: tuple[int, ...] = (1, 2),
        protocol_allow: Matcher | None = None,
        protocol_allow_setting: str = "",
        log: Any = None,
    ) -> None:
        self.protocol = protocol
        self.options = dict(options or {})
        self.protocol_name = protocol_name
        self.forwarded_allow = forwarded_allow
        self.proxy_from = proxy_from
        #: the PROXY header versions accepted (proxy_protocol v1, v2 or auto)
        self.proxy_versions = tuple(proxy_versions)
        self.protocol_allow = protocol_allow
        self.protocol_allow_setting = protocol_allow_setting
        self.log = log
        #: lower-cased header name -> the lower-cased value that means https
        self.secure_headers = {
            k.lower().encode("latin-1"): v.strip().lower().encode("latin-1")
            for k, v in (secure_scheme_headers or {}).items()
        }
        names = [h.strip().upper() for h in forwarder_headers if h.strip()]
        #: every underscore name may come from a trusted front end
        self.forward_any = "*" in names
        #: underscore header names (lower-case, as parsed) a trusted front end may send
        self.forwarder = frozenset(n.lower().encode("latin-1") for n in names if n != "*")
        forward_script = self.forward_any or _SCRIPT_NAME in self.forwarder
        #: the names whose presence makes :meth:`forwarded` worth calling
        self.forward_names = frozenset(self.secure_headers) | {_XFF}
        if forward_script:
            self.forward_names |= {_SCRIPT_NAME}

    def may_forward(self, name: bytes) -> bool:
        """May a trusted front end send this underscore header (``forwarder_headers``)?"""
        return self.forward_any or name in self.forwarder

    def forwarded(self, headers: Headers) -> Forwarded:
        """Read a trusted front end's headers; raises ``RemoteProtocolError`` (400)
        when its scheme headers contradict each other."""
        secure = self.secure_headers
        names = self.forward_names
        scheme = None
        hops = None
        script_name = None
        for name, value in headers:
            if name not in names:
                continue
            want = secure.get(name)
            if want is not None:
                this = "https" if value.strip().lower() == want else "http"
                if scheme is not None and this != scheme:
                    raise RemoteProtocolError(
                        "contradictory scheme headers (secure_scheme_headers)"
                    )
                scheme = this
            elif name == _XFF:
                hops = value if hops is None else hops + b"," + value
            else:
                script_name = value.decode("latin-1").rstrip("/")
        client = None
        if hops is not None:
            found = [h.strip() for h in hops.decode("latin-1").split(",") if h.strip()]
            if found:
                # The nearest address our trusted proxies did not vouch for is the client.
                client = found[0]
                trusted = self.forwarded_allow
                for hop in reversed(found):
                    if not trusted(hop):
                        client = hop
                        break
        return Forwarded(scheme, client, script_name)


class ConnectionEdge:
    """One accepted socket: its protocol connection, who is on the other end,
    and how far that peer is trusted."""

    __slots__ = (
        "admitted",
        "client",
        "conn",
        "peer_host",
        "proxy_pending",
        "rules",
        "scheme",
        "server",
        "trusted",
    )

    def __init__(self, rules: EdgeRules, peer: Any, sockname: Any, is_ssl: bool = False) -> None:
        self.rules = rules
        self.conn: ServerConnection = rules.protocol(**rules.options)
        if isinstance(peer, tuple):
            self.client: tuple[str, int] | None = (str(peer[0]), int(peer[1]))
            host: str | None = self.client[0]
        else:
            self.client = None
            host = None
        #: the socket peer's address (None on a Unix socket); a PROXY header replaces it
        self.peer_host = host
        if isinstance(sockname, tuple):
            self.server: tuple[str, int | None] | None = (str(sockname[0]), int(sockname[1]))
        elif sockname:
            self.server = (sockname if isinstance(sockname, str) else repr(sockname), None)
        else:
            self.server = None
        self.scheme = "https" if is_ssl else "http"
        #: the peer may tell us the scheme, the client and the mount point in headers
        self.trusted = rules.forwarded_allow(host)
        #: bytes of a PROXY protocol header received so far (None: none expected)
        self.proxy_pending: bytes | None = (
            b"" if rules.proxy_from is not None and rules.proxy_from(host) else None
        )
        allow = rules.protocol_allow
        #: False when the peer may not speak this protocol: close it unanswered
        self.admitted = True
        if allow is not None and host is not None and not allow(host):
            self.admitted = False
            if rules.log is not None:
                rules.log.warning(
                    "Refused a %s connection from %s: not in %s",
                    rules.protocol_name,
                    host,
                    rules.protocol_allow_setting,
                )

    @property
    def peer_text(self) -> str:
        """The client for log lines: its address, or ``unix``."""
        return self.peer_host or "unix"

    def take_proxy_header(self, data: bytes) -> bytes:
        """Take the PROXY header off the front of the stream; returns the bytes after
        it (``b""`` while it is incomplete). Raises ``RemoteProtocolError`` for a
        malformed one. The client it names replaces the peer (the balancer)."""
        data = self.proxy_pending + data  # type: ignore[operator]
        try:
            found = parse_proxy_header(data, self.rules.proxy_versions)
        except RemoteProtocolError:
            self.proxy_pending = None
            raise
        if found is None:
            self.proxy_pending = data
            return b""
        info, used = found
        self.proxy_pending = None
        if not info.local and info.src_addr is not None:
            self.client = (info.src_addr, info.src_port or 0)
            self.peer_host = info.src_addr
        return data[used:]

    def refuse(self, exc: RemoteProtocolError) -> bytes:
        """Log a refused request (or connection) and return the bytes of its answer;
        the connection must close after them."""
        log = self.rules.log
        if log is not None:
            log.info("Bad request from %s: %s (%d)", self.peer_text, exc.reason, exc.status)
        try:
            return self.conn.send_error(exc)
        except LocalProtocolError:
            return b""


#: what a server that runs applications answers to CONNECT: it opens no tunnels
CONNECT_REFUSED = RemoteProtocolError(
    "CONNECT (a tunnel) is not supported by this server (RFC 9110 section 9.3.6)", 501
)


class RequestInfo:
    """The ``req`` that ``pre_request``/``post_request`` hooks get, with gunicorn's
    attribute names; ``environ`` (WSGI) or ``scope`` (ASGI) is the application's view."""

    __slots__ = ("environ", "remote_addr", "request", "scope")

    def __init__(
        self,
        request: Request,
        remote_addr: str,
        *,
        environ: dict | None = None,
        scope: dict | None = None,
    ) -> None:
        self.request = request
        self.remote_addr = remote_addr
        self.environ = environ
        self.scope = scope

    @property
    def method(self) -> str:
        method = self.request.method
        return METHOD_NAMES.get(method) or method.decode("latin-1")

    @property
    def uri(self) -> str:
        return self.request.target.decode("latin-1")

    @property
    def path(self) -> str:
        return self.request.path.decode("latin-1")

    @property
    def query(self) -> str:
        return self.request.query.decode("latin-1")

    @property
    def version(self) -> tuple[int, int]:
        return {b"1.1": (1, 1), b"1.0": (1, 0), b"2": (2, 0), b"3": (3, 0)}.get(
            self.request.http_version, (1, 1)
        )

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [(n.decode("latin-1").upper(), v.decode("latin-1")) for n, v in self.request.headers]

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


def log_access(
    access: Callable[..., Any],
    log: Any,
    request: Request,
    remote_addr: str,
    method: str,
    status: int,
    sent: int,
    elapsed: float,
    response_headers: Any,
    view: Any,
) -> None:
    """One access-log line (and its StatsD counts) for a finished request; ``view``
    is the environ or the scope. A failing logger costs a log line, not the request."""
    try:
        access(
            remote_addr,
            method,
            request.target.decode("latin-1"),
            PROTOCOL_NAMES.get(request.http_version, "HTTP/1.1"),
            status,
            sent,
            elapsed,
            request.headers,
            response_headers,
            view,
        )
    except Exception:
        log.exception("Failed to write the access log")
