"""RFC 9113 section 8 (HTTP semantics in HTTP/2) and RFC 8441, request by request.

A malformed request (section 8.1.1) is a stream error: RST_STREAM
PROTOCOL_ERROR, a ``StreamReset(remote=False)`` naming the rule for the
driver's log, no ``Request`` event, and the other streams unharmed. The
same strictness as the HTTP/1.1 parser applies where it carries over: field
names must be tokens, values free of control bytes, trailers free of framing
and routing fields.
"""

from __future__ import annotations

import pytest
from h2_harness import Peer, kinds, of
from hyperframe.frame import DataFrame, HeadersFrame

from unicorn_http.errors import LocalProtocolError
from unicorn_http.events import Data, EndOfMessage, Request
from unicorn_http.h2 import StreamReset

PROTOCOL_ERROR = 1

M, S, P, A = b":method", b":scheme", b":path", b":authority"
BASE = [(M, b"GET"), (S, b"https"), (P, b"/"), (A, b"example.com")]

# (id, header list, extra frames after HEADERS(without END_STREAM) or None for END_STREAM)
MALFORMED = [
    ("rfc9113-8.2-1-uppercase-field-name", [*BASE, (b"X-Upper", b"v")]),
    ("rfc9113-8.2.1-1-space-in-field-name", [*BASE, (b"x name", b"v")]),
    ("rfc9113-8.2.1-2-non-token-field-name", [*BASE, (b"x(name)", b"v")]),
    ("rfc9113-8.2.1-3-colon-inside-field-name", [*BASE, (b"x:name", b"v")]),
    ("rfc9113-8.2.1-4-empty-field-name", [*BASE, (b"", b"v")]),
    ("rfc9113-8.2.1-5-nul-in-value", [*BASE, (b"x", b"a\x00b")]),
    ("rfc9113-8.2.1-6-cr-in-value", [*BASE, (b"x", b"a\rb")]),
    ("rfc9113-8.2.1-7-lf-in-value", [*BASE, (b"x", b"a\nb")]),
    ("rfc9113-8.2.1-8-leading-space-in-value", [*BASE, (b"x", b" a")]),
    ("rfc9113-8.2.1-9-trailing-tab-in-value", [*BASE, (b"x", b"a\t")]),
    ("rfc9110-5.5-1-control-byte-in-value", [*BASE, (b"x", b"a\x01b")]),
    ("rfc9110-5.5-2-del-in-value", [*BASE, (b"x", b"a\x7fb")]),
    ("rfc9113-8.2.2-1-connection", [*BASE, (b"connection", b"keep-alive")]),
    ("rfc9113-8.2.2-2-keep-alive", [*BASE, (b"keep-alive", b"timeout=5")]),
    ("rfc9113-8.2.2-3-proxy-connection", [*BASE, (b"proxy-connection", b"close")]),
    ("rfc9113-8.2.2-4-transfer-encoding", [*BASE, (b"transfer-encoding", b"chunked")]),
    ("rfc9113-8.2.2-5-upgrade", [*BASE, (b"upgrade", b"h2c")]),
    ("rfc9113-8.2.2-6-te-other-than-trailers", [*BASE, (b"te", b"gzip")]),
    ("rfc9113-8.3-1-unknown-pseudo-header", [*BASE, (b":foo", b"bar")]),
    ("rfc9113-8.3-2-response-pseudo-header-in-request", [(b":status", b"200"), *BASE]),
    ("rfc9113-8.3-3-pseudo-header-after-regular", [*BASE[:3], (b"x", b"v"), BASE[3]]),
    ("rfc9113-8.3-4-duplicate-path", [*BASE, (P, b"/again")]),
    ("rfc9113-8.3-5-duplicate-method", [*BASE, (M, b"POST")]),
    ("rfc9113-8.3.1-1-missing-method", BASE[1:]),
    ("rfc9113-8.3.1-2-missing-scheme", [BASE[0], *BASE[2:]]),
    ("rfc9113-8.3.1-3-missing-path", [*BASE[:2], BASE[3]]),
    ("rfc9113-8.3.1-4-empty-path", [BASE[0], BASE[1], (P, b""), BASE[3]]),
    ("rfc9113-8.3.1-5-path-not-origin-form", [BASE[0], BASE[1], (P, b"index.html"), BASE[3]]),
    ("rfc9113-8.3.1-6-asterisk-path-not-options", [BASE[0], BASE[1], (P, b"*"), BASE[3]]),
    ("rfc9113-8.3.1-7-space-in-path", [BASE[0], BASE[1], (P, b"/a b"), BASE[3]]),
    ("rfc9113-8.3.1-8-host-differs-from-authority", [*BASE, (b"host", b"other.example")]),
    ("rfc9110-7.2-1-invalid-authority", [*BASE[:3], (A, b"user@host/x")]),
    ("rfc9110-9.1-1-method-not-a-token", [(M, b"GE T"), *BASE[1:]]),
    ("rfc9113-8.5-1-connect-with-path", [(M, b"CONNECT"), (A, b"example.com:443"), (P, b"/")]),
    ("rfc9113-8.5-2-connect-without-authority", [(M, b"CONNECT")]),
    ("rfc8441-4-1-protocol-without-connect", [*BASE, (b":protocol", b"websocket")]),
    ("rfc9110-8.6-1-content-length-not-digits", [*BASE, (b"content-length", b"1x")]),
    (
        "rfc9110-8.6-2-content-length-conflicting",
        [*BASE, (b"content-length", b"1"), (b"content-length", b"2")],
    ),
]


