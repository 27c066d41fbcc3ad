"""Parse the same requests with unicorn-http, h11 and httptools; print requests/s and ratios.

Each parser gets what a server would do with it on a keep-alive connection:
feed the bytes, collect method, target, path, query, version, lower-cased
header names with values, the body and the end of the message. httptools is
driven through callbacks that collect exactly that (as uvicorn's do); h11
needs a response before it parses the next request, so it gets a new
connection per request (its constructor is a small part of its cost).

    python benchmarks/parser/bench_parser.py [--seconds 0.5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import h11
import httptools

from unicorn_http import NEED_DATA, Data, EndOfMessage, H1Connection, Request

GET_3 = b"GET /hello?name=world HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"

GET_BROWSER = (
    b"GET /wp-content/uploads/2010/03/hello-kitty-darth-vader-pink.jpg HTTP/1.1\r\n"
    b"Host: www.kittyhell.com\r\n"
    b"User-Agent: Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10_6_3; ja-JP-mac; rv:1.9.2.3) "
    b"Gecko/20100401 Firefox/3.6.3 Pathtraq/0.9\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: ja,en-us;q=0.7,en;q=0.3\r\n"
    b"Accept-Encoding: gzip,deflate\r\n"
    b"Accept-Charset: Shift_JIS,utf-8;q=0.7,*;q=0.7\r\n"
    b"Keep-Alive: 115\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: wp_ozh_wsa_visits=2; wp_ozh_wsa_visit_lasttime=xxxxxxxxxx; "
    b"__utma=xxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.x; "
    b"__utmz=xxxxxxxxx.xxxxxxxxxx.x.x.utmccn=(referral)|utmcsr=reader.livedoor.com|utmcct=/reader/|utmcmd=referral\r\n"
    b"Referer: http://www.example.com/\r\n"
    b"DNT: 1\r\n"
    b"Cache-Control: max-age=0\r\n"
    b"\r\n"
)
assert GET_BROWSER.count(b"\r\n") - 2 == 12

_body = bytes(range(256)) * 16  # 4 KiB
POST_CHUNKED = (
    b"POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Type: application/octet-stream\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
    + b"".join(b"%x\r\n%b\r\n" % (1024, _body[i : i + 1024]) for i in range(0, 4096, 1024))
    + b"0\r\n\r\n"
)

PIPELINED_16 = GET_3 * 16

CASES = {
    "3-header GET": (GET_3, 1),
    "12-header browser GET": (GET_BROWSER, 1),
    "4 KiB chunked POST": (POST_CHUNKED, 1),
    "16 pipelined GETs": (PIPELINED_16, 16),
}


def make_unicorn(fresh: bool = False):
    conn = H1Connection()

    def parse(data: bytes) -> list:
        nonlocal conn
        if fresh:
            conn = H1Connection()
        out = []
        conn.receive_data(data)
        while True:
            event = conn.next_event()
            kind = type(event)
            if kind is Request:
                out.append(
                    [
                        event.method,
                        event.target,
                        event.path,
                        event.query,
                        event.http_version,
                        event.headers,
                        [],
                    ]
                )
            elif kind is Data:
                out[-1][6].append(event.data)
            elif kind is EndOfMessage:
                conn.start_next_cycle()
            elif event is NEED_DATA:
                return out

    return parse


class _HttptoolsCollector:
    """Callbacks collecting what uvicorn's httptools protocol collects."""

    __slots__ = ("headers", "out", "parser", "url")

    def __init__(self) -> None:
        self.out: list = []
        self.parser = httptools.HttpRequestParser(self)

    def on_message_begin(self) -> None:
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        parsed = httptools.parse_url(self.url)
        self.out.append(
            [
                self.parser.get_method(),
                self.url,
                parsed.path,
                parsed.query or b"",
                self.parser.get_http_version(),
                self.headers,
                [],
            ]
        )

    def on_body(self, body: bytes) -> None:
        self.out[-1][6].append(body)


def make_httptools():
    collector = _HttptoolsCollector()

    def parse(data: bytes) -> list:
        collector.out = []
        collector.parser.feed_data(data)
        return collector.out

    return parse


