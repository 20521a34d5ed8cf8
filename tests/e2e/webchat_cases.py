"""The demo web chat (www/chat/) that `make run` serves at /, in headless
Chromium driven over the DevTools protocol (devtools.py): two pages log in,
see each other's presence, chat both ways and log out, served by the test
stack's nginx with conf/nginx/bosh.conf as make run serves them. A
screenshot taken after the chat (Page.captureScreenshot) is kept in
BUILD/e2e-output/ and its path printed.
"""
import json
import os
import time
import urllib.request

from bosh import Session
from cases import case, expect
from stack import STROPHE_JS

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
        log_in(pa, alice, USERS["wc-alice"], "bosh")
        log_in(pb, bob, USERS["wc-bob"], "websocket")
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