@pytest.mark.parametrize(("headers",), [pytest.param(h, id=i) for i, h in MALFORMED])
def test_malformed_request_is_a_stream_error(headers):
    peer = Peer()
    peer.send(peer.request(1, end_stream=False))  # another stream, in progress
    frame = HeadersFrame(3, data=peer.block(headers), flags=["END_HEADERS", "END_STREAM"])
    events = peer.send(frame)
    assert [type(e) for _, e in events] == [StreamReset], events
    reset = events[0][1]
    assert reset.remote is False and reset.error_code == PROTOCOL_ERROR and reset.reason
    assert PROTOCOL_ERROR in peer.resets(3)
    assert peer.goaway() is None
    # the stream in progress is untouched, and the connection serves new ones
    events = peer.send(peer.data(1, b"rest", end_stream=True), peer.request(5))
    assert kinds(events) == [(1, "Data"), (1, "EndOfMessage"), (5, "Request"), (5, "EndOfMessage")]


def test_rfc9113_8_1_1_content_length_shorter_than_data():
    peer = Peer()
    peer.send(peer.request(1, extra=[(b"content-length", b"3")], end_stream=False))
    events = peer.send(peer.data(1, b"four"))
    assert [type(e) for _, e in events] == [StreamReset]
    assert PROTOCOL_ERROR in peer.resets(1) and peer.goaway() is None


def test_rfc9113_8_1_1_content_length_longer_than_data():
    peer = Peer()
    peer.send(peer.request(1, extra=[(b"content-length", b"10")], end_stream=False))
    events = peer.send(peer.data(1, b"four", end_stream=True))
    assert [type(e) for _, e in events] == [StreamReset]
    assert "8.1.1" in events[0][1].reason
    assert PROTOCOL_ERROR in peer.resets(1) and peer.goaway() is None


def test_rfc9113_8_1_1_content_length_with_end_stream_on_headers():
    peer = Peer()
    events = peer.send(peer.request(1, extra=[(b"content-length", b"5")], method=b"POST"))
    assert [type(e) for _, e in events] == [Request, StreamReset]
    assert PROTOCOL_ERROR in peer.resets(1)


def test_rfc9113_8_1_1_content_length_then_trailers_too_early():
    peer = Peer()
    peer.send(peer.request(1, extra=[(b"content-length", b"5")], end_stream=False))
    events = peer.send(peer.data(1, b"ab"), peer.headers_frame(1, [(b"x-t", b"v")]))
    assert [type(e) for _, e in events] == [Data, StreamReset]


def test_rfc9113_8_1_content_length_matched_is_served():
    peer = Peer()
    events = peer.send(
        peer.request(1, extra=[(b"content-length", b"5")], end_stream=False, method=b"POST"),
        peer.data(1, b"he"),
        peer.data(1, b"llo", end_stream=True),
    )
    request = of(events, 1)[0]
    assert request.content_length == 5 and request.method == b"POST"
    assert of(events, 1)[1:] == [Data(b"he"), Data(b"llo"), EndOfMessage([])]


def test_rfc9113_8_1_trailers_received():
    peer = Peer()
    events = peer.send(
        peer.request(1, end_stream=False, method=b"POST", extra=[(b"te", b"trailers")]),
        peer.data(1, b"body"),
        peer.headers_frame(1, [(b"grpc-status", b"0"), (b"x-checksum", b"abc")]),
    )
    assert of(events, 1)[1:] == [
        Data(b"body"),
        EndOfMessage([(b"grpc-status", b"0"), (b"x-checksum", b"abc")]),
    ]


