"""Any split of a uwsgi packet into reads gives the same events; garbage never
raises anything but RemoteProtocolError."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from uwsgi_harness import nginx_vars, outcome, pack

from unicorn_http import NEED_DATA, PAUSED, ConnectionClosed, RemoteProtocolError
from unicorn_uwsgi import UwsgiConnection

header_names = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(
    lambda s: s.strip("-") == s and "--" not in s
)
header_values = st.binary(max_size=40).map(
    lambda b: bytes(c for c in b if c == 9 or 32 <= c < 127 or c >= 128)
)
headers = st.lists(st.tuples(header_names.map(str.encode), header_values), max_size=8)
paths = st.text("abcxyz/%20-_.~", max_size=30).map(lambda s: ("/" + s).encode())
queries = st.text("abc=&%2F+", max_size=20).map(str.encode)
bodies = st.binary(max_size=300)


@st.composite
def packets(draw) -> bytes:
    body = draw(bodies)
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"DELETE"]))
    query = draw(queries)
    uri = draw(paths) + (b"?" + query if query else b"")
    fields = [(b"Host", b"example.com"), *draw(headers)]
    length = b"%d" % len(body) if body or draw(st.booleans()) else b""
    return pack(nginx_vars(method, uri, fields, content_length=length), body)


def splits(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(raw) + 1) for c in cuts})
    pieces, last = [], 0
    for point in [*points, len(raw)]:
        pieces.append(raw[last:point])
        last = point
    return [p for p in pieces if p]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packets(), st.lists(st.integers(min_value=0), max_size=12), st.booleans())
def test_any_split_gives_the_same_events(raw, cuts, eof):
    _, whole, whole_error = outcome([raw], eof=eof)
    _, split, split_error = outcome(splits(raw, cuts), eof=eof)
    assert whole_error is None, whole_error
    assert split_error is None, split_error
    assert split == whole


def _drive(chunks: list[bytes], **options) -> None:
    conn = UwsgiConnection(**options)
    try:
        for chunk in [*chunks, b""]:
            conn.receive_data(chunk)
            for _ in range(len(chunk) + 4):
                event = conn.next_event()
                if event is NEED_DATA or event is PAUSED or type(event) is ConnectionClosed:
                    break
    except RemoteProtocolError as exc:
        assert exc.reason
        assert 400 <= exc.status < 600
        out = conn.send_error(exc)
        assert out.startswith(b"HTTP/1.1 %d " % exc.status)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(min_value=0), max_size=6))
def test_garbage_only_raises_remote_protocol_error(raw, cuts):
    _drive(splits(raw, cuts))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=0, max_value=255))
def test_garbage_vars_behind_a_valid_header_only_raise_remote_protocol_error(block, modifier2):
    raw = b"\x00" + len(block).to_bytes(2, "little") + bytes((modifier2,)) + block
    _drive([raw], limit_request_fields=5, limit_request_field_size=100, limit_request_line=50)


@settings(max_examples=300, deadline=None)
@given(packets(), st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_a_corrupted_packet_only_raises_remote_protocol_error(raw, at, byte):
    at %= len(raw)
    _drive([raw[:at] + bytes((byte,)) + raw[at + 1 :]])
