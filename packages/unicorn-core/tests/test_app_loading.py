"""APP_MODULE parsing: attributes and factory calls with literal arguments only."""

from __future__ import annotations

import pytest

from unicorn_core.app_loading import AppSpec, import_app, parse_app_uri
from unicorn_core.errors import AppImportError


@pytest.mark.parametrize(
    ("uri", "spec"),
    [
        ("app", AppSpec("app", ("application",))),
        ("pkg.mod:app", AppSpec("pkg.mod", ("app",))),
        ("pkg.mod:obj.wsgi", AppSpec("pkg.mod", ("obj", "wsgi"))),
        ("m:create()", AppSpec("m", ("create",), ((), {}))),
        ("m:create('x', 2, debug=True)", AppSpec("m", ("create",), (("x", 2), {"debug": True}))),
        (
            "m:make.app([1, 2], {'a': None})",
            AppSpec("m", ("make", "app"), (([1, 2], {"a": None}), {})),
        ),
    ],
)
def test_parse(uri, spec):
    assert parse_app_uri(uri) == spec


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("", "not a valid application path"),
        ("my-app:app", "not a valid application path"),
        ("m:", "names no attribute"),
        ("m:1 + 2", "not an attribute name or function call"),
        ("m:f(open('/etc/passwd'))", "must be literals"),
        ("m:f(**kw)", "must be literals"),
        ("m:f()()", "not an attribute name or function call"),
        ("m:app[0]", "not an attribute name or function call"),
    ],
)
def test_parse_rejects(uri, message):
    with pytest.raises(AppImportError, match=message):
        parse_app_uri(uri)


def test_import_app_calls_factories():
    assert import_app("apps:factory('yo')")("/") == "yo"
    assert import_app("apps:app")("/") == "hello"
    with pytest.raises(AppImportError, match="calling the factory"):
        import_app("apps:factory(1, 2, 3)")
