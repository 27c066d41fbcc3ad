"""WebSocket codec, server side: unicorn_http.WSConnection against wsproto.

Each workload is a client byte stream (masked frames) fed to a server
connection in 64 KiB reads, every event collected, plus the frames a server
would send back for the same messages. Prints messages/s (and MB/s for the
large ones) and unicorn's ratio to wsproto.

    python benchmarks/websocket/bench_ws_codec.py [--seconds 0.5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time

import wsproto.events as w

from unicorn_http import NEED_DATA, WSConnection


def wsproto_deflate():
    """wsproto's extension as after a handshake that agreed on client_no_context_takeover
    (each compressed message stands alone, so one stream can be replayed)."""
    from wsproto.extensions import PerMessageDeflate

    ext = PerMessageDeflate(client_no_context_takeover=True)
    ext._enabled = True  # what its handshake code sets on acceptance
    return [ext]


def client_stream(messages: list[bytes | str], deflate: bool) -> bytes:
    """What a wsproto client would send after its handshake."""
    from wsproto.frame_protocol import FrameProtocol

    proto = FrameProtocol(client=True, extensions=wsproto_deflate() if deflate else [])
    return b"".join(proto.send_data(m, True) for m in messages)


def wsproto_server(deflate: bool):
    from wsproto.connection import Connection, ConnectionType

    return Connection(ConnectionType.SERVER, extensions=wsproto_deflate() if deflate else [])


def run_unicorn(chunks, messages, deflate):
    from unicorn_http import PerMessageDeflate

    agreed = PerMessageDeflate(client_no_context_takeover=True) if deflate else None
    ws = WSConnection(deflate=agreed, max_message_size=0)
    n = 0
    for chunk in chunks:
        ws.receive_data(chunk)
        while ws.next_event() is not NEED_DATA:
            n += 1
    for m in messages:
        if type(m) is str:
            ws.send_text(m)
        else:
            ws.send_bytes(m)
    return n


def run_wsproto(chunks, messages, deflate):
    # Events are pieces of messages as they arrive; joining them would add to its cost.
    conn = wsproto_server(deflate)
    n = 0
    for chunk in chunks:
        conn.receive_data(chunk)
        for event in conn.events():
            n += event.message_finished  # wsproto hands out a message in pieces
    for m in messages:
        conn.send(w.TextMessage(m) if type(m) is str else w.BytesMessage(m))
    return n


WORKLOADS = {
    "text 16 B": ["hello websocket!"] * 2000,
    "text 1 KiB": ["x" * 1024] * 1000,
    "binary 64 KiB": [os.urandom(65536)] * 50,
    "binary 1 MiB": [os.urandom(1 << 20)] * 4,
}


def measure(fn, args, seconds: float) -> float:
    count = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        count += fn(*args)
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    print(
        f"{'workload':<26}{'unicorn msg/s':>15}{'wsproto msg/s':>15}{'ratio':>8}{'unicorn MB/s':>14}"
    )
    for deflate in (False, True):
        for name, messages in WORKLOADS.items():
            raw = client_stream(messages, deflate)
            chunks = [raw[i : i + 65536] for i in range(0, len(raw), 65536)]
            args = (chunks, messages, deflate)
            assert run_unicorn(*args) == run_wsproto(*args) == len(messages)
            ours = max(measure(run_unicorn, args, opts.seconds) for _ in range(opts.repeat))
            theirs = max(measure(run_wsproto, args, opts.seconds) for _ in range(opts.repeat))
            size = len(messages[0])
            label = name + (" deflate" if deflate else "")
            print(
                f"{label:<26}{ours:>15,.0f}{theirs:>15,.0f}{ours / theirs:>7.2f}x"
                f"{ours * size / 1e6:>14,.0f}"
            )


if __name__ == "__main__":
    main()
