"""The HTTP settings every worker shares: trusted-peer matching and the parser options."""

from __future__ import annotations

import pytest

from unicorn_core.http_settings import AddressMatcher


@pytest.mark.parametrize(
    ("items", "host", "trusted"),
    [
        (["127.0.0.1", "::1"], "127.0.0.1", True),
        (["127.0.0.1", "::1"], "::1", True),
        (["127.0.0.1", "::1"], "10.0.0.1", False),
        ("127.0.0.1, 10.0.0.0/8", "10.1.2.3", True),  # a string as in a config file
        (["10.0.0.0/8"], "11.0.0.1", False),
        (["2001:db8::/32"], "2001:db8::7", True),
        (["10.0.0.0/8"], "not-an-address", False),
        (["*"], "203.0.113.9", True),
        (["*"], None, True),
        (["unix:"], None, True),  # a peer on a Unix socket
        (["127.0.0.1"], None, False),
        ([], "127.0.0.1", False),
    ],
)
def test_matcher(items, host, trusted):
    matcher = AddressMatcher(items)
    assert matcher(host) is trusted
    if host is not None:
        assert (host in matcher) is trusted


def test_parser_options_take_settings_or_their_defaults():
    from types import SimpleNamespace

    from unicorn_core.http_settings import parser_options

    assert parser_options(SimpleNamespace()) == {
        "limit_request_line": 4094,
        "limit_request_fields": 100,
        "limit_request_field_size": 8190,
        "permit_obsolete_folding": False,
        "strip_header_spaces": False,
        "permit_unconventional_http_method": False,
        "permit_unconventional_http_version": False,
        "casefold_http_method": False,
    }
    options = parser_options(SimpleNamespace(limit_request_line=100, permit_obsolete_folding=True))
    assert options["limit_request_line"] == 100 and options["permit_obsolete_folding"] is True
