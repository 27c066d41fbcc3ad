"""The smallest server unicorn_http can drive: one thread, blocking sockets.

This is how another project uses the parser on its own (see
packages/unicorn-http/README.md); unicorn's workers drive the same
``H1Connection`` from threads, greenlets and asyncio.

    python examples/hello_h1.py --bind 127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import socket

from unicorn_http import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    EndOfMessage,
    H1Connection,
    RemoteProtocolError,
    Request,
)


def serve_connection(sock: socket.socket) -> None:
    conn = H1Connection()
    request = None
    while True:
        try:
            event = conn.next_event()
        except RemoteProtocolError as exc:
            # Malformed input: answer with the status the parser chose, then close.
            sock.sendall(conn.send_error(exc))
            return
        if event is NEED_DATA:
            data = sock.recv(65536)
            conn.receive_data(data)
            if not data and conn.their_state == "IDLE":
                return
        elif type(event) is Request:
            request = event
        elif type(event) is EndOfMessage:
            body = b"Hello from unicorn_http: %s %s\n" % (request.method, request.target)
            sock.sendall(conn.respond(200, [(b"Content-Type", b"text/plain")], body))
        elif event is PAUSED or type(event) is ConnectionClosed:
            return


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bind", default="127.0.0.1:8000", help="HOST:PORT to listen on")
    args = ap.parse_args()
    host, _, port = args.bind.rpartition(":")
    with socket.create_server((host, int(port)), reuse_port=False) as server:
        print(f"Listening at http://{host}:{port} (Ctrl-C to stop)", flush=True)
        while True:
            client, _ = server.accept()
            with client:
                serve_connection(client)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
