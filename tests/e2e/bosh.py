"""A small BOSH (XEP-0124/0206) client for the tests and for `login.py`.

Each request is one HTTP POST on its own connection, so a test can keep a
request held while it sends another, as a browser does.
"""
import base64
import http.client
import random
import threading
import urllib.parse
import xml.etree.ElementTree as ET

NS = "http://jabber.org/protocol/httpbind"
XBOSH = "urn:xmpp:xbosh"
STREAM = "http://etherx.jabber.org/streams"
CLIENT = "jabber:client"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"


class Response:
    def __init__(self, status, headers, text):
        self.status = status
        self.headers = headers
        self.text = text
        self.xml = ET.fromstring(text) if text.strip().startswith("<") else None

    def attr(self, name):
        return self.xml.get(name) if self.xml is not None else None

    @property
    def type(self):
        return self.attr("type")

    @property
    def condition(self):
        return self.attr("condition")

    def children(self):
        return list(self.xml) if self.xml is not None else []

    def __repr__(self):
        return "<Response %s %s>" % (self.status, self.text[:300])


def post_raw(url, data, timeout=90, headers=None):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        h = {"Content-Type": "text/xml; charset=utf-8"}
        h.update(headers or {})
        conn.request("POST", u.path, body=data if isinstance(data, bytes) else data.encode(), headers=h)
        r = conn.getresponse()
        return Response(r.status, dict(r.getheaders()), r.read().decode("utf-8", "replace"))
    finally:
        conn.close()


def body(attrs, payload=""):
    a = "".join(" %s='%s'" % (k, str(v).replace("&", "&amp;").replace("'", "&apos;")
                              .replace("<", "&lt;")) for k, v in attrs.items())
    if payload:
        return "<body xmlns='%s' xmlns:xmpp='%s'%s>%s</body>" % (NS, XBOSH, a, payload)
    return "<body xmlns='%s' xmlns:xmpp='%s'%s/>" % (NS, XBOSH, a)


class Session:
    def __init__(self, url, domain, wait=10, hold=1, rid=None, lang="en"):
        self.url = url
        self.domain = domain
        self.wait = wait
        self.hold = hold
        self.rid = rid if rid is not None else random.randint(1 << 20, 1 << 40)
        self.lang = lang
        self.sid = None
        self.jid = None
        self.created = None
        self.features = None
        self.lock = threading.Lock()

    def next_rid(self):
        with self.lock:
            self.rid += 1
            return self.rid

    def create(self, **extra):
        attrs = {"to": self.domain, "rid": self.rid, "wait": self.wait, "hold": self.hold,
                 "ver": "1.6", "xml:lang": self.lang, "xmpp:version": "1.0"}
        attrs.update(extra)
        attrs = {k: v for k, v in attrs.items() if v is not None}
        r = post_raw(self.url, body(attrs))
        self.created = r
        self.sid = r.attr("sid")
        self.features = r.xml.find("{%s}features" % STREAM) if r.xml is not None else None
        return r

    def request(self, payload="", rid=None, timeout=None, **attrs):
        a = {"sid": self.sid, "rid": rid if rid is not None else self.next_rid()}
        a.update(attrs)
        return post_raw(self.url, body(a, payload), timeout=timeout or self.wait + 30)

    def request_async(self, payload="", rid=None, **attrs):
        """Starts a request in a thread; .join() returns its Response."""
        rid = rid if rid is not None else self.next_rid()
        box = {}

        def run():
            try:
                box["r"] = self.request(payload, rid=rid, **attrs)
            except Exception as e:  # the test looks at it
                box["r"] = e

        t = threading.Thread(target=run, daemon=True)
        t.start()

        class Pending:
            def join(self_inner, timeout=None):
                t.join(timeout)
                return box.get("r")

            def done(self_inner):
                return not t.is_alive()
        return Pending()

    def until(self, predicate, payload="", tries=10):
        """Polls until an answer contains a child matching predicate."""
        for _ in range(tries):
            r = self.request(payload)
            payload = ""
            for c in r.children():
                if predicate(c):
                    return c, r
            if r.type == "terminate":
                raise AssertionError("session terminated: %r" % r)
        raise AssertionError("expected element did not arrive")

    def login(self, user, password, resource="test"):
        r = self.create()
        assert self.sid, "no sid in %r" % r
        if self.features is None:
            self.features, _ = self.until(lambda c: c.tag == "{%s}features" % STREAM)
        creds = base64.b64encode(("\0%s\0%s" % (user, password)).encode()).decode()
        auth = "<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (SASL, creds)
        res, _ = self.until(lambda c: c.tag in ("{%s}success" % SASL, "{%s}failure" % SASL), auth)
        if res.tag != "{%s}success" % SASL:
            raise AssertionError("SASL failed: %s" % ET.tostring(res))
        r = self.request(**{"xmpp:restart": "true"})
        feats = [c for c in r.children() if c.tag == "{%s}features" % STREAM]
        if not feats:
            feats = [self.until(lambda c: c.tag == "{%s}features" % STREAM)[0]]
        self.restart_features = feats[0]
        iq = ("<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='%s'>"
              "<resource>%s</resource></bind></iq>" % (BIND, resource))
        res, _ = self.until(lambda c: c.tag == "{%s}iq" % CLIENT and c.get("id") == "bind1", iq)
        self.jid = res.find("{%s}bind/{%s}jid" % (BIND, BIND)).text
        return self.jid

    def terminate(self, payload="<presence xmlns='jabber:client' type='unavailable'/>"):
        return self.request(payload, type="terminate")
