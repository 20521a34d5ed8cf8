"""The end-to-end cases. Each takes the running Stack and asserts what the
client receives and what the database holds."""
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time

import bosh
from bosh import NS, STREAM, CLIENT, SASL, Session, post_raw
from stack import child_pids, free_port

DOWN_PORT = free_port()  # nothing listens here: an XMPP server that is down
SESSIOND_CONF = """
default_inactivity = 4
max_inactivity = 10
max_wait = 20
default_wait = 20
connect_timeout = 3
db_flush_ms = 20
db_activity_ms = 20
backend.down.test = 127.0.0.1:%d
cors_origins = https://chat.example https://other.example:8443
cors_max_age = 600
header = X-Served-By: bosh-cm-test
allow_get = 1
""" % DOWN_PORT

USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
CASES = []
CLEANUPS = []  # called by run.py after the last case: what cases started for several of them


def case(fn):
    CASES.append((fn.__name__, fn))
    return fn


def all_cases():
    return CASES


def setup(st):
    for u, p in USERS.items():
        st.add_user(u, p)


def row(st, sid, wait=3.0, until=None):
    """The session's row, once it satisfies until (polled: writes are batched)."""
    deadline = time.time() + wait
    while True:
        db = sqlite3.connect(st.db, timeout=5)
        db.row_factory = sqlite3.Row
        r = db.execute("select * from sessions where sid=?", (sid,)).fetchone()
        db.close()
        if r is not None and (until is None or until(r)):
            return dict(r)
        if time.time() > deadline:
            raise AssertionError("row for %s: %r" % (sid, dict(r) if r else None))
        time.sleep(0.05)


def login(st, user, resource="test", **kw):
    s = Session(st.url, st.domain, **kw)
    s.login(user, USERS[user], resource)
    return s


class Skipped(Exception):
    """Raised by a case that could not run here: reported as skipped, never as passed."""


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


# ---- session creation ----

@case
def test_creation_response(st):
    s = Session(st.url, st.domain, wait=300)
    r = s.create(content="application/xml; charset=utf-8", **{"from": "alice@" + st.domain})
    expect(r.attr("to") == "alice@" + st.domain, "the client's from comes back as to: %r" % r)
    expect(r.status == 200, r)
    expect(re.fullmatch(r"[0-9a-f]{32}", s.sid or ""), "sid: %r" % r)
    expect(r.attr("wait") == "20", "wait clamped to max_wait: %r" % r)
    expect(r.attr("requests") == "2" and r.attr("hold") == "1", r)
    expect(r.attr("inactivity") == "4" and r.attr("polling"), r)
    expect(r.attr("ver") == "1.6", "ver is the lower of ours and the client's: %r" % r)
    expect(r.attr("from") == st.domain, r)
    expect(r.attr("secure") == "true", "the XMPP server is on loopback: %r" % r)
    expect(r.attr("{%s}version" % bosh.XBOSH) == "1.0", r)
    expect(r.attr("{%s}restartlogic" % bosh.XBOSH) == "true", r)
    expect(s.features is not None, "stream features in the creation response: %r" % r)
    mechs = [m.text for m in s.features.iter("{%s}mechanism" % SASL)]
    expect("PLAIN" in mechs, mechs)
    expect(r.headers.get("Content-Type") == "application/xml; charset=utf-8",
           "the content attribute sets the Content-Type: %r" % r.headers)
    plain = Session(st.url, st.domain).create()
    expect(plain.headers.get("Content-Type") == "text/xml; charset=utf-8", plain.headers)
    db = row(st, s.sid, until=lambda r: r["state"] == "active" and r["held"] == 0)
    expect(db["to_domain"] == st.domain, db)
    expect(db["wait"] == 20 and db["hold"] == 1 and db["requests"] == 2, db)
    expect(db["client_addr"] == "127.0.0.1", db)
    expect(db["rid"] == s.rid, db)


@case
def test_request_bookkeeping_reaches_the_database_within_db_activity_ms_and_changes_of_state_at_once(st):
    # rid, held requests and last seen change with every request: they are
    # written within db_activity_ms, so that sessiond does not spend more on
    # rows than on requests; a new session, a state and an end within db_flush_ms.
    other = side_stack(st, "db_activity_ms = 2000\n")
    try:
        other.start_sessiond()
        other.start_nginx()
        s = Session(other.url, st.domain, wait=1)
        t0 = time.time()
        s.create()
        created = row(other, s.sid, wait=1.5, until=lambda r: r["state"] == "active")
        expect(time.time() - t0 < 1.5, "a new session's row within db_flush_ms")
        first_rid = created["rid"]
        got = s.request_async()  # held for wait (1 s), then answered empty
        time.sleep(0.5)
        stale = row(other, s.sid)
        expect(stale["rid"] == first_rid and stale["held"] == 0,
               "half a second after a request, its rid and hold are not written yet: %r" % stale)
        got.join(5)
        fresh = row(other, s.sid, wait=4, until=lambda r: r["rid"] == s.rid)
        expect(time.time() - t0 > 1.9, "the rid came with the activity flush: %r" % fresh)
        s.request_async()  # held: touched again, the row stays behind
        time.sleep(0.2)
        t1 = time.time()
        s.terminate()
        ended = row(other, s.sid, wait=1.5, until=lambda r: r["state"] == "ended")
        expect(time.time() - t1 < 1.0 and ended["rid"] == s.rid,
               "the end is written at once, with the last rid: %r" % ended)
    finally:
        other.stop()


@case
def test_hold_above_max_hold_is_clamped(st):
    s = Session(st.url, st.domain, wait=2, hold=5)  # max_hold (max_bosh_connections) is 1
    r = s.create()
    expect(r.attr("hold") == "1" and r.attr("requests") == "2", "hold clamped to max_hold: %r" % r)
    first = s.request_async()
    time.sleep(0.2)
    second = s.request_async()  # with hold 1 it releases the first at once, not after wait (2 s)
    got = first.join(1.5)
    expect(got is not None and not isinstance(got, Exception) and got.type is None,
           "the first request was answered when the second came: %r" % got)
    second.join(5)
    s.terminate()


@case
def test_login_restart_bind(st):
    s = login(st, "alice", "web")
    expect(s.jid == "alice@%s/web" % st.domain, s.jid)
    bind = s.restart_features.find("{urn:ietf:params:xml:ns:xmpp-bind}bind")
    expect(bind is not None, "bind offered after the restart")
    db = row(st, s.sid, until=lambda r: r["jid"])
    expect(db["jid"] == s.jid and db["state"] == "active", db)
    expect(db["rid"] == s.rid, "rid persisted: %r vs %d" % (db["rid"], s.rid))
    s.terminate()


@case
def test_bad_password(st):
    s = Session(st.url, st.domain)
    try:
        s.login("alice", "wrong")
        raise AssertionError("login with a wrong password succeeded")
    except AssertionError as e:
        expect("SASL failed" in str(e), e)
    s.terminate()


# ---- long-polling ----

@case
def test_message_both_ways_held_answered_on_arrival(st):
    a = login(st, "alice", "m1")
    b = login(st, "bob", "m1")
    held = a.request_async()  # alice's long-poll
    time.sleep(0.5)
    expect(not held.done(), "alice's request is held")
    t0 = time.time()
    # bob sends; his request is then held in turn, as a browser's would be
    bob_poll = b.request_async("<message xmlns='jabber:client' to='%s' type='chat' id='m1'>"
                               "<body>hi alice</body></message>" % a.jid)
    r = held.join(10)
    elapsed = time.time() - t0
    expect(isinstance(r, bosh.Response), r)
    msgs = [c for c in r.children() if c.tag == "{%s}message" % CLIENT]
    expect(msgs and msgs[0].find("{%s}body" % CLIENT).text == "hi alice", r)
    expect(msgs[0].get("from") == b.jid, r)
    expect(elapsed < 3, "held request answered on arrival, took %.1fs" % elapsed)
    # and back, to bob's held request
    t0 = time.time()
    alice_poll = a.request_async("<message xmlns='jabber:client' to='%s' type='chat'>"
                                 "<body>hi bob &amp; all \u00e9</body></message>" % b.jid)
    r = bob_poll.join(10)
    expect(time.time() - t0 < 3, "answered on arrival")
    got = [c for c in r.children() if c.tag == "{%s}message" % CLIENT]
    expect(got and got[0].find("{%s}body" % CLIENT).text == "hi bob & all \u00e9", r)
    a.terminate()
    b.terminate()
    expect(isinstance(alice_poll.join(5), bosh.Response), "alice's poll answered at terminate")


@case
def test_prebound_session_answers_the_page_at_once(st):
    # a server-side login hands the session to a page, which attaches a moment later
    s = login(st, "alice", "prebound", wait=10)
    time.sleep(1.5)
    t0 = time.time()
    r = s.request()
    expect(r.status == 200 and r.type is None and time.time() - t0 < 1,
           "the first request after the hand-over is not held for wait (%.1fs)" % (time.time() - t0))
    t0 = time.time()
    held = s.request_async()
    time.sleep(0.5)
    expect(not held.done(), "later requests are held as usual")
    s.terminate()
    held.join(5)


@case
def test_prebind_command(st):
    import json
    tool = os.path.join(st.build, "bosh-prebind")
    p = subprocess.run([tool, "-c", st.conf, "-r", "web <1>", "bob@" + st.domain],
                       input="bob-pw\n", capture_output=True, text=True, timeout=60)
    expect(p.returncode == 0, p.stderr)
    got = json.loads(p.stdout)
    expect(got["jid"] == "bob@%s/web <1>" % st.domain and re.fullmatch(r"[0-9a-f]{32}", got["sid"]), got)
    # the page continues the session with that sid and rid
    s = Session(st.url, st.domain, wait=5)
    s.sid, s.rid, s.jid = got["sid"], got["rid"] - 1, got["jid"]
    t0 = time.time()
    r = s.request()
    expect(r.status == 200 and r.type is None and time.time() - t0 < 1, "attached at once: %r" % r)
    msg, _ = s.until(lambda c: c.tag == "{%s}message" % CLIENT,
                     "<message xmlns='jabber:client' to='%s'><body>attached</body></message>"
                     % s.jid.replace("&", "&amp;").replace("<", "&lt;"))
    expect(msg.find("{%s}body" % CLIENT).text == "attached", msg)
    db = row(st, s.sid, until=lambda r: r["jid"])
    expect(db["client_addr"] == "local:bosh-prebind" and db["jid"] == got["jid"], db)
    s.terminate()
    p = subprocess.run([tool, "-c", st.conf, "bob@" + st.domain], input="wrong\n",
                       capture_output=True, text=True, timeout=60)
    expect(p.returncode == 1 and "authentication failed" in p.stderr and not p.stdout, p)


