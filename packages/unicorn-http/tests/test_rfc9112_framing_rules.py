"""The framing rules as pure functions (``unicorn_http.framing``), each vector
named for the RFC section it pins: RFC 9112 section 6 (Content-Length and
Transfer-Encoding, the smuggling defences), section 9.3 (keep-alive) and
RFC 9110 section 7.8 (Upgrade). The same rules run inside ``H1Connection``
(``test_rfc9112_framing.py`` drives them over the wire)."""

from __future__ import annotations

import pytest

from unicorn_http import RemoteProtocolError
from unicorn_http.framing import (
    RequestFraming,
    body_framing,
    content_length_value,
    keep_alive,
    request_framing,
)

REFUSED = object()

CONTENT_LENGTH = [
    ("rfc9110-8.6-digits", b"42", None, 42),
    ("rfc9110-8.6-zero", b"0", None, 0),
    ("rfc9110-8.6-leading-zeros", b"007", None, 7),
    ("rfc9110-8.6-sign", b"+5", None, REFUSED),
    ("rfc9110-8.6-negative", b"-1", None, REFUSED),
    ("rfc9110-8.6-space-inside", b"4 2", None, REFUSED),
    ("rfc9110-8.6-empty", b"", None, REFUSED),
    ("rfc9110-8.6-hex", b"0x10", None, REFUSED),
    ("rfc9110-8.6-unicode-digit", "٣".encode(), None, REFUSED),
    ("rfc9110-8.6-too-long", b"9" * 19, None, REFUSED),
    ("rfc9112-6.3-5-list", b"5,5", None, REFUSED),
    ("rfc9112-6.3-5-repeat", b"5", 5, REFUSED),
]


@pytest.mark.parametrize(
    ("value", "previous", "expect"),
    [c[1:] for c in CONTENT_LENGTH],
    ids=[c[0] for c in CONTENT_LENGTH],
)
def test_content_length_value(value, previous, expect):
    if expect is REFUSED:
        with pytest.raises(RemoteProtocolError) as info:
            content_length_value(value, previous)
        assert info.value.status == 400
    else:
        assert content_length_value(value, previous) == expect


BODY = [
    # (id, content_length, transfer_encoding, version, chunked or status refused with)
    ("rfc9112-6.3-6-no-framing", None, None, b"1.1", False),
    ("rfc9112-6.3-5-length", 10, None, b"1.1", False),
    ("rfc9112-6.3-4-chunked", None, b"chunked", b"1.1", True),
    ("rfc9112-6.3-4-chunked-case", None, b"Chunked", b"1.1", True),
    ("rfc9110-5.6.1-empty-elements", None, b", chunked ,", b"1.1", True),
    ("rfc9112-6.1-te-in-1.0", None, b"chunked", b"1.0", 400),
    ("rfc9112-6.3-3-te-and-cl", 10, b"chunked", b"1.1", 400),
    ("rfc9112-6.1-empty-te", None, b" , ", b"1.1", 400),
    ("rfc9112-6.3-4-chunked-not-last", None, b"chunked, gzip", b"1.1", 400),
    ("rfc9112-6.3-4-unknown-only", None, b"gzip", b"1.1", 400),
    ("rfc9112-7-chunked-twice", None, b"chunked, chunked", b"1.1", 400),
    ("rfc9112-6.1-other-coding-501", None, b"gzip, chunked", b"1.1", 501),
]


@pytest.mark.parametrize(
    ("content_length", "te", "version", "expect"), [c[1:] for c in BODY], ids=[c[0] for c in BODY]
)
def test_body_framing(content_length, te, version, expect):
    if isinstance(expect, bool):
        assert body_framing(content_length, te, version) is expect
    else:
        with pytest.raises(RemoteProtocolError) as info:
            body_framing(content_length, te, version)
        assert info.value.status == expect
        assert "RFC" in info.value.reason or expect == 501


