"""HTTP settings every worker type shares (request limits, proxies, root path).

Core has no HTTP code; these are declared here because gunicorn treats them
as server-wide settings and every worker package (WSGI and ASGI) reads them
from the same ``cfg``. ``forwarded_ips()`` turns the IP lists into a fast
membership test for the workers.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from unicorn_core.settings import Setting

SECTION = "HTTP"


def _items(value: Any) -> list[str]:
    """Comma-separated text or a list, as its non-empty stripped items."""
    if isinstance(value, str):
        parts = value.split(",")
    elif isinstance(value, (list, tuple)):
        parts = [str(v) for v in value]
    else:
        raise TypeError("")
    return [part.strip() for part in parts if part.strip()]


def _ip_list(value: Any) -> list[str]:
    """Comma-separated text or a list of addresses / networks, or `*`."""
    items = _items(value)
    for item in items:
        if item == "*" or item.startswith("unix:"):
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return items


def _name_list(value: Any) -> list[str]:
    """Comma-separated text or a list of header names, kept upper case."""
    return [item.upper() for item in _items(value)]


def _protocol_name(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("")
    from unicorn_core.protocols import installed_protocols, protocol_hint

    name = value.strip().lower()
    if name not in installed_protocols():
        raise ValueError(protocol_hint(name))
    return name


_PROXY_MODES = {
    "off": "off",
    "false": "off",
    "0": "off",
    "none": "off",
    "no": "off",
    "auto": "auto",
    "true": "auto",
    "1": "auto",
    "yes": "auto",
    "v1": "v1",
    "v2": "v2",
}


def _proxy_protocol(value: Any) -> str:
    """gunicorn 24.1's modes; booleans as older configs wrote them."""
    if value is None or value is False:
        return "off"
    if value is True:
        return "auto"
    if not isinstance(value, str):
        raise TypeError("")
    mode = _PROXY_MODES.get(value.strip().lower())
    if mode is None:
        raise ValueError("off, v1, v2 or auto")
    return mode


_HTTP_PROTOCOLS = ("h1", "h2")


def _http_protocols(value: Any) -> list[str]:
    """gunicorn's `h2,h1`: the protocols offered, in order of preference."""
    items = [item.lower() for item in _items(value)]
    for item in items:
        if item not in _HTTP_PROTOCOLS:
            raise ValueError(f"{item!r} is not one of h1, h2")
    if not items:
        raise ValueError("name at least one of h1, h2")
    if "h2" in items:
        import importlib.util

        if importlib.util.find_spec("h2") is None:
            raise ValueError('h2 needs the h2 library: pip install "unicorn[http2]" (or drop h2)')
    return list(dict.fromkeys(items))


def _http2_cleartext(value: Any) -> str:
    if value is None or value is False:
        return "off"
    if value is True:
        return "prior-knowledge"
    if not isinstance(value, str):
        raise TypeError("")
    mode = value.strip().lower()
    if mode not in ("off", "prior-knowledge", "upgrade", "both"):
        raise ValueError("off, prior-knowledge, upgrade or both")
    return mode


def _bounded_int(low: int, high: int) -> Any:
    def check(value: Any) -> int:
        number = value if isinstance(value, int) else int(str(value), 0)
        if not low <= number <= high:
            raise ValueError(f"must be {low} to {high}")
        return int(number)

    return check