@case
def test_empty_answer_after_wait(st):
    s = Session(st.url, st.domain, wait=2)
    s.create()
    t0 = time.time()
    r = s.request()
    took = time.time() - t0
    expect(r.status == 200 and r.type is None and not r.children(), r)
    expect(1.8 <= took < 5, "answered after %.2fs, wait was 2" % took)
    s.terminate()


@case
def test_client_gone_drops_its_held_request(st):
    import socket as so
    s = Session(st.url, st.domain, wait=15)
    s.create()
    body = bosh.body({"sid": s.sid, "rid": s.next_rid()}).encode()
    c = so.create_connection(("127.0.0.1", st.http_port))
    c.sendall(b"POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    row(st, s.sid, until=lambda r: r["held"] == 1)
    c.close()  # the browser gave up: nginx closes its connection to sessiond
    db = row(st, s.sid, wait=5, until=lambda r: r["held"] == 0)
    expect(db["state"] == "active", db)
    expect("web server dropped held rid %d" % s.rid in open(st.sessiond_log).read(), "logged")
    s.terminate()


@case
def test_new_request_releases_held(st):
    s = Session(st.url, st.domain, wait=15)
    s.create()
    first = s.request_async()
    time.sleep(0.5)
    expect(not first.done(), "first request held")
    second = s.request_async()
    r1 = first.join(3)
    expect(isinstance(r1, bosh.Response) and r1.status == 200 and not r1.children(), r1)
    expect(not second.done(), "the new request is held in its place")
    s.terminate()
    r2 = second.join(5)
    expect(isinstance(r2, bosh.Response), r2)


@case
def test_polling_session_hold_0(st):
    s = Session(st.url, st.domain, wait=10, hold=0)
    r = s.create()
    expect(r.attr("hold") == "0" and r.attr("requests") == "1", r)
    t0 = time.time()
    r = s.request()
    expect(r.status == 200 and r.type is None and time.time() - t0 < 1.5,
           "a polling session's request is answered at once (%.1fs)" % (time.time() - t0))
    s.terminate()


@case
def test_polling_too_fast(st):
    s = Session(st.url, st.domain, wait=10, hold=0)
    s.create()
    expect(s.request().type is None, "first poll")
    time.sleep(2.2)  # polling is 2 s
    expect(s.request().type is None, "a poll after the polling interval is fine")
    r = s.request()
    expect(r.type == "terminate" and r.condition == "policy-violation", "two empty polls at once: %r" % r)
    db = row(st, s.sid, until=lambda r: r["state"] == "ended")
    expect(db["end_condition"] == "policy-violation", db)
    # payloads in between are no overactivity
    s = Session(st.url, st.domain, wait=10, hold=0)
    s.create()
    for i in range(3):
        r = s.request("<presence xmlns='jabber:client' type='unavailable'/>")
        expect(r.type is None, r)
    s.terminate()


@case
def test_terminate_may_exceed_the_window_by_one(st):
    s = Session(st.url, st.domain, wait=10)
    s.create()
    n = s.rid + 1
    later = s.request_async(rid=n + 1)              # ahead of a gap
    term = s.request_async(rid=n + 2, type="terminate")  # one more than 'requests' (2)
    time.sleep(0.5)
    first = s.request(rid=n)                        # fills the gap: all three run in order
    answers = [first, later.join(5), term.join(5)]
    expect(all(isinstance(a, bosh.Response) for a in answers), answers)
    expect(not any(a.condition == "item-not-found" for a in answers), answers)
    db = row(st, s.sid, until=lambda r: r["state"] == "ended")
    expect(db["end_condition"] == "terminate", db)


# ---- rid rules ----

@case
def test_repeated_rid_gets_same_answer(st):
    s = login(st, "carol", "rep")
    rid = s.next_rid()
    ping = "<iq xmlns='jabber:client' type='get' id='p1' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % st.domain
    first = s.request(ping, rid=rid)
    if not first.children():
        first = s.request()  # the pong came after; repeat this one instead
        rid = s.rid
    again = s.request("", rid=rid)
    expect(again.text == first.text, "repeat:\n%s\n%s" % (first.text, again.text))
    expect(again.type is None, again)
    s.terminate()


@case
def test_held_rid_sent_again_gets_recoverable_error(st):
    s = Session(st.url, st.domain, wait=10)
    s.create()
    rid = s.next_rid()
    first = s.request_async(rid=rid)
    time.sleep(0.3)
    expect(not first.done(), "the request is held")
    again = s.request_async(rid=rid)  # the client thinks the first connection broke (§14.3)
    r = first.join(5)
    expect(isinstance(r, bosh.Response) and r.type == "error" and r.condition is None,
           "the old connection gets a recoverable error: %r" % r)
    time.sleep(0.3)
    expect(not again.done(), "the repeat is held in the old one's place")
    s.terminate()
    r = again.join(5)
    expect(isinstance(r, bosh.Response) and r.status == 200, r)


@case
def test_rid_out_of_window(st):
    s = Session(st.url, st.domain)
    s.create()
    r = s.request(rid=s.rid + 5)
    expect(r.type == "terminate" and r.condition == "item-not-found", r)
    db = row(st, s.sid, until=lambda r: r["state"] == "ended")
    expect(db["end_condition"] == "item-not-found" and db["ended_at"], db)
    r = s.request()
    expect(r.condition == "item-not-found", "session is gone: %r" % r)


@case
def test_unknown_sid(st):
    for sid in ("0" * 32, "not-a-sid", "x" * 500):
        r = post_raw(st.url, bosh.body({"sid": sid, "rid": 10}))
        expect(r.status == 200 and r.type == "terminate" and r.condition == "item-not-found", r)


@case
def test_bad_bodies(st):
    bad = [
        "<body",
        "<body xmlns='urn:other' rid='1' to='localhost'/>",
        "<!DOCTYPE body [<!ENTITY a 'x'>]><body xmlns='%s' rid='1' to='localhost'/>" % NS,
        "<body xmlns='%s' rid='1' to='localhost'>text</body>" % NS,
        b"<body xmlns='" + NS.encode() + b"' rid='1' to='localhost'><m>\xff</m></body>",
        "<body xmlns='%s' rid='1'/><extra/>" % NS,
        "",
        "<body xmlns='%s' rid='1' to='localhost'>%s</body>" % (NS, "<a>" * 40 + "</a>" * 40),
        "<body xmlns='%s' rid='1' to='localhost'><message>%s</message></body>" % (NS, "x" * 100500),
    ]
    for b in bad:
        r = post_raw(st.url, b)
        expect(r.status == 200 and r.type == "terminate" and r.condition == "bad-request",
               "%r -> %r" % (b[:60], r))
    log = open(st.sessiond_log, errors="replace").read()
    expect("DOCTYPE not allowed" in log and "max_data_held" in log, "reasons are logged")


@case
def test_bad_request_ends_session(st):
    s = Session(st.url, st.domain)
    s.create()
    r = s.request(rid="abc")
    expect(r.condition == "bad-request", r)
    db = row(st, s.sid, until=lambda r: r["state"] == "ended")
    expect(db["end_condition"] == "bad-request", db)


@case
def test_missing_to_and_unknown_host(st):
    r = post_raw(st.url, bosh.body({"rid": 5, "wait": 5, "hold": 1}))
    expect(r.condition == "improper-addressing", r)
    r = post_raw(st.url, bosh.body({"rid": 5, "to": "nowhere.example", "wait": 5, "hold": 1}))
    expect(r.condition == "host-unknown", r)


@case
def test_get_is_refused(st):
    import urllib.request
    import urllib.error
    try:
        urllib.request.urlopen(st.url, timeout=10)
        raise AssertionError("GET was accepted")
    except urllib.error.HTTPError as e:
        expect(e.code == 405 and "OPTIONS" in e.headers.get("Allow", ""), e.code)


# ---- multiple streams (XEP-0124 §16) ----

class Streams:
    """One session with several streams: every answer with payloads must name its stream."""

    def __init__(self, s):
        self.s = s

    def request(self, payload="", **attrs):
        r = self.s.request(payload, **attrs)
        expect(not r.children() or r.attr("stream"), "an answer with payloads names its stream: %r" % r)
        return r

    def until(self, name, pred, payload="", **attrs):
        """Requests (the first with payload and attrs) until stream name sends a child matching pred."""
        for _ in range(10):
            r = self.request(payload, **attrs)
            payload, attrs = "", {}
            expect(r.type != "terminate", "the session goes on: %r" % r)
            for c in r.children():
                if r.attr("stream") == name and pred(c):
                    return c
        raise AssertionError("nothing matching came on stream %s" % name)

    def login(self, stream, user, resource):
        import base64
        self.until(stream, lambda c: c.tag == "{%s}features" % STREAM)
        creds = base64.b64encode(("\0%s\0%s" % (user, USERS[user])).encode()).decode()
        ok = self.until(stream, lambda c: c.tag in ("{%s}success" % SASL, "{%s}failure" % SASL),
                        "<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (SASL, creds), stream=stream)
        expect(ok.tag == "{%s}success" % SASL, "SASL on stream %s" % stream)
        self.until(stream, lambda c: c.tag == "{%s}features" % STREAM, stream=stream,
                   **{"xmpp:restart": "true"})
        iq = self.until(stream, lambda c: c.get("id") == "bind-" + resource,
                        "<iq xmlns='jabber:client' type='set' id='bind-%s'><bind xmlns='%s'>"
                        "<resource>%s</resource></bind></iq>" % (resource, bosh.BIND, resource),
                        stream=stream)
        return iq.find("{%s}bind/{%s}jid" % (bosh.BIND, bosh.BIND)).text


@case
def test_multiple_streams(st):
    s = Session(st.url, st.domain, wait=1)
    alice = s.login("alice", USERS["alice"], "multi")
    first = s.created.attr("stream")
    expect(first and re.fullmatch(r"[0-9a-f]{24}", first), "the first stream is named: %r" % s.created)
    m = Streams(s)
    r = m.request(to=st.domain, **{"xml:lang": "en"})
    second = r.attr("stream")
    expect(second and second != first and r.attr("from") == st.domain and not r.children() and
           r.attr("sid") is None and r.type is None, "a stream added: %r" % r)
    bob = m.login(second, "bob", "multi")
    expect(bob == "bob@%s/multi" % st.domain, bob)
    chat = "<message xmlns='jabber:client' to='%s' type='chat'><body>%s</body></message>"
    got = m.until(second, lambda c: c.tag == "{%s}message" % CLIENT, chat % (bob, "to bob"), stream=first)
    expect(got.get("from") == alice and got.find("{%s}body" % CLIENT).text == "to bob", "on bob's stream")
    got = m.until(first, lambda c: c.tag == "{%s}message" % CLIENT, chat % (alice, "to alice"), stream=second)
    expect(got.get("from") == bob, "on alice's stream")
    # no stream named: the payload goes to every open stream, each answers on its own
    r = m.request(ping(st, "both"))
    seen = set()
    for _ in range(10):
        seen |= {r.attr("stream") for c in r.children() if c.get("id") == "both"}
        if seen == {first, second}:
            break
        r = m.request()
    expect(seen == {first, second}, "a pong on each stream: %r" % seen)
    # a stream the server ends, while others remain, is announced by name and the session goes on
    third = m.request(to="down.test").attr("stream")
    expect(third not in (None, first, second), "third stream named")
    for _ in range(5):
        r = m.request()
        if r.type == "terminate":
            break
    expect(r.type == "terminate" and r.condition == "remote-connection-failed" and r.attr("stream") == third,
           "the failed stream's end names it: %r" % r)
    # the client closes bob's stream: bob goes offline, alice's stream goes on
    r = m.request("<presence xmlns='jabber:client' type='unavailable'/>", type="terminate", stream=second)
    expect(r.type is None, "closing one stream leaves the session: %r" % r)
    pong = m.until(first, lambda c: c.get("id") == "gone", "<iq xmlns='jabber:client' type='get' id='gone' "
                   "to='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % bob, stream=first)
    expect(pong.get("type") == "error", "bob's resource is gone: %r" % pong.attrib)
    r = m.request("<presence xmlns='jabber:client'/>", stream=second)
    expect(r.type is None, "a payload for a stream just closed is ignored: %r" % r)
    r = m.request("<presence xmlns='jabber:client' type='unavailable'/>", type="terminate", stream=first)
    expect(r.type == "terminate" and r.attr("stream") is None, "the last stream ends the session: %r" % r)
    db = row(st, s.sid, until=lambda r: r["state"] == "ended")
    expect(db["end_condition"] == "terminate" and db["jid"] == alice, db)
    # a stream name the session does not have
    s = Session(st.url, st.domain, wait=3)
    s.create()
    r = s.request(stream="0" * 24)
    expect(r.type == "terminate" and r.condition == "item-not-found", "an unknown stream: %r" % r)


class Libpurple:
    """Requests as libpurple's BOSH client (Pidgin, Finch; libpurple/protocols/jabber/bosh.c)
    writes them: 'to' and xml:lang on every request, empty polls included."""

    UA = "Pidgin 2.14.12 (libpurple 2.14.12)"

    def __init__(self, url, domain, ua=UA):
        import random
        self.url, self.domain, self.ua = url, domain, ua
        self.rid = random.randint(1 << 20, 1 << 40)
        self.sid = None

    def post(self, payload="", **attrs):
        self.rid += 1
        a = {"rid": self.rid, "sid": self.sid, "to": self.domain, "xml:lang": "en"}
        a.update(attrs)
        r = post_raw(self.url, bosh.body({k: v for k, v in a.items() if v is not None}, payload),
                     headers={"User-Agent": self.ua})
        expect(r.attr("stream") is None, "no answer names a stream: %r" % r)
        return r

    def create(self):
        r = self.post(sid=None, content="text/xml; charset=utf-8", secure="true", ver="1.6",
                      wait=1, hold=1, **{"xmpp:version": "1.0"})
        self.sid = r.attr("sid")
        return r

    def until(self, pred, payload="", **attrs):
        for _ in range(10):
            r = self.post(payload, **attrs)
            payload, attrs = "", {}
            expect(r.type != "terminate", r)
            for c in r.children():
                if pred(c):
                    return c
        raise AssertionError("expected element did not arrive")


def libpurple_chat(url, domain, user, ua=Libpurple.UA):
    """libpurple's way through login and a message to itself; returns the creation response."""
    import base64
    c = Libpurple(url, domain, ua)
    created = c.create()
    expect(created.xml.find("{%s}features" % STREAM) is not None,
           "libpurple takes the features from the creation response: %r" % created)
    creds = base64.b64encode(("\0%s\0%s" % (user, USERS[user])).encode()).decode()
    c.until(lambda e: e.tag == "{%s}success" % SASL,
            "<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (SASL, creds))
    c.until(lambda e: e.tag == "{%s}features" % STREAM, **{"xmpp:restart": "true"})
    iq = c.until(lambda e: e.get("id") == "purple1", "<iq xmlns='jabber:client' type='set' id='purple1'>"
                 "<bind xmlns='%s'><resource>finch</resource></bind></iq>" % bosh.BIND)
    jid = iq.find("{%s}bind/{%s}jid" % (bosh.BIND, bosh.BIND)).text
    for _ in range(2):  # empty polls, with 'to', as libpurple sends them
        r = c.post()
        expect(r.type is None, "an empty poll with 'to' is a poll: %r" % r)
    got = c.until(lambda e: e.tag == "{%s}message" % CLIENT, "<message xmlns='jabber:client' to='%s' "
                  "type='chat'><body>purple</body></message>" % jid)
    expect(got.find("{%s}body" % CLIENT).text == "purple", got)
    r = c.post("<presence xmlns='jabber:client' type='unavailable'/>", type="terminate")
    expect(r.type == "terminate", r)
    return created


def read_http_answers(sock, n, timeout):
    """n HTTP/1.1 answers from one connection: [(seconds after the call, body)]."""
    t0, buf, out = time.time(), b"", []
    sock.settimeout(timeout)
    while len(out) < n:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", buf[:head_end]).group(1))
            if len(buf) >= head_end + 4 + length:
                out.append((time.time() - t0, buf[head_end + 4:head_end + 4 + length].decode()))
                buf = buf[head_end + 4 + length:]
                continue
        data = sock.recv(65536)
        expect(data, "the connection closed after %d answers" % len(out))
        buf += data
    return out


@case
def test_pipelined_requests(st):
    # libpurple sends its requests pipelined on one connection (XEP-0124 §20.1 advises
    # against it): a held poll must not delay the request behind it.
    import socket as so
    s = login(st, "carol", "pipelined", wait=10)
    c = so.create_connection(("127.0.0.1", st.http_port))
    try:
        data = b""
        for payload in ("", ping(st, "piped")):
            body = bosh.body({"sid": s.sid, "rid": s.next_rid()}, payload).encode()
            data += (b"POST /http-bind HTTP/1.1\r\nHost: x\r\nUser-Agent: libpurple\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        c.sendall(data)
        answers = read_http_answers(c, 2, 15)
    finally:
        c.close()
    expect(answers[1][0] < 3 and "id='piped'" in answers[1][1],
           "the second request was answered at once: %r" % answers)
    s.terminate()


@case
def test_libpurple_itself(st):
    # libpurple, the library of Pidgin and Finch, logs in over BOSH and chats with itself
    # (slow by its own design: it gathers what it sends for a second before each request)
    client = os.path.join(st.build, "purple_chat")
    userdir = os.path.join(st.dir, "purple")
    os.makedirs(userdir, exist_ok=True)
    p = subprocess.run([client, userdir, st.url, "carol@%s/pidgin" % st.domain, USERS["carol"]],
                       capture_output=True, text=True, timeout=60)
    expect(p.returncode == 0 and '"ok":true' in p.stdout,
           "libpurple (exit %d): %s %s" % (p.returncode, p.stdout, p.stderr[-2000:]))
    db = sqlite3.connect(st.db)
    got = db.execute("select user_agent, end_condition from sessions where jid=? order by created_at "
                     "desc limit 1", ("carol@%s/pidgin" % st.domain,)).fetchone()
    db.close()
    expect(got and "libpurple" in (got[0] or ""), "the session was libpurple's: %r" % (got,))


@case
def test_libpurple_client(st):
    created = libpurple_chat(st.url, st.domain, "carol")
    expect(created.attr("stream") is None, "no multiple streams offered to libpurple: %r" % created)
    added = re.search(r"session %s: stream \S+ added" % created.attr("sid"), open(st.sessiond_log).read())
    expect(not added, "no stream was added: %r" % added)
    other = side_stack(st, "pidgin_compatible = 1\n")
    try:  # the switch, for a libpurple that says nothing of itself
        other.start_sessiond()
        other.start_nginx()
        created = libpurple_chat(other.url, st.domain, "carol", ua="Finch")
        expect(created.attr("stream") is None, "pidgin_compatible: %r" % created)
    finally:
        other.stop()


# ---- key sequences, pauses, legacy clients ----

def key_chain(n):
    import hashlib
    k = [os.urandom(20).hex()]
    for _ in range(n):
        k.append(hashlib.sha1(k[-1].encode()).hexdigest())
    return k  # the client uses them from the end: k[n] first (as newkey)


@case
def test_key_sequence(st):
    k = key_chain(6)
    s = Session(st.url, st.domain, wait=1)
    s.create(newkey=k[6])
    expect(s.request(key=k[5]).status == 200, "first key accepted")
    expect(s.request(key=k[4].upper()).type is None, "compared case-insensitively")
    db = row(st, s.sid, until=lambda r: r["key"] == k[4])
    expect(db["key"] == k[4], "the current key is persisted: %r" % db)
    # switching to a new chain: key from the old one, newkey from the new one
    k2 = key_chain(3)
    expect(s.request(key=k[3], newkey=k2[3]).type is None, "key change accepted")
    expect(s.request(key=k2[2]).type is None, "new chain in use")
    r = s.request(key=k[2])  # the old chain is no longer valid
    expect(r.type == "terminate" and r.condition == "item-not-found", r)
    db = row(st, s.sid, until=lambda r: r["state"] == "ended")
    expect(db["end_condition"] == "item-not-found", db)
    # a missing key, and a malformed one
    k = key_chain(3)
    s = Session(st.url, st.domain, wait=1)
    s.create(newkey=k[3])
    r = s.request()
    expect(r.condition == "item-not-found", "a request without its key: %r" % r)
    s = Session(st.url, st.domain, wait=1)
    r = s.create(newkey="xyz")
    expect(r.condition == "bad-request", r)


@case
def test_key_checked_on_repeated_rid(st):
    # §14.3 + §15: a request sent again carries its original's key; any other ends the session
    k = key_chain(8)
    s = Session(st.url, st.domain, wait=1)
    s.create(newkey=k[8])
    first = s.request(key=k[7])
    expect(first.type is None, first)
    again = s.request(rid=s.rid, key=k[7])
    expect(again.status == 200 and again.text == first.text, "the same answer again: %r" % again)
    k2 = key_chain(4)  # a switch to a new chain: its repeat carries the old chain's key
    switched = s.request(key=k[6], newkey=k2[4])
    expect(switched.type is None, switched)
    again = s.request(rid=s.rid, key=k[6])
    expect(again.text == switched.text, "the switching request sent again: %r" % again)
    r = s.request(rid=s.rid, key=k2[3])  # the key a new request would carry, not the original's
    expect(r.type == "terminate" and r.condition == "item-not-found", "a repeat with another key: %r" % r)
    db = row(st, s.sid, until=lambda r: r["state"] == "ended")
    expect(db["end_condition"] == "item-not-found", db)
    # a held request cannot be taken over by a repeat without its key
    k = key_chain(4)
    s = Session(st.url, st.domain, wait=5)
    s.create(newkey=k[4])
    held = s.request_async(key=k[3])
    time.sleep(0.3)
    r = s.request(rid=s.rid)
    expect(r.type == "terminate" and r.condition == "item-not-found", "a repeat without a key: %r" % r)
    got = held.join(5)
    expect(isinstance(got, bosh.Response) and got.type == "terminate", "the held one is told: %r" % got)


@case
def test_acknowledgements(st):
    s = Session(st.url, st.domain, wait=10)
    r = s.create(ack=1)
    expect(r.attr("ack") == str(s.rid), "creation response acks the creation rid: %r" % r)
    first = s.rid + 1
    held = s.request_async(ack=s.rid)
    time.sleep(0.3)
    second = s.request_async(ack=first - 1)
    r1 = held.join(5)
    expect(r1.attr("ack") == str(first + 1),
           "the released answer acks the newer request it was released for: %r" % r1)
    # the client says it never got the answer to `first`: after a while, a report
    time.sleep(1.3)
    t0 = time.time()
    third = s.request_async(ack=first - 1)
    r2 = second.join(3)  # the next answer goes out at once, with the report
    expect(isinstance(r2, bosh.Response) and time.time() - t0 < 2, "a report is sent at once")
    expect(r2.attr("report") == str(first) and int(r2.attr("time")) >= 1000,
           "report and time of the lost answer: %r" % r2)
    again = s.request(rid=first)
    expect(again.text == r1.text, "the lost answer is still there to resend")
    s.terminate()
    third.join(5)


@case
def test_pause(st):
    s = Session(st.url, st.domain, wait=3)
    r = s.create()
    expect(r.attr("maxpause") == "10", "maxpause advertised: %r" % r)
    held = s.request_async()
    time.sleep(0.3)
    t0 = time.time()
    r = s.request(pause=8)
    expect(r.status == 200 and not r.children() and time.time() - t0 < 2,
           "the pause request is answered at once, without payload: %r" % r)
    expect(isinstance(held.join(2), bosh.Response), "held requests answered on pause")
    time.sleep(4 + 1.5)  # longer than inactivity (4 s), shorter than the pause
    r = s.request()
    expect(r.status == 200 and r.type is None, "the session survived its pause: %r" % r)
    r = s.request(pause=30)
    expect(r.type == "terminate" and r.condition == "policy-violation", "pause > maxpause: %r" % r)


@case
def test_legacy_client_gets_http_errors(st):
    s = Session(st.url, st.domain, wait=2)
    r = s.create(ver=None)
    expect(s.sid, r)
    r = s.request(rid=s.rid + 10)
    expect(r.status == 404, "a legacy client (no ver) gets 404 for item-not-found: %r" % r)
    s = Session(st.url, st.domain, wait=2)
    s.create(ver=None)
    r = s.request(rid="x")
    expect(r.status == 400, "400 for bad-request: %r" % r)
    s = Session(st.url, st.domain, wait=2)
    s.create()
    r = s.request(rid=s.rid + 10)
    expect(r.status == 200 and r.condition == "item-not-found", "others get the terminate body: %r" % r)


# ---- web conventions ----

def http(st, method, body=None, headers=None):
    import http.client
    import urllib.parse
    u = urllib.parse.urlsplit(st.url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=15)
    try:
        c.request(method, u.path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    finally:
        c.close()


@case
def test_cors_preflight_and_headers(st):
    origin = "https://chat.example"
    status, h, body = http(st, "OPTIONS", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    expect(status == 200, (status, h))
    expect(h.get("access-control-allow-origin") == origin, h)
    expect("POST" in h.get("access-control-allow-methods", ""), h)
    expect("content-type" in h.get("access-control-allow-headers", "").lower(), h)
    expect(h.get("access-control-max-age") == "600" and h.get("vary") == "Origin", h)
    # on a real answer and on an error answer alike
    s = Session(st.url, st.domain)
    creation = bosh.body({"to": st.domain, "rid": s.rid, "wait": 5, "hold": 1, "xmpp:version": "1.0"})
    status, h, body = http(st, "POST", creation, {"Origin": "https://other.example:8443",
                                                  "Content-Type": "text/xml"})
    expect(status == 200 and h.get("access-control-allow-origin") == "https://other.example:8443", h)
    expect(h.get("x-served-by") == "bosh-cm-test", "extra header on every answer: %r" % h)
    status, h, body = http(st, "POST", bosh.body({"sid": "0" * 32, "rid": 1}), {"Origin": origin})
    expect("item-not-found" in body and h.get("access-control-allow-origin") == origin, h)
    # an origin not on the list, and no origin: no CORS headers
    for hdrs in ({"Origin": "https://evil.example"}, {}):
        status, h, body = http(st, "OPTIONS", headers=hdrs)
        expect(status == 200 and "access-control-allow-origin" not in h, h)
        status, h, body = http(st, "POST", bosh.body({"sid": "0" * 32, "rid": 1}), hdrs)
        expect("access-control-allow-origin" not in h and h.get("x-served-by"), h)


INERT = {"content-security-policy": "sandbox; default-src 'none'", "x-content-type-options": "nosniff"}


def exchange(url, method, query="", body=None, headers=None):
    """One HTTP request; the status, the headers (lower-case names), the text."""
    import http.client
    import urllib.parse
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        c.request(method, u.path + ("?" + query if query else ""), body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode("utf-8", "replace")
    finally:
        c.close()


@case
def test_every_answer_is_inert_as_a_document(st):
    """Every kind of answer, errors included, carries the headers that keep a
    browser from running what it holds when it opens it as a document."""
    import urllib.parse

    def check(what, answer, status=200, ctype="text/xml; charset=utf-8", has=""):
        code, h, text = answer
        expect(code == status and h.get("content-type") == ctype and has in text,
               "%s: %s %r %r" % (what, code, h.get("content-type"), text[:200]))
        for k, v in INERT.items():
            expect(h.get(k) == v, "%s: %s is %r" % (what, k, h.get(k)))

    def post(body, **headers):
        return exchange(st.url, "POST", body=body, headers=headers)
    html = "text/html; charset=utf-8"
    s = Session(st.url, st.domain, wait=1)
    a = post(bosh.body({"to": st.domain, "rid": s.rid, "wait": 1, "hold": 1, "ver": "1.11",
                        "content": html}))
    check("creation, with the client's content type", a, ctype=html, has=" sid='")
    s.sid = re.search(r" sid='([0-9a-f]+)'", a[2]).group(1)
    rid = s.next_rid()
    check("an empty answer after wait", post(bosh.body({"sid": s.sid, "rid": rid})), ctype=html)
    check("a kept answer for a repeated rid", post(bosh.body({"sid": s.sid, "rid": rid})), ctype=html)
    check("terminate", post(bosh.body({"sid": s.sid, "rid": s.next_rid(), "type": "terminate"})),
          ctype=html, has="type='terminate'")
    check("unknown sid", post(bosh.body({"sid": "0" * 32, "rid": 1})), has="item-not-found")
    check("a body the handler refuses", post("<body"), has="bad-request")
    check("a body over max_data_held",
          post("<body xmlns='%s' rid='1' to='%s'>%s</body>" % (NS, st.domain, "x" * 110000)),
          has="bad-request")
    legacy = Session(st.url, st.domain, wait=1)
    legacy.create(ver=None)
    plain = "text/plain; charset=utf-8"
    check("legacy HTTP 404", post(bosh.body({"sid": legacy.sid, "rid": legacy.rid + 10})), 404, plain)
    legacy.create(ver=None)
    check("legacy HTTP 400", post(bosh.body({"sid": legacy.sid, "rid": "x"})), 400, plain)
    check("405", exchange(st.url, "PUT", body="x"), 405, plain)
    check("bare GET (405)", exchange(st.url, "GET"), 405, plain)
    check("preflight", exchange(st.url, "OPTIONS", headers={
        "Origin": "https://chat.example", "Access-Control-Request-Method": "POST"}), 200, plain)
    check("OPTIONS from anywhere", exchange(st.url, "OPTIONS"), 200, plain)
    js = "text/javascript; charset=utf-8"
    create = bosh.body({"to": st.domain, "rid": 4000, "wait": 1, "hold": 1, "ver": "1.11"})
    a = exchange(st.url, "GET", urllib.parse.urlencode({"data": create, "callback": "cb"}))
    check("GET, JSONP", a, ctype=js, has="cb({")
    sid = re.search(r" sid='([0-9a-f]+)'", a[2]).group(1)
    check("GET, script form", exchange(st.url, "GET", urllib.parse.quote(
        bosh.body({"sid": sid, "rid": 4001}))), ctype=js, has="_BOSH_(")
    check("GET, script form refused", exchange(st.url, "GET", urllib.parse.urlencode(
        {"data": create, "callback": "alert(1)"})), ctype=js, has="bad-request")
    check("GET, plain XML", exchange(st.url, "GET", urllib.parse.urlencode(
        {"data": bosh.body({"sid": sid, "rid": 4002, "type": "terminate"})})), has="terminate")
    # the handler's own answer when sessiond is not there: FastCGI through nginx, and CGI
    from stack import Proc, wait_for
    other = side_stack(st, "handlers = 0\n")
    try:
        other.write_conf()
        sock = os.path.join(other.dir, "spawned.sock")
        spawn = Proc("spawn-fcgi", ["spawn-fcgi", "-n", "-s", sock, "-M", "0666", "--", other.handler_bin,
                                    "-c", other.conf], os.path.join(other.dir, "spawn.log"))
        try:
            wait_for(lambda: os.path.exists(sock) or not spawn.alive(), 10, "spawn-fcgi")
            other.handler_sock = sock
            other.start_nginx()
            check("the handler's 503", exchange(other.url, "POST", body=create), 503, has="remote-connection-failed")
        finally:
            spawn.stop()
        head, x = cgi_request(other.conf, other.handler_bin, create)
        h = dict(line.lower().split(": ", 1) for line in head.split("\r\n")[1:])
        check("the CGI handler's 503", (int(head.split()[1]), h, x.get("condition")), 503,
              has="remote-connection-failed")
    finally:
        other.stop()


def get(url, query):
    import urllib.request
    import urllib.error
    try:
        with urllib.request.urlopen(url + "?" + query, timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


@case
def test_get_jsonp_and_script_forms(st):
    import json
    import urllib.parse
    import xml.etree.ElementTree as ET
    s = Session(st.url, st.domain, wait=2)
    create = bosh.body({"to": st.domain, "rid": s.rid, "wait": 2, "hold": 1, "ver": "1.11",
                        "xmpp:version": "1.0"})
    q = urllib.parse.urlencode({"data": create, "callback": "jQuery_123.cb"})
    status, ctype, text = get(st.url, q)
    expect(status == 200 and ctype.startswith("text/javascript"), (status, ctype))
    m = re.fullmatch(r"jQuery_123\.cb\((.*)\);", text, re.S)
    expect(m, text[:200])
    reply = json.loads(m.group(1))["reply"]
    s.sid = ET.fromstring(reply).get("sid")
    expect(s.sid and "<" not in m.group(1), "the XML is escaped inside the script: %r" % text[:120])
    # Openfire's script form: the whole query is the body
    body = bosh.body({"sid": s.sid, "rid": s.next_rid()},
                     "<iq xmlns='jabber:client' type='get' id='g1'><ping xmlns='urn:xmpp:ping'/></iq>")
    status, ctype, text = get(st.url, urllib.parse.quote(body))
    m = re.fullmatch(r'_BOSH_\((".*")\);', text, re.S)
    expect(status == 200 and m, text[:200])
    expect(ET.fromstring(json.loads(m.group(1))).tag == "{%s}body" % NS, text)
    # a hostile callback is refused, inside the script form
    q = urllib.parse.urlencode({"data": create, "callback": "alert(document.cookie)"})
    status, ctype, text = get(st.url, q)
    expect("bad-request" in text and "alert" not in text, text)
    s.terminate()
    # off by default
    other = side_stack(st, "allow_get = 0\n")
    try:
        other.start_sessiond()
        other.start_nginx()
        status, ctype, text = get(other.url, urllib.parse.urlencode({"data": create}))
        expect(status == 405, (status, text))
    finally:
        other.stop()


@case
def test_discovery_documents_and_policy_files(st):
    import json
    import urllib.request
    import xml.etree.ElementTree as ET
    from stack import Proc, free_port, wait_for, port_open, REPO
    bosh_only = subprocess.run([os.path.join(REPO, "tools/bosh-discovery"), st.url], capture_output=True,
                               text=True, check=True).stdout
    expect("websocket" not in bosh_only and "alt-connections:xbosh" in bosh_only, bosh_only)
    out = subprocess.run([os.path.join(REPO, "tools/bosh-discovery"), "-w", st.ws_url, st.url],
                         capture_output=True, text=True, check=True).stdout
    expect('_xmppconnect.127.0.0.1. IN TXT "_xmpp-client-websocket=%s"' % st.ws_url in out, out)
    parts = dict(re.findall(r"=== (\S+)[^\n]*\n(.*?)(?=\n=== |\Z)", out, re.S))
    d = os.path.join(st.dir, "hostmeta")
    os.makedirs(os.path.join(d, "www/.well-known"), exist_ok=True)
    for name in ("/.well-known/host-meta", "/.well-known/host-meta.json"):
        open(os.path.join(d, "www") + name, "w").write(parts[name].strip() + "\n")
    expect('_xmppconnect.127.0.0.1. IN TXT "_xmpp-client-xbosh=%s"' % st.url in out, out)
    port = free_port()
    snippets = ""
    for f in ("host-meta.conf", "policy-files.conf"):
        snippets += open(os.path.join(REPO, "conf/nginx", f)).read().replace("/var/www/bosh",
                                                                            os.path.join(d, "www"))
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    open(os.path.join(d, "nginx.conf"), "w").write(
        "daemon off; pid %s/nginx.pid; error_log %s/error.log; %s\nevents {}\n"
        "http { access_log off; client_body_temp_path %s/tmp; proxy_temp_path %s/tmp; "
        "fastcgi_temp_path %s/tmp; uwsgi_temp_path %s/tmp; scgi_temp_path %s/tmp;\n"
        "server { listen 127.0.0.1:%d;\n%s\n} }\n"
        % (d, d, "user root root;" if os.geteuid() == 0 else "", d, d, d, d, d, port, snippets))
    ngx = Proc("nginx", ["nginx", "-p", d, "-c", os.path.join(d, "nginx.conf")], os.path.join(d, "out"))
    try:
        wait_for(lambda: port_open(port) or not ngx.alive(), 10, "nginx")
        base = "http://127.0.0.1:%d" % port
        with urllib.request.urlopen(base + "/.well-known/host-meta") as r:
            expect(r.headers["Access-Control-Allow-Origin"] == "*", r.headers)
            links = ET.fromstring(r.read()).findall("{http://docs.oasis-open.org/ns/xri/xrd-1.0}Link")
        got = [(link.get("rel"), link.get("href")) for link in links]
        want = [("urn:xmpp:alt-connections:xbosh", st.url), ("urn:xmpp:alt-connections:websocket", st.ws_url)]
        expect(got == want, got)
        with urllib.request.urlopen(base + "/.well-known/host-meta.json") as r:
            links = json.loads(r.read())["links"]
        expect(links == [{"rel": r, "href": h} for r, h in want], links)
        for path in ("/crossdomain.xml", "/clientaccesspolicy.xml"):
            with urllib.request.urlopen(base + path) as r:
                ET.fromstring(r.read())  # well-formed
    finally:
        ngx.stop()


# ---- ending sessions ----

@case
def test_terminate(st):
    s = login(st, "alice", "term")
    held = s.request_async()
    time.sleep(0.3)
    r = s.terminate()
    old = held.join(5)
    types = sorted([(old.type or ""), (r.type or "")])
    expect(types == ["", "terminate"], "oldest gets terminate, the other empty: %r %r" % (old, r))
    db = row(st, s.sid, until=lambda r: r["state"] == "ended")
    expect(db["end_condition"] == "terminate" and db["jid"] == s.jid, db)
    r = s.request()
    expect(r.condition == "item-not-found", r)
    log = open(st.sessiond_log, errors="replace").read()
    expect(re.search(r"session %s ended: jid=%s .*duration=[0-9.]+s condition=terminate"
                     % (s.sid, re.escape(s.jid)), log), "one end line with sid, jid, duration, condition")


@case
def test_inactivity_ends_session(st):
    s = login(st, "bob", "idle")
    r = row(st, s.sid)
    conns_before = xmpp_connections(st)
    time.sleep(4 + 1.5)
    db = row(st, s.sid, until=lambda r: r["state"] == "ended")
    expect(db["end_condition"] == "inactivity", db)
    expect(xmpp_connections(st) < conns_before, "the XMPP connection was closed")
    r = s.request()
    expect(r.condition == "item-not-found", r)


def xmpp_connections(st):
    """Established TCP connections to Prosody's c2s port."""
    port = "%04X" % st.c2s_port
    n = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if parts[1].endswith(":" + port) and parts[3] == "01":
                n += 1
    return n


@case
def test_server_stream_error_reaches_client(st):
    # A second login with the same full JID makes Prosody end the first stream with <conflict/>.
    a = login(st, "carol", "dup")
    held = a.request_async()
    time.sleep(0.3)
    b = login(st, "carol", "dup")
    r = held.join(10)
    if r.type != "terminate":
        r = a.request()
    expect(r.type == "terminate" and r.condition == "remote-stream-error", r)
    err = r.xml.find("{%s}error" % STREAM)
    expect(err is not None and err.find("{urn:ietf:params:xml:ns:xmpp-streams}conflict") is not None, r)
    db = row(st, a.sid, until=lambda r: r["state"] == "ended")
    expect(db["end_condition"] == "remote-stream-error", db)
    b.terminate()


@case
def test_xmpp_server_down(st):
    s = Session(st.url, "down.test")
    r = s.create()
    expect(r.type == "terminate" and r.condition == "remote-connection-failed", r)
    db = sqlite3.connect(st.db)
    time.sleep(0.2)
    got = db.execute("select state, end_condition from sessions where to_domain='down.test' "
                     "order by created_at desc limit 1").fetchone()
    db.close()
    expect(got == ("ended", "remote-connection-failed"), got)


# ---- a real web client ----

@case
def test_strophe_login_chat_logout(st):
    import strophe_case
    strophe_case.test_strophe_login_chat_logout(st)


@case
def test_garbage_from_a_handler_harms_nothing(st):
    import socket as so
    import struct
    control = os.path.join(st.dir, "sessiond.sock")
    fds = lambda: len(os.listdir("/proc/%d/fd" % st.sessiond.pid))
    before = fds()
    frames = [b"", b"XX", b"BF\x02\x01\0\0\0\0", b"BF\x01\x01\xff\xff\xff\xff",
              b"BF\x01\x01\0\0\0\x05\x04\0\0\0\x09POST", b"\0" * 70000]
    for f in frames:
        c = so.socket(so.AF_UNIX, so.SOCK_SEQPACKET)
        c.connect(control)
        r, w = os.pipe()  # a descriptor riding along with garbage must be closed, not kept
        try:
            c.sendmsg([f], [(so.SOL_SOCKET, so.SCM_RIGHTS, struct.pack("i", r))])
        except OSError:
            pass
        c.close()
        os.close(r)
        os.close(w)
    time.sleep(0.3)
    log = open(st.sessiond_log, errors="replace").read()
    expect("bad frame from a handler" in log, "rejections are logged")
    expect(st.sessiond.alive(), "sessiond is still running")
    expect(fds() <= before, "no descriptor kept: %d -> %d" % (before, fds()))
    s = Session(st.url, st.domain, wait=1)
    expect(s.create().attr("sid"), "and still serving")
    s.terminate()


@case
def test_browser_on_another_origin(st):
    from browser_case import PageServer
    page = PageServer()
    other = side_stack(st, "cors_origins = https://chat.example %s\n" % page.origin)
    try:
        other.start_sessiond()
        other.start_nginx()
        jid = "alice@" + st.domain
        r = page.open(other.dir, other.url, st.domain, jid, USERS["alice"])
        expect(r.get("ok") and r.get("echo") == "hello from " + page.origin,
               "the page chatted through the endpoint: %r" % r)
        expect(r.get("probe") == "read 200 with a sid" and "CONNECTED" in r["statuses"], r)
        # the same page against an endpoint that does not list its origin
        r = page.open(other.dir, st.url, st.domain, jid, USERS["alice"], give_up=4)
        expect(not r.get("ok") and "CONNECTED" not in r["statuses"], "the browser refused: %r" % r)
        expect(r.get("probe") == "refused: TypeError", "the page could not read the answer: %r" % r)
    finally:
        other.stop()
        page.close()


@case
def test_answers_are_inert_in_a_browser(st):
    import inert_case
    inert_case.run(st, USERS, expect, row)


@case
def test_get_script_forms_in_a_browser(st):
    import inert_case
    inert_case.script_forms(st, expect)


@case
def test_strophe_attach_prebound(st):
    import strophe_attach_case
    strophe_attach_case.test_strophe_attach_prebound(st)


@case
def test_strophe_restore_after_reload(st):
    import strophe_attach_case
    strophe_attach_case.test_strophe_restore_after_reload(st)


# ---- the handler pool ----

@case
def test_handler_killed_is_replaced(st):
    other = side_stack(st, "fcgi_direct = 0\n")
    try:
        other.start_sessiond()
        other.start_nginx()
        kids = handler_pids(other)
        expect(len(kids) == 2, "two handlers: %r" % kids)
        os.kill(kids[0], signal.SIGKILL)
        deadline = time.time() + 5
        while time.time() < deadline and (kids[0] in handler_pids(other) or len(handler_pids(other)) < 2):
            time.sleep(0.1)
        now = handler_pids(other)
        expect(len(now) == 2 and kids[0] not in now, "replaced: %r -> %r" % (kids, now))
        for _ in range(6):
            s = Session(other.url, st.domain)
            expect(s.create().attr("sid"), "requests still served")
            s.terminate()
    finally:
        other.stop()


def handler_pids(st):
    return child_pids(st.sessiond.pid)


# ---- the database ----

@case
def test_admin_query_during_traffic(st):
    admin = sqlite3.connect(st.db)
    admin.execute("begin")
    n = admin.execute("select count(*) from active_sessions").fetchone()[0]
    t0 = time.time()
    a = login(st, "alice", "adm")  # sessiond writes while the admin's read transaction is open
    b = login(st, "bob", "adm")
    b_poll = b.request_async("<message xmlns='jabber:client' to='%s'><body>x</body></message>" % a.jid)
    a.until(lambda c: c.tag == "{%s}message" % CLIENT)
    took = time.time() - t0
    admin.execute("commit")
    expect(took < 8, "traffic was not stalled by the reader (%.1fs)" % took)
    rows = admin.execute("select sid, jid, domain, client_addr, age_s, idle_s, held_requests "
                         "from active_sessions where sid in (?, ?)", (a.sid, b.sid)).fetchall()
    time.sleep(0.2)
    rows = admin.execute("select sid, jid, domain, client_addr, age_s, idle_s, held_requests "
                         "from active_sessions where sid in (?, ?)", (a.sid, b.sid)).fetchall()
    expect(len(rows) == 2 and all(r[1] and r[2] == st.domain and r[3] == "127.0.0.1" for r in rows), rows)
    per = dict(admin.execute("select domain, sessions from sessions_per_domain").fetchall())
    expect(per.get(st.domain, 0) >= 2, per)
    # an admin's write lock: sessiond keeps serving and catches up afterwards
    admin.execute("begin immediate")
    c = Session(st.url, st.domain)
    expect(c.create().attr("sid"), "served while the database is locked")
    c.terminate()
    time.sleep(0.3)
    admin.execute("commit")
    db = row(st, c.sid, wait=5, until=lambda r: r["state"] == "ended")
    expect(db["end_condition"] == "terminate", db)
    ended = admin.execute("select condition from recently_ended where sid=?", (c.sid,)).fetchone()
    expect(ended and ended[0] == "terminate", ended)
    admin.close()
    a.terminate()
    b.terminate()
    b_poll.join(5)


# ---- restarts (keep these last: they restart sessiond) ----

@case
def test_sessiond_restart_loses_sessions_cleanly(st):
    s = login(st, "alice", "rs1")
    row(st, s.sid, until=lambda r: r["rid"] == s.rid)
    st.stop_sessiond()
    st.start_sessiond()
    r = s.request()
    expect(r.type == "terminate" and r.condition == "remote-connection-failed", r)
    db = row(st, s.sid)
    expect(db["state"] == "lost" and db["end_condition"] == "remote-connection-failed", db)
    log = open(st.sessiond_log, errors="replace").read()
    expect(re.search(r"\d+ sessions of the previous run were lost", log), "the loss is logged")


@case
def test_sessiond_killed(st):
    s = login(st, "bob", "rs2")
    row(st, s.sid, until=lambda r: r["rid"] == s.rid)
    kids = handler_pids(st)
    st.stop_sessiond(signal.SIGKILL)
    deadline = time.time() + 5  # handlers follow their sessiond (parent-death signal)
    while time.time() < deadline and any(os.path.exists("/proc/%d" % k) for k in kids):
        time.sleep(0.1)
    expect(not any(os.path.exists("/proc/%d" % k) for k in kids), "orphaned handlers exited")
    st.start_sessiond()
    r = s.request()
    expect(r.condition == "remote-connection-failed", r)
    db = row(st, s.sid)
    expect(db["state"] == "lost", db)


# ---- other ways to run the handler (keep last: they start stacks of their own) ----

def two_sessions_then_refused(st, conf, logged):
    """A limit of two sessions: the third is refused, and room comes back."""
    other = side_stack(st, conf)
    try:
        other.start_sessiond()
        other.start_nginx()
        a, b, c = (Session(other.url, st.domain, wait=1) for _ in range(3))
        expect(a.create().attr("sid") and b.create().attr("sid"), "two sessions allowed")
        r = c.create()
        expect(r.type == "terminate" and r.condition == "policy-violation", r)
        expect(logged in open(other.sessiond_log).read(), "logged: " + logged)
        a.terminate()
        expect(c.create().attr("sid"), "room again after a session ended")
        b.terminate()
        c.terminate()
    finally:
        other.stop()


@case
def test_sessions_per_client_limit(st):
    two_sessions_then_refused(st, "max_sessions_per_client = 2\n", "max_sessions_per_client (2)")


@case
def test_max_sessions(st):
    two_sessions_then_refused(st, "max_sessions = 2\nmax_sessions_per_client = 0\n",
                              "max_sessions (2) reached")


@case
def test_strict_polling_on_held_sessions(st):
    other = side_stack(st, "strict_polling = 1\n")
    try:
        other.start_sessiond()
        other.start_nginx()
        s = Session(other.url, st.domain, wait=10)
        s.create()
        held = s.request_async()
        time.sleep(0.3)
        r = s.request()  # a second empty request while the first is held, within 'polling'
        expect(r.condition == "policy-violation", "§11 overactivity: %r" % r)
        expect(isinstance(held.join(5), bosh.Response), "the held request is answered too")
        s = Session(other.url, st.domain, wait=10)  # sending data that way is fine
        s.create()
        held = s.request_async()
        time.sleep(0.3)
        second = s.request_async("<presence xmlns='jabber:client' type='unavailable'/>")
        r1 = held.join(5)
        expect(isinstance(r1, bosh.Response) and r1.type is None, r1)
        s.terminate()
        second.join(5)
    finally:
        other.stop()


def ping(st, ident):
    return ("<iq xmlns='jabber:client' type='get' id='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
            % (ident, st.domain))


@case
def test_window_size(st):
    # by default the window is requests = hold + 1 = 2: a rid two ahead is outside it
    s = Session(st.url, st.domain, wait=5)
    s.create()
    r = s.request(rid=s.rid + 3)
    expect(r.type == "terminate" and r.condition == "item-not-found", "rid next+2, window 2: %r" % r)
    other = side_stack(st, "window_size = 4\n")
    try:
        other.start_sessiond()
        other.start_nginx()
        s = Session(other.url, st.domain, wait=5)
        s.login("carol", USERS["carol"], "window")
        expect(s.created.attr("requests") == "4" and s.created.attr("hold") == "1",
               "window_size is the requests advertised: %r" % s.created)
        n = s.rid + 1
        s.rid = n + 3
        # three requests ahead of a gap, the farthest first: they wait, then go in rid order
        late = [s.request_async(ping(st, "w%d" % i), rid=n + i) for i in (3, 2, 1)]
        time.sleep(0.5)
        expect(not any(p.done() for p in late), "requests ahead of the gap wait for it")
        answers = [s.request(ping(st, "w0"), rid=n)] + [p.join(10) for p in reversed(late)]
        expect(all(isinstance(a, bosh.Response) and a.type is None for a in answers), answers)
        got = [c.get("id") for a in answers for c in a.children() if c.get("id", "").startswith("w")]
        while len(got) < 4:
            got += [c.get("id") for c in s.request().children() if c.get("id", "").startswith("w")]
        expect(got == ["w0", "w1", "w2", "w3"], "forwarded and answered in rid order: %r" % got)
        r = s.request(rid=s.rid + 5)  # next+4: past the window, and no terminate or pause
        expect(r.type == "terminate" and r.condition == "item-not-found", "rid next+4, window 4: %r" % r)
    finally:
        other.stop()


class FakeXmppServer:
    """A few lines of XMPP server for what a real one will not show us: it
    records every stream header it is sent and answers each with features."""

    def __init__(self, misbehave=b"", flood=None, host="127.0.0.1", header_extra=b""):
        import socket as so
        import threading
        self.misbehave = misbehave  # sent when the client sends anything but a stream header
        self.header_extra = header_extra  # more attributes for its stream header
        self.flood = flood  # (count, size): messages sent, as fast as taken, on the first stanza
        self.sent = 0  # bytes of the flood the kernel has taken
        self.sock = so.socket()
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.headers = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        conn, _ = self.sock.accept()
        buf = b""
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
            if self.misbehave and b"<stream:stream" not in buf:
                conn.sendall(self.misbehave)
                buf = b""
                continue
            if self.flood and b"<stream:stream" not in buf:
                threading.Thread(target=self.send_flood, args=(conn,), daemon=True).start()
                self.flood, buf = None, b""
                continue
            while b"<stream:stream" in buf and b">" in buf[buf.index(b"<stream:stream"):]:
                start = buf.index(b"<stream:stream")
                end = buf.index(b">", start) + 1
                self.headers.append(buf[start:end].decode())
                buf = buf[end:]
                conn.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                             b"xmlns:stream='http://etherx.jabber.org/streams' id='f%d' "
                             b"from='fake.test' version='1.0'%s><stream:features/>"
                             % (len(self.headers), self.header_extra))

    def send_flood(self, conn):
        import socket as so
        count, size = self.flood
        # a small send buffer, so what sessiond does not take stays here, countable
        conn.setsockopt(so.SOL_SOCKET, so.SO_SNDBUF, 32768)
        for i in range(count):
            m = b"<message xmlns='jabber:client' id='f%d'><body>%s</body></message>" % (i, b"x" * size)
            conn.sendall(m)
            self.sent += len(m)

    def close(self):
        self.sock.close()


@case
def test_stream_attrs_on_restart(st):
    fake = FakeXmppServer()
    other = side_stack(st, "backend.fake.test = 127.0.0.1:%d\n" % fake.port)
    try:
        other.start_sessiond()
        other.start_nginx()
        s = Session(other.url, "fake.test", wait=2)
        expect(s.create().attr("sid"), "session on the fake server")
        r = s.request(**{"xmpp:restart": "true", "stream_attrs": '{"foo":"bar & baz","lang2":"x"}'})
        expect(r.type is None, r)
        time.sleep(0.2)
        expect(len(fake.headers) == 2, fake.headers)
        expect("foo='bar &amp; baz'" in fake.headers[1] and "lang2='x'" in fake.headers[1],
               "the extra attributes are in the new stream header: %r" % fake.headers[1])
        r = s.request(**{"xmpp:restart": "true", "stream_attrs": '{"to":"elsewhere"}'})
        expect(r.condition == "bad-request", "a stream_attrs that would change 'to': %r" % r)
    finally:
        other.stop()
        fake.close()


def rss_kib(pid):
    return int(re.search(r"^VmRSS:\s+(\d+)", open("/proc/%d/status" % pid).read(), re.M).group(1))


@case
def test_client_not_polling_stops_reading_at_max_client_buffer(st):
    count, size = 12000, 1000  # 12 MB: more than the kernel buffers on both sides hold
    fake = FakeXmppServer(flood=(count, size))
    other = side_stack(st, "backend.fake.test = 127.0.0.1:%d\nmax_client_buffer = 65536\n"
                       "max_inactivity = 30\ndefault_inactivity = 20\n" % fake.port)
    try:
        other.start_sessiond()
        other.start_nginx()
        witness = Session(other.url, st.domain, wait=5)
        witness.login("carol", USERS["carol"], "witness")
        s = Session(other.url, "fake.test", wait=5)
        s.create()
        rss0 = rss_kib(other.sessiond.pid)
        first = s.request("<presence xmlns='jabber:client'/>")  # starts the flood; then no requests
        ids = [c.get("id") for c in first.children()]
        last, stable_since, deadline = -1, time.time(), time.time() + 15
        while time.time() - stable_since < 1.0 and time.time() < deadline:
            time.sleep(0.1)
            if fake.sent != last:
                last, stable_since = fake.sent, time.time()
        total = sum(size + len("<message xmlns='jabber:client' id='f%d'><body></body></message>" % i)
                    for i in range(count))
        expect(fake.sent < total / 2, "the server's sending stalls: %d of %d bytes taken" % (fake.sent, total))
        grown = rss_kib(other.sessiond.pid) - rss0
        expect(grown < 4096, "sessiond kept its memory for the session bounded: RSS +%d KiB" % grown)
        expect("reading paused" in open(other.sessiond_log).read(), "the pause is logged")
        pong, _ = witness.until(lambda c: c.get("id") == "w1", ping(st, "w1"))
        expect(pong.get("type") == "result", "a session on the real server goes on meanwhile")
        deadline = time.time() + 30
        while len(ids) < count:  # the client polls again: everything, in order
            r = s.request()
            expect(r.type is None, "the flooded session goes on: %r" % r)
            expect(time.time() < deadline, "drained in time: %d of %d messages" % (len(ids), count))
            ids += [c.get("id") for c in r.children()]
        expect(ids == ["f%d" % i for i in range(count)], "all %d messages, in order" % count)
        s.terminate()
        witness.terminate()
    finally:
        other.stop()
        fake.close()


def keepalive_timers(pid, port):
    """The TCP keepalive timers (seconds left) of pid's connections to port, as ss shows them."""
    out = subprocess.run(["ss", "-tnopH", "state", "established", "dport", "= :%d" % port],
                         capture_output=True, text=True).stdout
    timers = []
    for line in out.splitlines():
        if "pid=%d," % pid not in line:
            continue
        m = re.search(r"timer:\((\w+),(?:(\d+)min)?(?:(\d+)(?:\.\d+)?sec)?(?:(\d+)ms)?", line)
        timers.append(None if not m or m.group(1) != "keepalive" else
                      int(m.group(2) or 0) * 60 + int(m.group(3) or 0) + (1 if m.group(4) else 0))
    return timers


@case
def test_xmpp_connections_have_tcp_keepalive(st):
    # a server that vanishes without a FIN is noticed by the probes, not never
    other = side_stack(st, "xmpp_keepalive = 25 5 3\n")
    try:
        other.start_sessiond()
        other.start_nginx()
        s = Session(other.url, st.domain, wait=2)
        expect(s.create().attr("sid"), "session created")
        timers = keepalive_timers(other.sessiond.pid, st.c2s_port)
        expect(timers and all(t is not None and 0 < t <= 25 for t in timers),
               "sessiond's connection to the XMPP server has its keepalive timer: %r" % timers)
        s.terminate()
    finally:
        other.stop()
    s = Session(st.url, st.domain, wait=2)  # the default: 60 s of quiet
    s.create()
    timers = keepalive_timers(st.sessiond.pid, st.c2s_port)
    expect(timers and all(t is not None and 0 < t <= 60 for t in timers), "default keepalive: %r" % timers)
    s.terminate()


@case
def test_memory_budget_is_shared_by_sessions(st):
    # Two servers flood two sessions whose clients do not poll. Each queue alone stays under
    # max_client_buffer; together they reach max_memory: reading stops, once logged, and
    # nothing is lost; a third session goes on.
    count, size = 6000, 1000
    fakes = [FakeXmppServer(flood=(count, size)) for _ in range(2)]
    other = side_stack(st, "backend.fake.test = 127.0.0.1:%d\nbackend.fake2.test = 127.0.0.1:%d\n"
                       "max_client_buffer = 33554432\nmax_memory = 2097152\n"
                       "max_inactivity = 60\ndefault_inactivity = 40\n" % (fakes[0].port, fakes[1].port))
    asan = os.environ.get("ASAN_OPTIONS")
    try:
        # ASan's quarantine would keep every buffer the queues outgrew: RSS is to measure ours
        os.environ["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=0:quarantine_size_mb=0"
        other.start_sessiond()
        if asan is None:
            del os.environ["ASAN_OPTIONS"]
        else:
            os.environ["ASAN_OPTIONS"] = asan
        other.start_nginx()
        witness = Session(other.url, st.domain, wait=5)
        witness.login("carol", USERS["carol"], "witness")
        flooded = [Session(other.url, d, wait=5) for d in ("fake.test", "fake2.test")]
        for s in flooded:
            expect(s.create().attr("sid"), "session on a fake server")
        rss0 = rss_kib(other.sessiond.pid)
        ids = [[c.get("id") for c in s.request("<presence xmlns='jabber:client'/>").children()]
               for s in flooded]  # starts the floods; then no requests
        last, stable_since, deadline = None, time.time(), time.time() + 20
        while time.time() - stable_since < 1.0 and time.time() < deadline:
            time.sleep(0.1)
            now = [f.sent for f in fakes]
            if now != last:
                last, stable_since = now, time.time()
        grown = rss_kib(other.sessiond.pid) - rss0
        expect(grown < 8192, "sessiond's memory stays near max_memory (2 MiB): RSS +%d KiB" % grown)
        log = open(other.sessiond_log).read()
        expect(log.count("past 3/4 of max_memory") == 1, "the budget is logged once:\n%s" % log[-3000:])
        pong, _ = witness.until(lambda c: c.get("id") == "w1", ping(st, "w1"))
        expect(pong.get("type") == "result", "a session on the real server goes on meanwhile")
        deadline = time.time() + 60
        for s, got in zip(flooded, ids):
            while len(got) < count:  # the client polls again: everything, in order
                r = s.request()
                expect(r.type is None, "the flooded session goes on: %r" % r)
                expect(time.time() < deadline, "drained in time: %d of %d messages" % (len(got), count))
                got += [c.get("id") for c in r.children()]
            expect(got == ["f%d" % i for i in range(count)], "all %d messages, in order" % count)
            s.terminate()
        expect("under half of max_memory again" in open(other.sessiond_log).read(), "the episode's end is logged")
        witness.terminate()
    finally:
        if asan is None:
            os.environ.pop("ASAN_OPTIONS", None)
        else:
            os.environ["ASAN_OPTIONS"] = asan
        other.stop()
        for f in fakes:
            f.close()


@case
def test_misbehaving_server_ends_only_its_session(st):
    cases = [(b"<message><<garbage", "malformed XML"),
             (b"<message>" + b"x" * 6000 + b"</message>", "larger than max_xmpp_stanza_size")]
    for bad, logged in cases:
        fake = FakeXmppServer(bad)
        other = side_stack(st, "backend.fake.test = 127.0.0.1:%d\nmax_xmpp_stanza_size = 4096\n"
                           % fake.port)
        try:
            other.start_sessiond()
            other.start_nginx()
            witness = Session(other.url, st.domain, wait=5)
            witness.login("carol", USERS["carol"], "witness")
            s = Session(other.url, "fake.test", wait=5)
            s.create()
            r = s.request("<presence xmlns='jabber:client'/>")
            if r.type != "terminate":
                r = s.request()
            expect(r.type == "terminate" and r.condition == "remote-connection-failed", r)
            expect(logged in open(other.sessiond_log).read(), "the log says why: " + logged)
            ping = ("<iq xmlns='jabber:client' type='get' id='w1' to='%s'><ping xmlns='urn:xmpp:ping'/>"
                    "</iq>" % st.domain)
            pong, _ = witness.until(lambda c: c.get("id") == "w1", ping)
            expect(pong.get("type") == "result", "the other session did not notice")
            witness.terminate()
        finally:
            other.stop()
            fake.close()


@case
def test_database_of_schema_version_1_is_migrated(st):
    other = side_stack(st)
    try:
        db = sqlite3.connect(other.db)
        db.executescript("""
            CREATE TABLE sessions (sid TEXT PRIMARY KEY, state TEXT NOT NULL, rid INTEGER NOT NULL,
              jid TEXT, to_domain TEXT NOT NULL, route TEXT, wait INTEGER NOT NULL,
              hold INTEGER NOT NULL, inactivity INTEGER NOT NULL, requests INTEGER NOT NULL,
              ver TEXT, lang TEXT, client_addr TEXT, user_agent TEXT, held INTEGER NOT NULL DEFAULT 0,
              created_at REAL NOT NULL, last_seen REAL NOT NULL, ended_at REAL, end_condition TEXT,
              pid INTEGER);
            INSERT INTO sessions VALUES ('%s', 'active', 5, 'old@localhost/x', 'localhost', NULL,
              60, 1, 70, 2, '1.11', 'en', '10.0.0.1', NULL, 1, 1.0, 2.0, NULL, NULL, 1);
            PRAGMA user_version = 1;""" % ("a" * 32))
        db.close()
        other.start_sessiond()
        db = sqlite3.connect(other.db)
        expect(db.execute("pragma user_version").fetchone()[0] == 3, "migrated to version 3")
        cols = [r[1] for r in db.execute("pragma table_info(sessions)")]
        expect("key" in cols and "transport" in cols, cols)
        got = db.execute("select state, end_condition, jid from sessions where sid=?", ("a" * 32,)).fetchone()
        expect(got == ("lost", "remote-connection-failed", "old@localhost/x"), got)
        db.close()
    finally:
        other.stop()



def side_stack(st, extra_conf=""):
    """A second sessiond (and nginx) in a folder of its own inside the run's,
    in front of the same Prosody: removed with the run's folder, and its
    sanitizer reports are collected with the others (run.py)."""
    import tempfile
    from stack import Stack
    return Stack(build=st.build, workdir=tempfile.mkdtemp(prefix="side-", dir=st.dir),
                 xmpp_server="127.0.0.1:%d" % st.c2s_port,
                 sessiond_bin=st.sessiond_bin, handler_bin=st.handler_bin,
                 extra_conf=SESSIOND_CONF + extra_conf)


@case
def test_handlers_under_spawn_fcgi(st):
    from stack import Proc, wait_for
    # handlers of another user: handler_users lets them use the control socket
    other = side_stack(st, "handlers = 0\nhandler_users = nobody\n")
    try:
        other.start_sessiond()
        sock = os.path.join(other.dir, "spawned.sock")
        argv = ["spawn-fcgi", "-n", "-s", sock, "-M", "0660"]
        if os.geteuid() == 0:  # as a hosting admin would: handlers unprivileged
            argv += ["-u", "nobody", "-g", "nogroup", "-U", "nobody", "-G", "nogroup"]
        argv += ["--", other.handler_bin, "-c", other.conf]
        spawn = Proc("spawn-fcgi", argv, os.path.join(other.dir, "spawn.log"))
        try:
            wait_for(lambda: os.path.exists(sock) or not spawn.alive(), 10, "spawn-fcgi")
            expect(spawn.alive(), open(os.path.join(other.dir, "spawn.log")).read())
            other.handler_sock = sock
            other.start_nginx()
            s = Session(other.url, st.domain)
            s.login("carol", USERS["carol"], "spawned")
            held = s.request_async()
            time.sleep(0.3)
            expect(not held.done(), "a request is held while the handler is free")
            second = s.request_async()  # releases the first
            r1 = held.join(5)
            expect(isinstance(r1, bosh.Response) and r1.status == 200, r1)
            s.terminate()
            expect(isinstance(second.join(5), bosh.Response), "answered at terminate")
        finally:
            spawn.stop()
    finally:
        other.stop()


@case
def test_handler_as_plain_cgi(st):
    def run(body_text):
        return cgi_request(st.conf, st.handler_bin, body_text)

    head, x = run(bosh.body({"to": st.domain, "rid": 1000, "wait": 2, "hold": 1,
                             "xmpp:version": "1.0", "ver": "1.11"}))
    expect(head.startswith("Status: 200") and "Content-Type: text/xml" in head, head)
    sid = x.get("sid")
    expect(sid and re.fullmatch(r"[0-9a-f]{32}", sid), x.attrib)
    t0 = time.time()
    head, x = run(bosh.body({"sid": sid, "rid": 1001}))
    took = time.time() - t0
    expect(head.startswith("Status: 200") and x.get("type") is None, x.attrib)
    expect(1.5 < took < 6, "held for wait (2 s) in CGI mode too: %.1fs" % took)
    db = row(st, sid)
    expect(db["client_addr"] == "192.0.2.9", db)
    head, x = run(bosh.body({"sid": sid, "rid": 1002, "type": "terminate"}))
    expect(x.get("type") == "terminate", x.attrib)
    head, x = run("<body")
    expect(x.get("condition") == "bad-request", x.attrib)


def cgi_request(conf, handler, body_text, timeout=30):
    """The handler run as plain CGI, as a web server would; returns the answer's XML."""
    import xml.etree.ElementTree as ET
    data = body_text.encode()
    env = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(data)), "REMOTE_ADDR": "192.0.2.9",
           "GATEWAY_INTERFACE": "CGI/1.1", "PATH": os.environ["PATH"], "BOSH_CONFIG": conf,
           "ASAN_OPTIONS": "detect_leaks=0"}
    p = subprocess.run([handler], input=data, env=env, capture_output=True, timeout=timeout)
    head, _, rest = p.stdout.partition(b"\r\n\r\n")
    return head.decode(), ET.fromstring(rest.decode())


def daemons_for(conf):
    """PIDs of the sessiond processes serving this config file."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                argv = open("/proc/%s/cmdline" % d, "rb").read().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"sessiond") and conf.encode() in argv:
                pids.append(int(d))
    return pids


@case
def test_cgi_handler_starts_sessiond(st):
    import concurrent.futures
    other = side_stack(st, "handlers = 0\nautostart = 1\npid_file = sessiond.pid\n"
                           "sessiond_path = %s\n" % st.sessiond_bin)
    other.write_conf()
    pidfile = os.path.join(other.dir, "sessiond.pid")

    def create():
        head, x = cgi_request(other.conf, st.handler_bin,
                              bosh.body({"to": st.domain, "rid": 77, "wait": 2, "ver": "1.11"}))
        return head, x.get("sid")

    try:
        expect(not daemons_for(other.conf), "no sessiond yet")
        head, sid = create()
        expect(head.startswith("Status: 200") and sid, head)
        pid = int(open(pidfile).read())
        expect(daemons_for(other.conf) == [pid], "one sessiond, started by the first request")
        # killed between requests: the next request starts a new one and hears the truth
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
        head, x = cgi_request(other.conf, st.handler_bin, bosh.body({"sid": sid, "rid": 78}))
        expect(x.get("condition") == "remote-connection-failed", x.attrib)
        pid = int(open(pidfile).read())
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
        # 20 first requests at once: exactly one sessiond
        with concurrent.futures.ThreadPoolExecutor(20) as ex:
            results = list(ex.map(lambda _: create(), range(20)))
        expect(all(h.startswith("Status: 200") and sid for h, sid in results), results)
        expect(len(daemons_for(other.conf)) == 1, "one sessiond for 20 racing handlers: %r"
               % daemons_for(other.conf))
    finally:
        for pid in daemons_for(other.conf):
            os.kill(pid, signal.SIGTERM)


@case
def test_root_drops_privileges(st):
    if os.geteuid() != 0:
        raise Skipped("needs root: it checks that sessiond gives up root")
    import pwd
    import grp
    nobody = pwd.getpwnam("nobody")
    nogroup = grp.getgrnam("nogroup").gr_gid
    other = side_stack(st, "user = nobody\ngroup = nogroup\n")
    try:
        os.chown(other.dir, nobody.pw_uid, nogroup)
        other.write_conf()
        other.start_sessiond()
        other.start_nginx()
        status = open("/proc/%d/status" % other.sessiond.pid).read()
        uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).groups()
        expect(all(int(u) == nobody.pw_uid for u in uids), "sessiond runs as nobody: %r" % (uids,))
        kids = handler_pids(other)
        for k in kids:
            u = re.search(r"^Uid:\s+(\d+)", open("/proc/%d/status" % k).read(), re.M).group(1)
            expect(int(u) == nobody.pw_uid, "handler %d runs as nobody" % k)
        for name in ("sessiond.sock", "handler.sock"):
            stt = os.stat(os.path.join(other.dir, name))
            expect(stt.st_mode & 0o777 == 0o660 and stt.st_gid == nogroup, "%s: %o" % (name, stt.st_mode))
        expect(os.stat(other.db).st_uid == nobody.pw_uid, "database belongs to nobody")
        s = Session(other.url, st.domain)
        s.login("alice", USERS["alice"], "priv")
        s.terminate()
    finally:
        other.stop()