def test_rfc9113_8_1_trailers_without_end_stream_are_malformed():
    peer = Peer()
    peer.send(peer.request(1, end_stream=False))
    events = peer.send(peer.headers_frame(1, [(b"x-t", b"v")], end_stream=False))
    assert [type(e) for _, e in events] == [StreamReset]
    assert PROTOCOL_ERROR in peer.resets(1)


def test_rfc9113_8_1_pseudo_header_in_trailers_is_malformed():
    peer = Peer()
    peer.send(peer.request(1, end_stream=False))
    events = peer.send(peer.headers_frame(1, [(b":path", b"/x")]))
    assert [type(e) for _, e in events] == [StreamReset]


@pytest.mark.parametrize("name", [b"content-length", b"host", b"authorization", b"content-type"])
def test_rfc9110_6_5_1_framing_and_routing_fields_refused_in_trailers(name):
    peer = Peer()
    peer.send(peer.request(1, end_stream=False))
    events = peer.send(peer.headers_frame(1, [(name, b"1")]))
    assert [type(e) for _, e in events] == [StreamReset]
    assert name.decode() in events[0][1].reason


def test_rfc9113_8_3_1_request_fields():
    peer = Peer()
    events = peer.send(
        peer.headers_frame(
            1,
            [
                (M, b"GET"),
                (S, b"https"),
                (P, b"/search?q=h2&x=1"),
                (A, b"example.com:8443"),
                (b"cookie", b"a=1"),
                (b"cookie", b"b=2"),
                (b"accept", b"*/*"),
            ],
        )
    )
    request = of(events, 1)[0]
    assert request.http_version == b"2" and request.method == b"GET"
    assert request.target == b"/search?q=h2&x=1"
    assert (request.path, request.query) == (b"/search", b"q=h2&x=1")
    # :authority stands for Host; cookies are joined for HTTP/1.1-style consumers
    assert request.headers[0] == (b"host", b"example.com:8443")
    assert (b"cookie", b"a=1; b=2") in request.headers
    assert peer.server.scheme(1) == b"https"
    assert request.keep_alive and not request.chunked and request.upgrade is None


def test_rfc9113_8_3_1_host_without_authority():
    peer = Peer()
    events = peer.send(
        peer.headers_frame(1, [(M, b"GET"), (S, b"http"), (P, b"/"), (b"host", b"h.example")])
    )
    assert of(events, 1)[0].headers == [(b"host", b"h.example")]


def test_rfc9113_8_3_1_options_asterisk():
    peer = Peer()
    events = peer.send(
        peer.headers_frame(1, [(M, b"OPTIONS"), (S, b"https"), (P, b"*"), (A, b"a")])
    )
    assert of(events, 1)[0].path == b"*"


def test_rfc9113_8_5_connect():
    peer = Peer()
    events = peer.send(
        peer.headers_frame(1, [(M, b"CONNECT"), (A, b"example.com:443")], end_stream=False)
    )
    request = of(events, 1)[0]
    assert request.method == b"CONNECT" and request.target == b"example.com:443"


def test_rfc8441_extended_connect_surfaces_the_protocol():
    peer = Peer()
    assert peer.server_settings[8] == 1
    events = peer.send(
        peer.headers_frame(
            1,
            [
                (M, b"CONNECT"),
                (b":protocol", b"websocket"),
                (S, b"https"),
                (P, b"/chat"),
                (A, b"example.com"),
                (b"sec-websocket-version", b"13"),
            ],
            end_stream=False,
        )
    )
    request = of(events, 1)[0]
    assert request.upgrade == b"websocket" and request.path == b"/chat"
    peer.server.send_response(1, 200, [])
    peer.server.send_data(1, b"\x81\x02hi")
    assert peer.responses(1)[0][0] == (b":status", b"200") and peer.body(1) == b"\x81\x02hi"
    assert not peer.ended(1)


def test_rfc8441_disabled_refuses_protocol():
    peer = Peer(enable_connect_protocol=False)
    assert peer.server_settings.get(8, 0) == 0
    frame = peer.headers_frame(
        1,
        [(M, b"CONNECT"), (b":protocol", b"websocket"), (S, b"https"), (P, b"/"), (A, b"a")],
        end_stream=False,
    )
    try:
        events = peer.send(frame)
    except Exception as exc:  # h2 may take it as a connection error
        assert getattr(exc, "error_code", None) == PROTOCOL_ERROR
    else:
        assert [type(e) for _, e in events] == [StreamReset]


def test_rfc9110_10_1_1_expect_100_continue():
    peer = Peer()
    events = peer.send(
        peer.request(1, extra=[(b"expect", b"100-continue")], end_stream=False, method=b"PUT")
    )
    assert of(events, 1)[0].expect_continue
    peer.server.send_response(1, 100, [])
    peer.server.respond(1, 200, [], b"ok")
    statuses = [dict(h)[b":status"] for h in peer.responses(1)]
    assert statuses == [b"100", b"200"]


