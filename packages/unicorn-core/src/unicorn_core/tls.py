"""TLS: an ``ssl.SSLContext`` built from the SSL settings, and socket wrapping.

``make_ssl_context(cfg)`` calls the ``ssl_context`` hook with a factory for
the default context, so a config file can adjust it (ALPN, session tickets,
client certificates) or build its own. Workers call it once after fork and
then either ``wrap_socket(ctx, sock, cfg)`` per accepted connection (sync and
threaded workers) or pass the context as ``ssl=`` (asyncio).
"""

from __future__ import annotations

import os
import socket
import ssl
from typing import Any

from unicorn_core.errors import ConfigError
from unicorn_core.settings import Setting

SECTION = "SSL"

#: ssl_version names -> the lowest TLS version the context accepts
_MIN_VERSIONS = {
    "TLS": None,
    "TLS_SERVER": None,
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1_1": ssl.TLSVersion.TLSv1_1,
    "TLSv1_2": ssl.TLSVersion.TLSv1_2,
    "TLSv1_3": ssl.TLSVersion.TLSv1_3,
}
#: names gunicorn also accepts: SSLv23 is the old name of TLS; SSLv3 is gone from
#: OpenSSL, so like gunicorn (which ignores ssl_version) we negotiate TLS for it
_OLD_NAMES = {"SSLv23": "TLS", "SSLv3": "TLS"}
#: the ssl module's PROTOCOL_* numbers (ssl.PROTOCOL_TLSv1_2 is 5), for config files
_PROTOCOL_NUMBERS = {
    1: "SSLv3",
    2: "TLS",
    3: "TLSv1",
    4: "TLSv1_1",
    5: "TLSv1_2",
    17: "TLS_SERVER",
}


def _cert_reqs(value: Any) -> int:
    names = {"CERT_NONE": 0, "CERT_OPTIONAL": 1, "CERT_REQUIRED": 2}
    if isinstance(value, str):
        value = names[value] if value in names else int(value)
    if isinstance(value, bool) or value not in (0, 1, 2):
        raise ValueError("")
    return int(value)


def _ssl_version(value: Any) -> str:
    """gunicorn's values: a name (``TLSv1_2``, ``PROTOCOL_TLSv1_2``, ``SSLv23``),
    case aside, or an ``ssl.PROTOCOL_*`` constant (a number)."""
    if isinstance(value, bool):
        raise TypeError("")
    if isinstance(value, int):
        value = _PROTOCOL_NUMBERS.get(int(value), str(int(value)))
    if not isinstance(value, str):
        raise TypeError("")
    text = value.strip()
    if text.upper().startswith("PROTOCOL_"):
        text = text[len("PROTOCOL_") :]
    if text.isdigit():
        text = _PROTOCOL_NUMBERS.get(int(text), text)
    names = {n.lower(): n for n in (*_MIN_VERSIONS, *_OLD_NAMES)}
    name = names.get(text.lower())
    if name is None:
        raise ValueError("one of " + ", ".join((*_MIN_VERSIONS, *_OLD_NAMES)))
    return _OLD_NAMES.get(name, name)


def _default_ssl_context_hook(config: Any, default_ssl_context_factory: Any) -> ssl.SSLContext:
    return default_ssl_context_factory()


