"""unicorn_http: a strict, fast, sans-IO HTTP/1.1 server protocol library.

Bytes in, events out; events in, bytes out. No sockets, threads or event
loops inside, so every kind of worker (sync, threaded, greenlet, asyncio)
drives the same parser and every defence is written once::

    conn = H1Connection()
    conn.receive_data(sock.recv(65536))
    event = conn.next_event()          # Request, Data, EndOfMessage, NEED_DATA ...
    sock.sendall(conn.respond(200, [(b"Content-Type", b"text/plain")], b"hi"))
"""

from __future__ import annotations

from .connection import Origin, ProtocolFactory, ServerConnection
from .edge import (
    CONNECT_REFUSED,
    METHOD_NAMES,
    PROTOCOL_NAMES,
    ConnectionEdge,
    EdgeRules,
    Forwarded,
    RequestInfo,
    log_access,
)
from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    Headers,
    InformationalResponse,
    Request,
    Response,
)
from .h1 import (
    CLOSED,
    DONE,
    ERROR,
    IDLE,
    MUST_CLOSE,
    SEND_BODY,
    SWITCHED,
    H1Connection,
    date_header,
)
from .proxy_protocol import ProxyInfo, parse_proxy_header
from .websocket import (
    CLOSING,
    OPEN,
    BytesMessage,
    CloseReceived,
    PerMessageDeflate,
    Ping,
    Pong,
    TextMessage,
    WebSocketHandshake,
    WebSocketHandshakeError,
    WebSocketProtocolError,
    WSConnection,
    accept_key,
)

__version__ = "0.1.0"

__all__ = [
    "CLOSED",
    "CLOSING",
    "CONNECT_REFUSED",
    "DONE",
    "ERROR",
    "IDLE",
    "METHOD_NAMES",
    "MUST_CLOSE",
    "NEED_DATA",
    "OPEN",
    "PAUSED",
    "PROTOCOL_NAMES",
    "SEND_BODY",
    "SWITCHED",
    "BytesMessage",
    "CloseReceived",
    "ConnectionClosed",
    "ConnectionEdge",
    "Data",
    "EdgeRules",
    "EndOfMessage",
    "Event",
    "Forwarded",
    "H1Connection",
    "Headers",
    "InformationalResponse",
    "LocalProtocolError",
    "Origin",
    "PerMessageDeflate",
    "Ping",
    "Pong",
    "ProtocolError",
    "ProtocolFactory",
    "ProxyInfo",
    "RemoteProtocolError",
    "Request",
    "RequestInfo",
    "Response",
    "ServerConnection",
    "TextMessage",
    "WSConnection",
    "WebSocketHandshake",
    "WebSocketHandshakeError",
    "WebSocketProtocolError",
    "__version__",
    "accept_key",
    "date_header",
    "log_access",
    "parse_proxy_header",
]
