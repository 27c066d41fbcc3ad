"""The uwsgi request packet: its wire format, and what it means as an HTTP request.

Wire format (the uwsgi protocol as nginx's ``uwsgi_pass`` speaks it)::

    header  modifier1 (u8) | datasize (u16, little-endian) | modifier2 (u8)
    vars    datasize bytes of pairs: key length (u16 LE), key, value length (u16 LE), value
    body    CONTENT_LENGTH bytes (none when the variable is absent or empty)

modifier1 0 is a WSGI request, the only kind a front end sends an
application server; the others (uWSGI's internal signals, other languages'
requests) are refused. modifier2 means nothing for modifier1 0 and is ignored.

The vars are CGI's: ``REQUEST_METHOD``, ``REQUEST_URI``, ``QUERY_STRING``,
``SERVER_PROTOCOL``, ``REMOTE_ADDR`` ... and one ``HTTP_*`` variable per
request header, which nginx passes in the order the client sent them. They
become the very ``unicorn_http.Request`` an HTTP/1.1 connection would have
produced for the same request, so the WSGI environ and the ASGI scope are
built by the same code for both protocols:

- method from ``REQUEST_METHOD``; target from ``REQUEST_URI`` (the client's
  request target, still percent-encoded), path its path part, query
  ``QUERY_STRING`` when given, else the target's query;
- headers from the ``HTTP_*`` variables (``HTTP_X_FOO`` -> ``x-foo``), in
  order; of a repeated ``HTTP_HOST`` (a ``uwsgi_param`` override) the last. The body's framing is ``CONTENT_LENGTH``: it overrides an
  ``HTTP_CONTENT_LENGTH`` that disagrees, ``Transfer-Encoding`` is dropped
  (nginx decoded a chunked upload and sends its length), and ``CONTENT_TYPE``
  stands for a missing ``Content-Type`` header;
- the HTTP version from ``SERVER_PROTOCOL``; never keep-alive (one request
  per uwsgi connection), never ``Expect: 100-continue`` (nginx answered it).

Bounds, each refused with a ``RemoteProtocolError`` that names it:

- the packet head (4 + datasize) is at most ``uwsgi_buffer_size`` (431);
- ``HTTP_*`` variables count against ``limit_request_fields`` exactly as
  header lines do over HTTP (431); the other variables are at most
  ``MAX_CGI_VARS`` distinct names (nginx's uwsgi_params sends 15, with room for
  ``uwsgi_param`` additions) (431);
- each variable's key plus value is at most ``limit_request_field_size``
  (431); ``REQUEST_URI`` is at most ``limit_request_line`` (414);
- a key is a non-empty token, a value holds no NUL, CR, LF or other control
  byte (HTAB excepted), lengths stay inside the block.
"""

from __future__ import annotations

from operator import itemgetter
from urllib.parse import quote_from_bytes

from unicorn_http import Origin, RemoteProtocolError, Request
from unicorn_http.grammar import FIELD_VALUE_BYTES, TARGET_CLASSES, TCHAR

__all__ = ["MAX_CGI_VARS", "PacketHead", "pack", "parse_vars"]

#: variables other than HTTP_* one packet may carry
MAX_CGI_VARS = 64

_WSGI_REQUEST = 0

_first = itemgetter(0)
_second = itemgetter(1)

_VERSIONS = {
    b"HTTP/1.1": b"1.1",
    b"HTTP/1.0": b"1.0",
    b"HTTP/2.0": b"2",
    b"HTTP/2": b"2",
    b"HTTP/3.0": b"3",
    b"HTTP/3": b"3",
}

# Header names the framing rules above act on.
_CONTENT_LENGTH = b"content-length"
_CONTENT_TYPE = b"content-type"
_TRANSFER_ENCODING = b"transfer-encoding"
_SPECIAL_HEADERS = frozenset((_CONTENT_LENGTH, _CONTENT_TYPE, _TRANSFER_ENCODING))

