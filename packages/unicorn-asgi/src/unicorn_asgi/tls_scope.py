"""The ASGI ``tls`` scope extension: what a TLS connection tells the application.

Built once per TLS connection (http and websocket scopes share it): the
server's certificate, the client's verified chain and its RFC 4514 subject
name, the TLS version and the IANA cipher-suite number.
"""

from __future__ import annotations

import ssl
from typing import Any

__all__ = ["distinguished_name", "first_certificate", "tls_extension"]


_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
#: OpenSSL cipher name -> its 16-bit IANA number, learned from the contexts in use
_cipher_ids: dict[str, int] = {}
#: RFC 4514 section 3: the short names of attribute types a DN string uses
_DN_NAMES = {
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}


def _dn_value(value: str) -> str:
    """An attribute value escaped as RFC 4514 section 2.4 asks."""
    out = value.replace("\\", "\\\\")
    for special in ',+"<>;=':
        out = out.replace(special, "\\" + special)
    if out[:1] in ("#", " "):
        out = "\\" + out
    if out.endswith(" "):
        out = out[:-1] + "\\ "
    return out


def distinguished_name(subject: Any) -> str:
    """``ssl.getpeercert()['subject']`` as an RFC 4514 string (most specific RDN first)."""
    return ",".join(
        "+".join(f"{_DN_NAMES.get(kind, kind)}={_dn_value(value)}" for kind, value in rdn)
        for rdn in reversed(subject)
    )


def tls_extension(ssl_object: Any, server_cert: str | None) -> dict:
    """The ASGI ``tls`` scope extension for one TLS connection."""
    chain: list[str] = []
    name = None
    verified = getattr(ssl_object, "get_verified_chain", None)  # Python 3.13+
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        if verified is not None:
            # DER bytes on 3.13 (Certificate objects from the private API before it)
            chain = [
                ssl.DER_cert_to_PEM_cert(cert) if isinstance(cert, bytes) else cert.public_bytes()
                for cert in verified()
            ]
        else:
            chain = [ssl.DER_cert_to_PEM_cert(der)]
        subject = (ssl_object.getpeercert() or {}).get("subject")
        if subject:
            name = distinguished_name(subject)
    cipher = ssl_object.cipher()
    suite = None
    if cipher is not None:
        suite = _cipher_ids.get(cipher[0])
        if suite is None:
            for known in ssl_object.context.get_ciphers():
                _cipher_ids.setdefault(known["name"], known["id"] & 0xFFFF)
            suite = _cipher_ids.get(cipher[0])
    return {
        "server_cert": server_cert,
        "client_cert_chain": chain,
        "client_cert_name": name,
        # A certificate that fails verification fails the handshake itself.
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version()),
        "cipher_suite": suite,
    }


def first_certificate(path: str | None) -> str | None:
    """The first PEM certificate in ``path`` (the server's own; a chain may follow)."""
    if not path:
        return None
    try:
        with open(path) as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return None
    end_marker = "-----END CERTIFICATE-----"
    start = text.find("-----BEGIN CERTIFICATE-----")
    end = text.find(end_marker, start)
    if start < 0 or end < 0:
        return None
    return text[start : end + len(end_marker)] + "\n"
