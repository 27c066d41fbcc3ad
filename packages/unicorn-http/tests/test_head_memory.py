"""What a connection remembers of the heads it parsed (``h1.HeadMemory``), alone:
a budget of bytes shared by request lines and field lines, forgotten whole
when spent; a field block kept only when it fits."""

from __future__ import annotations

from unicorn_http.framing import RequestFraming
from unicorn_http.h1 import H1Connection, HeadMemory

FRAMING = RequestFraming(True, False, None, None, False)


def test_lines_are_remembered_within_the_budget():
    memory = HeadMemory()
    assert memory.room(HeadMemory.BUDGET - 10)
    assert memory.size == HeadMemory.BUDGET - 10
    memory.lines[b"line"] = (b"GET", b"/", b"1.1", b"/", b"")
    assert memory.room(10)
    assert memory.size == HeadMemory.BUDGET and memory.lines


def test_a_spent_budget_forgets_everything_and_starts_again():
    memory = HeadMemory()
    assert memory.room(HeadMemory.BUDGET)
    memory.fields[b"A: 1"] = (b"a", b"1")
    memory.lines[b"GET / HTTP/1.1"] = (b"GET", b"/", b"1.1", b"/", b"")
    assert memory.room(100)
    assert not memory.fields and not memory.lines
    assert memory.size == 100


def test_what_cannot_fit_is_not_remembered():
    memory = HeadMemory()
    assert not memory.room(HeadMemory.BUDGET + 1)
    assert memory.size == 0


def test_a_block_is_kept_only_when_it_fits():
    memory = HeadMemory()
    memory.keep_block(b"x" * (HeadMemory.BUDGET + 1), b"1.1", [], FRAMING)
    assert memory.block is None
    memory.keep_block(b"Host: a", b"1.1", [(b"host", b"a")], FRAMING)
    assert (memory.block, memory.block_version, memory.block_headers, memory.block_framing) == (
        b"Host: a",
        b"1.1",
        ((b"host", b"a"),),
        FRAMING,
    )


def test_attributes_are_declared():
    assert not hasattr(HeadMemory(), "__dict__")
    assert not hasattr(H1Connection(), "__dict__")


def test_a_connection_remembers_what_it_parsed():
    conn = H1Connection()
    head = b"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n"
    conn.receive_data(head)
    conn.next_event()
    memory = conn._memory
    assert memory.lines[b"GET / HTTP/1.1"][0] == b"GET"
    assert memory.fields == {b"Host: a": (b"host", b"a"), b"Accept: */*": (b"accept", b"*/*")}
    assert memory.block == b"Host: a\r\nAccept: */*"
    assert memory.block_framing == FRAMING
