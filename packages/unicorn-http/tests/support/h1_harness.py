"""Drive an H1Connection and describe what it did, for the tables of test vectors.

A vector is (id, raw bytes, expected outcome). The outcome is either
``Parsed(...)`` (the first request's attributes and the events after it) or
``Refused(status, *words)`` (a RemoteProtocolError with that status whose
reason mentions each word). ``check_vector`` runs the bytes whole and then one
byte at a time and demands the same outcome both ways; for a refusal it also
checks that the connection stays refused and answers with a closing error
response.
"""

from __future__ import annotations

from typing import Any

import pytest

from unicorn_http import (
    MUST_CLOSE,
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    H1Connection,
    RemoteProtocolError,
    Request,
)

EOM = EndOfMessage()


class Parsed:
    """The first request parses with these attributes; ``after`` are the events that follow it."""

    def __init__(self, after: list | None = None, **attrs: Any) -> None:
        self.after = [EOM, PAUSED] if after is None else after
        self.attrs = attrs

    def __repr__(self) -> str:
        return f"Parsed({self.attrs!r}, after={self.after!r})"


class Refused:
    """``next_event()`` raises RemoteProtocolError with ``status``; the reason holds ``words``."""

    def __init__(self, status: int, *words: str) -> None:
        self.status = status
        self.words = words

    def __repr__(self) -> str:
        return f"Refused({self.status}, {self.words!r})"


def case(id: str, raw: bytes, expect: Parsed | Refused, *, eof: bool = False, **settings: Any):
    """One row of a vector table; ``eof`` closes the input after ``raw``."""
    return pytest.param(raw, expect, eof, settings, id=id)


def pump(conn: H1Connection, events: list | None = None) -> list:
    """Call next_event() until NEED_DATA, PAUSED or ConnectionClosed (which are kept).

    Events go into ``events`` as they come, so the caller keeps them if one raises.
    """
    if events is None:
        events = []
    while True:
        event = conn.next_event()
        events.append(event)
        if event is NEED_DATA or event is PAUSED or type(event) is ConnectionClosed:
            return events


def merge(events: list) -> list:
    """Drop NEED_DATA and join neighbouring Data: both depend on how the input was split."""
    out: list = []
    for event in events:
        if event is NEED_DATA:
            continue
        if type(event) is Data and out and type(out[-1]) is Data:
            out[-1] = Data(out[-1].data + event.data)
        else:
            out.append(event)
    return out


def one_byte_at_a_time(raw: bytes) -> list[bytes]:
    return [raw[i : i + 1] for i in range(len(raw))]


def outcome(
    chunks: list[bytes], *, eof: bool = False, **settings: Any
) -> tuple[H1Connection, list, RemoteProtocolError | None]:
    """Feed ``chunks`` one by one, reading events up to the first PAUSED or ConnectionClosed."""
    conn = H1Connection(**settings)
    events: list = []
    try:
        for chunk in [*chunks, b""] if eof else chunks:
            conn.receive_data(chunk)
            pump(conn, events)
            if events[-1] is PAUSED or type(events[-1]) is ConnectionClosed:
                break
    except RemoteProtocolError as exc:
        return conn, merge(events), exc
    return conn, merge(events), None


def check_refusal_is_final(conn: H1Connection, error: RemoteProtocolError, eof: bool) -> None:
    """After a refusal the request side stays refused and the answer closes the connection."""
    for _ in range(2):
        with pytest.raises(RemoteProtocolError) as again:
            conn.next_event()
        assert again.value.status == error.status
    if not eof:
        conn.receive_data(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        with pytest.raises(RemoteProtocolError):
            conn.next_event()
    out = conn.send_error(error)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % error.status)
    req = conn.request
    if req is None or req.keep_alive or req.http_version == b"1.1":
        assert b"\r\nconnection: close" in head.lower()
    if req is None or req.method != b"HEAD":
        assert error.reason.encode() in body
    assert conn.our_state is MUST_CLOSE
    assert not conn.keep_alive


def check_vector(raw: bytes, expect: Parsed | Refused, eof: bool, settings: dict) -> None:
    conn, events, error = outcome([raw], eof=eof, **settings)
    if isinstance(expect, Refused):
        assert error is not None, f"accepted, events: {events!r}"
        assert error.status == expect.status, repr(error)
        for word in expect.words:
            assert word.lower() in error.reason.lower(), repr(error)
        check_refusal_is_final(conn, error, eof)
    else:
        assert error is None, repr(error)
        assert events, "no event"
        req = events[0]
        assert type(req) is Request, events
        for name, value in expect.attrs.items():
            assert getattr(req, name) == value, (name, req)
        assert events[1:] == expect.after
    # Any split of the input gives the same outcome: check the finest one (or, for
    # a big input, pieces small enough that the head still arrives in hundreds).
    step = 1 + len(raw) // 5000
    pieces = [raw[i : i + step] for i in range(0, len(raw), step)]
    _, split_events, split_error = outcome(pieces, eof=eof, **settings)
    assert split_events == events
    assert (split_error and split_error.status) == (error and error.status), (split_error, error)
