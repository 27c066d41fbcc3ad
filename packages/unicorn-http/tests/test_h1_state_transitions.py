"""The states of ``H1Connection`` pinned as a table (STYLE.md: h1's states are
rebound readers, so a table says which reader each state has).

Each row drives a connection with one step and names what the connection is
then: (their_state, our_state, the reader ``next_event`` is bound to). The
readers of the end states hold no reference to the connection, so they are
named by what they do: ``closed`` (always ``ConnectionClosed``), ``paused``
(always ``PAUSED``), ``error`` (raises the refusal again)."""

from __future__ import annotations

import pytest

from unicorn_http import H1Connection, RemoteProtocolError, h1

HOST = b"Host: a\r\n"
GET = b"GET / HTTP/1.1\r\n" + HOST + b"\r\n"
POST_5 = b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\n\r\n"
CHUNKED = b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
UPGRADE = b"GET / HTTP/1.1\r\n" + HOST + b"Connection: upgrade\r\nUpgrade: websocket\r\n\r\n"


def reader(conn: H1Connection) -> str:
    current = conn.next_event
    if current is h1._ALWAYS_CLOSED:
        return "closed"
    if current is h1._ALWAYS_PAUSED:
        return "paused"
    if isinstance(current, h1._Raise):
        return "error"
    return current.__name__


def step(conn: H1Connection, action: str, arg: object = None) -> None:
    if action == "feed":
        conn.receive_data(arg)
    elif action == "next":
        try:
            conn.next_event()
        except RemoteProtocolError:
            pass
    elif action == "respond":
        conn.respond(arg, [])
    elif action == "head":
        conn.send_response(arg, [])
    elif action == "end":
        conn.send_end()
    elif action == "error":
        conn.send_error(RemoteProtocolError("refused"))


# (name, [(action, arg, their_state, our_state, reader), ...])
TRANSITIONS = [
    (
        "get-answered-back-to-idle",
        [
            (None, None, "IDLE", "IDLE", "_read_head"),
            ("feed", GET, "IDLE", "IDLE", "_read_head"),
            ("next", None, "SEND_BODY", "IDLE", "_read_end"),
            ("next", None, "DONE", "IDLE", "_read_after_request"),
            ("next", None, "DONE", "IDLE", "_read_after_request"),  # PAUSED until answered
            ("head", 200, "DONE", "SEND_BODY", "_read_after_request"),
            ("end", None, "IDLE", "IDLE", "_read_head"),
        ],
    ),
    (
        "content-length-body",
        [
            ("feed", POST_5 + b"ab", "IDLE", "IDLE", "_read_head"),
            ("next", None, "SEND_BODY", "IDLE", "_read_length"),
            ("next", None, "SEND_BODY", "IDLE", "_read_length"),  # Data(b"ab")
            ("feed", b"cde", "SEND_BODY", "IDLE", "_read_length"),
            ("next", None, "SEND_BODY", "IDLE", "_read_end"),  # Data(b"cde")
            ("next", None, "DONE", "IDLE", "_read_after_request"),
            ("respond", 204, "IDLE", "IDLE", "_read_head"),
        ],
    ),
    (
        "chunked-body-with-trailers",
        [
            ("feed", CHUNKED, "IDLE", "IDLE", "_read_head"),
            ("next", None, "SEND_BODY", "IDLE", "_read_chunk_size"),
            ("feed", b"3\r\nab", "SEND_BODY", "IDLE", "_read_chunk_size"),
            ("next", None, "SEND_BODY", "IDLE", "_read_chunk_data"),  # Data(b"ab")
            ("feed", b"c", "SEND_BODY", "IDLE", "_read_chunk_data"),
            ("next", None, "SEND_BODY", "IDLE", "_read_chunk_crlf"),  # Data(b"c")
            ("next", None, "SEND_BODY", "IDLE", "_read_chunk_crlf"),  # NEED_DATA
            ("feed", b"\r\n0\r\n", "SEND_BODY", "IDLE", "_read_chunk_crlf"),
            ("next", None, "SEND_BODY", "IDLE", "_read_trailers"),  # NEED_DATA
            ("feed", b"X-T: 1\r\n\r\n", "SEND_BODY", "IDLE", "_read_trailers"),
            ("next", None, "DONE", "IDLE", "_read_after_request"),  # EndOfMessage
            ("respond", 200, "IDLE", "IDLE", "_read_head"),
        ],
    ),
    (
        "early-response-drains-the-body",
        [
            ("feed", POST_5, "IDLE", "IDLE", "_read_head"),
            ("next", None, "SEND_BODY", "IDLE", "_read_length"),
            ("respond", 200, "SEND_BODY", "DONE", "_read_length"),
            ("feed", b"abcde" + GET, "SEND_BODY", "DONE", "_read_length"),
            ("next", None, "SEND_BODY", "IDLE", "_read_end"),  # the next request
        ],
    ),
    (
        "connection-close-must-close",
        [
            (
                "feed",
                b"GET / HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n",
                "IDLE",
                "IDLE",
                "_read_head",
            ),
            ("next", None, "SEND_BODY", "IDLE", "_read_end"),
            ("next", None, "DONE", "IDLE", "_read_after_request"),
            ("respond", 200, "DONE", "MUST_CLOSE", "closed"),
        ],
    ),
    (
        "http-1.0-must-close",
        [
            ("feed", b"GET / HTTP/1.0\r\n\r\n", "IDLE", "IDLE", "_read_head"),
            ("next", None, "SEND_BODY", "IDLE", "_read_end"),
            ("respond", 200, "SEND_BODY", "MUST_CLOSE", "closed"),
        ],
    ),
    (
        "upgrade-switches-both-sides",
        [
            ("feed", UPGRADE, "IDLE", "IDLE", "_read_head"),
            ("next", None, "SEND_BODY", "IDLE", "_read_end"),
            ("next", None, "DONE", "IDLE", "_read_after_request"),
            ("head", 101, "SWITCHED", "SWITCHED", "paused"),
        ],
    ),
    (
        "eof-before-a-request-closes",
        [
            ("feed", b"", "IDLE", "IDLE", "_read_head"),
            ("next", None, "CLOSED", "IDLE", "closed"),
        ],
    ),
    (
        "refusal-is-final",
        [
            ("feed", b"BAD\r\n\r\n", "IDLE", "IDLE", "_read_head"),
            ("next", None, "ERROR", "IDLE", "error"),
            ("error", None, "ERROR", "MUST_CLOSE", "error"),
        ],
    ),
    (
        "refused-before-any-request",
        [
            ("error", None, "ERROR", "MUST_CLOSE", "closed"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("steps",), [(t[1],) for t in TRANSITIONS], ids=[t[0] for t in TRANSITIONS]
)
def test_transitions(steps):
    conn = H1Connection()
    for i, (action, arg, theirs, ours, bound) in enumerate(steps):
        if action is not None:
            step(conn, action, arg)
        assert (conn.their_state, conn.our_state, reader(conn)) == (theirs, ours, bound), (
            f"after step {i} ({action} {arg!r})"
        )


def test_every_reader_is_in_the_table():
    named = {row[4] for _, steps in TRANSITIONS for row in steps}
    readers = {name for name in vars(H1Connection) if name.startswith("_read_")}
    assert readers <= named, readers - named
