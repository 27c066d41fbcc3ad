"""A raw HTTP/2 client for the frame-level suites: frames built with hyperframe
and hpack as a client would build them (h2's test suite calls this a
FrameFactory), fed to a real ``unicorn_http.h2.H2Connection``, and the server's
answer parsed back into frames.

    peer = Peer()                      # preface + SETTINGS exchanged
    peer.send(peer.request(1))         # -> the server's events
    peer.server.respond(1, 200, [], b"hi")
    peer.read()                        # -> the frames the server wrote
"""

from __future__ import annotations

from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from unicorn_http.errors import H2ProtocolError
from unicorn_http.h2 import CONNECTION_PREFACE, H2Connection

PREFACE = CONNECTION_PREFACE

GET = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":path", b"/"),
    (b":authority", b"example.com"),
]


def raw_frame(
    kind: int, flags: int, stream_id: int, payload: bytes, length: int | None = None
) -> bytes:
    """A frame written by hand, for what hyperframe refuses to build."""
    n = len(payload) if length is None else length
    return n.to_bytes(3, "big") + bytes([kind, flags]) + stream_id.to_bytes(4, "big") + payload


class Peer:
    """One client talking to one server ``H2Connection``."""

    def __init__(
        self, settings: dict[int, int] | None = None, handshake: bool = True, **server_options
    ) -> None:
        self.server = H2Connection(**server_options)
        self.server.initiate_connection()
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.decoder.max_header_list_size = 1 << 30
        self._buf = b""
        #: every frame the server has written, in order
        self.frames: list[Frame] = []
        #: decoded header lists of the server's HEADERS frames, by id(frame)
        self.headers: dict[int, list] = {}
        self.server_settings: dict[int, int] = {}
        if handshake:
            self.send_bytes(PREFACE + SettingsFrame(0, settings=settings or {}).serialize())
            first = self.read()
            assert isinstance(first[0], SettingsFrame) and "ACK" not in first[0].flags
            self.server_settings = dict(first[0].settings)
            self.send(SettingsFrame(0, flags=["ACK"]))

    # ---------------------------------------------------------- building

    def block(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        return self.encoder.encode(headers)

    def headers_frame(
        self,
        stream_id: int,
        headers: list[tuple[bytes, bytes]],
        end_stream: bool = True,
        end_headers: bool = True,
        **options,
    ) -> HeadersFrame:
        flags = []
        if end_stream:
            flags.append("END_STREAM")
        if end_headers:
            flags.append("END_HEADERS")
        return HeadersFrame(stream_id, data=self.block(headers), flags=flags, **options)

    def request(
        self,
        stream_id: int,
        extra: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
        end_stream: bool = True,
        method: bytes = b"GET",
        path: bytes = b"/",
    ) -> HeadersFrame:
        headers = [
            (b":method", method),
            (b":scheme", b"https"),
            (b":path", path),
            (b":authority", b"example.com"),
            *extra,
        ]
        return self.headers_frame(stream_id, headers, end_stream=end_stream)

    @staticmethod
    def data(stream_id: int, data: bytes, end_stream: bool = False, **options) -> DataFrame:
        return DataFrame(
            stream_id, data=data, flags=["END_STREAM"] if end_stream else [], **options
        )

    @staticmethod
    def window_update(stream_id: int, increment: int) -> WindowUpdateFrame:
        return WindowUpdateFrame(stream_id, window_increment=increment)

    @staticmethod
    def rst(stream_id: int, code: int = 8) -> RstStreamFrame:
        return RstStreamFrame(stream_id, error_code=code)

    @staticmethod
    def ping(payload: bytes = b"12345678", ack: bool = False) -> PingFrame:
        return PingFrame(0, opaque_data=payload, flags=["ACK"] if ack else [])

    @staticmethod
    def priority(stream_id: int, depends_on: int = 0, weight: int = 15) -> PriorityFrame:
        return PriorityFrame(stream_id, depends_on=depends_on, stream_weight=weight)

    @staticmethod
    def continuation(stream_id: int, data: bytes, end_headers: bool = False) -> ContinuationFrame:
        return ContinuationFrame(stream_id, data=data, flags=["END_HEADERS"] if end_headers else [])

    # ----------------------------------------------------------- talking

    def send(self, *frames: Frame | bytes) -> list:
        """Feed frames (or raw bytes) to the server in one read; its events."""
        data = b"".join(f if isinstance(f, bytes) else f.serialize() for f in frames)
        return self.send_bytes(data)

    def send_bytes(self, data: bytes) -> list:
        return self.server.receive_data(data)

    def send_error(self, *frames: Frame | bytes) -> H2ProtocolError:
        """Frames the server must refuse as a connection error; the error, its GOAWAY read."""
        try:
            events = self.send(*frames)
        except H2ProtocolError as exc:
            self.read()
            return exc
        raise AssertionError(f"no connection error; events {events}")

    def read(self) -> list[Frame]:
        """The frames the server wrote since the last read, parsed (and headers decoded)."""
        self._buf += self.server.data_to_send()
        new = []
        buf = self._buf
        while len(buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) < 9 + length:
                break
            frame.parse_body(memoryview(buf[9 : 9 + length]))
            buf = buf[9 + length :]
            if isinstance(frame, HeadersFrame):
                self.headers[id(frame)] = self.decoder.decode(frame.data, raw=True)
            new.append(frame)
        self._buf = buf
        self.frames.extend(new)
        return new

    # ---------------------------------------------------------- checking

    def goaway(self) -> GoAwayFrame | None:
        self.read()
        found = [f for f in self.frames if isinstance(f, GoAwayFrame)]
        return found[-1] if found else None

    def resets(self, stream_id: int) -> list[int]:
        """Error codes of the RST_STREAM frames the server sent on ``stream_id``."""
        self.read()
        return [
            f.error_code
            for f in self.frames
            if isinstance(f, RstStreamFrame) and f.stream_id == stream_id
        ]

    def responses(self, stream_id: int) -> list[list[tuple[bytes, bytes]]]:
        """Decoded header lists the server sent on ``stream_id``."""
        self.read()
        return [
            self.headers[id(f)]
            for f in self.frames
            if isinstance(f, HeadersFrame) and f.stream_id == stream_id
        ]

    def body(self, stream_id: int) -> bytes:
        self.read()
        return b"".join(
            f.data for f in self.frames if isinstance(f, DataFrame) and f.stream_id == stream_id
        )

    def ended(self, stream_id: int) -> bool:
        self.read()
        return any(
            "END_STREAM" in f.flags
            for f in self.frames
            if isinstance(f, DataFrame | HeadersFrame) and f.stream_id == stream_id
        )


def of(events: list, stream_id: int) -> list:
    """The events of one stream, without their stream ids."""
    return [event for sid, event in events if sid == stream_id]


def kinds(events: list) -> list[tuple[int, str]]:
    return [(sid, type(event).__name__) for sid, event in events]
