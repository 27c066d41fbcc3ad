"""The worker's memo of decoded request paths gives what decoding gives, and stays bounded."""

from __future__ import annotations

from unicorn_asgi import http11


def test_a_path_seen_again_decodes_the_same():
    for raw, text in (
        (b"/caf%C3%A9/a%2Fb", "/café/a/b"),
        (b"/plain", "/plain"),
        (b"/bad%FF", "/bad\udcff"),
        (b"/raw\xc3\xa9", "/raw\xe9"),
    ):
        assert http11._decode_path(raw) == text
        assert http11._paths[raw] == text
        assert http11._decode_path(raw) == text


def test_long_paths_are_not_kept_and_the_memo_is_bounded():
    long = b"/" + b"x" * 300
    assert http11._decode_path(long) == long.decode()
    assert long not in http11._paths
    for i in range(http11._PATHS_KEPT + 10):
        http11._decode_path(b"/n%d" % i)
    assert len(http11._paths) <= http11._PATHS_KEPT
