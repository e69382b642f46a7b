"""A small HTTP/1.1 file server on 127.0.0.1 that honours Range requests (Python's http.server ignores them), can
redirect, can serve over TLS, and records what it was asked for: the URL tests' stand-in for a web server.

    with RangeServer(folder) as server:
        url = server.url("video.mp4")      # http://127.0.0.1:PORT/video.mp4
        ...                                # server.requests: (method, path, Range header) of each request
        server.stall_after = 20_000        # from now on each response stops answering after 20,000 bytes
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_HEAD(self):
        self._serve(body=False)

    def do_GET(self):
        self._serve(body=True)

    def _serve(self, body: bool):
        server = self.server
        server.requests.append((self.command, self.path, self.headers.get("Range")))
        if self.path in server.redirects:
            self.send_response(302)
            self.send_header("Location", server.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = server.root / unquote(self.path.lstrip("/"))
        if not path.is_file():
            self.send_error(404)
            return
        size = path.stat().st_size
        start, end = 0, size - 1
        ranged = self.headers.get("Range")
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", ranged or "")
        if ranged and match and server.ranges:
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            else:  # suffix: the last N bytes
                start, end = max(0, size - int(match.group(2))), size - 1
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        if server.ranges:
            self.send_header("Accept-Ranges", "bytes")
        if self.headers.get("Connection", "").lower() == "close":
            self.send_header("Connection", "close")  # as real servers say it; FFmpeg reuses a socket not so marked
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if not body:
            return
        with open(path, "rb") as f:
            f.seek(start)
            left = end - start + 1
            try:
                while left > 0:
                    if server.stall_after is not None and end - start + 1 - left >= server.stall_after:
                        server.released.wait()  # a server that stops answering mid-response, until the test ends
                        break
                    chunk = f.read(min(left, 64 * 1024, server.stall_after or 64 * 1024))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client seeked elsewhere and closed this response


class RangeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root, *, ranges: bool = True, certfile=None, keyfile=None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.scheme = "http"
        if certfile:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile, keyfile)
            self.socket = context.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"
        self.root = Path(root)
        self.ranges = ranges
        self.requests: list = []
        self.redirects: dict[str, str] = {}
        self.stall_after: int | None = None  # bytes of each response after which it stops answering
        self.released = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def handle_error(self, request, client_address):  # a client that closes a kept-alive connection: normal
        pass

    def __enter__(self) -> RangeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.released.set()
        self.shutdown()
        self.server_close()
        self._thread.join()

    def url(self, name: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}/{name}"