def _header_map(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        import json

        value = json.loads(value)
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TypeError("")
    return {k.upper(): v for k, v in value.items()}


class AddressMatcher:
    """Is a peer trusted? For ``forwarded_allow_ips`` and ``proxy_allow_ips``: exact
    addresses, networks (``10.0.0.0/8``), ``*`` for anyone, ``unix:`` for peers on
    a Unix socket. One rule for every worker type: ``matcher(host)``, where
    ``host`` is None for a Unix-socket peer; ``host in matcher`` also works."""

    __slots__ = ("_any", "_exact", "_networks", "_unix")

    def __init__(self, items: str | list[str] | tuple[str, ...] | None) -> None:
        if isinstance(items, str):
            items = items.split(",")
        items = [str(i).strip() for i in items or () if str(i).strip()]
        self._any = "*" in items
        self._unix = any(i.startswith("unix:") for i in items)
        self._exact = {i for i in items if "/" not in i}
        self._networks = [
            ipaddress.ip_network(i, strict=False)
            for i in items
            if "/" in i and not i.startswith("unix:")
        ]

    def __call__(self, host: str | None) -> bool:
        if self._any:
            return True
        if host is None:
            return self._unix
        if host in self._exact:
            return True
        if not self._networks:
            return False
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(addr in net for net in self._networks)

    def __contains__(self, host: object) -> bool:
        return isinstance(host, str) and self(host)


SETTINGS = (
    Setting(
        name="limit_request_line",
        section=SECTION,
        cli=("--limit-request-line",),
        type="positive_int",
        meta="INT",
        default=4094,
        doc="The longest request line accepted, in bytes (method, target and "
        "version). Longer lines are answered with 414. 0 lifts the limit, which "
        "is unsafe.",
    ),
    Setting(
        name="limit_request_fields",
        section=SECTION,
        cli=("--limit-request-fields",),
        type="positive_int",
        meta="INT",
        default=100,
        doc="The most header fields one request may carry. More are answered with 431.",
    ),
    Setting(
        name="limit_request_field_size",
        section=SECTION,
        cli=("--limit-request-field_size", "--limit-request-field-size"),
        type="positive_int",
        meta="INT",
        default=8190,
        doc="The longest header field accepted, name and value together, in bytes. "
        "Longer fields are answered with 431. 0 lifts the limit.",
    ),
    Setting(
        name="permit_obsolete_folding",
        section=SECTION,
        cli=("--permit-obsolete-folding",),
        type="bool",
        default=False,
        doc="Accept header lines continued on the next line (obs-fold, RFC 9112 "
        "section 5.2), joining each fold into one space. Off by default: such "
        "requests get 400, since proxies disagree on how to read them.",
    ),
    Setting(
        name="strip_header_spaces",
        section=SECTION,
        cli=("--strip-header-spaces",),
        type="bool",
        default=False,
        doc="Accept whitespace between a header name and its colon, dropping it, "
        "instead of refusing the request with 400 (gunicorn's setting). RFC 9112 "
        "section 5.1 asks for the refusal: proxies that read such lines differently "
        "are a request-smuggling risk. Use only to keep a broken client working.",
    ),
    Setting(
        name="permit_unconventional_http_method",
        section=SECTION,
        cli=("--permit-unconventional-http-method",),
        type="bool",
        default=False,
        doc="Accept any token as a request method. By default, as in gunicorn, a "
        "method must be 3 to 20 upper-case token characters without `#` (the "
        "convention of registered methods); others get 400.",
    ),
    Setting(
        name="permit_unconventional_http_version",
        section=SECTION,
        cli=("--permit-unconventional-http-version",),
        type="bool",
        default=False,
        doc="Accept HTTP/1.x versions other than 1.0 and 1.1 (read as 1.1, as RFC "
        "9110 section 2.5 allows). By default, as in gunicorn, they get 400, since "
        "such request lines are most likely malformed.",
    ),
    Setting(
        name="casefold_http_method",
        section=SECTION,
        cli=("--casefold-http-method",),
        type="bool",
        default=False,
        doc="Upper-case request methods before they are checked and handed to the "
        "application (older gunicorn did). Methods are case-sensitive (RFC 9110 "
        "section 9.1): `get` is not `GET` unless this is on.",
    ),
    Setting(
        name="http_parser",
        section=SECTION,
        cli=("--http-parser",),
        type="choice",
        choices=("auto", "fast", "python"),
        meta="STRING",
        default="auto",
        doc="Accepted for gunicorn configurations, where it picks between a C and "
        "a Python HTTP parser. unicorn has one parser, the same for every worker "
        "(`unicorn_http`), so every value means the same here.",
    ),
    Setting(
        name="forwarded_allow_ips",
        section=SECTION,
        cli=("--forwarded-allow-ips",),
        env="FORWARDED_ALLOW_IPS",
        type=_ip_list,
        meta="STRING",
        default=["127.0.0.1", "::1"],
        doc="Front-end addresses trusted to set the headers in "
        "`secure_scheme_headers` and `X-Forwarded-For`: comma-separated addresses "
        "or networks, or `*` to trust every peer (only when the server cannot be "
        "reached except through the proxy).",
    ),
    Setting(
        name="secure_scheme_headers",
        section=SECTION,
        type=_header_map,
        default={
            "X-FORWARDED-PROTOCOL": "ssl",
            "X-FORWARDED-PROTO": "https",
            "X-FORWARDED-SSL": "on",
        },
        doc="Headers, and the values they must carry, by which a trusted front end "
        "says the client's request was made over HTTPS. Honoured only from "
        "addresses in `forwarded_allow_ips`.",
    ),
    Setting(
        name="proxy_protocol",
        section=SECTION,
        cli=("--proxy-protocol",),
        type=_proxy_protocol,
        meta="MODE",
        default="off",
        const="auto",
        doc="Expect a PROXY protocol header at the start of each connection from "
        "addresses in `proxy_allow_ips`, and use the client address it carries: "
        "`v1` (text), `v2` (binary), `auto` (either; what the flag alone means) or "
        "`off`, as gunicorn 24.1 names them. `true`/`false` mean `auto`/`off`. A "
        "header of the other version is refused with 400.",
    ),
    Setting(
        name="proxy_allow_ips",
        section=SECTION,
        cli=("--proxy-allow-from",),
        type=_ip_list,
        meta="STRING",
        default=["127.0.0.1", "::1"],
        doc="Front-end addresses allowed to send a PROXY protocol header: "
        "comma-separated addresses or networks, or `*`.",
    ),
    Setting(
        name="client_header_timeout",
        section=SECTION,
        cli=("--client-header-timeout",),
        type="float",
        meta="SECONDS",
        default=20.0,
        doc="The longest a client may take to send a complete request head, counted "
        "from the connection's start or from the end of the previous response. A "
        "head still incomplete then is answered with 408 and the connection closed, "
        "however steadily its bytes trickle in (slowloris). It also bounds the wait "
        "for the first request of a new connection, which `keepalive` does not. "
        "0 lifts the limit.",
    ),
    Setting(
        name="client_body_timeout",
        section=SECTION,
        cli=("--client-body-timeout",),
        type="float",
        meta="SECONDS",
        default=30.0,
        doc="How long a request body may take to arrive beyond what its size "
        "explains: the body must be complete within this many seconds plus one "
        "second for every KiB received (a client sending slower than 1 KiB/s on "
        "average is cut off after about this long). A body that misses it is "
        "answered with 408 (or the connection closed when the response has "
        "begun), so slow uploads hold a thread of the `gthread` and `sync` workers "
        "for a bounded time. 0 lifts the limit.",
    ),
    Setting(
        name="forwarder_headers",
        section=SECTION,
        cli=("--forwarder-headers",),
        type=_name_list,
        meta="STRING",
        default=["SCRIPT_NAME", "PATH_INFO"],
        doc="Header names with an underscore that a trusted front end (see "
        "`forwarded_allow_ips`) may send, passed on as gunicorn does: "
        "`SCRIPT_NAME` sets the mount point, the others arrive as `HTTP_<NAME>` "
        "(`REMOTE_USER` becomes `REMOTE_USER` itself). From any other peer such "
        "headers follow `header_map`. Comma-separated, upper case; `*` for every name.",
    ),
    Setting(
        name="protocol",
        section=SECTION,
        cli=("--protocol",),
        type=_protocol_name,
        meta="STRING",
        default="http",
        doc="The wire protocol the workers speak on every listener: `http` "
        "(HTTP/1.1, and HTTP/2 where `http_protocols` allows it) or `uwsgi`, the "
        "binary protocol of nginx's `uwsgi_pass` (install `unicorn[uwsgi]`). A "
        "name registered in the `unicorn.protocols` entry-point group.",
    ),
    Setting(
        name="uwsgi_allow_ips",
        section=SECTION,
        cli=("--uwsgi-allow-from",),
        type=_ip_list,
        meta="STRING",
        default=["127.0.0.1", "::1"],
        doc="Front-end addresses allowed to speak the uwsgi protocol (with "
        '`protocol = "uwsgi"`): comma-separated addresses or networks, or `*` for '
        "anyone. Peers on a Unix socket are always allowed: the socket file's "
        "permissions decide who connects. Other peers are closed with a log line.",
    ),
    Setting(
        name="uwsgi_buffer_size",
        section=SECTION,
        cli=("--uwsgi-buffer-size",),
        type="positive_int",
        meta="INT",
        default=4096,
        doc="The largest uwsgi request head accepted, in bytes: the packet header "
        "and its variables block (as uWSGI's `buffer-size`). nginx sends every "
        "request header as a variable, so large cookies may need more; the most "
        "the protocol can carry is 65535. A bigger packet closes the connection "
        "with a log line naming this setting.",
    ),
    Setting(
        name="http_protocols",
        section="HTTP/2",
        cli=("--http-protocols",),
        type=_http_protocols,
        meta="STRING",
        default=["h1"],
        doc="The HTTP versions offered, in order of preference (gunicorn's names): "
        "`h1`, `h2`, or `h2,h1`. Over TLS they are offered by ALPN; in cleartext, "
        "HTTP/2 needs `http2_cleartext`. HTTP/2 is served by the `asgi`, `gthread`, "
        "`gevent` and `eventlet` workers and needs the h2 library (`unicorn[http2]`); a worker that cannot carry it "
        "offers HTTP/1.1 alone and says so at boot.",
    ),
    Setting(
        name="http2_cleartext",
        section="HTTP/2",
        cli=("--http2-cleartext",),
        type=_http2_cleartext,
        meta="STRING",
        default="off",
        doc="HTTP/2 without TLS (h2c), and how it starts: `off`, `prior-knowledge` "
        "(the connection opens with the HTTP/2 preface), `upgrade` (an HTTP/1.1 "
        "`Upgrade: h2c` request, answered 101) or `both`. Only peers in "
        "`forwarded_allow_ips` are considered; from them, on a prior-knowledge-only "
        "port, anything but the preface is refused with 400. Meant for a trusted "
        "proxy in front that speaks HTTP/2 upstream; ignored on TLS listeners.",
    ),
    Setting(
        name="http2_max_concurrent_streams",
        section="HTTP/2",
        cli=("--http2-max-concurrent-streams",),
        type=_bounded_int(1, 2**31 - 1),
        meta="INT",
        default=100,
        doc="The most streams (requests) one HTTP/2 connection may have open at "
        "once; more are refused with REFUSED_STREAM, which clients retry.",
    ),
    Setting(
        name="http2_initial_window_size",
        section="HTTP/2",
        cli=("--http2-initial-window-size",),
        type=_bounded_int(0, 2**31 - 1),
        meta="INT",
        default=65535,
        doc="The flow-control window each stream starts with, in bytes: how much "
        "request body a client may send ahead of the application reading it.",
    ),
    Setting(
        name="http2_max_frame_size",
        section="HTTP/2",
        cli=("--http2-max-frame-size",),
        type=_bounded_int(16384, 16777215),
        meta="INT",
        default=16384,
        doc="The largest HTTP/2 frame payload accepted, in bytes (16384 to 16777215).",
    ),
    Setting(
        name="http2_max_header_list_size",
        section="HTTP/2",
        cli=("--http2-max-header-list-size",),
        type=_bounded_int(1, 2**31 - 1),
        meta="INT",
        default=65536,
        doc="The largest decoded header list of one HTTP/2 request, in bytes; it "
        "bounds what HPACK may expand to (compression bombs): over it, the "
        "connection ends with ENHANCE_YOUR_CALM.",
    ),
    Setting(
        name="root_path",
        section=SECTION,
        cli=("--root-path",),
        meta="PATH",
        default="",
        doc="The path prefix the application is mounted under behind a proxy "
        "(`SCRIPT_NAME` for WSGI, `root_path` for ASGI), as uvicorn's `--root-path`.",
    ),
)


# The settings every worker hands to its protocol parser, under their own names
# (unicorn_http.H1Connection takes the same keywords).
_PARSER_DEFAULTS = {
    s.name: s.default
    for s in SETTINGS
    if s.name
    in (
        "limit_request_line",
        "limit_request_fields",
        "limit_request_field_size",
        "permit_obsolete_folding",
        "strip_header_spaces",
        "permit_unconventional_http_method",
        "permit_unconventional_http_version",
        "casefold_http_method",
    )
}


def parser_options(cfg: object) -> dict:
    """The parser's keyword arguments from ``cfg`` (any object with the settings as
    attributes; a missing or None one takes its declared default)."""
    options = {}
    for name, default in _PARSER_DEFAULTS.items():
        value = getattr(cfg, name, None)
        options[name] = default if value is None else value
    return options


def edge_options(cfg: object) -> dict:
    """The keyword arguments of ``unicorn_http.EdgeRules`` from ``cfg``: the protocol
    factory the ``protocol`` setting names (through the ``unicorn.protocols``
    entry points), its options, and the trust rules as ``host -> bool`` tests."""
    from unicorn_core.protocols import load_protocol

    def get(name: str, default: Any) -> Any:
        value = getattr(cfg, name, None)
        return default if value is None else value

    name = str(get("protocol", "http"))
    options = parser_options(cfg)
    if name == "uwsgi":
        options["uwsgi_buffer_size"] = int(get("uwsgi_buffer_size", 4096))
    return {
        "protocol": load_protocol(name),
        "options": options,
        "protocol_name": name,
        "forwarded_allow": AddressMatcher(get("forwarded_allow_ips", ["127.0.0.1", "::1"])),
        "secure_scheme_headers": dict(get("secure_scheme_headers", {}) or {}),
        "forwarder_headers": list(get("forwarder_headers", ["SCRIPT_NAME", "PATH_INFO"])),
        "proxy_from": (
            AddressMatcher(get("proxy_allow_ips", ["127.0.0.1", "::1"]))
            if get("proxy_protocol", "off") not in (False, "off", "", 0)
            else None
        ),
        "proxy_versions": {"v1": (1,), "v2": (2,)}.get(str(get("proxy_protocol", "off")), (1, 2)),
        "protocol_allow": (
            AddressMatcher(get("uwsgi_allow_ips", ["127.0.0.1", "::1"]))
            if name == "uwsgi"
            else None
        ),
        "protocol_allow_setting": "uwsgi_allow_ips" if name == "uwsgi" else "",
    }


def http2_options(cfg: object) -> dict:
    """The HTTP/2 connection's keyword arguments (``unicorn_http.h2.H2Connection``)."""
    names = (
        "http2_max_concurrent_streams",
        "http2_initial_window_size",
        "http2_max_frame_size",
        "http2_max_header_list_size",
    )
    defaults = {s.name: s.default for s in SETTINGS if s.name in names}
    options = {}
    for name in names:
        value = getattr(cfg, name, None)
        options[name] = defaults[name] if value is None else value
    return options