# A key is a token (RFC 9110 section 5.6.2); "_" and "." are tchars already.
_KEY_BYTES = TCHAR
# Underscores in HTTP_* keys become hyphens; the rest is lower-cased.
_HEADER_NAME = bytes.maketrans(b"_ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"-abcdefghijklmnopqrstuvwxyz")


class PacketHead:
    """What a packet's header says: ``modifier1``, ``datasize``, ``modifier2``."""

    __slots__ = ("datasize", "modifier1", "modifier2")

    def __init__(self, header: bytes) -> None:
        self.modifier1 = header[0]
        self.datasize = header[1] | header[2] << 8
        self.modifier2 = header[3]

    def check(self, buffer_size: int) -> None:
        """Refuse what this server does not take (raises ``RemoteProtocolError``)."""
        if self.modifier1 != _WSGI_REQUEST:
            raise RemoteProtocolError(
                f"uwsgi packet with modifier1 {self.modifier1}: only 0 (a WSGI request) is served"
            )
        if 4 + self.datasize > buffer_size:
            raise RemoteProtocolError(
                f"uwsgi packet head of {4 + self.datasize} bytes is over "
                f"uwsgi_buffer_size ({buffer_size} bytes)",
                431,
            )


def pack(
    variables: list[tuple[bytes, bytes]] | dict[bytes, bytes],
    body: bytes = b"",
    modifier1: int = 0,
    modifier2: int = 0,
) -> bytes:
    """A uwsgi packet (what nginx sends) for ``variables``, followed by ``body``.

    For clients, tests and benchmarks; the server side only parses.
    """
    items = variables.items() if isinstance(variables, dict) else variables
    parts = []
    for key, value in items:
        parts.append(len(key).to_bytes(2, "little") + key)
        parts.append(len(value).to_bytes(2, "little") + value)
    block = b"".join(parts)
    if len(block) > 0xFFFF:
        raise ValueError(f"uwsgi vars block of {len(block)} bytes does not fit in 64 KiB")
    return (
        bytes((modifier1,)) + len(block).to_bytes(2, "little") + bytes((modifier2,)) + block + body
    )


def _split(block: bytes) -> tuple[list[tuple[bytes, bytes]], dict[bytes, bytes]]:
    """The headers (``HTTP_*`` vars, named as HTTP names them) in order, and the
    other vars, of a vars block.

    The loop trusts the lengths and checks once at the end that they added up
    to the block (an empty key shows as the key ``b""``); only a block that
    fails is walked again to say where.
    """
    headers: list[tuple[bytes, bytes]] = []
    cgi: dict[bytes, bytes] = {}
    append = headers.append
    pos = 0
    end = len(block)
    try:
        while pos < end:
            size = block[pos] | block[pos + 1] << 8
            pos += 2
            key = block[pos : pos + size]
            pos += size
            size = block[pos] | block[pos + 1] << 8
            pos += 2
            if key[:5] == b"HTTP_":
                append((key[5:].translate(_HEADER_NAME), block[pos : pos + size]))
            else:
                cgi[key] = block[pos : pos + size]
            pos += size
    except IndexError:
        pos = -1
    if pos != end or b"" in cgi:
        raise RemoteProtocolError(_explain_split(block))
    return headers, cgi


def _explain_split(block: bytes) -> str:
    """What is wrong with a vars block whose lengths do not add up."""
    pos = 0
    end = len(block)
    while pos < end:
        if pos + 2 > end:
            return f"uwsgi vars block ends inside a key length at byte {pos}"
        size = block[pos] | block[pos + 1] << 8
        if not size:
            return f"uwsgi var with an empty key at byte {pos}"
        key = block[pos + 2 : pos + 2 + size]
        pos += 2 + size
        if pos + 2 > end:
            return f"uwsgi vars block ends inside the key or value length of {key[:64]!r}"
        pos += 2 + (block[pos] | block[pos + 1] << 8)
        if pos > end:
            return (
                f"uwsgi var {key.decode('latin-1')}'s value runs {pos - end} bytes "
                "past the vars block"
            )
    return "malformed uwsgi vars block"


def _var_name(key: bytes) -> str:
    """A var's name as nginx spelled it (``HTTP_X_FOO``, not the header's ``x-foo``)."""
    if key[:5] == b"HTTP_":
        key = b"HTTP_" + key[5:].upper().replace(b"-", b"_")
    return key[:64].decode("latin-1")


def _bad_value(key: bytes) -> str:
    return f"NUL, CR, LF or a control byte in the value of uwsgi var {_var_name(key)}"


def _port(key: bytes, value: bytes) -> int:
    if not value:
        return 0
    if not value.isdigit() or not value.isascii() or int(value) > 65535:
        raise RemoteProtocolError(f"uwsgi var {key.decode('latin-1')} {value!r} is not a port")
    return int(value)


def _split_target(target: bytes) -> tuple[bytes, bytes]:
    """(path, query) of a request target as REQUEST_URI carries it (RFC 9112 section 3.2)."""
    if target[:1] == b"/":
        path, _, query = target.partition(b"?")
        return path, query
    if target == b"*":
        return target, b""
    scheme, sep, rest = target.partition(b"://")
    if not sep or not scheme.isalpha():
        raise RemoteProtocolError(
            f"uwsgi var REQUEST_URI {target[:64]!r} is not an origin, absolute or asterisk form"
        )
    cut = len(rest)
    for mark in (b"/", b"?"):
        at = rest.find(mark)
        if 0 <= at < cut:
            cut = at
    path, _, query = rest[cut:].partition(b"?")
    return path or b"/", query


def parse_vars(
    block: bytes,
    *,
    limit_request_line: int,
    limit_request_fields: int,
    limit_request_field_size: int,
) -> tuple[Request, Origin]:
    """The request and its origin that a vars block describes; raises ``RemoteProtocolError``.

    Limits of 0 (or less) are unlimited, as in ``H1Connection``.
    """
    headers, cgi = _split(block)
    if limit_request_field_size > 0 and len(block) > limit_request_field_size:
        for key, value in (*cgi.items(), *((b"HTTP_" + n, v) for n, v in headers)):
            if len(key) + len(value) > limit_request_field_size:
                raise RemoteProtocolError(
                    f"uwsgi var {_var_name(key)} is longer than "
                    f"limit_request_field_size ({limit_request_field_size} bytes)",
                    431,
                )
    # Every name and every value checked in one C-level pass each; the culprit is
    # looked for only when one failed.
    if (b"".join(cgi) + b"".join(map(_first, headers))).translate(None, _KEY_BYTES):
        for key in (*cgi, *(b"HTTP_" + n for n, _ in headers)):
            if key.translate(None, _KEY_BYTES):
                raise RemoteProtocolError(f"uwsgi var name {key[:64]!r} is not a token")
    if (b"\t".join(cgi.values()) + b"\t" + b"\t".join(map(_second, headers))).translate(
        None, FIELD_VALUE_BYTES
    ):
        for key, value in (*cgi.items(), *((b"HTTP_" + n, v) for n, v in headers)):
            if value.translate(None, FIELD_VALUE_BYTES):
                raise RemoteProtocolError(_bad_value(key))
    if headers and not all(map(_first, headers)):
        raise RemoteProtocolError("uwsgi var HTTP_ names no header")
    others = len(cgi)
    if block.count(b"\t\x00HTTP_HOST") > 1:
        headers = _last_host(headers)
    # A plain substring test: a false hit only costs the careful path.
    special = b"HTTP_CONTENT_" in block or b"HTTP_TRANSFER_ENCODING" in block

    if 0 < limit_request_fields < len(headers):
        raise RemoteProtocolError(
            f"more than limit_request_fields ({limit_request_fields}) HTTP_* vars (header fields)",
            431,
        )
    if others > MAX_CGI_VARS:
        raise RemoteProtocolError(
            f"more than {MAX_CGI_VARS} distinct uwsgi vars that are not HTTP_* headers", 431
        )

    method = cgi.get(b"REQUEST_METHOD")
    if not method:
        raise RemoteProtocolError(
            "uwsgi packet without REQUEST_METHOD (include uwsgi_params in the nginx location)"
        )
    if method.translate(None, TCHAR):
        raise RemoteProtocolError("uwsgi var REQUEST_METHOD is not a token (RFC 9110 section 9.1)")

    target = cgi.get(b"REQUEST_URI")
    if target is None:
        # A front end that sends only the CGI pair: PATH_INFO is decoded, so encode it again.
        target = quote_from_bytes(cgi.get(b"PATH_INFO") or b"/", safe="/;=,:@!$&'()*+~").encode()
        query = cgi.get(b"QUERY_STRING")
        if query:
            target += b"?" + query
    if 0 < limit_request_line < len(target):
        raise RemoteProtocolError(
            f"uwsgi var REQUEST_URI longer than limit_request_line ({limit_request_line} bytes)",
            414,
        )
    if not target or target.translate(TARGET_CLASSES).count(0):
        raise RemoteProtocolError(
            "uwsgi var REQUEST_URI is empty or holds control, space or DEL bytes"
        )
    path, query = _split_target(target)
    query_string = cgi.get(b"QUERY_STRING")
    if query_string is not None:
        query = query_string

    protocol = cgi.get(b"SERVER_PROTOCOL")
    if protocol is None:
        http_version = b"1.1"
    else:
        http_version = _VERSIONS.get(protocol)
        if http_version is None:
            raise RemoteProtocolError(
                f"uwsgi var SERVER_PROTOCOL {protocol[:32]!r} is not HTTP/1.0, 1.1, 2 or 3", 505
            )

    length = cgi.get(b"CONTENT_LENGTH")
    content_length = None
    if length:
        if not length.isdigit() or not length.isascii() or len(length) > 18:
            raise RemoteProtocolError(f"uwsgi var CONTENT_LENGTH {length[:32]!r} is not digits")
        content_length = int(length)
    content_type = cgi.get(b"CONTENT_TYPE")
    if special or content_length is not None or content_type:
        headers = _framed_headers(
            headers, length if content_length is not None else None, content_type
        )

    request = Request(
        method,
        target,
        headers,
        http_version,
        path,
        query,
        False,  # keep_alive: one request per uwsgi connection
        False,  # expect_continue: the front end answered any Expect itself
        None,  # upgrade: uwsgi carries no protocol switch
        content_length,
        False,
    )
    return request, _origin(cgi, headers)


def _last_host(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers with only the last ``host``.

    A repeated ``HTTP_HOST`` is a ``uwsgi_param HTTP_HOST ...`` written after
    ``include uwsgi_params`` (whose Debian copy sends one already): the later
    one is the configuration's choice, as uWSGI reads it. A client cannot send
    two: nginx refuses a request with two Host headers.
    """
    # (the caller's byte count may also have matched a value that reads HTTP_HOST)
    last = max((i for i, (name, _) in enumerate(headers) if name == b"host"), default=-1)
    return [h for i, h in enumerate(headers) if h[0] != b"host" or i == last]


def _framed_headers(
    headers: list[tuple[bytes, bytes]], length: bytes | None, content_type: bytes | None
) -> list[tuple[bytes, bytes]]:
    """The headers with the body's framing as CONTENT_LENGTH and CONTENT_TYPE say it.

    The CGI variables win over ``HTTP_*`` copies: they describe the body the
    front end actually sends (nginx decodes a chunked upload and counts it).
    A header keeps its place in the client's order; a missing one is appended.
    """
    out = []
    have_length = have_type = False
    for name, value in headers:
        if name == _TRANSFER_ENCODING:
            continue
        if name == _CONTENT_LENGTH:
            if length is None:
                raise RemoteProtocolError(
                    "uwsgi packet with an HTTP_CONTENT_LENGTH but no CONTENT_LENGTH var "
                    "(include uwsgi_params in the nginx location)"
                )
            if have_length:
                continue
            have_length = True
            value = length
        elif name == _CONTENT_TYPE:
            if have_type:
                continue
            have_type = True
            if content_type:
                value = content_type
        out.append((name, value))
    if length is not None and not have_length:
        out.append((_CONTENT_LENGTH, length))
    if content_type and not have_type:
        out.append((_CONTENT_TYPE, content_type))
    return out


def _host_name(host: bytes) -> bytes:
    """The name part of a Host header value (``[::1]:8000`` -> ``[::1]``)."""
    if host[:1] == b"[":
        return host[: host.find(b"]") + 1] or host
    return host.partition(b":")[0]


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


_ON = frozenset((b"on", b"On", b"ON", b"1"))
_HTTPS = frozenset((b"https", b"Https", b"HTTPS"))


def _origin(cgi: dict[bytes, bytes], headers: list[tuple[bytes, bytes]]) -> Origin:
    """Who asked, as the front end's variables say."""
    addr = cgi.get(b"REMOTE_ADDR")
    client = None
    if addr:
        client = (addr.decode("latin-1"), _port(b"REMOTE_PORT", cgi.get(b"REMOTE_PORT", b"")))
    name = cgi.get(b"SERVER_NAME")
    port = cgi.get(b"SERVER_PORT")
    server = None
    if not name:
        # nginx sends an empty SERVER_NAME when its server block has no server_name:
        # the name the client asked for (the Host header, as HTTP would use) stands in.
        for header, value in headers:
            if header == b"host":
                name = _host_name(value)
                break
    if name or port:
        server = ((name or b"").decode("latin-1"), _port(b"SERVER_PORT", port or b""))
    get = cgi.get
    if (
        get(b"HTTPS") in _ON
        or get(b"REQUEST_SCHEME") in _HTTPS
        or get(b"UWSGI_SCHEME") in _HTTPS
        or get(b"wsgi.url_scheme") in _HTTPS
    ):
        scheme = "https"
    else:
        scheme = "http"
    return Origin(client, server, scheme, _text(cgi.get(b"REMOTE_USER")))
