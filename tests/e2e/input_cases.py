"""Hostile attribute values: every creation attribute at 1, 2, 3 and 4 KB
gets a clean answer, and the sessions already there live on."""
import xml.etree.ElementTree as ET

import bosh
from bosh import CLIENT, NS, Session, post_raw
from cases import case, expect, login

SIZES = (1024, 2048, 3072, 4096)
# What may stand in a session creation request (XEP-0124 §7.1, XEP-0206,
# §15 keys, §16 streams, node-xmpp-bosh's stream_attrs), and a filler of
# the kind each would take, so a value fails on its length, not its look.
CREATION_ATTRS = {
    "to": "a", "xml:lang": "a", "ver": "1", "wait": "9", "hold": "9", "rid": "9",
    "content": "a", "route": "a", "from": "a", "ua": "a", "xmpp:version": "1",
    "newkey": "a", "secure": "a", "charsets": "a", "accept": "a", "ack": "9",
    "polling": "9", "requests": "9", "stream_attrs": "a",
}
OK_TERMINATES = {"bad-request", "host-unknown", "improper-addressing", "item-not-found"}


def clean_answer(r, what):
    """An HTTP 200 with a <body/> the client can read: a session or a terminate."""
    expect(r.status == 200 and r.xml is not None and r.xml.tag == "{%s}body" % NS,
           "%s: not a clean answer: %r" % (what, r))
    if r.type == "terminate":
        expect(r.condition in OK_TERMINATES, "%s: condition %r" % (what, r.condition))
    else:
        expect(r.attr("sid"), "%s: neither a session nor a terminate: %r" % (what, r))
        post_raw(r.url_for_terminate, bosh.body({"sid": r.attr("sid"), "rid": r.rid + 1,
                                                 "type": "terminate"}))


def witness_alive(st, w, pid):
    expect(st.sessiond.alive() and st.sessiond.pid == pid, "sessiond was restarted or died")
    got, _ = w.until(lambda e: e.tag == "{%s}message" % CLIENT,
                     "<message xmlns='jabber:client' to='%s'><body>still here</body></message>" % w.jid)
    expect(got.find("{%s}body" % CLIENT).text == "still here", ET.tostring(got))


@case
def test_creation_attributes_of_1_to_4_kb(st):
    w = login(st, "alice", "witness")
    pid = st.sessiond.pid
    for name, fill in CREATION_ATTRS.items():
        for size in SIZES:
            s = Session(st.url, st.domain, wait=5)
            attrs = {"to": st.domain, "rid": s.rid, "wait": 5, "hold": 1, "ver": "1.6",
                     "xml:lang": "en", "xmpp:version": "1.0", name: fill * size}
            r = post_raw(st.url, bosh.body(attrs), timeout=30)
            r.url_for_terminate, r.rid = st.url, s.rid
            clean_answer(r, "%s of %d bytes" % (name, size))
    for size in SIZES:  # the User-Agent header, which the database keeps
        s = Session(st.url, st.domain, wait=5)
        r = post_raw(st.url, bosh.body({"to": st.domain, "rid": s.rid, "wait": 5, "hold": 1,
                                        "ver": "1.6"}), timeout=30, headers={"User-Agent": "u" * size})
        r.url_for_terminate, r.rid = st.url, s.rid
        clean_answer(r, "User-Agent of %d bytes" % size)
    witness_alive(st, w, pid)
    w.terminate()


@case
def test_long_xml_lang_names_the_attribute(st):
    """The creation request that once overflowed the stream header."""
    pid = st.sessiond.pid
    s = Session(st.url, st.domain, lang="a" * 3000)
    r = s.create()
    expect(r.type == "terminate" and r.condition == "bad-request", r)
    with open(st.sessiond_log, errors="replace") as f:
        expect("'xml:lang' must be a language tag" in f.read(), "the log names xml:lang")
    expect(st.sessiond.alive() and st.sessiond.pid == pid, "sessiond lives")


@case
def test_request_attributes_of_1_to_4_kb(st):
    """On a live session: a stream added with a long 'to' or xml:lang, a long
    pause or key. Each gets a clean answer; other sessions go on."""
    w = login(st, "alice", "witness2")
    pid = st.sessiond.pid
    for name, fill, extra in (("xml:lang", "a", {"to": st.domain}), ("to", "a", {}),
                              ("pause", "9", {}), ("key", "a", {}), ("stream", "a", {}),
                              ("ack", "9", {})):
        for size in SIZES:
            s = Session(st.url, st.domain, wait=5)
            s.create()
            expect(s.sid, "a session to test on")
            attrs = dict(extra)
            attrs[name] = fill * size
            r = s.request(timeout=30, **attrs)
            expect(r.status == 200 and r.xml is not None, "%s of %d: %r" % (name, size, r))
            if r.type != "terminate":
                s.terminate()
    witness_alive(st, w, pid)
    w.terminate()
