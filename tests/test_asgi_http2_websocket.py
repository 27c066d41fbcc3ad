"""WebSocket over HTTP/2 on the ASGI worker (RFC 8441 extended CONNECT).

The client is independent of unicorn: the ``h2`` library for HTTP/2 and
``wsproto``'s frame codec for RFC 6455 framing (masked, as a client must),
over a raw socket to a real ``unicorn -k asgi`` process (h2c prior knowledge).
"""

from __future__ import annotations

import json
import socket

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import pytest
from wsproto.frame_protocol import CloseReason, FrameProtocol, Opcode

from tests.support.unicorn_server import Unicorn, wait_for

APP = "asgi_h2ws:app"
H2C = ("--http-protocols", "h2,h1", "--http2-cleartext", "prior-knowledge")
ENABLE_CONNECT = h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def marks(tmp_path_factory):
    return tmp_path_factory.mktemp("marks")


@pytest.fixture(scope="module")
def server(tmp_path_factory, marks):
    srv = Unicorn(
        tmp_path_factory.mktemp("h2ws"),
        APP,
        "-k",
        "asgi",
        *H2C,
        "--websocket-max-message-size",
        "1000000",
        env={"ASGI_MARK_DIR": str(marks)},
    )
    yield srv
    srv.stop()


def mark(marks, name: str, what: str):
    path = marks / f"{name}.{what}.json"
    wait_for(path.exists, what=f"the application's {what} of {name}")
    return json.loads(path.read_text())


class Client:
    """h2's client over a socket, with a wsproto frame codec per WebSocket stream."""

    def __init__(self, addr, window: int = 65535) -> None:
        self.sock = socket.create_connection(addr, timeout=10)
        config = h2.config.H2Configuration(client_side=True)
        self.conn = h2.connection.H2Connection(config)
        self.conn.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window}
        )
        self.conn.initiate_connection()
        self.flush()
        self.events: list = []
        self.ws: dict[int, FrameProtocol] = {}
        self.until(lambda: self.of(h2.events.RemoteSettingsChanged), "the server's SETTINGS")

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def read(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            self.events.append(None)
            return
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                # the application read it: give the window back
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if event.stream_id in self.ws:
                    self.ws[event.stream_id].receive_bytes(event.data)
            self.events.append(event)
        self.flush()

    def of(self, kind, sid: int | None = None) -> list:
        return [
            e for e in self.events if isinstance(e, kind) and (sid is None or e.stream_id == sid)
        ]

    def until(self, check, what: str):
        for _ in range(500):
            found = check()
            if found:
                return found
            if None in self.events:
                raise AssertionError(f"connection closed before {what}: {self.events}")
            self.read()
        raise AssertionError(f"no {what} in {self.events}")

    @property
    def server_settings(self) -> dict:
        return dict(self.conn.remote_settings)

    def request(self, path: str) -> int:
        sid = self.conn.get_next_available_stream_id()
        headers = [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "t")]
        self.conn.send_headers(sid, headers, end_stream=True)
        self.flush()
        return sid

    def connect(self, path: str, extra: list | None = None) -> int:
        sid = self.conn.get_next_available_stream_id()
        headers = [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "t"),
            ("sec-websocket-version", "13"),
            *(extra or []),
        ]
        self.conn.send_headers(sid, headers)
        self.flush()
        self.ws[sid] = FrameProtocol(client=True, extensions=[])
        return sid

    def response(self, sid: int) -> dict:
        found = self.until(lambda: self.of(h2.events.ResponseReceived, sid), f"a response on {sid}")
        return {k.decode(): v.decode() for k, v in found[0].headers}

    def body(self, sid: int) -> bytes:
        self.until(lambda: self.of(h2.events.StreamEnded, sid), f"the end of stream {sid}")
        return b"".join(e.data for e in self.of(h2.events.DataReceived, sid))

    def send(self, sid: int, data: bytes) -> None:
        """Stream bytes out as the server's windows allow."""
        view = memoryview(data)
        while view:
            room = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if room <= 0:
                self.read()  # wait for WINDOW_UPDATE
                continue
            self.conn.send_data(sid, bytes(view[:room]))
            self.flush()
            view = view[room:]

    def send_text(self, sid: int, text: str) -> None:
        self.send(sid, self.ws[sid].send_data(text))

    def send_bytes(self, sid: int, data: bytes) -> None:
        self.send(sid, self.ws[sid].send_data(data))

    def frames(self, sid: int, count: int = 1) -> list:
        got: list = []

        def check():
            got.extend(self.ws[sid].received_frames())
            return len(got) >= count

        self.until(check, f"{count} WebSocket frame(s) on {sid}")
        return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def client(server):
    c = Client(server.addr)
    yield c
    c.close()


def test_settings_advertise_extended_connect(client):
    assert client.server_settings.get(ENABLE_CONNECT) == 1


def test_echo_text_and_binary_with_ping_and_scope(client, marks):
    sid = client.connect("/echo?name=echo", [("sec-websocket-extensions", "x-none")])
    head = client.response(sid)
    assert head[":status"] == "200"
    assert "sec-websocket-accept" not in head and "upgrade" not in head
    client.send_text(sid, "héllo")
    client.send_bytes(sid, b"\x00\x01\x02")
    client.send(sid, client.ws[sid].ping(b"are you there"))
    frames = client.frames(sid, 3)
    got = [(f.opcode, f.payload) for f in frames]
    assert (Opcode.PONG, b"are you there") in got  # answered by the codec, unmasked
    assert [m for m in got if m[0] != Opcode.PONG] == [
        (Opcode.TEXT, "héllo"),
        (Opcode.BINARY, b"\x00\x01\x02"),
    ]
    scope = mark(marks, "echo", "scope")
    assert scope["type"] == "websocket" and scope["http_version"] == "2"
    assert scope["scheme"] == "ws" and scope["path"] == "/echo"
    assert scope["headers"]["sec-websocket-extensions"] == "x-none"
    assert scope["headers"]["sec-websocket-version"] == "13"
    # our Close, echoed, then END_STREAM; the application sees 1000
    client.send(sid, client.ws[sid].close(CloseReason.NORMAL_CLOSURE, "bye"))
    (closing,) = client.frames(sid, 1)
    assert closing.opcode == Opcode.CLOSE
    client.until(lambda: client.of(h2.events.StreamEnded, sid), "END_STREAM")
    assert mark(marks, "echo", "last") == {
        "type": "websocket.disconnect",
        "code": 1000,
        "reason": "bye",
    }
