"""The demo web chat (www/chat/) that `make run` serves at /, in headless
Chromium driven over the DevTools protocol (devtools.py): two pages log in,
see each other's presence, chat both ways and log out, served by the test
stack's nginx with conf/nginx/bosh.conf as make run serves them. A
screenshot taken after the chat (Page.captureScreenshot) is kept in
BUILD/e2e-output/ and its path printed.

And `make run` itself (tools/stack.py run) with a local.conf of the user's:
its lines take effect on top of the generated bosh.conf.
"""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import bosh
from bosh import Session
from cases import Skipped, case, expect
from stack import REPO, STROPHE_JS, free_port, port_open, wait_for

# Users of their own: the roster subscriptions these cases make must not
# send presence to the other cases' alice and bob.
USERS = {"wc-alice": "wc-alice-pw", "wc-bob": "wc-bob-pw", "wc-carol": "wc-carol-pw"}
_registered = []


def users(st):
    if not _registered:
        for u, p in USERS.items():
            st.add_user(u, p)
        _registered.append(True)


def output_dir(st):
    """Kept after the run (the run's data folder is removed when all pass)."""
    d = os.path.join(st.build, "e2e-output")
    os.makedirs(d, exist_ok=True)
    return d


def need_chat(st):
    if not st.chat_ready:
        raise AssertionError("the web chat has no Strophe.js: %s is missing (make test runs npm ci "
                             "in www/chat; or run it there yourself)" % STROPHE_JS)


def js(value):
    return json.dumps(value)


def log_in(page, jid, password, transport):
    page.wait("document.readyState === 'complete' && !!window.Strophe", what="the page to load")
    page.eval("""(() => {
        document.getElementById('jid').value = %s;
        document.getElementById('password').value = %s;
        document.querySelector('input[name=transport][value=%s]').checked = true;
        document.getElementById('login').requestSubmit();
    })()""" % (js(jid), js(password), transport))
    page.wait("document.getElementById('status').dataset.state === 'connected'", 20,
              "%s to log in over %s: %s" % (jid, transport, "status"))
    expect(page.eval("document.getElementById('main').hidden === false && "
                     "document.getElementById('login').hidden === true"), "the chat is shown after login")
    return page.eval("document.getElementById('status').dataset.jid")  # the full JID


def presence_of(page, jid):
    return page.eval("(document.querySelector('#roster li[data-jid=%s]') || {dataset: {}}).dataset.presence"
                     % js(jid))


def send(page, to, text):
    page.eval("""(() => {
        document.getElementById('to').value = %s;
        document.getElementById('body').value = %s;
        document.getElementById('send').requestSubmit();
    })()""" % (js(to), js(text)))


def received(page, frm):
    """The texts shown as received from frm, in order."""
    return page.eval("""[...document.querySelectorAll('#log .msg.in')]
        .filter(m => m.querySelector('.who').textContent === %s)
        .map(m => m.querySelector('.text').textContent)""" % js(frm))


def log_out(page):
    page.eval("document.getElementById('logout').click()")
    page.wait("document.getElementById('status').dataset.state === 'disconnected' && "
              "document.getElementById('login').hidden === false", 20, "the logout")


