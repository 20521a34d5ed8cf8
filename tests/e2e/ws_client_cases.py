"""End-to-end cases: real web XMPP clients over our WebSocket endpoint
(RFC 7395), each a chat both ways and a logout, each session's row saying
transport 'websocket':

- converse.js (its own browser build) in headless Chromium, through nginx,
  chatting with bob on the raw client of ws_cases.py;
- StanzaJS in Node with WebSocket only, two clients, through nginx;
- the same StanzaJS chat through Apache's proxy (conf/apache/websocket.conf).

The Node packages are pinned in tests/e2e/strophe/package-lock.json.
Run them alone with: python3 tests/e2e/run.py -k ws_client
"""
import http.server
import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET

from browser_case import Chromium
from cases import case, expect, side_stack
from stack import free_port
from strophe_case import STROPHE_DIR, USERS, _check_node
from ws_cases import FRAMING, login, tag, ws_row

HERE = os.path.dirname(os.path.abspath(__file__))
STANZA_CHAT = os.path.join(STROPHE_DIR, "stanza-chat.mjs")
CONVERSE_PAGE = os.path.join(HERE, "browser", "converse-ws.html")
CONVERSE_DIST = os.path.join(STROPHE_DIR, "node_modules", "converse.js", "dist")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript",
         ".css": "text/css", ".json": "application/json", ".map": "application/json",
         ".svg": "image/svg+xml", ".png": "image/png", ".woff": "font/woff", ".woff2": "font/woff2",
         ".ttf": "font/ttf", ".wasm": "application/wasm", ".mp3": "audio/mpeg", ".ogg": "audio/ogg"}
# No name resolves: the page and its WebSocket use 127.0.0.1, and nothing may
# come from another host. The page's console goes to Chromium's log.
CHROMIUM_ARGS = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--enable-logging=stderr"]


class ConversePageServer:
    """Serves converse-ws.html and converse.js's dist/ folder on an origin of
    their own (nothing comes from another host), takes the page's JSON result
    (a POST) and answers hold.js only once the result is in, so that the
    page's load event, and Chromium's --screenshot, come after it."""

    def __init__(self):
        self.port = free_port()
        self.origin = "http://127.0.0.1:%d" % self.port
        self.result = None
        self.got = threading.Event()
        self.missing = []  # paths the page asked for and did not get
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                if path == "/hold.js":
                    outer.got.wait(60)
                    return self.answer(b"", "text/javascript")
                name = outer.file_for(path)
                if name is None:
                    outer.missing.append(path)
                    return self.send_error(404)
                with open(name, "rb") as f:
                    self.answer(f.read(), TYPES.get(os.path.splitext(name)[1], "application/octet-stream"))

            def answer(self, data, ctype):
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                outer.result = json.loads(self.rfile.read(n) or b"{}")
                outer.got.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def file_for(path):
        if path == "/converse-ws.html":
            return CONVERSE_PAGE
        if not path.startswith("/dist/"):
            return None
        name = os.path.realpath(os.path.join(CONVERSE_DIST, path[len("/dist/"):]))
        if not name.startswith(os.path.realpath(CONVERSE_DIST) + os.sep) or not os.path.isfile(name):
            return None
        return name

    def close(self):
        self.got.set()  # a hold.js still waiting
        self.httpd.shutdown()
        self.httpd.server_close()


def bob_answers(bob, text, answer, page_done, deadline):
    """bob (the raw client of ws_cases.py) waits for text in a chat message
    and answers it to the sender's full JID; returns that message, or None
    once the page has given up or the deadline passed."""
    while time.time() < deadline and not page_done.is_set():
        try:
            # short reads: a ping answered inside recv() must not stretch the deadline
            e = bob.element(timeout=0.5)
        except socket.timeout:
            continue
        if tag(e) == "message" and e.findtext("{jabber:client}body") == text:
            bob.send("<message xmlns='jabber:client' to='%s' type='chat'><body>%s</body></message>"
                     % (e.get("from"), answer))
            return e
    return None


