"""How an HTTP/1.1 request says where its body ends and whether the connection
lives on: pure functions of the parsed fields, as h11's ``_body_framing`` and
``_keep_alive`` are.

``request_framing`` reads the fields once and applies the rules; each rule
lives in one function below that names the RFC section it enforces, so the
smuggling defences can be read, and tested (``test_rfc9112_framing_rules.py``),
without a connection. Every refusal is a ``RemoteProtocolError`` carrying
the status to answer with.
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import RemoteProtocolError
from .events import Headers
from .grammar import CONTENT_LENGTH_MAX_DIGITS, HOST_RE

__all__ = [
    "RequestFraming",
    "body_framing",
    "content_length_value",
    "keep_alive",
    "request_framing",
]

# Request headers the framing rules act on; every other header is passed through untouched.
FRAMING_FIELDS = frozenset(
    (
        b"host",
        b"content-length",
        b"transfer-encoding",
        b"connection",
        b"expect",
        b"upgrade",
        b"content-type",
    )
)


class RequestFraming(NamedTuple):
    """What a request's fields say of its body and of the connection after it."""

    #: whether the client wants the connection kept after this exchange
    keep_alive: bool
    #: ``Expect: 100-continue`` on an HTTP/1.1 request
    expect_continue: bool
    #: the lower-cased ``Upgrade`` value when the upgrade is asked for in ``Connection``
    upgrade: bytes | None
    #: the body length, or None when there is no Content-Length
    content_length: int | None
    #: whether the body is chunked
    chunked: bool


def content_length_value(value: bytes, previous: int | None) -> int:
    """The length a Content-Length field names.

    RFC 9110 section 8.6: ``Content-Length = 1*DIGIT``: no sign, no
    whitespace inside, no list. RFC 9112 section 6.3 point 5: a list or a
    repeat is unrecoverable framing, refused (even when the values agree:
    a front end may have read the other one).
    """
    if previous is not None:
        raise RemoteProtocolError("more than one Content-Length (RFC 9112 section 6.3)")
    if not value.isdigit() or not value.isascii() or len(value) > CONTENT_LENGTH_MAX_DIGITS:
        raise RemoteProtocolError(
            "Content-Length must be digits only (RFC 9112 section 6.3, RFC 9110 section 8.6)"
        )
    return int(value)


def body_framing(
    content_length: int | None, transfer_encoding: bytes | None, http_version: bytes
) -> bool:
    """Whether the body is chunked, given the (joined) Transfer-Encoding values.

    - RFC 9112 section 6.1: Transfer-Encoding is HTTP/1.1; in an HTTP/1.0
      request the framing is faulty.
    - RFC 9112 section 6.3 point 3: Transfer-Encoding beside Content-Length
      is a smuggling attempt; refused rather than one of them believed.
    - RFC 9110 section 5.6.1: empty list elements do not count.
    - RFC 9112 section 6.3 point 4: chunked must be the final coding, or the
      body length is unknowable; RFC 9112 section 7: applied once.
    - Any other coding is not implemented (501).
    """
    if transfer_encoding is None:
        return False
    if http_version == b"1.0":
        raise RemoteProtocolError("Transfer-Encoding in an HTTP/1.0 request (RFC 9112 section 6.1)")
    if content_length is not None:
        raise RemoteProtocolError(
            "both Transfer-Encoding and Content-Length (RFC 9112 section 6.3; request smuggling)"
        )
    codings = [c for c in (x.strip(b" \t") for x in transfer_encoding.lower().split(b",")) if c]
    if not codings:
        raise RemoteProtocolError("empty Transfer-Encoding (RFC 9112 section 6.1)")
    if codings[-1] != b"chunked":
        raise RemoteProtocolError(
            "Transfer-Encoding must end with chunked (RFC 9112 section 6.3); body length unknowable"
        )
    if codings.count(b"chunked") > 1:
        raise RemoteProtocolError("chunked applied more than once (RFC 9112 section 7)")
    if len(codings) > 1:
        raise RemoteProtocolError(
            "transfer coding " + codings[0].decode("latin-1") + " is not supported", 501
        )
    return True


