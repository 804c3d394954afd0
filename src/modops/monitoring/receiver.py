"""A local webhook receiver: what on-call's Slack channel would get, caught on 127.0.0.1.

For ``make demo-drift`` and for checking an alert setup before pointing
``MODOPS_ALERT_WEBHOOK_URL`` at a real channel: every POST body (JSON) is kept in memory and,
with ``log_path``, appended to a JSONL file.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["WebhookReceiver"]

MAX_BODY = 1 << 20  # 1 MiB: an alert is a few KiB


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 in a background thread; ``url`` takes Slack-style webhook posts.

    Use as a context manager; ``received`` lists the JSON bodies in arrival order.
    """

    def __init__(self, *, port: int = 0, log_path: Path | None = None) -> None:
        self.received: list[Any] = []
        self.log_path = log_path
        lock, received = threading.Lock(), self.received
        log = log_path

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                size = int(self.headers.get("Content-Length") or 0)
                if size > MAX_BODY:
                    self.send_error(413, "alert body too large")
                    return
                raw = self.rfile.read(size)
                try:
                    body = json.loads(raw or b"null")
                except json.JSONDecodeError:
                    self.send_error(400, "not JSON")
                    return
                with lock:
                    received.append(body)
                    if log is not None:
                        log.parent.mkdir(parents=True, exist_ok=True)
                        with log.open("a", encoding="utf-8") as fh:
                            fh.write(json.dumps(body) + "\n")
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/alerts"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
