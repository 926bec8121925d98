"""The blog's feed on a real HTTP server on 127.0.0.1, as WordPress and Ghost serve it (the `feed_server` fixture)."""
from __future__ import annotations

import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


class FeedServer:
    """Serves one feed document and answers 304 when the client's validator matches, as WordPress does."""

    def __init__(self) -> None:
        self.body, self.status, self.content_type = b"", 200, "application/rss+xml; charset=UTF-8"
        self.etag: str | None = None
        self.last_modified: str | None = None
        self.requests: list[dict[str, str]] = []
        self.answers: list[int] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/feed/"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def serve(self, name: str | None = None, *, body: bytes | None = None, validators: str = "etag",
              status: int = 200, content_type: str | None = None) -> None:
        self.body = body if body is not None else (FIXTURES / name).read_bytes()
        self.status = status
        if content_type:
            self.content_type = content_type
        digest = hashlib.sha256(self.body).hexdigest()[:16]
        self.etag = f'"{digest}"' if validators in ("etag", "both") else None
        # A distinct date per document, so a changed feed never matches an old If-Modified-Since.
        self.last_modified = f"Fri, 20 Nov 2026 09:{int(digest[:4], 16) % 60:02d}:00 GMT" \
            if validators in ("last-modified", "both") else None

    def _answer(self, headers) -> int:
        if self.status != 200:
            return self.status
        if headers.get("If-None-Match") is not None:  # RFC 9110: it wins over If-Modified-Since
            return 304 if self.etag and headers["If-None-Match"] == self.etag else 200
        since = headers.get("If-Modified-Since")
        return 304 if self.last_modified and since == self.last_modified else 200

    def _handler(self):
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                feed.requests.append(dict(self.headers))
                status = feed._answer(self.headers)
                feed.answers.append(status)
                body = feed.body if status == 200 else b"" if status == 304 else b"<h1>Internal Server Error</h1>"
                self.send_response(status)
                self.send_header("Content-Type", feed.content_type if status == 200 else "text/html")
                for name, value in (("ETag", feed.etag), ("Last-Modified", feed.last_modified)):
                    if value:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/feed/"