SETTINGS = (
    Setting(
        name="certfile",
        section=SECTION,
        cli=("--certfile",),
        meta="FILE",
        doc="The server certificate (PEM), with its chain. Setting it turns TLS on.",
    ),
    Setting(
        name="keyfile",
        section=SECTION,
        cli=("--keyfile",),
        meta="FILE",
        doc="The private key (PEM) of `certfile`, when it is not in the certificate file.",
    ),
    Setting(
        name="ca_certs",
        section=SECTION,
        cli=("--ca-certs",),
        meta="FILE",
        doc="CA certificates (PEM) trusted to sign client certificates.",
    ),
    Setting(
        name="cert_reqs",
        section=SECTION,
        cli=("--cert-reqs",),
        type=_cert_reqs,
        meta="INT",
        default=0,
        doc="Whether a client certificate is required: 0 none (`CERT_NONE`), "
        "1 optional, 2 required (`CERT_REQUIRED`).",
    ),
    Setting(
        name="ssl_version",
        section=SECTION,
        cli=("--ssl-version",),
        type=_ssl_version,
        meta="STRING",
        default="TLS_SERVER",
        doc="Kept for gunicorn compatibility: `TLS`/`TLS_SERVER` (and the old "
        "names `SSLv23`, `SSLv3`) negotiate the best version both sides support; "
        "`TLSv1`, `TLSv1_1`, `TLSv1_2` or `TLSv1_3` set the lowest version "
        "accepted. `PROTOCOL_` prefixes and `ssl.PROTOCOL_*` constants are "
        "accepted too. gunicorn ignores this setting; unicorn applies it. Prefer "
        "the `ssl_context` hook for anything finer.",
    ),
    Setting(
        name="ciphers",
        section=SECTION,
        cli=("--ciphers",),
        meta="CIPHERS",
        doc="OpenSSL cipher list for TLS 1.2 and below, e.g. `ECDHE+AESGCM`. "
        "By default Python's secure default list is used.",
    ),
    Setting(
        name="do_handshake_on_connect",
        section=SECTION,
        cli=("--do-handshake-on-connect",),
        type="bool",
        default=False,
        doc="Run the TLS handshake when the socket is wrapped instead of on the first read.",
    ),
    Setting(
        name="suppress_ragged_eofs",
        section=SECTION,
        cli=("--suppress-ragged-eofs",),
        type="bool",
        default=True,
        doc="Treat a client closing the TCP connection without a TLS close_notify "
        "as an ordinary end of stream.",
    ),
    Setting(
        name="ssl_context",
        section="Server Hooks",
        type="callable",
        arity=2,
        default=_default_ssl_context_hook,
        doc="Called as `ssl_context(config, default_ssl_context_factory)` when a "
        "worker builds its TLS context; returns an `ssl.SSLContext`. Call "
        "`default_ssl_context_factory()` to get the context the SSL settings "
        "describe and adjust it, or build one from scratch.",
    ),
)


def default_ssl_context(cfg: Any) -> ssl.SSLContext:
    """The context the SSL settings describe."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    minimum = _MIN_VERSIONS[cfg.ssl_version]
    if minimum is not None:
        ctx.minimum_version = minimum
    for path in (cfg.certfile, cfg.keyfile, cfg.ca_certs):
        if path and not os.access(path, os.R_OK):
            reason = "No such file or directory" if not os.path.exists(path) else "not readable"
            raise ConfigError(f"TLS: cannot read {path!r}: {reason}")
    try:
        ctx.load_cert_chain(certfile=cfg.certfile, keyfile=cfg.keyfile)
    except ssl.SSLError as exc:
        raise ConfigError(f"TLS: certfile/keyfile rejected: {exc}") from None
    ctx.verify_mode = ssl.VerifyMode(cfg.cert_reqs)
    if cfg.ca_certs:
        try:
            ctx.load_verify_locations(cafile=cfg.ca_certs)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"TLS: ca_certs {cfg.ca_certs!r} rejected: {exc}") from None
    if cfg.ciphers:
        try:
            ctx.set_ciphers(cfg.ciphers)
        except ssl.SSLError:
            raise ConfigError(f"TLS: no cipher matches {cfg.ciphers!r}") from None
    return ctx


_ALPN = {"h2": "h2", "h1": "http/1.1"}


def alpn_protocols(cfg: Any, http2: bool) -> list[str]:
    """ALPN names to offer, in ``http_protocols`` order; h2 only where the worker
    can carry it, and always HTTP/1.1 as the fallback."""
    wanted = list(getattr(cfg, "http_protocols", None) or ["h1"])
    if not http2 and "h2" in wanted:
        wanted.remove("h2")
    if "h1" not in wanted:
        wanted.append("h1")
    return [_ALPN[p] for p in wanted]


def make_ssl_context(cfg: Any, http2: bool = False) -> ssl.SSLContext | None:
    """The worker's TLS context, through the ``ssl_context`` hook; None without TLS.

    ALPN offers what ``http_protocols`` names (``http2``: the worker can carry
    HTTP/2), unless the hook built a context of its own without calling the
    default factory."""
    if not cfg.is_ssl:
        return None
    if not cfg.certfile:
        raise ConfigError("TLS: keyfile is set but certfile is not")

    def default() -> ssl.SSLContext:
        ctx = default_ssl_context(cfg)
        ctx.set_alpn_protocols(alpn_protocols(cfg, http2))
        return ctx

    ctx = cfg.ssl_context(cfg, default)
    if not isinstance(ctx, ssl.SSLContext):
        raise ConfigError(f"the ssl_context hook returned {ctx!r}, not an ssl.SSLContext")
    return ctx


def wrap_socket(ctx: ssl.SSLContext, sock: socket.socket, cfg: Any) -> ssl.SSLSocket:
    """Wrap one accepted connection as the SSL settings ask."""
    return ctx.wrap_socket(
        sock,
        server_side=True,
        do_handshake_on_connect=cfg.do_handshake_on_connect,
        suppress_ragged_eofs=cfg.suppress_ragged_eofs,
    )
