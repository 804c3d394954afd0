"""Serve a built dashboard over http with the standard library (read-only, one folder)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["BackgroundServer", "make_server", "serve", "start_background"]


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves files without logging every request to stderr, and asks browsers not to cache.

    No caching, because a rebuilt site replaces the pages under the same names.
    """

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


def _check_built(site_dir: Path) -> Path:
    site_dir = Path(site_dir).absolute()
    if not (site_dir / "index.html").is_file():
        raise FileNotFoundError(f"no dashboard at {site_dir}: run `modops dashboard build` first")
    return site_dir


def make_server(site_dir: Path, *, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A bound (not yet running) http server for ``site_dir``; ``port=0`` picks a free port.

    Raises:
        FileNotFoundError: The site is not built yet.
        OSError: The address is in use or cannot be bound.
    """
    site_dir = _check_built(site_dir)
    handler = partial(_QuietHandler, directory=str(site_dir))
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True  # a browser's keep-alive connection must not block shutdown
    return server


def _url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in str(host) else host
    return f"http://{shown}:{port}/"


def serve(
    site_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve ``site_dir`` until interrupted (Ctrl+C); ``announce`` gets the URL once listening."""
    with make_server(site_dir, host=host, port=port) as server:
        if announce is not None:
            announce(_url(server))
        # Ctrl+C is how a person stops it: not an error.
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


class BackgroundServer:
    """A dashboard server on a daemon thread; use as a context manager (tests, notebooks)."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="modops-dashboard", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The base URL, ending with ``/``."""
        return _url(self._server)

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def start_background(site_dir: Path, *, host: str = "127.0.0.1", port: int = 0) -> BackgroundServer:
    """Start serving ``site_dir`` on a background thread (a free port by default) and return at once."""
    return BackgroundServer(make_server(site_dir, host=host, port=port))
