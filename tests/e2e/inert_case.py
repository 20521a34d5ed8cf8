"""End-to-end case: a page on another origin makes a browser open our answers
as documents, and no script from the stanzas in them runs.

The attack: a victim's session (sid and rid known to the attacker, who may
have made the session himself) has a stanza queued that another XMPP user sent:
an XHTML-IM body with <script> and <img onerror>. A hostile page submits a
top-level form POST (enctype text/plain, so the request body is a BOSH
<body/>) to the endpoint; the browser renders the answer as a document, as
HTML when the session was created with content='text/html', as XML (where
XHTML elements run too) with the default type. Each injected script would
load http://PAGE/beacon?LABEL; the test asserts no beacon came.

The control, in the same browser setup: the very bytes of each answer (its
rid sent again returns them), served by the test's own server with the same
headers except Content-Security-Policy and X-Content-Type-Options. There the
beacons must come, within the same time the attack was given, or the
detection proves nothing.
"""
import http.server
import json
import os
import threading
import time
import urllib.parse

import bosh
from browser_case import Chromium
from stack import free_port

GRACE = 5.0  # seconds a rendered answer has to send its beacons
INERT = {"content-security-policy": "sandbox; default-src 'none'", "x-content-type-options": "nosniff"}
NOT_REPLAYED = set(INERT) | {"content-length", "connection", "transfer-encoding", "date", "server",
                             "keep-alive"}


class HostileSite:
    """The attacker's origin: the form page, the beacon sink, and the replays."""

    def __init__(self):
        self.port = free_port()
        self.origin = "http://127.0.0.1:%d" % self.port
        self.beacons = []  # (time, label)
        self.replays = {}  # name -> (headers, bytes)
        self.served = {}   # name -> time a replay was served
        self.submitted = threading.Event()
        self.result = None
        outer = self
        pages = os.path.join(os.path.dirname(os.path.abspath(__file__)), "browser")

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                if u.path == "/beacon":
                    outer.beacons.append((time.time(), u.query))
                    self.send_response(204)
                    self.end_headers()
                elif u.path in ("/form-post.html", "/script-get.html"):
                    with open(pages + u.path, "rb") as f:
                        self.answer({"Content-Type": "text/html; charset=utf-8"}, f.read())
                else:
                    self.send_error(404)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(n)
                path = urllib.parse.urlsplit(self.path).path
                name = path[len("/replay/"):] if path.startswith("/replay/") else None
                if name in outer.replays:
                    headers, data = outer.replays[name]
                    outer.served[name] = time.time()
                    self.answer(headers, data)
                elif path == "/result":
                    outer.result = json.loads(data or b"{}")
                    outer.submitted.set()
                    self.send_response(204)
                    self.end_headers()
                else:
                    self.send_error(404)

            def answer(self, headers, data):
                self.send_response(200)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def beacon(self, label):
        return "%s/beacon?%s" % (self.origin, label)

    def open(self, workdir, page, args, settled=lambda: None, timeout=40):
        """Opens page?args in headless Chromium and waits for the page's
        result; settled() runs while the browser is still up."""
        self.submitted.clear()
        url = "%s/%s?%s" % (self.origin, page, urllib.parse.urlencode(args))
        with Chromium(workdir, url, ["--disable-popup-blocking"]) as browser:
            if not self.submitted.wait(timeout):
                raise AssertionError("%s reported nothing within %d s\n%s" % (page, timeout, browser.log_tail()))
            return settled()

    def submit(self, workdir, forms, settled):
        """The form page: submits each form; settled() returns when every answer was served."""
        return self.open(workdir, "form-post.html", {"forms": json.dumps(forms)}, settled)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def bosh_form(action, sid, rid):
    """A text/plain form whose body is "<body ... x='='/>\\r\\n": a valid BOSH request."""
    return {"action": action, "value": "'/>",
            "name": "<body xmlns='%s' sid='%s' rid='%d' x='" % (bosh.NS, sid, rid)}


def hostile_message(to, site, label):
    """What another XMPP user sends: script as XHTML-IM, and as plain text."""
    def load(what):  # no quotes: the server may write ' as &apos;, which HTML leaves in a <script>
        return "new Image().src=`%s`" % site.beacon("%s-%s" % (label, what))
    return ("<message xmlns='jabber:client' type='chat' to='%s'>"
            "<body>&lt;script&gt;%s&lt;/script&gt;</body>"
            "<html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>"
            "<p>hello</p><script>%s</script><img src='/x' onerror=\"%s\"/></body></html>"
            "</message>" % (to, load("text"), load("script"), load("onerror")))