def stanza_chat(st, url):
    """StanzaJS's two clients chat over url; returns their report after
    checking it and both sessions' rows."""
    node = _check_node()
    user1, user2 = "alice@" + st.domain, "bob@" + st.domain
    argv = [node, STANZA_CHAT, url, st.domain, user1, USERS["alice"], user2, USERS["bob"]]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                           cwd=STROPHE_DIR)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("StanzaJS did not finish in 60 s\n--- stdout ---\n%s\n--- stderr ---\n%s"
                             % (e.stdout, e.stderr))
    detail = "\n--- stdout ---\n%s\n--- stderr ---\n%s" % (p.stdout, p.stderr[-6000:])
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    try:
        out = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise AssertionError("StanzaJS printed no JSON result (exit %d)%s" % (p.returncode, detail))
    expect(p.returncode == 0 and out.get("ok"), "StanzaJS failed (exit %d)%s" % (p.returncode, detail))
    for who, bare in (("user1", user1), ("user2", user2)):
        jid = out[who].get("jid") or ""
        expect(jid.startswith(bare + "/"), "%s bound %r%s" % (who, jid, detail))
        r = ws_row(st, jid, lambda r: r["state"] == "ended")
        expect(r["transport"] == "websocket" and r["end_condition"] == "terminate",
               "row of %s: %r%s" % (jid, r, detail))
    return out


@case
def test_ws_client_stanza_chat(st):
    stanza_chat(st, st.ws_url)


@case
def test_ws_client_stanza_through_apache(st):
    from apache import Apache
    a = Apache(os.path.join(st.dir, "apache-ws-stanza"), ["proxy", "proxy_wstunnel"],
               "conf/apache/websocket.conf", {"/run/bosh/ws.sock": st.ws_sock})
    try:
        a.start()
        stanza_chat(st, "ws://127.0.0.1:%d/xmpp-websocket" % a.port)
        a.stop()  # a tunnel's line is logged when it ends
        # (mod_proxy_wstunnel logs the upgrade with status 200)
        with open(os.path.join(a.dir, "access.log")) as f:
            tunnels = [ln for ln in f if '"GET /xmpp-websocket HTTP/1.1"' in ln]
        expect(len(tunnels) == 2, "Apache's access log shows %d WebSocket requests, not 2" % len(tunnels))
    finally:
        a.stop()


@case
def test_ws_client_converse_in_chromium(st):
    """converse.js in headless Chromium over WebSocket through nginx, as alice,
    chats with bob (the raw client of ws_cases.py) and logs out. The page's
    origin is the test's own server, so a sessiond (and nginx) of its own, in
    front of the same Prosody, lists it in cors_origins: a browser sends its
    Origin, and sessiond refuses one it does not list (ws_cases.py)."""
    if not os.path.isfile(os.path.join(CONVERSE_DIST, "converse.min.js")):
        raise AssertionError("converse.js is missing: run `npm ci --prefix tests/e2e/strophe`")
    server = ConversePageServer()
    other = side_stack(st, "cors_origins = %s\n" % server.origin)
    try:
        other.start_sessiond()
        other.start_nginx()
        converse_chat(other, server, os.path.join(st.dir, "converse-ws.png"))
    finally:
        other.stop()
        server.close()


