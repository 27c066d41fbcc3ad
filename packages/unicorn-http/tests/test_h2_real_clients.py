"""The HTTP/2 connection against real clients (curl, nghttp, h2load) over a real
socket, driven by the smallest possible loop: one thread per connection,
``receive_data`` -> answer -> ``data_to_send``. No worker is involved; this
pins down that what the connection writes is what real HTTP/2 stacks expect
(preface, SETTINGS and their ACKs, flow control, HPACK state, GOAWAY)."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading

import pytest

from unicorn_http.errors import H2ProtocolError
from unicorn_http.events import ConnectionClosed, Data, EndOfMessage, Request
from unicorn_http.h2 import H2Connection, Writable


def _serve(sock: socket.socket) -> None:
    conn = H2Connection()
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    requests: dict[int, list] = {}
    pending: dict[int, bytes] = {}  # response bodies waiting for Writable
    with sock:
        while not conn.closed:
            data = sock.recv(65536)
            try:
                events = conn.receive_data(data)
            except H2ProtocolError:
                sock.sendall(conn.data_to_send())
                return
            for sid, event in events:
                kind = type(event)
                if kind is Request:
                    requests[sid] = [event, []]
                elif kind is Data:
                    requests[sid][1].append(event.data)
                    conn.consumed(sid, len(event.data))
                elif kind is EndOfMessage:
                    request, body = requests.pop(sid)
                    if request.path == b"/big":
                        conn.send_response(
                            sid, 200, [(b"content-type", b"application/octet-stream")]
                        )
                        pending[sid] = b"B" * 1_000_000
                    else:
                        answer = b"".join(body) or b"hello " + request.path
                        conn.respond(sid, 200, [(b"content-type", b"text/plain")], answer)
                elif kind is Writable:
                    assert conn.writable(sid)
                elif kind is ConnectionClosed:
                    return
            for sid in list(pending):
                body = pending[sid]
                while body and conn.writable(sid):
                    piece, body = body[:16384], body[16384:]
                    if not conn.send_data(sid, piece, end_stream=not body):
                        break
                if body:
                    pending[sid] = body
                else:
                    del pending[sid]
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
            if not data:
                return


@pytest.fixture
def server():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except OSError:
                continue
            sock.settimeout(30)
            threading.Thread(target=_serve, args=(sock,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    listener.close()


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (apt-get install -y curl nghttp2-client)")
    return path


def test_curl_prior_knowledge_get_and_post(server):
    curl = _need("curl")
    got = subprocess.run(
        [
            curl,
            "-sS",
            "--http2-prior-knowledge",
            "-w",
            "\\n%{http_version} %{http_code}",
            server + "/hi?x=1",
        ],
        capture_output=True,
        timeout=30,
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout == b"hello /hi\n2 200"
    posted = subprocess.run(
        [curl, "-sS", "--http2-prior-knowledge", "--data-binary", "@-", server + "/echo"],
        input=b"p" * 300_000,
        capture_output=True,
        timeout=30,
    )
    assert posted.returncode == 0, posted.stderr
    assert posted.stdout == b"p" * 300_000


def test_nghttp_large_download_through_flow_control(server):
    nghttp = _need("nghttp")
    # nghttp's default windows are 64 KiB: the megabyte goes out as they open
    done = subprocess.run([nghttp, server + "/big"], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert b"not processed" not in done.stderr, done.stderr
    assert done.stdout == b"B" * 1_000_000


def test_h2load_many_multiplexed_streams_none_fail(server):
    h2load = _need("h2load")
    done = subprocess.run(
        [h2load, "-n", "2000", "-c", "4", "-m", "10", server + "/"],
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    match = re.search(
        rb"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed",
        done.stdout,
    )
    assert match, done.stdout
    total, completed, succeeded, failed = (int(x) for x in match.groups())
    assert (total, completed, succeeded, failed) == (2000, 2000, 2000, 0)
