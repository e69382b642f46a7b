"""A small headless-Chromium driver for tests: the Chrome DevTools Protocol over --remote-debugging-pipe.

Standard library only. Chromium reads commands from fd 3 and writes replies and events to fd 4, each a JSON message
ended by a NUL byte: no port, no websocket, no driver binary, nothing listening on the network.

    with Chromium() as browser:              # finds /usr/bin/chromium (or $TSF_CHROMIUM)
        page = browser.new_page(1280, 900)
        page.goto("file:///.../timeline.html")
        page.eval("document.title")
        page.click_at(x, y)                  # a real mouse press and release, as a user's
        page.wait_for("window.tsfTimeline.state.seeks > 0")
        png = page.screenshot()

Only stable domains are used (Target, Page, Runtime, Input, Network, Emulation).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time

FLAGS = [
    "--headless",
    "--no-sandbox",  # root in CI: Chromium refuses to start sandboxed as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",  # otherwise it calls Google's hosts, refused here, many times at once
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
    "--hide-scrollbars",
]


def find_chromium() -> str | None:
    for candidate in (os.environ.get("TSF_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


class CDPError(RuntimeError):
    pass


class Chromium:
    def __init__(self, binary: str | None = None, *, timeout: float = 30.0, extra_flags=()):
        self.binary = binary or find_chromium()
        if not self.binary:
            raise FileNotFoundError("no chromium found (apt-get install chromium, or set TSF_CHROMIUM)")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="tsf-chromium-profile-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # The child must see them as fds 3 and 4: copy them to free fds >= 10 first, so that neither dup2 below can
        # overwrite the other's source.
        hi_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 10)
        hi_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 10)

        def fds():
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [
                self.binary,
                *FLAGS,
                *extra_flags,
                f"--user-data-dir={self.profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
            # dup2 leaves 3 and 4 inheritable; every other fd Python opened is close-on-exec (PEP 446). Not
            # pass_fds=(3, 4): that would first touch the parent's own fds 3 and 4, which may not exist.
            preexec_fn=fds,
            close_fds=False,
            start_new_session=True,  # its own process group: close() ends the renderers and the GPU process too
        )
        for fd in {to_child_r, from_child_w, hi_r, hi_w}:
            os.close(fd)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict] = []
        self.call("Browser.getVersion")

    # -- protocol

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise CDPError(f"chromium closed the pipe: {self.stderr_tail()}")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout=None) -> dict:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._to_child, data) :]
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_event(self, method: str, session: str | None = None, timeout=None) -> dict:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for i, ev in enumerate(self.events):
                if ev["method"] == method and (session is None or ev.get("sessionId") == session):
                    return self.events.pop(i)
            self.events.append(self._read_message(deadline))

    def new_page(self, width: int = 1280, height: int = 900) -> Page:
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.call("Page.enable")
        page.call("Runtime.enable")
        page.call("Network.enable")
        page.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        return page

    def stderr_tail(self, n: int = 2000) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-n:]

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.call("Browser.close", timeout=5)
                except (CDPError, TimeoutError, OSError):
                    pass
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=5)
            # Renderer or crashpad helpers left in the group (only ours: the group is this browser's own).
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        finally:
            for fd in (self._to_child, self._from_child):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.log.close()
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Page:
    def __init__(self, browser: Chromium, session: str):
        self.browser = browser
        self.session = session

    def call(self, method, params=None, timeout=None):
        return self.browser.call(method, params, self.session, timeout)

    def goto(self, url: str) -> None:
        self.browser.events = [e for e in self.browser.events if e["method"] != "Page.loadEventFired"]
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CDPError(f"cannot open {url}: {result['errorText']}")
        self.browser.wait_event("Page.loadEventFired", self.session)

    def eval(self, expression: str, *, await_promise: bool = False):
        result = self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": await_promise}
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CDPError(f"{expression!r}: {details.get('exception', {}).get('description') or details.get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 10.0, interval: float = 0.05):
        """Poll ``expression`` until truthy; its value, or TimeoutError with the last value seen."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} still {value!r} after {timeout}s")
            time.sleep(interval)

    def center_of(self, selector: str) -> tuple[float, float]:
        box = self.eval(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        return box[0], box[1]

    def click_at(self, x: float, y: float) -> None:
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def click(self, selector: str) -> None:
        self.eval(f"document.querySelector({json.dumps(selector)}).scrollIntoView({{block: 'center'}})")
        self.click_at(*self.center_of(selector))

    def screenshot(self, path=None, full_page: bool = False) -> bytes:
        params = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        png = base64.b64decode(self.call("Page.captureScreenshot", params)["data"])
        if path:
            with open(path, "wb") as f:
                f.write(png)
        return png

    def requested_urls(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self.browser.events
            if e["method"] == "Network.requestWillBeSent" and e.get("sessionId") == self.session
        ]