def make_h11_pipelined():
    """h11 parses one request per connection until a response is sent; split the input for it."""

    def parse(data: bytes) -> list:
        out = []
        rest = data
        while rest:
            conn = h11.Connection(h11.SERVER)
            conn.receive_data(rest)
            while True:
                event = conn.next_event()
                kind = type(event)
                if kind is h11.Request:
                    out.append(
                        [event.method, event.target, event.http_version, list(event.headers), []]
                    )
                elif kind is h11.Data:
                    out[-1][4].append(event.data)
                elif kind is h11.EndOfMessage:
                    rest = conn.trailing_data[0]
                    break
                elif event is h11.NEED_DATA:
                    return out
        return out

    return parse


def make_unicorn_fresh():
    """A new connection for every request: nothing it sent before to remember."""
    return make_unicorn(fresh=True)


PARSERS = {
    "unicorn-http": make_unicorn,
    "unicorn-http cold": make_unicorn_fresh,
    "h11": make_h11_pipelined,
    "httptools": make_httptools,
}


def calibrate(parse, data: bytes, budget: float) -> int:
    """A batch size that takes about ``budget`` seconds."""
    batch = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(batch):
            parse(data)
        if time.perf_counter() - t0 > budget:
            return batch
        batch *= 2


def rates(data: bytes, per_call: int, seconds: float, repeat: int) -> dict[str, float]:
    """Requests/s for every parser, measured in interleaved rounds (best round kept),
    so a burst of load elsewhere on the machine hits all of them alike."""
    parsers = {name: make() for name, make in PARSERS.items()}
    slice_ = seconds / repeat
    batches = {name: calibrate(p, data, slice_ / 10) for name, p in parsers.items()}
    best = dict.fromkeys(parsers, 0.0)
    for _ in range(repeat):
        for name, parse in parsers.items():
            batch = batches[name]
            n = 0
            t0 = time.perf_counter()
            while True:
                for _ in range(batch):
                    parse(data)
                n += batch
                elapsed = time.perf_counter() - t0
                if elapsed >= slice_:
                    break
            best[name] = max(best[name], n * per_call / elapsed)
    return best


def check_same(data: bytes, per_call: int) -> None:
    """All the parsers must see the same requests and bodies."""
    results = {name: make()(data) for name, make in PARSERS.items()}
    ours = results["unicorn-http"]
    assert results["unicorn-http cold"] == ours
    theirs = results["httptools"]
    assert len(ours) == len(theirs) == len(results["h11"]) == per_call, {
        k: len(v) for k, v in results.items()
    }
    for a, b in zip(ours, theirs, strict=False):
        assert a[0] == b[0] and a[1] == b[1] and a[2] == b[2] and a[3] == b[3], (a[:5], b[:5])
        assert a[5] == b[5], "headers differ"
        assert b"".join(a[6]) == b"".join(b[6]), "bodies differ"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="time per parser and request")
    ap.add_argument("--repeat", type=int, default=10, help="interleaved rounds (the best is kept)")
    args = ap.parse_args()
    rows = []
    for case, (data, per_call) in CASES.items():
        check_same(data, per_call)
        rows.append((case, rates(data, per_call, args.seconds, args.repeat)))
    print(
        "unicorn-http: one keep-alive connection, so its request and field lines\n"
        "repeat (as a client's do); cold: a new connection for every request,\n"
        "nothing remembered (the connection's constructor included, as for h11).\n"
    )
    print(
        f"{'request':24s} {'unicorn-http':>14s} {'cold':>10s} {'h11':>10s} {'httptools':>11s}"
        f" {'x h11':>7s} {'x httptools':>12s} {'cold x httptools':>17s}"
    )
    for case, r in rows:
        u, c, h, t = r["unicorn-http"], r["unicorn-http cold"], r["h11"], r["httptools"]
        print(
            f"{case:24s} {u:12,.0f}/s {c:8,.0f}/s {h:8,.0f}/s {t:9,.0f}/s"
            f" {u / h:6.2f}x {u / t:11.2f}x {c / t:16.2f}x"
        )


if __name__ == "__main__":
    main()
