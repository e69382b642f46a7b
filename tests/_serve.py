"""A static file server on 127.0.0.1 for browser tests, with HTTP Range support.

Python's http.server answers every GET with the whole file (200, no Accept-Ranges): Chromium then cannot seek a
video it has not downloaded (see REPORT.md). This handler answers ``Range: bytes=a-b`` with 206 and Content-Range.

    with serve(folder) as base_url:          # "http://127.0.0.1:PORT/"
        ...
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeHandler(SimpleHTTPRequestHandler):
    ranges = True
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".webm": "video/webm",
        ".mp4": "video/mp4",
        ".mkv": "video/x-matroska",
        ".vtt": "text/vtt",
        ".srt": "application/x-subrip",
    }

    def log_message(self, fmt, *args):  # quiet
        pass

    def send_head(self):
        self._left = None
        header = self.headers.get("Range") if self.ranges else None
        path = self.translate_path(self.path)
        if not header or os.path.isdir(path) or not os.path.isfile(path):
            return super().send_head()
        m = _RANGE.match(header.strip())
        size = os.path.getsize(path)
        if not m or (not m.group(1) and not m.group(2)):
            return super().send_head()
        if m.group(1):
            start = int(m.group(1))
            end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        else:  # suffix: the last N bytes
            start, end = max(0, size - int(m.group(2))), size - 1
        if start >= size or start > end:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return None
        f = open(path, "rb")
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self._left = end - start + 1
        return f

    def end_headers(self):
        if self.ranges:
            self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def copyfile(self, source, outputfile):
        left = getattr(self, "_left", None)
        if left is None:
            return super().copyfile(source, outputfile)
        while left > 0:
            chunk = source.read(min(left, 1 << 16))
            if not chunk:
                break
            outputfile.write(chunk)
            left -= len(chunk)


class PlainHandler(RangeHandler):
    """http.server as it is: no ranges (to show what goes wrong)."""

    ranges = False


@contextlib.contextmanager
def serve(folder, *, ranges: bool = True):
    handler = functools.partial(RangeHandler if ranges else PlainHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
