"""Character classes and small grammars of HTTP/1.1, with the rule each comes from.

The parser checks whole header blocks at C speed with ``bytes.translate``
tables built here: ``block.translate(None, ALLOWED)`` deletes every allowed
byte, so an empty result means the block is clean. Regular expressions are
kept for short, rare inputs (a request line, a chunk-size line) where their
per-byte cost does not matter.
"""

from __future__ import annotations

import re

# RFC 9110 section 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "."
#                                 / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
TOKEN_RE = re.compile(TOKEN)

# RFC 9110 section 5.5: field-value = *field-content; field-vchar = VCHAR / obs-text,
# with SP and HTAB allowed inside. Everything else (NUL, CR, LF, the other
# controls, DEL) is forbidden in a value.
FIELD_VALUE_BYTES = bytes([9, *range(0x20, 0x7F), *range(0x80, 0x100)])
# A translation table sending every byte that may not stand in a field value
# (controls but HTAB, DEL; CR and LF too) to NUL and every other byte to
# itself. See fields.parse_field_lines.
FIELD_CLASSES = bytes(b if b in FIELD_VALUE_BYTES else 0 for b in range(256))

# RFC 9112 section 3.2 / RFC 3986: the request-target is made of URI characters.
# We accept VCHAR and obs-text (bytes >= 0x80, which real clients send raw in
# paths); controls, SP and DEL are refused.
TARGET_BYTES = bytes([*range(0x21, 0x7F), *range(0x80, 0x100)])
# The same as a translation table: every byte a target may not hold goes to NUL,
# so ``target.translate(TARGET_CLASSES).count(0)`` counts the bad bytes.
TARGET_CLASSES = bytes(b if b in TARGET_BYTES else 0 for b in range(256))

# RFC 9112 section 5.2: obs-fold = OWS CRLF RWS (a line continued on the next).
OBS_FOLD_RE = re.compile(rb"[ \t]*\r\n[ \t]+")

# RFC 9112 section 3: request-line = method SP request-target SP HTTP-version
# RFC 9112 section 2.3: HTTP-version = HTTP-name "/" DIGIT "." DIGIT
HTTP_VERSION_RE = re.compile(rb"HTTP/([0-9])\.([0-9])")

# RFC 9112 section 7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
#   chunk-size = 1*HEXDIG
#   chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
#   chunk-ext-val = token / quoted-string
# No sign, no "0x", no underscore: int(x, 16) alone would accept all three.
QUOTED_STRING = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t !-~\x80-\xff])*"'
CHUNK_EXT = (
    rb"(?:[ \t]*;[ \t]*"
    + TOKEN
    + rb"(?:[ \t]*=[ \t]*(?:"
    + TOKEN
    + rb"|"
    + QUOTED_STRING
    + rb"))?)*"
)
CHUNK_SIZE_RE = re.compile(rb"([0-9A-Fa-f]{1,16})(" + CHUNK_EXT + rb")")

# RFC 9110 section 7.2: Host = uri-host [ ":" port ]. A loose check that
# refuses what could re-route a request: userinfo, paths, spaces, controls.
HOST_RE = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[-!$&'()*+,;=._~%0-9A-Za-z]*)(?::[0-9]*)?")

# RFC 9112 section 6.1 / RFC 9110 section 8.6: Content-Length = 1*DIGIT. No sign,
# no whitespace inside, no list. 18 digits keeps it a machine int.
CONTENT_LENGTH_MAX_DIGITS = 18

# RFC 9110 section 6.5.1: a sender MUST NOT generate a trailer field that is
# needed for message framing, routing, request modifiers, authentication,
# response control or payload processing. Fields we refuse to accept in a
# request's trailer section because acting on them would be unsafe.
FORBIDDEN_TRAILERS = frozenset(
    {
        # framing
        b"transfer-encoding",
        b"content-length",
        b"trailer",
        # routing
        b"host",
        # request modifiers: controls and conditionals (RFC 9110 sections 7.6, 10.1, 13)
        b"cache-control",
        b"expect",
        b"max-forwards",
        b"pragma",
        b"range",
        b"te",
        b"if-match",
        b"if-none-match",
        b"if-modified-since",
        b"if-unmodified-since",
        b"if-range",
        # authentication
        b"authorization",
        b"proxy-authorization",
        b"cookie",
        # payload processing
        b"content-encoding",
        b"content-type",
        b"content-range",
        # connection management (RFC 9110 section 7.6.1)
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"upgrade",
    }
)

# RFC 9110 section 15: the reason phrases we send when the caller gives none.
REASONS: dict[int, bytes] = {
    100: b"Continue",
    101: b"Switching Protocols",
    102: b"Processing",
    103: b"Early Hints",
    200: b"OK",
    201: b"Created",
    202: b"Accepted",
    203: b"Non-Authoritative Information",
    204: b"No Content",
    205: b"Reset Content",
    206: b"Partial Content",
    207: b"Multi-Status",
    300: b"Multiple Choices",
    301: b"Moved Permanently",
    302: b"Found",
    303: b"See Other",
    304: b"Not Modified",
    307: b"Temporary Redirect",
    308: b"Permanent Redirect",
    400: b"Bad Request",
    401: b"Unauthorized",
    402: b"Payment Required",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    406: b"Not Acceptable",
    407: b"Proxy Authentication Required",
    408: b"Request Timeout",
    409: b"Conflict",
    410: b"Gone",
    411: b"Length Required",
    412: b"Precondition Failed",
    413: b"Content Too Large",
    414: b"URI Too Long",
    415: b"Unsupported Media Type",
    416: b"Range Not Satisfiable",
    417: b"Expectation Failed",
    418: b"I'm a teapot",
    421: b"Misdirected Request",
    422: b"Unprocessable Content",
    425: b"Too Early",
    426: b"Upgrade Required",
    428: b"Precondition Required",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    451: b"Unavailable For Legal Reasons",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
    505: b"HTTP Version Not Supported",
    507: b"Insufficient Storage",
    511: b"Network Authentication Required",
}
