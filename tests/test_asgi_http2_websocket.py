"""WebSocket over HTTP/2 on the ASGI worker (RFC 8441 extended CONNECT).

The client is independent of unicorn: the ``h2`` library for HTTP/2 and
``wsproto``'s frame codec for RFC 6455 framing (masked, as a client must),
over a raw socket to a real ``unicorn -k asgi`` process (h2c prior knowledge).
"""

from __future__ import annotations

import json
import signal
import socket
import ssl
from dataclasses import dataclass

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from h2.errors import ErrorCodes as ErrorCode
from wsproto.frame_protocol import CloseReason, FrameProtocol, Opcode

from tests.support.unicorn_server import Unicorn, wait_for
from tests.test_asgi_tls import pki  # noqa: F401 - the fixture

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


@dataclass
class Message:
    opcode: Opcode
    payload: object


class Client:
    """h2's client over a socket, with a wsproto frame codec per WebSocket stream."""

    def __init__(self, addr, window: int = 65535, wrap=None) -> None:
        self.sock = socket.create_connection(addr, timeout=10)
        if wrap is not None:
            self.sock = wrap(self.sock)
        config = h2.config.H2Configuration(client_side=True)
        self.conn = h2.connection.H2Connection(config)
        self.conn.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window}
        )
        self.conn.initiate_connection()
        self.flush()
        self.events: list = []
        self.inbox = b""
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
        self.inbox += data
        # one frame at a time: h2's client stops at a GOAWAY, though RFC 9113
        # section 6.8 lets the streams it names finish, so it is reopened after one
        while len(self.inbox) >= 9:
            size = 9 + int.from_bytes(self.inbox[:3], "big")
            if len(self.inbox) < size:
                break
            frame, self.inbox = self.inbox[:size], self.inbox[size:]
            for event in self.conn.receive_data(frame):
                if isinstance(event, h2.events.DataReceived):
                    # the application read it: give the window back
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                    if event.stream_id in self.ws:
                        self.ws[event.stream_id].receive_bytes(event.data)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    self.conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
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

    def connect(
        self, path: str, extra: list | None = None, scheme: str = "http", version: str | None = "13"
    ) -> int:
        sid = self.conn.get_next_available_stream_id()
        headers = [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", scheme),
            (":path", path),
            (":authority", "t"),
            *([("sec-websocket-version", version)] if version else []),
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

    def send(self, sid: int, data: bytes, wait: bool = True) -> int:
        """Stream bytes out as the server's windows allow (``wait=False``: only
        what they allow now); returns how many went out."""
        view = memoryview(data)
        while view:
            room = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if room <= 0:
                if not wait:
                    break
                self.read()  # wait for WINDOW_UPDATE
                continue
            self.conn.send_data(sid, bytes(view[:room]))
            self.flush()
            view = view[room:]
        return len(data) - len(view)

    def round_trip(self) -> None:
        """PING and its ACK: the server has handled everything sent before."""
        self.conn.ping(b"roundtrp")
        self.flush()
        before = len(self.of(h2.events.PingAckReceived))
        self.until(lambda: len(self.of(h2.events.PingAckReceived)) > before, "the PING's ACK")

    def send_text(self, sid: int, text: str) -> None:
        self.send(sid, self.ws[sid].send_data(text))

    def send_bytes(self, sid: int, data: bytes) -> None:
        self.send(sid, self.ws[sid].send_data(data))

    def frames(self, sid: int, count: int = 1) -> list:
        """The next ``count`` messages (wsproto hands out frames in pieces)."""
        got: list = []
        parts: list = []

        def check():
            for frame in self.ws[sid].received_frames():
                parts.append(frame)
                if frame.message_finished:
                    payload = frame.payload  # a Close's (code, reason)
                    if isinstance(payload, (str, bytes)):
                        payload = type(payload)().join(p.payload for p in parts)
                    got.append(Message(parts[0].opcode, payload))
                    parts.clear()
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


def test_echo_text_and_binary_with_ping_and_scope(client, marks):
    assert client.server_settings.get(ENABLE_CONNECT) == 1  # RFC 8441 section 3
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


def test_large_messages_cross_small_windows_both_ways(server):
    # our window is 1024 bytes: the server's 256 KiB message goes out as the
    # WINDOW_UPDATEs let it, in many DATA frames (h2 fails the connection if
    # the server sends past the window)
    c = Client(server.addr, window=1024)
    try:
        sid = c.connect("/big")
        assert c.response(sid)[":status"] == "200"
        (big,) = c.frames(sid, 1)
        assert big.opcode == Opcode.BINARY and big.payload == bytes(range(256)) * 1024
        assert len(c.of(h2.events.DataReceived, sid)) > 100
        # 300 kB the other way: several of the server's 65535-byte windows
        payload = bytes(range(251)) * 1200
        c.send_bytes(sid, payload)
        (echo,) = c.frames(sid, 1)
        assert echo.payload == payload
    finally:
        c.close()


def test_max_message_size_closes_with_1009(client):
    sid = client.connect("/echo")
    assert client.response(sid)[":status"] == "200"
    frame = client.ws[sid].send_data(b"x" * 1_000_001)  # the limit is 1000000
    client.send(sid, frame[:20000])  # refused from the frame header
    (closing,) = client.frames(sid, 1)
    assert closing.opcode == Opcode.CLOSE and closing.payload[0] == 1009
    client.until(lambda: client.of(h2.events.StreamEnded, sid), "END_STREAM")


def test_a_bad_handshake_is_400_and_the_application_never_runs(client, marks):
    sid = client.connect("/echo?name=badversion", [("sec-websocket-version", "8")], version=None)
    assert client.response(sid)[":status"] == "400"
    assert b"Sec-WebSocket-Version" in client.body(sid)
    sid = client.connect("/echo?name=good")  # the connection goes on
    assert client.response(sid)[":status"] == "200"
    mark(marks, "good", "scope")
    assert not (marks / "badversion.scope.json").exists()


def test_unmasked_client_frames_fail_with_1002(client):
    # RFC 6455 section 5.1 holds inside HTTP/2 too: a client masks its frames
    sid = client.connect("/echo")
    assert client.response(sid)[":status"] == "200"
    client.send(sid, FrameProtocol(client=False, extensions=[]).send_data("unmasked"))
    (closing,) = client.frames(sid, 1)
    assert closing.opcode == Opcode.CLOSE and closing.payload[0] == 1002
    client.until(lambda: client.of(h2.events.StreamEnded, sid), "END_STREAM")


def test_subprotocol_is_chosen_from_the_offer(client, marks):
    sid = client.connect("/echo?name=sub", [("sec-websocket-protocol", "x-other, chat")])
    head = client.response(sid)
    assert head[":status"] == "200" and head["sec-websocket-protocol"] == "chat"
    assert mark(marks, "sub", "scope")["subprotocols"] == ["x-other", "chat"]


def test_close_before_accept_is_403_and_denial_response_is_sent(client):
    sid = client.connect("/deny")
    assert client.response(sid)[":status"] == "403"
    client.body(sid)
    sid = client.connect("/unauthorized")
    assert client.response(sid)[":status"] == "401"
    assert client.body(sid) == b"who are you?"


def test_server_initiated_close(client, marks):
    sid = client.connect("/close-4001?name=bye")
    assert client.response(sid)[":status"] == "200"
    (closing,) = client.frames(sid, 1)
    assert closing.opcode == Opcode.CLOSE
    assert (closing.payload[0], closing.payload[1]) == (4001, "go away")
    client.send(sid, client.ws[sid].close(4001))  # the client's echo
    client.until(lambda: client.of(h2.events.StreamEnded, sid), "END_STREAM")
    assert mark(marks, "bye", "last")["code"] == 4001


def test_client_reset_is_a_disconnect_1006(client, marks):
    sid = client.connect("/echo?name=reset")
    assert client.response(sid)[":status"] == "200"
    client.send_text(sid, "first")
    assert client.frames(sid, 1)[0].payload == "first"
    client.conn.reset_stream(sid, ErrorCode.CANCEL)
    client.flush()
    assert mark(marks, "reset", "last") == {
        "type": "websocket.disconnect",
        "code": 1006,
        "reason": "",
    }


def test_http_and_connect_streams_beside_a_websocket_on_one_connection(client):
    ws = client.connect("/echo")
    assert client.response(ws)[":status"] == "200"
    client.send_text(ws, "one")
    assert client.frames(ws, 1)[0].payload == "one"
    sid = client.request("/plain")
    assert client.response(sid)[":status"] == "200"
    assert client.body(sid) == b"GET /plain 2"
    # a CONNECT without :protocol is still an http request for the application
    sid = client.conn.get_next_available_stream_id()
    client.conn.send_headers(sid, [(":method", "CONNECT"), (":authority", "example.com:443")])
    client.flush()
    assert client.response(sid)[":status"] == "200"
    assert client.body(sid) == b"CONNECT example.com:443 2"
    client.send_text(ws, "two")
    assert client.frames(ws, 1)[0].payload == "two"


def test_no_websocket_neither_advertises_nor_accepts(tmp_path):
    srv = Unicorn(
        tmp_path, APP, "-k", "asgi", "--http-protocols", "h2,h1", "--http2-cleartext", "both",
        "--no-websocket",
    )  # fmt: skip
    try:
        c = Client(srv.addr)
        try:
            assert not c.server_settings.get(ENABLE_CONNECT)
            # h2 would refuse to send :protocol to a server that did not enable it
            c.conn.config.validate_outbound_headers = False
            sid = c.connect("/echo")
            resets = c.until(lambda: c.of(h2.events.StreamReset, sid), "RST_STREAM")
            assert resets[0].error_code == ErrorCode.PROTOCOL_ERROR
            sid = c.request("/after")  # the connection goes on
            assert c.body(sid) == b"GET /after 2"
        finally:
            c.close()
        # HTTP/1.1: the upgrade request is an ordinary http request for the application
        with socket.create_connection(srv.addr, timeout=10) as sock:
            sock.sendall(
                b"GET /echo HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
                b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            reply = b""
            while not reply.endswith(b"\r\n0\r\n\r\n"):  # the chunked body's end
                chunk = sock.recv(65536)
                assert chunk, reply
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 200") and b"GET /echo 1.1" in reply
    finally:
        srv.stop()


def test_an_application_that_does_not_read_closes_the_clients_window(client, marks):
    sid = client.connect("/stall?name=stall")
    assert client.response(sid)[":status"] == "200"
    message = client.ws[sid].send_data(b"m" * 2000)
    wire = message * 60  # 120 kB: more than the 65535-byte stream window
    sent = client.send(sid, wire, wait=False)
    assert sent < len(wire)
    client.round_trip()
    # the server holds the window while the application does not read
    assert client.conn.local_flow_control_window(sid) == 0
    (marks / "stall.go").touch()
    client.send(sid, wire[sent:])  # the window reopens as the application reads
    echoes = client.frames(sid, 60)
    assert all(m.payload == b"m" * 2000 for m in echoes)


def test_graceful_stop_closes_the_websocket_with_1012(tmp_path, marks):
    srv = Unicorn(tmp_path, APP, "-k", "asgi", *H2C, env={"ASGI_MARK_DIR": str(marks)})
    c = Client(srv.addr)
    try:
        sid = c.connect("/echo?name=drain")
        assert c.response(sid)[":status"] == "200"
        srv.proc.send_signal(signal.SIGTERM)
        (closing,) = c.frames(sid, 1)
        assert closing.opcode == Opcode.CLOSE and closing.payload[0] == 1012
        c.send(sid, c.ws[sid].close(1012))
        c.until(lambda: c.of(h2.events.StreamEnded, sid), "END_STREAM")
        assert mark(marks, "drain", "last")["code"] == 1012
        assert srv.proc.wait(15) == 0
    finally:
        c.close()
        srv.stop()


def test_wss_over_tls_with_alpn(tmp_path, pki, marks):  # noqa: F811
    srv = Unicorn(
        tmp_path,
        APP,
        "-k",
        "asgi",
        "--http-protocols",
        "h2,h1",
        "--certfile",
        str(pki / "server.pem"),
        "--keyfile",
        str(pki / "server.key"),
        env={"ASGI_MARK_DIR": str(marks)},
        ssl_context=ssl.create_default_context(cafile=str(pki / "ca.pem")),
    )
    try:
        context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        context.set_alpn_protocols(["h2"])
        c = Client(srv.addr, wrap=lambda s: context.wrap_socket(s, server_hostname="127.0.0.1"))
        try:
            sid = c.connect("/echo?name=tls", scheme="https")
            assert c.response(sid)[":status"] == "200"
            c.send_text(sid, "secret")
            assert c.frames(sid, 1)[0].payload == "secret"
            scope = mark(marks, "tls", "scope")
            assert scope["scheme"] == "wss" and scope["http_version"] == "2"
        finally:
            c.close()
    finally:
        srv.stop()


def test_permessage_deflate_over_http2(client):
    from wsproto.extensions import PerMessageDeflate

    deflate = PerMessageDeflate()
    offer = f"{deflate.name}; {deflate.offer()}"  # wsproto's offer() leaves the name out
    sid = client.connect("/echo", [("sec-websocket-extensions", offer)])
    head = client.response(sid)
    assert head[":status"] == "200"
    assert head["sec-websocket-extensions"].startswith("permessage-deflate")
    deflate.finalize(head["sec-websocket-extensions"].partition(";")[2])
    client.ws[sid] = FrameProtocol(client=True, extensions=[deflate])
    text = "compress me " * 5000  # 60 kB of text
    client.send_text(sid, text)
    (echo,) = client.frames(sid, 1)
    assert echo.payload == text
    # the echo came back compressed (the client compressed its message too)
    assert sum(len(e.data) for e in client.of(h2.events.DataReceived, sid)) < 5000