def keep_alive(
    http_version: bytes, connection: bytes, upgrade: bytes | None
) -> tuple[bool, bytes | None]:
    """Whether the client wants the connection kept, and the upgrade it asks for.

    ``connection`` is the lower-cased, comma-joined ``Connection`` values.

    - RFC 9112 section 9.3: HTTP/1.1 persists unless ``close`` is among the
      connection options; HTTP/1.0 persists only with ``keep-alive``
      (RFC 9112 appendix C.2.2).
    - RFC 9110 section 7.8: ``Upgrade`` counts only when ``Connection`` lists
      ``upgrade`` (it is hop-by-hop, RFC 9110 section 7.6.1), and a server
      MUST ignore it in an HTTP/1.0 request.
    """
    persistent = http_version == b"1.1"
    if connection == b"keep-alive" and upgrade is None:
        return True, None
    if not connection:
        return persistent, None
    tokens = [t.strip(b" \t") for t in connection.split(b",")]
    if b"close" in tokens:
        persistent = False
    elif b"keep-alive" in tokens:
        persistent = True
    if upgrade is not None and (b"upgrade" not in tokens or http_version == b"1.0"):
        upgrade = None
    return persistent, upgrade


def _check_host(value: bytes) -> None:
    # RFC 9110 section 7.2: Host = uri-host [ ":" port ]. A plain name (letters,
    # digits, dots, hyphens) needs no regex.
    if not value.replace(b".", b"").replace(b"-", b"").isalnum() and not HOST_RE.fullmatch(value):
        raise RemoteProtocolError("invalid Host header (RFC 9110 section 7.2)")


def request_framing(headers: Headers, http_version: bytes) -> RequestFraming:
    """The framing of a request with these (lower-cased, checked) fields.

    One pass over the fields checks each framing field as it comes (so the
    first bad one is the one reported), then the rules that need them all:

    - RFC 9112 section 3.2: an HTTP/1.1 request carries exactly one Host; a
      repeat is refused in HTTP/1.0 too.
    - RFC 9110 section 10.1.1: the only expectation is ``100-continue``
      (417 otherwise); it means nothing from an HTTP/1.0 client.
    - RFC 9110 section 5.3: Content-Type is a singleton; a repeat is refused.
    - the body (:func:`body_framing`) and the connection (:func:`keep_alive`).
    """
    content_length = None
    expect_continue = False
    upgrade = None
    hosts = 0
    content_types = 0
    connection = b""
    te = None
    for name, value in headers:
        if name not in FRAMING_FIELDS:
            continue
        if name == b"host":
            hosts += 1
            _check_host(value)
        elif name == b"content-length":
            content_length = content_length_value(value, content_length)
        elif name == b"transfer-encoding":
            te = value if te is None else te + b"," + value
        elif name == b"connection":
            connection = value.lower() if not connection else connection + b"," + value.lower()
        elif name == b"expect":
            if value.lower() != b"100-continue":
                raise RemoteProtocolError("unsupported expectation (RFC 9110 section 10.1.1)", 417)
            expect_continue = http_version == b"1.1"
        elif name == b"content-type":
            # RFC 9110 section 5.3: a singleton field cannot be combined into a
            # list; a repeat is read differently by different parsers.
            content_types += 1
            if content_types > 1:
                raise RemoteProtocolError("more than one Content-Type (RFC 9110 section 5.3)")
        else:
            upgrade = value.lower()

    if hosts != 1 and (http_version == b"1.1" or hosts > 1):
        raise RemoteProtocolError(
            "missing Host header"
            if hosts == 0
            else "more than one Host header (RFC 9112 section 3.2)"
        )
    chunked = body_framing(content_length, te, http_version)
    persistent, upgrade = keep_alive(http_version, connection, upgrade)
    return RequestFraming(persistent, expect_continue, upgrade, content_length, chunked)
