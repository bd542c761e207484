"""A local HTTP server of files, for testing what reads from the web (the ``web`` image store).

The stdlib's ``http.server`` answers every GET with the whole file; image stores read ranges,
so this one honours ``Range: bytes=a-b`` (one range, ``206`` with ``Content-Range``, ``416``
past the end) - unless built with ``ranges=False``, to test a client against a server that
ignores them. It listens on 127.0.0.1 on a free port, in a daemon thread.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import tempfile
import threading
import urllib.parse
from typing import Any

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class FileServer:
    """Serves the files of a scratch directory: ``put(name, data)`` returns their URL."""

    def __init__(self, ranges: bool = True, head_length: bool = True) -> None:
        self.root = tempfile.mkdtemp(prefix="stackcore-http-")
        self.ranges = ranges
        self.head_length = head_length  # HEAD answers carry Content-Length
        self.requests: list[tuple[str, str, str]] = []  # (method, path, Range header)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet: failures are asserted
                pass

            def do_HEAD(self) -> None:  # http.server's naming
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                server.requests.append((self.command, self.path,
                                        self.headers.get("Range", "")))
                name = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
                path = os.path.join(server.root, name)
                if "/" in name or not name or not os.path.isfile(path):
                    self._status(404)
                    return
                size = os.path.getsize(path)
                start, end, status = 0, size - 1, 200
                wanted = _RANGE.match(self.headers.get("Range", "")) if server.ranges else None
                if wanted and body:
                    first, last = wanted.groups()
                    if first:
                        start = int(first)
                        end = min(int(last), size - 1) if last else size - 1
                    elif last:  # the last N bytes
                        start = max(0, size - int(last))
                    if start >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                self.send_response(status)
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                if body or server.head_length:
                    self.send_header("Content-Length", str(max(0, end - start + 1)))
                self.end_headers()
                if body:
                    with open(path, "rb") as handle:
                        handle.seek(start)
                        left = end - start + 1
                        while left > 0:
                            chunk = handle.read(min(left, 256 * 1024))
                            if not chunk:
                                break
                            self.wfile.write(chunk)
                            left -= len(chunk)

            def _status(self, code: int) -> None:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name="stackcore-http-files")
        self._thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{urllib.parse.quote(name)}"

    def put(self, name: str, data: bytes) -> str:
        """Serve ``data`` as ``name``; its URL."""
        with open(os.path.join(self.root, name), "wb") as handle:
            handle.write(data)
        return self.url(name)

    def remove(self, name: str) -> None:
        os.unlink(os.path.join(self.root, name))

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> FileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
