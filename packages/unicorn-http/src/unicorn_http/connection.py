"""The protocol seam: what a worker needs of a wire protocol, and nothing more.

Every worker (sync, gthread, asgi, and the ones to come) drives a
:class:`ServerConnection`; none names a concrete protocol. ``H1Connection``
(HTTP/1.1) is one, ``unicorn_uwsgi.UwsgiConnection`` (the uwsgi protocol
behind nginx) another; an HTTP/2 stream is adapted to the same shape. A
worker gets its protocol's factory from the ``unicorn.protocols`` entry-point
group, chosen by the ``protocol`` setting, once when it starts.

The contract, in the order a worker uses it:

- ``receive_data(bytes)`` feeds what the socket gave (``b""`` at end of file);
  ``next_event()`` returns ``Request``, ``Data``, ``EndOfMessage`` (with
  trailers), ``ConnectionClosed``, ``NEED_DATA`` or ``PAUSED`` and raises
  ``RemoteProtocolError`` (carrying the status to answer with) when the
  peer's bytes are refused. After a refusal ``send_error(exc)`` gives the
  bytes of the error response, and the connection is over.
- ``send_response`` / ``send_data`` / ``send_end`` / ``respond`` return the
  bytes that put the response on the wire; ``send_data_length(n)`` accounts
  for body bytes the worker wrote itself (``sendfile``).
- ``keep_alive`` may be set False by the worker (max_requests, shutdown);
  after the response ``our_state`` is ``MUST_CLOSE`` when the connection
  cannot carry another request, ``their_state`` is ``CLOSED`` or ``ERROR``
  when the peer is gone or refused.
- ``origin`` is None when the socket tells who the client is (HTTP), or an
  :class:`Origin` when the protocol carries it (uwsgi: nginx forwards the
  client's address, the server name and the scheme in its variables). It is
  read after each ``Request``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .errors import RemoteProtocolError
from .events import Event, Headers, Request

__all__ = ["Origin", "ProtocolFactory", "ServerConnection"]


@dataclass(slots=True)
class Origin:
    """Who made the request, as a protocol that carries it says (uwsgi's variables).

    Every field may be None where the protocol did not say.
    """

    #: the client's address and port
    client: tuple[str, int] | None = None
    #: the server's name (or address) and port, as the front end was reached
    server: tuple[str, int] | None = None
    #: ``"http"`` or ``"https"``
    scheme: str | None = None
    #: the remote user the front end authenticated (``REMOTE_USER``)
    remote_user: str | None = None


@runtime_checkable
class ServerConnection(Protocol):
    """The server side of one connection, sans-IO, as every worker drives it."""

    their_state: str
    our_state: str
    keep_alive: bool

    @property
    def request(self) -> Request | None:
        """The request being answered (None before the first head)."""
        ...

    @property
    def origin(self) -> Origin | None:
        """The client as the protocol names it, or None when the socket tells."""
        ...

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """Bytes past what was parsed (after a protocol switch), and EOF."""
        ...

    def receive_data(self, data: bytes) -> None: ...

    def next_event(self) -> Event | object: ...

    def send_response(self, status: int, headers: Headers, reason: bytes = b"") -> bytes: ...

    def send_data(self, data: bytes) -> bytes: ...

    def send_data_length(self, count: int) -> None: ...

    def send_end(self, trailers: Headers | None = None) -> bytes: ...

    def respond(
        self, status: int, headers: Headers, body: bytes = b"", reason: bytes = b""
    ) -> bytes: ...

    def send_error(self, exc: RemoteProtocolError) -> bytes: ...


class ProtocolFactory(Protocol):
    """What a ``unicorn.protocols`` entry point names: a callable taking the parser
    options (``limit_request_line``, ``limit_request_fields``,
    ``limit_request_field_size``, ``permit_obsolete_folding``, and the
    protocol's own, which it must accept and may ignore) and returning a fresh
    :class:`ServerConnection` for one accepted socket."""

    def __call__(self, **options: object) -> ServerConnection: ...