KEEP_ALIVE = [
    # (id, version, joined lower-cased Connection, upgrade, (keep_alive, upgrade))
    ("rfc9112-9.3-1.1-persists", b"1.1", b"", None, (True, None)),
    ("rfc9112-9.3-1.1-close", b"1.1", b"close", None, (False, None)),
    ("rfc9112-9.3-1.1-close-in-list", b"1.1", b"foo, close", None, (False, None)),
    ("rfc9112-c.2.2-1.0-closes", b"1.0", b"", None, (False, None)),
    ("rfc9112-c.2.2-1.0-keep-alive", b"1.0", b"keep-alive", None, (True, None)),
    ("rfc9112-c.2.2-1.0-keep-alive-in-list", b"1.0", b"x,keep-alive", None, (True, None)),
    ("rfc9112-9.3-close-wins", b"1.0", b"keep-alive, close", None, (False, None)),
    ("rfc9110-7.8-upgrade", b"1.1", b"upgrade", b"websocket", (True, b"websocket")),
    ("rfc9110-7.8-upgrade-and-keep-alive", b"1.1", b"keep-alive, upgrade", b"h2c", (True, b"h2c")),
    ("rfc9110-7.8-upgrade-not-in-connection", b"1.1", b"keep-alive", b"websocket", (True, None)),
    ("rfc9110-7.8-upgrade-without-connection", b"1.1", b"", b"websocket", (True, None)),
    ("rfc9110-7.8-ignored-in-1.0", b"1.0", b"upgrade", b"websocket", (False, None)),
]


@pytest.mark.parametrize(
    ("version", "connection", "upgrade", "expect"),
    [c[1:] for c in KEEP_ALIVE],
    ids=[c[0] for c in KEEP_ALIVE],
)
def test_keep_alive(version, connection, upgrade, expect):
    assert keep_alive(version, connection, upgrade) == expect


H = (b"host", b"example.com")
REQUESTS = [
    ("plain-get", [H], b"1.1", RequestFraming(True, False, None, None, False)),
    (
        "length",
        [H, (b"content-length", b"5")],
        b"1.1",
        RequestFraming(True, False, None, 5, False),
    ),
    (
        "chunked-expect",
        [H, (b"transfer-encoding", b"chunked"), (b"expect", b"100-Continue")],
        b"1.1",
        RequestFraming(True, True, None, None, True),
    ),
    (
        "rfc9112-6.3-split-te-fields",
        [H, (b"transfer-encoding", b"gzip"), (b"transfer-encoding", b"chunked")],
        b"1.1",
        501,
    ),
    (
        "rfc9110-10.1.1-expect-in-1.0-means-nothing",
        [(b"expect", b"100-continue")],
        b"1.0",
        RequestFraming(False, False, None, None, False),
    ),
    ("rfc9110-10.1.1-unknown-expectation", [H, (b"expect", b"magic")], b"1.1", 417),
    (
        "rfc9110-5.3-two-content-types",
        [H, (b"content-type", b"a/b"), (b"content-type", b"c/d")],
        b"1.1",
        400,
    ),
    ("rfc9112-3.2-missing-host", [], b"1.1", 400),
    ("rfc9112-3.2-no-host-in-1.0", [], b"1.0", RequestFraming(False, False, None, None, False)),
    ("rfc9112-3.2-two-hosts", [H, H], b"1.1", 400),
    ("rfc9112-3.2-two-hosts-in-1.0", [H, H], b"1.0", 400),
    ("rfc9110-7.2-bad-host", [(b"host", b"a b")], b"1.1", 400),
    (
        "rfc9110-7.2-host-with-port",
        [(b"host", b"[::1]:8080")],
        b"1.1",
        RequestFraming(True, False, None, None, False),
    ),
    (
        "rfc9112-6.3-5-first-fault-reported",
        [(b"content-length", b"1"), (b"content-length", b"1"), (b"expect", b"magic")],
        b"1.1",
        400,
    ),
    (
        "rfc9110-7.8-websocket",
        [H, (b"connection", b"Upgrade"), (b"upgrade", b"WebSocket")],
        b"1.1",
        RequestFraming(True, False, b"websocket", None, False),
    ),
    (
        "rfc9112-9.3-connection-fields-join",
        [H, (b"connection", b"keep-alive"), (b"connection", b"Close")],
        b"1.1",
        RequestFraming(False, False, None, None, False),
    ),
]


@pytest.mark.parametrize(
    ("headers", "version", "expect"), [c[1:] for c in REQUESTS], ids=[c[0] for c in REQUESTS]
)
def test_request_framing(headers, version, expect):
    if isinstance(expect, RequestFraming):
        framing = request_framing(headers, version)
        assert framing == expect
        assert framing.chunked is expect.chunked and framing.keep_alive is expect.keep_alive
    else:
        with pytest.raises(RemoteProtocolError) as info:
            request_framing(headers, version)
        assert info.value.status == expect


def test_every_rule_names_the_section_it_enforces():
    for function in (content_length_value, body_framing, keep_alive, request_framing):
        assert "RFC 91" in function.__doc__, function.__name__
