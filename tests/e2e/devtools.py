"""Headless Chromium driven over the DevTools protocol, for pages a test
must act on (fill a form, click, read what is shown) and photograph after
the fact. Python's standard library only: the protocol runs over a pipe
(--remote-debugging-pipe: Chromium reads commands on its fd 3 and writes on
its fd 4, each message JSON ended by a NUL byte).

    with Browser(workdir) as b:
        page = b.open("http://127.0.0.1:5280/")   # a browser context of its own
        page.wait("document.title !== ''")
        page.screenshot("/tmp/page.png")
"""
import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import time

from stack import free_port


class Browser:
    def __init__(self, workdir, width=1100, height=760):
        exe = shutil.which("chromium")
        if not exe:
            raise AssertionError("chromium is not installed (Debian package chromium; make test installs it)")
        self.size = (width, height)
        self.profile = os.path.join(workdir, "chromium-%d" % free_port())
        self.log_path = os.path.join(workdir, "chromium-devtools.log")
        argv = [exe, "--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                "--remote-debugging-pipe", "--user-data-dir=" + self.profile,
                "--window-size=%d,%d" % (width, height)]
        if os.geteuid() == 0:
            argv.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()

        def on_fds_3_and_4():  # in the child, before exec
            # out of the way first: either end may itself be fd 3 or 4
            r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)

        # close_fds=False: subprocess would close fds 3 and 4 after this
        # preexec_fn; every other descriptor of ours is non-inheritable (PEP 446).
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         close_fds=False, preexec_fn=on_fds_3_and_4, start_new_session=True)
        os.close(to_child_r)
        os.close(from_child_w)
        self.next_id = 0
        self.pending = b""
        self.events = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        # Chromium runs several processes; ours lead their own process group.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        for fd in (self.to_child, self.from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def log_tail(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-2000:]

    # ---- the protocol ----
    def _read_message(self, deadline):
        while b"\0" not in self.pending:
            left = deadline - time.time()
            if left <= 0 or not select.select([self.from_child], [], [], left)[0]:
                raise AssertionError("Chromium did not answer in time\n" + self.log_tail())
            chunk = os.read(self.from_child, 1 << 16)
            if not chunk:
                raise AssertionError("Chromium exited\n" + self.log_tail())
            self.pending += chunk
        msg, _, self.pending = self.pending.partition(b"\0")
        return json.loads(msg)

    def call(self, method, params=None, session=None, timeout=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self.to_child, data):]
        deadline = time.time() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise AssertionError("%s: %s" % (method, reply["error"]))
                return reply.get("result", {})
            self.events.append(reply)

    def open(self, url):
        """A new page in a browser context of its own (no shared cookies or storage)."""
        ctx = self.call("Target.createBrowserContext")["browserContextId"]
        target = self.call("Target.createTarget", {"url": "about:blank", "browserContextId": ctx})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.call("Runtime.enable")
        page.call("Log.enable")  # CSP violations are reported there
        page.call("Emulation.setDeviceMetricsOverride", {"width": self.size[0], "height": self.size[1],
                                                         "deviceScaleFactor": 1, "mobile": False})
        page.call("Page.navigate", {"url": url})
        return page


class Page:
    def __init__(self, browser, session):
        self.browser = browser
        self.session = session

    def call(self, method, params=None, timeout=30):
        return self.browser.call(method, params, session=self.session, timeout=timeout)

    def eval(self, expression):
        """The value of a JavaScript expression in the page (promises awaited)."""
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise AssertionError("in the page: %s\n%s" % (expression, r["exceptionDetails"]))
        return r["result"].get("value")

    def wait(self, expression, timeout=15, what=None):
        """Until the expression is true in the page; returns its value."""
        deadline = time.time() + timeout
        while True:
            try:
                v = self.eval(expression)
            except AssertionError:  # e.g. the page is still loading
                v = None
            if v:
                return v
            if time.time() > deadline:
                raise AssertionError("timed out waiting for %s; the page shows:\n%s\nerrors: %r"
                                     % (what or expression, self.text(), self.console_errors()))
            time.sleep(0.1)

    def text(self):
        try:
            return self.eval("document.body ? document.body.innerText : ''")
        except AssertionError as e:
            return str(e)

    def console_errors(self):
        """What the page logged as errors, CSP violations included."""
        out = []
        for e in self.browser.events:
            if e.get("sessionId") != self.session:
                continue
            if e.get("method") == "Runtime.exceptionThrown":
                out.append(json.dumps(e["params"]["exceptionDetails"])[:500])
            elif e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") == "error":
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in e["params"]["args"]))
            elif e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") == "error" \
                    and not e["params"]["entry"].get("url", "").endswith("/favicon.ico"):  # asked for by itself
                out.append(e["params"]["entry"].get("text", ""))
        return out

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path
