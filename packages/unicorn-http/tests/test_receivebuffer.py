"""The receive buffer alone (``unicorn_http.receivebuffer``): whatever the
pieces the input arrives in, the reads give the same bytes as reading the
whole input at once; a search that fails resumes where it stopped; a piece
is handed to a body reader as it is."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unicorn_http import LocalProtocolError
from unicorn_http.receivebuffer import ReceiveBuffer

NEEDLES = (b"\r\n", b"\r\n\r\n")


def cut(data: bytes, points: list[int]) -> list[bytes]:
    points = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


class Model:
    """What the reads must give: the same operations on one string."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def read(self, op: tuple) -> object:
        kind, arg = op
        rest = self.data[self.pos :]
        if kind == "until":
            end = rest.find(arg)
            if end < 0:
                return None
            self.pos += end + len(arg)
            return rest[:end]
        if kind == "prefix":
            if rest.startswith(arg):
                self.pos += len(arg)
                return True
            return None if arg.startswith(rest) else False
        if len(rest) < arg:  # "exactly": n bytes, from as many takes as it needs
            return None
        self.pos += arg
        return rest[:arg]


def read(buffer: ReceiveBuffer, op: tuple, taken: list[bytes]) -> object:
    kind, arg = op
    if kind == "until":
        return buffer.take_until(arg)
    if kind == "prefix":
        return buffer.take_prefix(arg)
    # "exactly": take() gives what one piece holds; collect until n bytes came.
    while sum(map(len, taken)) < arg:
        piece = buffer.take(arg - sum(map(len, taken)))
        if not piece:
            return None
        taken.append(piece)
    out = b"".join(taken)
    taken.clear()
    return out


def check_invariant(buffer: ReceiveBuffer) -> None:
    assert 0 <= buffer.pos <= len(buffer.buf)
    assert (buffer.buf == b"") == (buffer.pos == len(buffer.buf)), "buf is b'' once consumed"
    assert buffer.queued == sum(map(len, buffer.more))


ops = st.lists(
    st.one_of(
        st.tuples(st.just("until"), st.sampled_from(NEEDLES)),
        st.tuples(st.just("prefix"), st.sampled_from((b"\r\n", b"a", b"ab\r"))),
        st.tuples(st.just("exactly"), st.integers(1, 12)),
    ),
    max_size=20,
)


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(st.sampled_from((b"\r\n\r\n", b"\r\n", b"\r", b"a", b"abc")), max_size=30).map(
        b"".join
    ),
    points=st.lists(st.integers(min_value=0), max_size=20),
    ops=ops,
)
def test_any_split_gives_the_same_reads(data, points, ops):
    """Pieces arrive one at a time; each read is retried until the input has
    enough for it. The reads that succeed, and what is left at the end, are
    those of the whole input read at once."""
    model = Model(data)
    expected = []
    for op in ops:
        got = model.read(op)
        if got is None or got is False:
            break
        expected.append(got)

    buffer = ReceiveBuffer()
    pieces = cut(data, points)
    results: list = []
    taken: list[bytes] = []
    pending = list(ops[: len(expected)])
    for piece in [*pieces, b""]:
        buffer.feed(piece)
        check_invariant(buffer)
        while pending:
            got = read(buffer, pending[0], taken)
            check_invariant(buffer)
            if got is None:
                break
            results.append(got)
            pending.pop(0)
    assert results == expected
    assert len(buffer) == len(data) - model.pos
    assert buffer.join() == data[model.pos :]
    assert buffer.eof


def test_a_needle_straddling_two_pieces_is_found():
    buffer = ReceiveBuffer()
    buffer.feed(b"GET / HTTP/1.1\r\n\r")
    assert buffer.take_until(b"\r\n\r\n") is None
    buffer.feed(b"\nrest")
    assert buffer.take_until(b"\r\n\r\n") == b"GET / HTTP/1.1"
    assert buffer.join() == b"rest"


def test_a_failed_search_resumes_where_it_stopped():
    buffer = ReceiveBuffer()
    for _ in range(1000):
        buffer.feed(b"a")
        assert buffer.take_until(b"\r\n\r\n") is None
    # Only the last len(needle) - 1 bytes are looked at again by the next search.
    assert buffer.scan == 1000 - 3
    # A search for another needle does not trust that offset.
    buffer.feed(b"\r\n")
    assert buffer.take_until(b"\r\n") == b"a" * 1000
    assert buffer.scan == 0


def test_a_piece_is_handed_to_a_body_reader_as_it_is():
    buffer = ReceiveBuffer()
    head = b"head\r\n\r\n"
    body = b"x" * 100_000
    buffer.feed(head)
    assert buffer.take_until(b"\r\n\r\n") == b"head"
    buffer.feed(body)
    buffer.feed(b"more")
    assert buffer.take(1 << 20) is body  # no copy of the body
    assert buffer.take(1 << 20) == b"more"
    assert len(buffer) == 0 and buffer.take(1) == b""


@pytest.mark.parametrize(
    ("received", "result", "left"),
    [
        (b"\r\nabc", True, b"abc"),
        (b"\r\n", True, b""),
        (b"\r", None, b"\r"),
        (b"", None, b""),
        (b"x", False, b"x"),
        (b"\rx", False, b"\rx"),
    ],
)
def test_take_prefix(received, result, left):
    buffer = ReceiveBuffer()
    for byte in received:
        buffer.feed(bytes([byte]))
    assert buffer.take_prefix(b"\r\n") is result
    assert buffer.join() == left


def test_unread_puts_bytes_back_in_front():
    buffer = ReceiveBuffer()
    buffer.feed(b"one\r\n")
    buffer.feed(b"two")
    line = buffer.take_until(b"\r\n")
    buffer.unread(line + b"\r\n")
    assert buffer.join() == b"one\r\ntwo"


def test_length_counts_every_waiting_piece():
    buffer = ReceiveBuffer()
    for _ in range(10):
        buffer.feed(b"abc")
    assert len(buffer) == 30
    assert buffer.take(2) == b"ab"
    assert len(buffer) == 28
    buffer.clear()
    assert len(buffer) == 0 and buffer.join() == b""


def test_data_after_end_of_file_is_a_local_error():
    buffer = ReceiveBuffer()
    buffer.feed(b"")
    assert buffer.eof
    with pytest.raises(LocalProtocolError):
        buffer.feed(b"late")
