"""JSON over keep-alive HTTP/1.1, as the router and the stand-in's REST API speak it: both ends.

* :class:`JsonRequestHandler` — the servers' ``BaseHTTPRequestHandler``: HTTP/1.1 keep-alive,
  ``TCP_NODELAY``, the access log at DEBUG, :meth:`~JsonRequestHandler.send_body`.
* :class:`ThreadLocalSession` — the clients' ``requests.Session``, one per thread.
"""

from __future__ import annotations

import http.server
import logging
import socket
import threading
from typing import Optional

JSON = "application/json"
_JSON_HEADERS = {"Content-Type": JSON}


def set_nodelay(sock: socket.socket) -> None:
    """Disables Nagle's algorithm: a response written as headers then body must not wait for the
    peer's delayed ACK (~40 ms on Linux)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # not TCP (e.g. a Unix socket in tests)
        pass


class JsonRequestHandler(http.server.BaseHTTPRequestHandler):
    """Base of the router's and the stand-in's handlers; subclasses set ``logger`` and ``server_version``."""

    protocol_version = "HTTP/1.1"  # keep-alive: a client reuses one connection per thread
    logger = logging.getLogger("serving.http")

    def setup(self):
        super().setup()
        set_nodelay(self.connection)

    def log_message(self, fmt, *args):  # quiet by default; routed to logging
        self.logger.debug("%s - %s", self.address_string(), fmt % args)

    def send_body(self, status: int, body: bytes, content_type: str = JSON) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


class ThreadLocalSession:
    """HTTP calls through one ``requests.Session`` per thread.

    A Session keeps its connections alive between calls but is not thread-safe; one per thread gives
    every thread its own kept-alive connection.
    """

    def __init__(self):
        self._local = threading.local()

    def request(self, method: str, url: str, body: Optional[bytes] = None,
                timeout: Optional[float] = None):
        """``method url`` with ``body`` as JSON; returns the ``requests.Response``."""
        session = getattr(self._local, "session", None)
        if session is None:
            import requests  # only the REST clients need it

            session = self._local.session = requests.Session()
        return session.request(method, url, data=body, timeout=timeout,
                               headers=_JSON_HEADERS if body else None)
