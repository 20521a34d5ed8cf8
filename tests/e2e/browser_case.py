"""End-to-end case: a real browser (Debian's chromium, headless) opens a chat
page served from another origin than the BOSH endpoint; the page's Strophe.js
logs in through nginx -> bosh-handler -> sessiond -> Prosody, sends a message
to itself and gets it back. With the page's origin missing from cors_origins
the browser must refuse to let the page read the answers.

The page is tests/e2e/browser/cors.html, served with Strophe's browser build
(tests/e2e/strophe/node_modules) by a small HTTP server in this process, which
also takes the page's JSON result (a same-origin POST to /result).
"""
import http.server
import json
import os
import shutil
import signal
import threading
import urllib.parse

from stack import Proc, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = {
    "/cors.html": (os.path.join(HERE, "browser", "cors.html"), "text/html; charset=utf-8"),
    "/strophe.umd.min.js": (os.path.join(HERE, "strophe", "node_modules", "strophe.js", "dist",
                                         "strophe.umd.min.js"), "text/javascript"),
}


class Chromium:
    """Headless Chromium on one URL, with a profile of its own, for a with block."""

    def __init__(self, workdir, url, extra_args=()):
        browser = shutil.which("chromium")
        if not browser:
            raise AssertionError("chromium is not installed (Debian package chromium; make test installs it)")
        self.profile = os.path.join(workdir, "chromium-%d" % free_port())
        argv = [browser, "--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                "--user-data-dir=" + self.profile] + list(extra_args) + [url]
        if os.geteuid() == 0:
            argv.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
        self.log = os.path.join(workdir, "chromium.log")
        self.proc = Proc("chromium", argv, self.log)

    def log_tail(self):
        return open(self.log, errors="replace").read()[-2000:]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        # Chromium runs several processes; ours lead their own process group.
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.proc.stop()
        shutil.rmtree(self.profile, ignore_errors=True)


class PageServer:
    """Serves the page on its own origin, http://127.0.0.1:PORT, and keeps the result."""

    def __init__(self):
        self.port = free_port()
        self.origin = "http://127.0.0.1:%d" % self.port
        self.results = []
        self.got = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = urllib.parse.urlsplit(self.path).path
                if path not in FILES:
                    self.send_error(404)
                    return
                name, ctype = FILES[path]
                with open(name, "rb") as f:
                    data = f.read()
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                outer.results.append(json.loads(self.rfile.read(n) or b"{}"))
                outer.got.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def open(self, workdir, bosh_url, domain, jid, password, give_up=10, timeout=40):
        """Runs the page in headless Chromium; returns the page's result. The
        page itself gives up after give_up seconds without its message."""
        self.got.clear()
        self.results.clear()
        q = urllib.parse.urlencode({"bosh": bosh_url, "domain": domain, "jid": jid, "pw": password,
                                    "give_up": give_up})
        with Chromium(workdir, "%s/cors.html?%s" % (self.origin, q)) as browser:
            if not self.got.wait(timeout):
                raise AssertionError("the page reported nothing within %d s\n%s"
                                     % (timeout, browser.log_tail()))
            return self.results[0]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
