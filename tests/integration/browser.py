"""A headless Chromium for tests, driven over the Chrome DevTools protocol
with Python's standard library only.

Debian's `chromium` runs with --remote-debugging-pipe: it reads protocol
messages (JSON, each ended by a NUL byte) from its fd 3 and writes answers
and events to its fd 4, so there is no port to pick, no websocket and
nothing to download. One Browser opens one page (a target attached in
"flat" mode: every page command carries the session id).

    with Browser() as b:
        b.open("http://127.0.0.1:8001/ui")
        b.wait_js("document.querySelectorAll('tr').length > 2")
        b.screenshot("/tmp/ui.png")

find_chromium() returns None when no browser is installed: callers skip
with that message. Every wait has a deadline; the browser process and its
fresh profile directory are removed on close (and at exit).
"""
import atexit
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

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--mute-audio", "--hide-scrollbars",
         "--remote-debugging-pipe"]

_LIVE = set()


@atexit.register
def _kill_leftovers():
    for b in list(_LIVE):
        b.close()


def find_chromium():
    """Path of a Chromium binary, or None."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserError(Exception):
    pass


class Browser:
    def __init__(self, width=1280, height=900, binary=None, log_path=None):
        self.binary = binary or find_chromium()
        if self.binary is None:
            raise BrowserError("no chromium binary found (apt-get install "
                               "chromium)")
        self.profile = tempfile.mkdtemp(prefix="ledger-chromium-")
        self.log_path = log_path or os.path.join(self.profile, "chromium.log")
        self._buf = b""
        self._next_id = 0
        self._events = []
        self.session = None
        self.proc = None
        # Our ends: we write commands to cmd_w, read answers from res_r.
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        # Chromium expects the pipe on fds 3 and 4: copy our ends above 10
        # (closed on exec) and dup2 them into place in the child, which
        # clears close-on-exec there.
        hi_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD_CLOEXEC, 10)
        hi_w = fcntl.fcntl(res_w, fcntl.F_DUPFD_CLOEXEC, 10)

        def child_fds():
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        try:
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    [self.binary, *FLAGS, f"--user-data-dir={self.profile}",
                     f"--window-size={width},{height}", "about:blank"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    close_fds=False, preexec_fn=child_fds,
                    start_new_session=True)
        finally:
            for fd in (cmd_r, res_w, hi_r, hi_w):
                os.close(fd)
        self._w = cmd_w
        self._r = res_r
        _LIVE.add(self)
        try:
            target = self.call("Target.createTarget",
                               {"url": "about:blank"}, browser=True)
            att = self.call("Target.attachToTarget",
                            {"targetId": target["targetId"],
                             "flatten": True}, browser=True)
            self.session = att["sessionId"]
            self.call("Page.enable")
            self.call("Runtime.enable")
            self.set_viewport(width, height)
        except Exception:
            self.close()
            raise

    # ---- protocol -------------------------------------------------------

    def _read_message(self, deadline):
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("no answer from chromium in time")
            ready, _, _ = select.select([self._r], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise BrowserError("chromium closed its pipe (crashed?): "
                                   + self.log_tail())
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, timeout=60, browser=False):
        """Send a command and return its result (raises on an error)."""
        self._next_id += 1
        mid = self._next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if not browser:
            msg["sessionId"] = self.session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            n = os.write(self._w, data)
            data = data[n:]
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == mid:
                if "error" in m:
                    raise BrowserError(f"{method}: {m['error']}")
                return m.get("result", {})
            if "method" in m:
                self._events.append(m)
                del self._events[:-200]

    # ---- page -----------------------------------------------------------

    def set_viewport(self, width, height):
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1,
                   "mobile": False})

    def open(self, url, timeout=60):
        """Navigate and wait until the document has loaded."""
        self.call("Page.navigate", {"url": url})
        self.wait_js("document.readyState === 'complete' && "
                     f"location.href === {json.dumps(url)}",
                     timeout=timeout, what=f"{url} to load")

    def js(self, expression):
        """Evaluate in the page; returns the value (JSON-able)."""
        r = self.call("Runtime.evaluate",
                      {"expression": expression, "returnByValue": True,
                       "awaitPromise": True})
        if "exceptionDetails" in r:
            raise BrowserError(f"{expression}: "
                               f"{r['exceptionDetails'].get('text')} "
                               f"{r['exceptionDetails'].get('exception')}")
        return r["result"].get("value")

    def wait_js(self, expression, timeout=60, interval=0.2, what=None):
        """Poll `expression` until truthy; return its value."""
        end = time.monotonic() + timeout
        last = None
        while True:
            try:
                v = self.js(expression)
                if v:
                    return v
                last = v
            except BrowserError as e:
                last = e
            if time.monotonic() >= end:
                raise AssertionError(
                    f"timed out after {timeout:.0f}s waiting for "
                    f"{what or expression} (last: {last!r})")
            time.sleep(interval)

    def screenshot(self, path, full_page=True):
        """Save a PNG of the page (the whole page when full_page)."""
        params = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            m = self.call("Page.getLayoutMetrics")
            size = m.get("cssContentSize") or m["contentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"],
                              "height": size["height"], "scale": 1}
        data = base64.b64decode(self.call("Page.captureScreenshot",
                                          params)["data"])
        with open(path, "wb") as f:
            f.write(data)
        return data

    def console_errors(self):
        """Exceptions thrown in the page so far (Runtime events)."""
        return [e["params"] for e in self._events
                if e.get("method") == "Runtime.exceptionThrown"]

    # ---- lifetime -------------------------------------------------------

    def log_tail(self, n=2000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def close(self):
        _LIVE.discard(self)
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.call("Browser.close", browser=True, timeout=5)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                # Its own process group (start_new_session): the
                # renderers and helpers go with it.
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        for fd in ("_w", "_r"):
            if getattr(self, fd, None) is not None:
                os.close(getattr(self, fd))
                setattr(self, fd, None)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