# ------------------------------------------------------------- responses


def test_rfc8297_early_hints_then_response_with_trailers():
    peer = Peer()
    peer.send(peer.request(1))
    server = peer.server
    server.send_response(1, 103, [(b"link", b"</style.css>; rel=preload; as=style")])
    server.send_response(1, 200, [(b"Content-Type", b"text/plain"), (b"Trailer", b"x-sum")])
    server.send_data(1, b"part one, ")
    server.send_data(1, b"part two")
    server.send_end(1, [(b"X-Sum", b"42")])
    heads = peer.responses(1)
    assert (
        heads[0][0] == (b":status", b"103")
        and (b"link", b"</style.css>; rel=preload; as=style") in heads[0]
    )
    assert heads[1][0] == (b":status", b"200") and (b"content-type", b"text/plain") in heads[1]
    assert heads[2] == [(b"x-sum", b"42")]
    assert peer.body(1) == b"part one, part two" and peer.ended(1)
    assert server.open_streams == 0


def test_rfc9113_8_2_2_connection_specific_response_fields_dropped():
    peer = Peer()
    peer.send(peer.request(1))
    peer.server.respond(
        1,
        200,
        [
            (b"Connection", b"close"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Keep-Alive", b"5"),
            (b"X-Ok", b"1"),
        ],
        b"body",
    )
    names = [n for n, _ in peer.responses(1)[0]]
    assert (
        b"connection" not in names
        and b"transfer-encoding" not in names
        and b"keep-alive" not in names
    )
    assert b"x-ok" in names and peer.body(1) == b"body"


def test_rfc9110_9_3_2_head_response_has_no_body():
    peer = Peer()
    peer.send(peer.request(1, method=b"HEAD"))
    peer.server.send_response(1, 200, [(b"content-length", b"100")])
    peer.server.send_data(1, b"x" * 100, end_stream=True)
    assert peer.body(1) == b"" and peer.ended(1)
    assert dict(peer.responses(1)[0])[b"content-length"] == b"100"


def test_rfc9110_15_3_5_no_content_respond():
    peer = Peer()
    peer.send(peer.request(1))
    peer.server.respond(1, 204, [], b"")
    frames = peer.read()
    assert [type(f) for f in frames] == [HeadersFrame] and "END_STREAM" in frames[0].flags
    assert b"content-length" not in dict(peer.responses(1)[0])


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([(b"bad name", b"v")], "invalid response header name"),
        ([(b"x", b"a\r\nInjected: 1")], "control byte"),
        ([(b"x", b"a\x00")], "control byte"),
    ],
)
def test_response_fields_are_checked(headers, message):
    peer = Peer()
    peer.send(peer.request(1))
    with pytest.raises(LocalProtocolError, match=message):
        peer.server.send_response(1, 200, headers)


def test_response_body_longer_than_content_length_refused():
    peer = Peer()
    peer.send(peer.request(1))
    peer.server.send_response(1, 200, [(b"content-length", b"3")])
    with pytest.raises(LocalProtocolError, match="longer than its Content-Length"):
        peer.server.send_data(1, b"four")


def test_response_ended_short_of_content_length_refused():
    peer = Peer()
    peer.send(peer.request(1))
    peer.server.send_response(1, 200, [(b"content-length", b"3")])
    peer.server.send_data(1, b"ab")
    with pytest.raises(LocalProtocolError, match="short of its Content-Length"):
        peer.server.send_end(1)


def test_101_does_not_exist_in_http2():
    peer = Peer()
    peer.send(peer.request(1))
    with pytest.raises(LocalProtocolError, match="101"):
        peer.server.send_response(1, 101, [])


def test_response_on_unknown_stream_is_a_local_error():
    peer = Peer()
    with pytest.raises(LocalProtocolError, match="no stream 9"):
        peer.server.send_response(9, 200, [])


def test_response_before_request_body_ends_resets_with_no_error():
    # RFC 9113 section 8.1: a complete response may be followed by
    # RST_STREAM(NO_ERROR) so the client stops sending the body
    peer = Peer()
    peer.send(peer.request(1, end_stream=False, method=b"POST"))
    peer.server.respond(1, 413, [], b"too big")
    assert peer.ended(1) and peer.resets(1) == [0]
    assert peer.server.open_streams == 0
    peer.send(DataFrame(1, data=b"more"))  # in flight when the reset went out
    assert peer.goaway() is None
