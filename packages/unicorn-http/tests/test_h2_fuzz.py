"""Random clients against a careful driver: whatever a client sends, in
whatever grouping, the connection raises nothing but ``H2ProtocolError``, a
driver that keeps the documented rules never gets an exception, and the
bookkeeping stays bounded and consistent."""

from __future__ import annotations

from h2_harness import Peer, raw_frame
from hyperframe.frame import SettingsFrame
from hypothesis import given, settings
from hypothesis import strategies as st

from unicorn_http.events import Data, EndOfMessage, Request
from unicorn_http.h2 import StreamReset, Writable

client_action = st.one_of(
    st.tuples(st.just("request"), st.booleans()),
    st.tuples(st.just("data"), st.integers(0, 7), st.integers(0, 3000), st.booleans()),
    st.tuples(st.just("rst"), st.integers(0, 7)),
    st.tuples(st.just("window"), st.integers(-1, 7), st.integers(1, 70000)),
    st.tuples(st.just("initial_window"), st.integers(0, 100000)),
    st.tuples(st.just("ping")),
    st.tuples(st.just("priority"), st.integers(0, 7)),
    st.tuples(st.just("trailers"), st.integers(0, 7)),
    st.tuples(st.just("max_frame"), st.integers(16384, 1 << 20)),
    st.tuples(st.just("unknown")),
    st.tuples(st.just("flush")),
)
driver_action = st.one_of(
    st.tuples(st.just("respond"), st.integers(0, 7), st.integers(0, 5000)),
    st.tuples(st.just("head"), st.integers(0, 7)),
    st.tuples(st.just("body"), st.integers(0, 7), st.integers(0, 40000), st.booleans()),
    st.tuples(st.just("reset"), st.integers(0, 7)),
    st.tuples(st.just("consume"), st.integers(0, 7)),
    st.tuples(
        st.just("graceful"),
    ),
)


DRIVER = ("respond", "head", "body", "reset", "consume", "graceful", "hints", "end_with_trailers")


class Driver:
    """Keeps the rules of docs/http2.md and nothing more."""

    def __init__(self, peer: Peer) -> None:
        self.server = peer.server
        self.streams: dict[int, dict] = {}  # known to the application
        self.unconsumed: dict[int, int] = {}

    def take(self, events: list) -> None:
        for sid, event in events:
            kind = type(event)
            if kind is Request:
                assert sid not in self.streams
                self.streams[sid] = {"head": False, "ended": False, "writable": True}
            elif kind is Data:
                assert sid in self.streams
                self.unconsumed[sid] = self.unconsumed.get(sid, 0) + len(event.data)
            elif kind is EndOfMessage:
                assert sid in self.streams
            elif kind is StreamReset:
                self.streams.pop(sid, None)
            elif kind is Writable and sid in self.streams:
                self.streams[sid]["writable"] = True

    def pick(self, index: int) -> int | None:
        live = sorted(self.streams)
        return live[index % len(live)] if live else None

    def act(self, action: tuple) -> None:
        sid = self.pick(action[1]) if len(action) > 1 else None
        server = self.server
        what = action[0]
        if what == "graceful":
            server.close_gracefully()
            return
        if sid is None:
            return
        state = self.streams[sid]
        if what == "consume":
            server.consumed(sid, self.unconsumed.pop(sid, 0))
        elif what == "reset":
            server.reset_stream(sid)
            del self.streams[sid]
        elif what == "respond" and not state["head"]:
            server.respond(sid, 200, [(b"content-type", b"text/plain")], b"r" * action[2])
            del self.streams[sid]
        elif what == "head" and not state["head"]:
            server.send_response(sid, 200, [])
            state["head"] = True
        elif what == "hints" and not state["head"]:
            server.send_response(sid, 103, [(b"link", b"</a.css>; rel=preload")])
        elif what == "end_with_trailers" and state["head"]:
            server.send_end(sid, [(b"x-sum", b"1")])
            del self.streams[sid]
        elif what == "body" and state["head"] and state["writable"]:
            end = action[3]
            more = server.send_data(sid, b"b" * action[2], end_stream=end)
            if end:
                del self.streams[sid]
            else:
                state["writable"] = more


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(client_action, driver_action), max_size=60), st.integers(1, 4))
def test_random_clients_and_a_careful_driver(actions, concurrency):
    """The client keeps HTTP/2's rules too (no DATA after its END_STREAM, within
    our windows), so no connection error may happen at all."""
    peer = Peer(http2_max_concurrent_streams=concurrency, stream_buffer_size=20000)
    driver = Driver(peer)
    opened: list[int] = []
    ended: set[int] = set()  # streams the client ended or reset
    batch: list = []
    next_sid = 1

    def flush() -> None:
        nonlocal batch
        if batch:
            frames, batch = batch, []
            driver.take(peer.send(*frames))

    for action in actions:
        what = action[0]
        if what in DRIVER:
            flush()
            driver.act(action)
            peer.read()
            continue
        if what == "request":
            batch.append(peer.request(next_sid, end_stream=action[1]))
            opened.append(next_sid)
            if action[1]:
                ended.add(next_sid)
            next_sid += 2
        elif what == "flush":
            flush()
        elif what == "ping":
            batch.append(peer.ping())
        elif what == "initial_window":
            batch.append(SettingsFrame(0, settings={4: action[1]}))
        elif what == "max_frame":
            batch.append(SettingsFrame(0, settings={5: action[1]}))
        elif what == "unknown":
            batch.append(raw_frame(0x42, 0, 0, b"?"))
        elif what == "window" and (action[1] < 0 or not opened):
            batch.append(peer.window_update(0, action[2]))
        elif what == "priority":
            batch.append(peer.priority(2 * action[1] + 1, depends_on=0))
        elif opened:
            sid = opened[action[1] % len(opened)]
            if what == "window":
                batch.append(peer.window_update(sid, action[2]))
            elif what == "rst" and sid not in ended:
                batch.append(peer.rst(sid))
                ended.add(sid)
            elif what == "data" and sid not in ended:
                batch.append(peer.data(sid, b"d" * action[2], end_stream=action[3]))
                if action[3]:
                    ended.add(sid)
            elif what == "trailers" and sid not in ended:
                batch.append(peer.headers_frame(sid, [(b"x-t", b"1")]))
                ended.add(sid)
    flush()
    server = peer.server
    goaway = peer.goaway()
    assert not server.closed and (goaway is None or goaway.error_code == 0)
    # bookkeeping: bounded, and only for streams someone can still finish
    assert server.open_streams <= concurrency
    for stream in server._streams.values():
        assert stream.out_size <= 20000 + 40000
    assert len(server._gone) <= 4096
