"""CPU µs per request of the HTTP/2 protocol layer alone, with no sockets.

A client's HEADERS frames for hello-world GETs (HPACK-encoded once, before
the clock starts) go through the server connection, which answers each with
a 13-byte body. Side by side:

- ``unicorn_http.h2``: ``H2Connection.receive_data`` -> ``respond`` ->
  ``data_to_send``, with its own request checks and h2's validation off;
- ``bare h2``: h2's server ``H2Connection`` as its documentation drives it
  (default validation and normalisation both ways), the events read by hand.

    uv run --no-sync python benchmarks/h2/bench_h2_protocol.py [--requests 10000] [--runs 5]

On a busy machine the wall-clock figures move; for an exact A/B count
instructions: ``valgrind --tool=callgrind .venv/bin/python
benchmarks/h2/bench_h2_protocol.py --requests N --runs 1 --only unicorn`` for
two values of N and divide the difference of the totals.
"""

from __future__ import annotations

import argparse
import time

import h2.config
import h2.connection
import h2.events
from hpack import Encoder
from hyperframe.frame import HeadersFrame

from unicorn_http.events import EndOfMessage
from unicorn_http.h2 import H2Connection

REQUEST = [
    (b":method", b"GET"),
    (b":path", b"/"),
    (b":scheme", b"http"),
    (b":authority", b"localhost:8000"),
    (b"user-agent", b"h2load nghttp2/1.59.0"),
    (b"accept", b"*/*"),
]
BODY = b"Hello, world!"
RESPONSE_HEADERS = [(b"content-type", b"text/plain")]


def client_frames(n: int) -> tuple[bytes, list[bytes]]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    preface = client.data_to_send()
    encoder = Encoder()
    frames = []
    for i in range(n):
        frame = HeadersFrame(
            2 * i + 1, data=encoder.encode(REQUEST), flags=["END_HEADERS", "END_STREAM"]
        )
        frames.append(frame.serialize())
    return preface, frames


def run_unicorn(preface: bytes, frames: list[bytes]) -> float:
    server = H2Connection(http2_max_concurrent_streams=100)
    server.initiate_connection()
    server.receive_data(preface)
    server.data_to_send()
    start = time.process_time()
    for data in frames:
        for stream_id, event in server.receive_data(data):
            if type(event) is EndOfMessage:
                server.respond(stream_id, 200, RESPONSE_HEADERS, BODY)
        server.data_to_send()
    return time.process_time() - start


def run_bare_h2(preface: bytes, frames: list[bytes]) -> float:
    server = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    server.initiate_connection()
    server.receive_data(preface)
    server.data_to_send()
    length = b"%d" % len(BODY)
    start = time.process_time()
    for data in frames:
        for event in server.receive_data(data):
            if isinstance(event, h2.events.StreamEnded):
                sid = event.stream_id
                server.send_headers(
                    sid, [(b":status", b"200"), *RESPONSE_HEADERS, (b"content-length", length)]
                )
                server.send_data(sid, BODY, end_stream=True)
        server.data_to_send()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=("unicorn", "h2"), default=None)
    args = parser.parse_args()
    preface, frames = client_frames(args.requests)
    peers = {"unicorn_http.h2": run_unicorn, "bare h2": run_bare_h2}
    if args.only == "unicorn":
        peers = {"unicorn_http.h2": run_unicorn}
    elif args.only == "h2":
        peers = {"bare h2": run_bare_h2}
    best = {name: float("inf") for name in peers}
    for _ in range(args.runs):  # take turns, so load from elsewhere hits both alike
        for name, run in peers.items():
            best[name] = min(best[name], run(preface, frames))
    for name, seconds in best.items():
        print(f"{name:16} {seconds / args.requests * 1e6:7.1f} µs/request")
    if len(best) == 2:
        ratio = best["bare h2"] / best["unicorn_http.h2"]
        print(f"unicorn_http.h2 takes {1 / ratio:.2f}x the time of bare h2")


if __name__ == "__main__":
    main()
