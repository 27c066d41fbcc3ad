"""A Paste Deploy application factory (``use = call:paste_app:factory``)."""

from __future__ import annotations

import logging


def factory(global_conf, greeting="hello", **local_conf):
    logging.getLogger("paste_app").info("loaded with %s", sorted(global_conf))

    def app(environ, start_response):
        body = f"{greeting} FOO={global_conf.get('FOO', '-')}".encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    return app
