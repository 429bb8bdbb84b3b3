"""The chat page (clients/web, built into dist/) served on loopback beside Envoy.

Envoy serves the API only; a page needs an origin of its own, which Envoy's CORS policy allows.
The page is no part of the Python package: its folder is a setting (SESERAGI_WEB_DIR).
"""

from __future__ import annotations

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib's name)
        """No access log: the page's few files are not worth a line each."""


class PageServer:
    """Serve `directory` at http://host:port/ from a daemon thread while the context is open."""

    def __init__(self, host: str, port: int, directory: Path) -> None:
        if not (directory / "index.html").exists():
            raise FileNotFoundError(f"the chat page is not built in {directory}: run `make web`")
        handler = partial(_QuietHandler, directory=str(directory))
        self._server = ThreadingHTTPServer((host, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> PageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"


def page_url(origin: str, edge_url: str, token: str) -> str:
    """The page with Envoy's URL and a token in the fragment, which browsers never send."""
    return f"{origin}/#{urlencode({'edge': edge_url, 'token': token})}"