@case
def test_webchat_two_pages_chat(st):
    from devtools import Browser
    need_chat(st)
    users(st)
    alice, bob = "wc-alice@" + st.domain, "wc-bob@" + st.domain
    # the page as nginx serves it: same origin only, by its policy
    with urllib.request.urlopen(st.chat_url, timeout=10) as r:
        csp = r.headers.get("Content-Security-Policy") or ""
        expect(r.status == 200 and "script-src 'self'" in csp and "default-src 'none'" in csp,
               "the page and its policy: %s %r" % (r.status, csp))
    with Browser(st.dir) as b:
        pa, pb = b.open(st.chat_url), b.open(st.chat_url)
        full = {"bosh": log_in(pa, alice, USERS["wc-alice"], "bosh"),
                "websocket": log_in(pb, bob, USERS["wc-bob"], "websocket")}
        expect("over BOSH" in pa.eval("document.getElementById('status').textContent") and
               "over WebSocket" in pb.eval("document.getElementById('status').textContent"),
               "alice over BOSH, bob over WebSocket")
        # alice asks to see bob's presence; bob allows it (and asks back, which
        # alice's page allows by itself since she asked first)
        pa.eval("document.getElementById('add-jid').value = %s; "
                "document.getElementById('add').requestSubmit()" % js(bob))
        pb.wait("!!document.querySelector('#requests li[data-jid=%s] button[data-action=allow]')" % js(alice),
                15, "alice's request on bob's page")
        pb.eval("document.querySelector('#requests li[data-jid=%s] button[data-action=allow]').click()"
                % js(alice))
        pa.wait("(document.querySelector('#roster li[data-jid=%s]') || {dataset: {}}).dataset.presence "
                "=== 'online'" % js(bob), 15, "bob online on alice's page")
        pb.wait("(document.querySelector('#roster li[data-jid=%s]') || {dataset: {}}).dataset.presence "
                "=== 'online'" % js(alice), 15, "alice online on bob's page")

        send(pa, bob, "hello bob, from a browser over BOSH")
        pb.wait("document.querySelectorAll('#log .msg.in').length >= 1", 15, "alice's message at bob's")
        expect(received(pb, alice) == ["hello bob, from a browser over BOSH"], received(pb, alice))
        send(pb, alice, "hi alice & co <3, over WebSocket")
        pa.wait("document.querySelectorAll('#log .msg.in').length >= 1", 15, "bob's message at alice's")
        expect(received(pa, bob) == ["hi alice & co <3, over WebSocket"], received(pa, bob))

        shots = [pa.screenshot(os.path.join(output_dir(st), "webchat-alice.png")),
                 pb.screenshot(os.path.join(output_dir(st), "webchat-bob.png"))]
        for path in shots:
            expect(os.path.getsize(path) > 5000, "a screenshot: %s" % path)
            print("      screenshot: %s" % path, flush=True)

        # bob logs out: alice's page sees him go
        log_out(pb)
        pa.wait("(document.querySelector('#roster li[data-jid=%s]') || {dataset: {}}).dataset.presence "
                "=== 'offline'" % js(bob), 15, "bob offline on alice's page")
        log_out(pa)
        # both ended by the client, each on its transport (not by inactivity)
        from ws_cases import ws_row
        for transport, jid in full.items():
            r = ws_row(st, jid, lambda r: r["state"] == "ended")
            expect(r["transport"] == transport and r["end_condition"] == "terminate",
                   "%s logged out: %r" % (jid, r))
        errors = pa.console_errors() + pb.console_errors()
        expect(not errors, "nothing refused by the page's policy, no errors: %r" % errors)


@case
def test_webchat_message_is_text(st):
    from devtools import Browser
    need_chat(st)
    users(st)
    carol, bob = "wc-carol@" + st.domain, "wc-bob@" + st.domain
    evil = "<img src=x onerror=\"document.title='pwned'\"><b>bold</b>"
    with Browser(st.dir) as b:
        page = b.open(st.chat_url)
        log_in(page, carol, USERS["wc-carol"], "bosh")
        title = page.eval("document.title")
        s = Session(st.url, st.domain, wait=2)
        s.login("wc-bob", USERS["wc-bob"], "script")
        # an XML-escaped body: the text itself has the angle brackets
        body = evil.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        s.request("<message xmlns='jabber:client' to='%s' type='chat'><body>%s</body></message>" % (carol, body))
        page.wait("document.querySelectorAll('#log .msg.in').length >= 1", 15, "bob's message")
        time.sleep(0.5)  # an onerror would have run by now
        expect(received(page, bob) == [evil], "shown as the text it is: %r" % received(page, bob))
        expect(page.eval("document.querySelectorAll('#log img, #log b').length") == 0, "no element from it")
        expect(page.eval("document.title") == title, "no script from it ran")
        s.terminate()
        log_out(page)


# ---- make run's own settings (local.conf, CONF=) ----

def start_make_run(st, run_dir, env_extra):
    """tools/stack.py run, as make run starts it; returns (process, port, its output so far)."""
    port = free_port()
    env = dict(os.environ, PORT=str(port), RUN_DIR=run_dir, BUILD=st.build, XMPP_DOMAIN=st.domain,
               XMPP_SERVER="", CONF="")
    env.update(env_extra)
    out = os.path.join(run_dir + ".out")
    with open(out, "wb") as f:
        p = subprocess.Popen([sys.executable, os.path.join(REPO, "tools", "stack.py"), "run"], env=env,
                             stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)

    def text():
        with open(out, errors="replace") as f:
            return f.read()
    return p, port, text