def converse_chat(st, server, shot):
    bob = login(st, "bob", "raw-peer")
    try:
        bob.send("<presence xmlns='jabber:client'/>")  # available: a chat to the bare JID reaches it
        token = uuid.uuid4().hex
        text, answer = "hello from converse %s" % token, "answer to %s" % token
        q = urllib.parse.urlencode({"ws": st.ws_url, "jid": "alice@" + st.domain, "pw": USERS["alice"],
                                    "peer": "bob@" + st.domain, "text": text, "answer": answer,
                                    "give_up": 25})
        args = ["--screenshot=" + shot, "--window-size=1280,900"] + CHROMIUM_ARGS
        with Chromium(st.dir, "%s/converse-ws.html?%s" % (server.origin, q), args) as browser:
            got = bob_answers(bob, text, answer, server.got, time.time() + 30)
            expect(server.got.wait(30), "the page reported nothing (bob got %s)\n%s"
                   % (got is not None and ET.tostring(got), browser.log_tail()))
            out = server.result
            detail = "\n--- page result ---\n%s\n--- not found: %s\n--- chromium ---\n%s" % (
                json.dumps(out, indent=1), server.missing, browser.log_tail())
            expect(got is not None, "bob never got %r%s" % (text, detail))
            expect(out.get("ok"), "the page failed: %s%s" % (out.get("error"), detail))
            # Chromium writes the screenshot at the load event (hold.js, answered now) and ends.
            browser.proc.p.wait(20)
        print("      screenshot: %s (the data folder is kept with --keep or a failure)" % shot, flush=True)
        expect(os.path.isfile(shot) and os.path.getsize(shot) > 0, "no screenshot")
        alice = out.get("jid") or ""
        expect(alice.startswith("alice@%s/" % st.domain), "converse bound %r%s" % (alice, detail))
        expect(got.get("from") == alice, "bob's message came from %r, not %r" % (got.get("from"), alice))
        expect(out.get("service") == st.ws_url and out.get("transport") == "websocket",
               "converse used %r over %r%s" % (out.get("transport"), out.get("service"), detail))
        rec = out.get("received") or {}
        expect(rec.get("body") == answer and rec.get("from") == bob.jid, "converse got %r%s" % (rec, detail))
        expect(any(x.startswith("sent <close ") for x in out["raw"]), "converse sent no <close/>" + detail)
        r = ws_row(st, alice, lambda r: r["state"] == "ended")
        expect(r["transport"] == "websocket" and r["end_condition"] == "terminate", r)
        r = ws_row(st, bob.jid, lambda r: r["state"] == "active")
        expect(r["transport"] == "websocket", r)
        bob.send("<close xmlns='%s'/>" % FRAMING)
        msgs, code = bob.until_closed()
        expect(code == 1000 and any("<close" in m for m in msgs), (code, msgs))
        r = ws_row(st, bob.jid, lambda r: r["state"] == "ended")
        expect(r["end_condition"] == "terminate", r)
    finally:
        bob.close()


@case
def test_ws_client_converse_from_an_unlisted_origin_refused(st):
    """The same page against the endpoint whose cors_origins does not list its
    origin: Chromium sends the Origin, sessiond refuses the handshake (403),
    converse never connects, and no session is made."""
    if not os.path.isfile(os.path.join(CONVERSE_DIST, "converse.min.js")):
        raise AssertionError("converse.js is missing: run `npm ci --prefix tests/e2e/strophe`")
    server = ConversePageServer()
    try:
        q = urllib.parse.urlencode({"ws": st.ws_url, "jid": "alice@" + st.domain, "pw": USERS["alice"],
                                    "peer": "bob@" + st.domain, "text": "-", "answer": "-", "give_up": 5})
        before = len(open(st.sessiond_log, errors="replace").read())
        with Chromium(st.dir, "%s/converse-ws.html?%s" % (server.origin, q), CHROMIUM_ARGS) as browser:
            expect(server.got.wait(30), "the page reported nothing\n" + browser.log_tail())
            out = server.result
            detail = "\n--- page result ---\n%s\n--- chromium ---\n%s" % (json.dumps(out, indent=1),
                                                                           browser.log_tail())
        expect(not out.get("ok") and "connected" not in out["events"] and out["jid"] is None,
               "converse connected from an origin cors_origins does not list" + detail)
        log = open(st.sessiond_log, errors="replace").read()[before:]
        expect("refused (403): Origin not allowed by cors_origins" in log,
               "no refusal in sessiond's log:\n%s%s" % (log[-2000:], detail))
        expect(" created for " not in log, "a session was made:\n" + log[-2000:])
    finally:
        server.close()
