"""One definition of a valid field (``unicorn_http.fields``: RFC 9110 sections
5.1 and 5.5), the same on every path a field takes: request headers and
trailers we read, response headers, 1xx headers and trailers we write."""

from __future__ import annotations

import pytest

from unicorn_http import H1Connection, LocalProtocolError, RemoteProtocolError, Request
from unicorn_http.fields import explain_field_lines, is_field_name, is_field_value

NAMES = [
    (b"X-Content-Type", True),
    (b"x_custom.1~!#$%&'*+^`|", True),
    (b"", False),
    (b"Bad Name", False),
    (b"Colon:", False),
    (b"Tab\t", False),
    (b"Caf\xc3\xa9", False),
    (b"Ctl\x01", False),
    (b"(paren)", False),
]

VALUES = [
    (b"", True),
    (b"text/html; q=0.9", True),
    (b"tab\there", True),
    (b"obs-text \x80\xff", True),
    (b"cr\rhere", False),
    (b"lf\nhere", False),
    (b"nul\x00", False),
    (b"del\x7f", False),
    (b"esc\x1b", False),
]


@pytest.mark.parametrize(("name", "ok"), NAMES)
def test_is_field_name(name, ok):
    assert is_field_name(name) is ok


@pytest.mark.parametrize(("value", "ok"), VALUES)
def test_is_field_value(value, ok):
    assert is_field_value(value) is ok


# Fields every path must refuse, and the fields every path must take.
BAD_FIELDS = [(n, b"v") for n, ok in NAMES if not ok] + [(b"X-V", v) for v, ok in VALUES if not ok]
GOOD_FIELDS = [(n, b"v") for n, ok in NAMES if ok] + [(b"X-V", v) for v, ok in VALUES if ok]


def read_request_header(name: bytes, value: bytes) -> None:
    conn = H1Connection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n" + name + b": " + value + b"\r\n\r\n")
    assert isinstance(conn.next_event(), Request)


def read_trailer(name: bytes, value: bytes) -> None:
    conn = H1Connection()
    conn.receive_data(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n" + name + b": " + value + b"\r\n\r\n"
    )
    assert isinstance(conn.next_event(), Request)
    conn.next_event()


def answering() -> H1Connection:
    conn = H1Connection()
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    conn.next_event()
    conn.next_event()
    return conn


def write_response_header(name: bytes, value: bytes) -> None:
    answering().send_response(200, [(name, value)])


def write_informational_header(name: bytes, value: bytes) -> None:
    answering().send_response(103, [(name, value)])


def write_trailer(name: bytes, value: bytes) -> None:
    conn = answering()
    conn.send_response(200, [])
    conn.send_end([(name, value)])


READERS = [read_request_header, read_trailer]
WRITERS = [write_response_header, write_informational_header, write_trailer]


def _on_the_wire(field: tuple[bytes, bytes]) -> bool:
    """Whether the field can be received as one field line at all (a CR, LF or
    a name ending in ":" would make it other lines or another field)."""
    name, value = field
    return not (name.endswith((b":", b"\t")) or b"\n" in value or b"\r" in value)


REFUSALS = [(path, field) for path in WRITERS for field in BAD_FIELDS] + [
    (path, field) for path in READERS for field in BAD_FIELDS if _on_the_wire(field)
]


@pytest.mark.parametrize(
    ("path", "field"), REFUSALS, ids=[f"{p.__name__}-{f!r}" for p, f in REFUSALS]
)
def test_every_path_refuses_the_same_fields(path, field):
    error = RemoteProtocolError if path in READERS else LocalProtocolError
    with pytest.raises(error):
        path(*field)


@pytest.mark.parametrize("field", GOOD_FIELDS, ids=repr)
@pytest.mark.parametrize("path", READERS + WRITERS, ids=lambda f: f.__name__)
def test_every_path_takes_the_same_fields(path, field):
    path(*field)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b" folded", "folding"),
        (b"no colon", "without a colon"),
        (b": empty", "empty header name"),
        (b"Name : v", "whitespace between"),
        (b"N@me: v", "not a token"),
        (b"Name: a\x01b", "control character"),
    ],
)
def test_a_refusal_names_the_rule_broken(line, words):
    assert words in explain_field_lines([b"Host: a", line])
