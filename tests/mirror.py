"""A local HTTP server on 127.0.0.1 that stands in for the download hosts in tests.

    with Mirror() as mirror:                     # serves mirror.root over http://127.0.0.1:PORT/
        mirror.put("https://host/path/f.pth", data)   # the file a download of that URL finds
        mirror.cut_off("host/path/f.pth")        # announce the full length, send half, close
        monkeypatch.setenv("CNNATLAS_MIRROR", mirror.url)

Files are laid out as `$CNNATLAS_MIRROR` expects: `https://host/a/b` is served at `/host/a/b`.
`mirror.requests` lists the paths asked for. Only the loopback address is ever bound.
"""

from __future__ import annotations

import http.server
import tempfile
import threading
import urllib.parse
from pathlib import Path


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):  # noqa: N802 (the standard library's name)
        mirror: Mirror = self.server.mirror  # type: ignore[attr-defined]
        path = urllib.parse.urlsplit(self.path).path.lstrip("/")
        mirror.requests.append(path)
        if path in mirror.cut:
            data = (mirror.root / path).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


class Mirror:
    """A threaded HTTP server on 127.0.0.1 serving a temporary folder; a context manager."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.root = Path(self._tmp.name)
        self.requests: list[str] = []
        self.cut: set[str] = set()
        handler = lambda *a, **k: _Handler(*a, directory=str(self.root), **k)  # noqa: E731
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.mirror = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def put(self, url: str, data: bytes) -> Path:
        """Serve `data` where a download of `url` through the mirror looks for it."""
        parts = urllib.parse.urlsplit(url)
        path = self.root / parts.netloc / parts.path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def cut_off(self, url: str) -> None:
        """Answer `url` with its full Content-Length but only half its bytes."""
        parts = urllib.parse.urlsplit(url)
        self.cut.add(f"{parts.netloc}{parts.path}")

    def __enter__(self) -> "Mirror":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._tmp.cleanup()