class ContentSession(bosh.Session):
    """A session created with content=CONTENT (None: the default type)."""

    def __init__(self, url, domain, content):
        super().__init__(url, domain)
        self.content = content

    def create(self, **extra):
        return super().create(content=self.content, **extra)


def run(st, users, expect, row):
    site = HostileSite()
    victims = {}
    try:
        sender = bosh.Session(st.url, st.domain, wait=2)
        sender.login("bob", users["bob"], "inert-sender")
        for label, content, user in (("html", "text/html; charset=utf-8", "alice"), ("xml", None, "carol")):
            s = ContentSession(st.url, st.domain, content)
            s.login(user, users[user], "inert-" + label)
            victims[label] = s
            sender.request_async(hostile_message(s.jid, site, label))
        # Queued by the time the form comes: a request after a pause is
        # answered at once, with whatever is there.
        time.sleep(1)
        # the attack: each victim's next rid, from the hostile page
        rids = {label: s.next_rid() for label, s in victims.items()}
        forms = [bosh_form(st.url, victims[label].sid, rids[label]) for label in victims]

        answers = {}

        def answered():
            for label, s in victims.items():
                row(st, s.sid, wait=30, until=lambda r, rid=rids[label]: r["rid"] >= rid)
                # what the browser got: the same rid again returns the same answer
                answers[label] = s.request("", rid=rids[label])
                s.request_async()  # held: the session outlives the grace time
            time.sleep(GRACE)
            return list(site.beacons)
        ran = site.submit(st.dir, forms, answered)
        for label, r in answers.items():
            expect(site.beacon("%s-script" % label) in r.text and "<img" in r.text,
                   "the browser's answer (%s) carried the script: %r" % (label, r))
        expect(answers["html"].headers.get("Content-Type") == "text/html; charset=utf-8",
               "content='text/html' honoured: %r" % answers["html"].headers)
        expect(not ran, "script in an answer ran in the browser: %r" % ran)
        for label, r in answers.items():
            h = {k.lower(): v for k, v in r.headers.items()}
            expect(all(h.get(k) == v for k, v in INERT.items()), "%s answer headers: %r" % (label, h))

        # the control: the same bytes and headers, less the two, from the site itself
        for label, r in answers.items():
            site.replays[label] = ({k: v for k, v in r.headers.items() if k.lower() not in NOT_REPLAYED},
                                   r.text.encode())
        site.beacons.clear()
        forms = [bosh_form("%s/replay/%s" % (site.origin, label), victims[label].sid, rids[label])
                 for label in victims]

        def control_ran():
            deadline = time.time() + 30
            while len(site.served) < len(forms) and time.time() < deadline:
                time.sleep(0.05)
            need = {"%s-%s" % (label, what) for label in victims for what in ("script", "onerror")}
            while time.time() < max(site.served.values() or [0]) + GRACE:
                if need <= {b for _, b in site.beacons}:
                    break
                time.sleep(0.05)
            return need, {b for _, b in site.beacons}
        need, got = site.submit(st.dir, forms, control_ran)
        expect(need <= got, "control: without the headers the same answers run their script "
                            "within %.0f s (the detection works): wanted %s, got %s" % (GRACE, need, got))
        for s in victims.values():
            s.terminate()
        sender.terminate()
    finally:
        site.close()


def script_forms(st, expect):
    """The GET forms loaded by <script src> from a page on another origin
    still run: nosniff lets a script through only with a JavaScript type."""
    site = HostileSite()
    try:
        victim = bosh.Session(st.url, st.domain, wait=1)
        victim.create()
        create = bosh.body({"to": st.domain, "rid": 7000, "wait": 1, "hold": 1, "ver": "1.11"})
        poll = bosh.body({"sid": victim.sid, "rid": victim.next_rid()})
        srcs = [st.url + "?" + urllib.parse.urlencode({"data": create, "callback": "cb"}),
                st.url + "?" + urllib.parse.quote(poll),
                st.url + "?" + urllib.parse.urlencode({"data": create, "callback": "alert(1)"})]
        site.open(st.dir, "script-get.html", {"srcs": json.dumps(srcs)})
        r = site.result
        expect(r and not r["failed"], "every script loaded: %r" % r)
        forms = [(c["form"], c["reply"]) for c in r["calls"]]
        expect(len(forms) == 3 and forms[0][0] == "jsonp" and " sid='" in forms[0][1], forms)
        expect(forms[1][0] == "script" and forms[1][1].startswith("<body") and "terminate" not in forms[1][1],
               forms)
        expect(forms[2][0] == "script" and "bad-request" in forms[2][1], forms)
        victim.terminate()
    finally:
        site.close()