def stop_make_run(p):
    if p.poll() is None:
        p.send_signal(signal.SIGINT)  # as Ctrl-C: it stops what it started
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def http(method, url, headers=None):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def get_and_cors(st, port):
    """Whether a session request as a GET (XEP-0124 section 16) gets a
    session, and what a browser's preflight from https://mine.example is
    allowed (its Access-Control-Allow-Origin)."""
    url = "http://127.0.0.1:%d/http-bind" % port
    create = bosh.body({"to": st.domain, "rid": 100, "wait": 1, "hold": 1, "ver": "1.11"})
    _, _, data = http("GET", url + "?" + urllib.parse.urlencode({"data": create}))
    _, h, _ = http("OPTIONS", url, {"Origin": "https://mine.example", "Access-Control-Request-Method": "POST"})
    return b" sid=" in data, h.get("Access-Control-Allow-Origin")


@case
def test_make_run_applies_local_conf(st):
    if not os.path.exists(os.path.join(st.build, "sessiond")):
        raise Skipped("needs the plain build (make all): make run runs it")
    run_dir = os.path.join(st.dir, "make-run")
    os.makedirs(run_dir)
    conf = os.path.join(st.dir, "my-run.conf")
    with open(conf, "w") as f:
        f.write("# mine\ncors_origins = https://mine.example\nallow_get = 1\n")
    p, port, out = start_make_run(st, run_dir, {"CONF": conf})
    try:
        wait_for(lambda: "WebSocket endpoint:" in out() or p.poll() is not None, 90, "make run to start")
        expect(p.poll() is None, "make run runs:\n" + out())
        expect("Local settings: %s, applied on top of the generated %s/bosh.conf" % (conf, run_dir) in out(),
               "it says which file it applied:\n" + out())
        expect("Web chat: http://127.0.0.1:%d/\n" % port in out(), "the chat's line:\n" + out())
        got_sid, acao = get_and_cors(st, port)
        expect(got_sid, "allow_get = 1: a session request as a GET is answered with a session")
        expect(acao == "https://mine.example", "cors_origins: the preflight from that origin is allowed: %r"
               % acao)
        with open(os.path.join(run_dir, "bosh.conf")) as f:
            cors = [ln for ln in f.read().splitlines() if ln.startswith("cors_origins")]
        expect(cors[-1] == "cors_origins = https://mine.example http://127.0.0.1:%d http://localhost:%d"
               % (port, port), "the chat's origin added to the user's cors_origins: %r" % cors)
        status, _, data = http("GET", "http://127.0.0.1:%d/" % port)
        expect(status == 200 and b"BOSH web chat" in data, "the chat at /: %s" % status)
    finally:
        stop_make_run(p)
    expect(not port_open(port), "stopped")

    # run/local.conf when there is no CONF=: make run's backend replaced by a
    # line of its own (the test stack's Prosody, where alice's password is another)
    with open(os.path.join(run_dir, "local.conf"), "w") as f:
        f.write("log_level = debug\nbackend.%s = 127.0.0.1:%d\n" % (st.domain, st.c2s_port))
    p, port, out = start_make_run(st, run_dir, {})
    try:
        wait_for(lambda: "WebSocket endpoint:" in out() or p.poll() is not None, 90, "make run to start")
        expect(p.poll() is None, "make run runs:\n" + out())
        expect("Local settings: %s/local.conf, applied" % run_dir in out(), out())
        s = Session("http://127.0.0.1:%d/http-bind" % port, st.domain, wait=2)
        s.login("alice", "alice-pw")  # the test stack's account, through local.conf's backend
        s.terminate()
        with open(os.path.join(run_dir, "sessiond.log"), errors="replace") as f:
            expect(" debug: " in f.read(), "log_level = debug of local.conf wins over make run's info")
    finally:
        stop_make_run(p)

    # neither: it says where to put one
    os.unlink(os.path.join(run_dir, "local.conf"))
    p, port, out = start_make_run(st, run_dir, {})
    try:
        wait_for(lambda: "WebSocket endpoint:" in out() or p.poll() is not None, 90, "make run to start")
        expect("Local settings: none (put your own bosh.conf lines in %s/local.conf" % run_dir in out(), out())
        expect(get_and_cors(st, port) == (False, None), "no GET and no CORS without them: %r"
               % (get_and_cors(st, port),))
    finally:
        stop_make_run(p)
    # CONF= naming a file that is not there: refused before anything starts
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools", "stack.py"), "run"], capture_output=True,
                       text=True, timeout=30, env=dict(os.environ, RUN_DIR=run_dir, PORT=str(free_port()),
                                                       CONF=os.path.join(st.dir, "nothing.conf")))
    expect(r.returncode != 0 and "no such file" in r.stderr, (r.returncode, r.stdout, r.stderr))
