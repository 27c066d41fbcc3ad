"""Bad input on a dirty socket closes that connection only, with a logged reason; limits hold."""

from __future__ import annotations

import socket
import struct

import pytest
from running_pool import ECHO, wait_for

from unicorn_dirty import (
    DirtyClient,
    DirtyPayloadTooLargeError,
    DirtyProtocolError,
)
from unicorn_dirty import protocol as P

pytestmark = pytest.mark.timeout(30)


def closed_by_peer(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


GARBAGE = [
    (struct.pack("!IBQ", 9, 77, 1), "unknown frame kind 77"),
    (struct.pack("!IBQ", 0xFFFFFFF0, P.CANCEL, 1), "exceeds dirty_max_payload"),
    (struct.pack("!IBQ", 2, P.REQUEST, 1), "shorter than its header"),
    (P.frame(P.REQUEST, 1, b"\x00\x40abc"), "truncated request head"),
    (P.frame(P.STASH, 1, b"\xee\xee"), "unknown tag"),
    (P.frame(P.RESULT, 1, P.encode(1)), "unexpected frame kind 10"),
]


@pytest.mark.parametrize(("data", "reason"), GARBAGE, ids=[g[1] for g in GARBAGE])
def test_malformed_frame_closes_only_that_connection(shared_pool, data, reason):
    bystander = DirtyClient(shared_pool.path)
    assert bystander.execute(ECHO, "noop") is None
    bad = socket.socket(socket.AF_UNIX)
    bad.connect(shared_pool.path)
    bad.sendall(data)
    assert closed_by_peer(bad)
    bad.close()
    wait_for(lambda: reason in shared_pool.log(), what="logged reason")
    assert bystander.execute(ECHO, "echo", "still here") == [["still here"], {}]


def test_garbage_request_body_is_answered_with_a_protocol_error(shared_pool):
    head = P.encode_request(ECHO, "noop", (), {}, None)
    _, _, offset = P.decode_route(head)
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(shared_pool.path)
    sock.sendall(P.frame(P.REQUEST, 7, head[:offset] + b"\xee"))
    sock.settimeout(5)
    reader = P.FrameReader()
    frames = []
    while not frames:
        frames = reader.feed(sock.recv(4096))
    kind, ident, payload = frames[0]
    assert (kind, ident) == (P.ERROR, 7)
    assert P.decode(payload)["error_type"] == "CodecError"
    sock.close()


def test_payload_over_the_limit_is_refused(make_pool, monkeypatch):
    pool = make_pool(workers=1, args=["--max-payload", "1000"])
    # a client that does not know the pool's limit gets the error for that call alone
    with pytest.raises(DirtyPayloadTooLargeError, match=r"request of \d+ bytes exceeds"):
        pool.client.execute(ECHO, "echo", b"x" * 2000)
    assert pool.client.execute(ECHO, "echo", "same connection") == [["same connection"], {}]
    # ... and learns the limit from it: the next one is refused without being sent
    with pytest.raises(DirtyPayloadTooLargeError) as info:
        pool.client.execute(ECHO, "echo", b"x" * 2000)
    assert info.value.max_payload == 1000 and info.value.size > 2000
    assert pool.status()["stats"]["oversized_requests"] == 1
    wait_for(lambda: "over dirty_max_payload (1000)" in pool.log(), what="logged reason")
    # one that does (HTTP workers get it from the sidecar's environment) refuses to send
    monkeypatch.setenv("UNICORN_DIRTY_MAX_PAYLOAD", "1000")
    client = DirtyClient(pool.path)
    with pytest.raises(DirtyPayloadTooLargeError):
        client.execute(ECHO, "echo", b"x" * 2000)
    # a result over the limit is an error for that call only
    with pytest.raises(DirtyPayloadTooLargeError, match="result of"):
        client.execute(ECHO, "big", 5000)
    assert client.execute(ECHO, "big", 10) == b"x" * 10
    assert isinstance(DirtyPayloadTooLargeError(), DirtyProtocolError)
