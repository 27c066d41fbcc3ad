"""unicorn_uwsgi: the uwsgi protocol (nginx's ``uwsgi_pass``) as a sans-IO server connection.

Bytes in, events out, like ``unicorn_http.H1Connection``: a uwsgi packet
becomes the same ``unicorn_http.Request`` an HTTP/1.1 request would, and the
response goes out as HTTP/1.x bytes, so every unicorn worker serves it
through the ``unicorn.protocols`` seam (``unicorn --protocol uwsgi``)::

    conn = UwsgiConnection()
    conn.receive_data(sock.recv(65536))
    request = conn.next_event()        # Request, then Data / EndOfMessage
    sock.sendall(conn.respond(200, [(b"Content-Type", b"text/plain")], b"hi"))
    sock.close()                       # one request per uwsgi connection
"""

from __future__ import annotations

from .connection import UwsgiConnection
from .packet import MAX_CGI_VARS, PacketHead, pack, parse_vars

__version__ = "0.1.0"

__all__ = ["MAX_CGI_VARS", "PacketHead", "UwsgiConnection", "__version__", "pack", "parse_vars"]
