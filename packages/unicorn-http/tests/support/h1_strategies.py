"""Hypothesis strategies for streams of valid requests, with what they must parse to.

A stream is a list of ``Message``: the bytes of one request and the events it
must produce, given the driver in ``drive``: it answers each request at its
EndOfMessage, or at once when ``early`` is set (so the body is drained).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

from hypothesis import strategies as st

from unicorn_http import (
    NEED_DATA,
    PAUSED,
    SWITCHED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    H1Connection,
    Request,
)

TCHAR = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
VCHAR = "".join(map(chr, range(0x21, 0x7F))) + "\x80\xa0\xc3\xa9\xff"
PCHAR = "abcdefghijklmnopqrstuvwxyz0123456789-._~%!$&'()*+,;=:@/"

tokens = st.text(TCHAR, min_size=1, max_size=12).map(str.encode)


@st.composite
def field_values(draw) -> tuple[bytes, bytes]:
    """(value as sent with optional surrounding whitespace, value as parsed)."""
    core = draw(st.text(VCHAR + " \t", max_size=20)).strip(" \t")
    ows = st.text(" \t", max_size=2)
    return (draw(ows) + core + draw(ows)).encode("latin-1"), core.encode("latin-1")


@st.composite
def header_fields(draw, prefix: bytes = b"X-") -> tuple[bytes, tuple[bytes, bytes]]:
    """(the field line without CRLF, the parsed pair). Never a framing field."""
    name = prefix + draw(tokens)
    name = bytes(draw(st.sampled_from([name.lower(), name.upper(), name])))
    raw_value, value = draw(field_values())
    return name + b":" + raw_value, (name.lower(), value)


@st.composite
def chunk_extensions(draw) -> bytes:
    exts = []
    for _ in range(draw(st.integers(0, 2))):
        ext = b";" + draw(tokens)
        kind = draw(st.sampled_from(["name", "token", "quoted"]))
        if kind == "token":
            ext += b"=" + draw(tokens)
        elif kind == "quoted":
            ext += b'="' + draw(st.text("abc ;=\t", max_size=6)).encode() + b'"'
        exts.append(ext)
    return b"".join(exts)


@dataclass
class Message:
    raw: bytes
    request: tuple  # see request_key()
    body: bytes = b""
    trailers: list = field(default_factory=list)
    early: bool = False
    closes: bool = False  # the connection ends after this exchange
    expect: bool = False


def request_key(req: Request) -> tuple:
    return (
        req.method,
        req.target,
        req.http_version,
        req.headers,
        req.keep_alive,
        req.content_length,
        req.chunked,
        req.expect_continue,
    )


@st.composite
def messages(draw) -> Message:
    version = draw(st.sampled_from([b"1.1", b"1.1", b"1.1", b"1.0"]))
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PROPFIND", b"M-SEARCH"]))
    target = b"/" + draw(st.text(PCHAR, max_size=15)).encode()
    if draw(st.booleans()):
        target += b"?" + draw(st.text(PCHAR + "?", max_size=10)).encode()
    lines: list[bytes] = []
    parsed: list[tuple[bytes, bytes]] = []
    if version == b"1.1":
        host = draw(st.sampled_from([b"example.com", b"example.com:8080", b"[::1]:80", b""]))
        lines.append(b"Host: " + host)
        parsed.append((b"host", host))
    keep_alive = version == b"1.1"
    if draw(st.integers(0, 5)) == 0:
        keep_alive = not keep_alive
        lines.append(b"Connection: close" if version == b"1.1" else b"Connection: keep-alive")
        parsed.append((b"connection", lines[-1][12:]))
    for _ in range(draw(st.integers(0, 4))):
        line, pair = draw(header_fields())
        lines.append(line)
        parsed.append(pair)
    expect = version == b"1.1" and draw(st.integers(0, 6)) == 0
    if expect:
        lines.append(b"Expect: 100-continue")
        parsed.append((b"expect", b"100-continue"))

    kinds = ["none", "length"] + (["chunked"] if version == b"1.1" else [])
    kind = draw(st.sampled_from(kinds))
    body = b""
    trailers: list = []
    payload = b""
    content_length = None
    if kind == "length":
        body = draw(st.binary(max_size=40))
        content_length = len(body)
        lines.append(b"Content-Length: %d" % len(body))
        parsed.append((b"content-length", b"%d" % len(body)))
        payload = body
    elif kind == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        parsed.append((b"transfer-encoding", b"chunked"))
        for chunk in draw(st.lists(st.binary(min_size=1, max_size=20), max_size=4)):
            size = b"%x" % len(chunk)
            if draw(st.booleans()):
                size = size.upper()
            payload += size + draw(chunk_extensions()) + b"\r\n" + chunk + b"\r\n"
            body += chunk
        payload += b"0" + draw(chunk_extensions()) + b"\r\n"
        for _ in range(draw(st.integers(0, 2))):
            line, pair = draw(header_fields(b"X-T-"))
            payload += line + b"\r\n"
            trailers.append(pair)
        payload += b"\r\n"
    # Shuffle the header order (the Host rule does not care where it is).
    order = draw(st.permutations(range(len(lines))))
    lines = [lines[i] for i in order]
    parsed = [parsed[i] for i in order]
    empty_lines = b"\r\n" * draw(st.integers(0, 2))
    raw = (
        empty_lines
        + method
        + b" "
        + target
        + b" HTTP/"
        + version
        + b"\r\n"
        + b"".join(line + b"\r\n" for line in lines)
        + b"\r\n"
        + payload
    )
    request = (
        method,
        target,
        version,
        parsed,
        keep_alive,
        content_length,
        kind == "chunked",
        expect,
    )
    early = draw(st.integers(0, 3)) == 0
    # An early answer to an Expect: 100-continue request with a body closes: the
    # client may still be holding the body back, so where the next request
    # starts is unknowable. Without a body there is nothing to hold back.
    closes = not keep_alive or (early and expect and (kind == "chunked" or bool(content_length)))
    return Message(raw, request, body, trailers, early, closes, expect)


def streams(max_messages: int = 4):
    return st.lists(messages(), min_size=1, max_size=max_messages)


def expected_events(stream: list[Message]) -> list:
    """The events ``drive`` must report for the whole stream, Data merged per message."""
    out: list = []
    for msg in stream:
        out.append(msg.request)
        if msg.early and msg.closes:
            # answered before its end and the connection cannot outlive it
            out.append(ConnectionClosed())
            return out
        if not msg.early:
            # An early answer ends the request for the driver: its unread body
            # and its end are drained unseen.
            if msg.body:
                out.append(Data(msg.body))
            out.append(EndOfMessage(msg.trailers))
        if msg.closes:
            out.append(ConnectionClosed())
            return out
    return out


def drive(chunks: list[bytes], early: list[bool], *, eof: bool = False, **settings) -> list:
    """Feed ``chunks``; answer each request at its end, or at once when ``early[i]``.

    Returns the events with NEED_DATA dropped and Data merged, Requests as
    ``request_key`` tuples. Raises what next_event() raises.
    """
    conn = H1Connection(**settings)
    events: list = []
    answered = True
    count = 0
    for chunk in [*chunks, b""] if eof else chunks:
        conn.receive_data(chunk)
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                break
            if event is PAUSED:
                assert conn.our_state is SWITCHED, "the driver answered every request"
                return events  # a CONNECT tunnel: HTTP is over
            if type(event) is Request:
                events.append(request_key(event))
                answered = count < len(early) and early[count]
                count += 1
                if answered:
                    conn.respond(200, [], b"early")
            elif type(event) is Data and events and type(events[-1]) is Data:
                events[-1] = Data(events[-1].data + event.data)
            else:
                events.append(event)
            if type(event) is EndOfMessage and not answered:
                conn.respond(200, [], b"ok")
                answered = True
            if type(event) is ConnectionClosed:
                return events
    return events


def cut(raw: bytes, points: list[int]) -> list[bytes]:
    """``raw`` cut at the given offsets."""
    edges = [0, *sorted({p % (len(raw) + 1) for p in points}), len(raw)]
    return [raw[a:b] for a, b in pairwise(edges) if b > a]
