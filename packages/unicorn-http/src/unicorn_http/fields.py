"""What a valid field line is, defined once, for the fields we read (request
headers, trailers) and the fields we write (response headers, 1xx headers,
trailers).

RFC 9110 section 5.1: ``field-name = token``; section 5.5: a field value is
VCHAR, obs-text, SP and HTAB, nothing else (no NUL, CR, LF, other controls
or DEL). ``is_field_name`` and ``is_field_value`` say it for one field;
``grammar.TCHAR`` and ``grammar.FIELD_VALUE_BYTES`` are the byte sets both
use.

Fields we read come a block at a time, so ``parse_field_lines`` checks a whole
block in a handful of C-level passes over the joined bytes (tables derived
from the same byte sets) and, only when a pass fails, ``explain_field_lines``
walks the lines with the one-field predicates to name the rule broken:
precise errors at no hot-path cost.
"""

from __future__ import annotations

from itertools import repeat
from operator import itemgetter

from .errors import LocalProtocolError, RemoteProtocolError
from .events import Headers
from .grammar import FIELD_CLASSES, FIELD_VALUE_BYTES, TCHAR

__all__ = [
    "check_field",
    "explain_field_lines",
    "is_field_name",
    "is_field_value",
    "parse_field_lines",
]

_first = itemgetter(0)
_COLONS = repeat(b":")
_COLON_SPACES = repeat(b": ")


def is_field_name(name: bytes) -> bool:
    """RFC 9110 section 5.1: a field name is a token (one or more tchar)."""
    return bool(name) and not name.translate(None, TCHAR)


def is_field_value(value: bytes) -> bool:
    """RFC 9110 section 5.5: no control byte but HTAB, no DEL (so no CR, LF or NUL)."""
    return not value.translate(None, FIELD_VALUE_BYTES)


def check_field(name: bytes, value: bytes, role: str = "header") -> None:
    """Refuse a field we were asked to send (``role``: "header" or "trailer").

    A CR or LF in a name or value would let the application's data write
    fields, or a whole response, of its own (response splitting).
    """
    if not is_field_name(name):
        raise LocalProtocolError(f"invalid response {role} name {name!r}")
    if not is_field_value(value):
        raise LocalProtocolError(f"CR, LF, NUL or a control byte in {role} {name!r}")


def explain_field_lines(lines: list[bytes]) -> str:
    """Slow path: say precisely what is wrong with received field lines that
    failed the fast checks (RFC 9112 section 5)."""
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            return "obsolete line folding in a header (RFC 9112 section 5.2)"
        if b"\r" in line or b"\n" in line:
            return "bare CR or LF in a header (RFC 9112 section 2.2)"
        name, sep, value = line.partition(b":")
        if not sep:
            return "header line without a colon (RFC 9112 section 5)"
        if not name:
            return "empty header name (RFC 9110 section 5.1)"
        if name[-1:] in (b" ", b"\t"):
            return (
                "whitespace between header name and colon (RFC 9112 section 5.1; request smuggling)"
            )
        if not is_field_name(name):
            return "header name is not a token (RFC 9110 section 5.1)"
        if not is_field_value(value):
            return "control character in a header value (RFC 9110 section 5.5)"
    return "malformed header block"


def parse_field_lines(
    lines: list[bytes],
    text: bytes,
    after_request_line: bool,
    limit_fields: int,
    limit_field_size: int,
) -> Headers:
    """Check received field lines (RFC 9112 section 5) in a handful of C-level
    passes; their (lower-cased name, stripped value) pairs.

    ``text`` is what the lines were split from, with the request line in
    front when ``after_request_line``. ``FIELD_CLASSES`` maps every byte that
    may not stand in a field value (controls, DEL, CR, LF) to NUL, so in a
    clean block the NULs are exactly the CRLFs the split consumed: one count
    finds a control byte, a bare CR and a bare LF alike. Lines are split at
    ": " first, which leaves most values needing no strip (and so no copy);
    a line that does not fit that mould sends the block down the general
    path, which splits at ":" and strips. Names are checked joined: with
    "-" between them an empty name shows as a leading, trailing or doubled
    "-", and letters, digits and "-" are the common tchar.
    """
    count = len(lines)
    if count > limit_fields:
        raise RemoteProtocolError(
            f"more than limit_request_fields ({limit_fields}) header fields", 431
        )
    # A field line counts with its CRLF, as gunicorn counts it.
    if len(text) + 2 > limit_field_size and max(map(len, lines)) + 2 > limit_field_size:
        raise RemoteProtocolError(
            f"a header field is longer than limit_request_field_size ({limit_field_size} bytes)",
            431,
        )
    if text.translate(FIELD_CLASSES).count(0) != 2 * (count - 1 + after_request_line):
        if after_request_line and not is_field_value(text[: text.find(b"\r\n")]):
            raise RemoteProtocolError("control byte in the request line (RFC 9112 section 3)")
        raise RemoteProtocolError(explain_field_lines(lines))
    pairs = list(map(bytes.partition, lines, _COLON_SPACES))
    names = b"-".join(map(_first, pairs))
    if (
        names[:1] == b"-"
        or names[-1:] == b"-"
        or b"--" in names
        or not names.replace(b"-", b"").isalnum()
    ):
        # General path: no space after a colon, a rarer token character, or an error.
        pairs = list(map(bytes.partition, lines, _COLONS))
        names = b"".join(map(_first, pairs))
        if names.translate(None, TCHAR) or not all(map(_first, pairs)):
            raise RemoteProtocolError(explain_field_lines(lines))
    # A line without a colon has no separator: it drops out here and the count tells.
    headers = [(name.lower(), value.strip()) for name, sep, value in pairs if sep]
    if len(headers) != count:
        raise RemoteProtocolError(explain_field_lines(lines))
    return headers
