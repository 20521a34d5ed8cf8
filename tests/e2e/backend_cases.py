"""End-to-end cases for sessiond's connections to XMPP servers: TLS against
a real Prosody that requires it (our own CA and certificates), SRV lookups
answered by a DNS server of the tests, the route policy, and fake servers
that misbehave in ways a real one will not on demand. Each case keeps a
witness session on the main Prosody that must go on working."""
import os
import socket
import threading
import time

import certs
from bosh import Session
from cases import (CLEANUPS, USERS, FakeXmppServer, Skipped, case, expect, side_stack)
from fakedns import FakeDns
from stack import REPO, Proc, fill, free_port, port_open, wait_for

TLS_USERS = {"secure.test", "direct.test", "srv.test", "direct-srv.test"}
GOOD_NAMES = ["secure.test", "direct.test", "srv.test", "direct-srv.test"]
UNTRUSTED_NAMES = ["untrusted.test", "pinned.test", "badpin.test"]
SRV_ID = "1.3.6.1.5.5.7.8.7;IA5STRING:_xmpp-client.srvid.test"


def log_has(stack, text):
    with open(stack.sessiond_log, errors="replace") as f:
        return text in f.read()


def wait_log(stack, text, timeout=10):
    wait_for(lambda: log_has(stack, text), timeout, "log line: " + text)


def ping(s, domain, tag):
    iq = ("<iq xmlns='jabber:client' type='get' id='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
          % (tag, domain))
    pong, _ = s.until(lambda c: c.get("id") == tag, iq)
    return pong.get("type") == "result"


class TlsWorld:
    """A Prosody that requires TLS, the certificates, a DNS server, a fake
    XMPP server without STARTTLS, and a sessiond + nginx configured for all
    of them, in front of the main Prosody too (the witness's domain)."""

    def __init__(self, st):
        self.st = st
        d = self.dir = os.path.join(st.dir, "tls-world")
        os.makedirs(os.path.join(d, "data"), exist_ok=True)
        self.ca = certs.make_ca(d, "testca")
        rogue = certs.make_ca(d, "rogueca")
        certs.make_cert(d, "good", self.ca, dns=GOOD_NAMES)
        certs.make_cert(d, "other", self.ca, dns=["other.test"])
        certs.make_cert(d, "srvid", self.ca, dns=["unrelated.test"], other_names=[SRV_ID])
        untrusted = certs.make_cert(d, "untrusted", rogue, dns=UNTRUSTED_NAMES)
        self.c2s, self.dtls, self.down = free_port(), free_port(), free_port()
        self.start_prosody()
        self.nostarttls = FakeXmppServer()
        self.routed = FakeXmppServer()
        self.dns = FakeDns({
            ("_xmpps-client._tcp.srv.test", "SRV"): [(5, 0, self.down, "down.srv.test")],
            ("_xmpp-client._tcp.srv.test", "SRV"): [(10, 0, self.c2s, "xmpp.srv.test")],
            ("_xmpps-client._tcp.direct-srv.test", "SRV"): [(0, 0, self.dtls, "xmpp.srv.test")],
            ("_xmpp-client._tcp.refused.test", "SRV"): [(0, 0, 0, ".")],
            ("down.srv.test", "A"): ["127.0.0.1"],
            ("xmpp.srv.test", "A"): ["127.0.0.1"],
            ("xmpp.srv.test", "AAAA"): ["::1"],  # nothing listens there: IPv4 is tried next
            ("a-only.test", "A"): ["127.0.0.1"],
        })
        c2s = "127.0.0.1:%d" % self.c2s
        self.side = side_stack(st, "\n".join([
            "tls_ca_file = " + self.ca[1],
            "dns_servers = 127.0.0.1:%d" % self.dns.port,
            "connect_timeout = 2",
            "allowed_routes = xmpp:127.0.0.1:%d" % self.routed.port,
            "backend.secure.test = %s starttls" % c2s,
            "backend.direct.test = 127.0.0.1:%d directtls" % self.dtls,
            "backend.wrongname.test = %s starttls" % c2s,
            "backend.srvid.test = %s starttls" % c2s,
            "backend.untrusted.test = %s starttls" % c2s,
            "backend.pinned.test = %s starttls pin-sha256=%s" % (c2s, certs.spki_pin(untrusted[1])),
            "backend.badpin.test = %s starttls pin-sha256=%s" % (c2s, certs.spki_pin(self.ca[1])),
            "backend.nostarttls.test = 127.0.0.1:%d starttls" % self.nostarttls.port,
            "backend.srv.test = srv starttls",
            "backend.direct-srv.test = srv",
            "backend.a-only.test = srv",
            "backend.refused.test = srv",
            "backend.routed.test = 127.0.0.1:%d" % self.down,
            ""]))
        self.side.start_sessiond()
        self.side.start_nginx()

    def start_prosody(self):
        d = self.dir
        cfg = os.path.join(d, "prosody.cfg.lua")
        with open(cfg, "w") as f:
            f.write(fill(os.path.join(REPO, "conf/prosody/tls-test.cfg.lua"),
                         {"@DIR@": d, "@C2S_PORT@": self.c2s, "@DIRECT_TLS_PORT@": self.dtls}))
        self.prosody = Proc("prosody-tls", ["prosody", "--config", cfg], os.path.join(d, "stdout.log"))
        wait_for(lambda: (port_open(self.c2s) and port_open(self.dtls)) or not self.prosody.alive(),
                 30, "prosody (TLS)")
        if not self.prosody.alive():
            raise RuntimeError("prosody (TLS) did not start:\n" + open(os.path.join(d, "prosody.log")).read())
        import subprocess
        for domain in TLS_USERS:
            subprocess.run(["prosodyctl", "--config", cfg, "register", "alice", domain, "alice-pw"],
                           check=True, capture_output=True, timeout=60)

    def close(self):
        for stop in (self.side.stop, self.prosody.stop, self.dns.close, self.nostarttls.close,
                     self.routed.close):
            try:
                stop()
            except Exception:
                pass


_world = []


def world(st):
    if not _world:
        _world.append(TlsWorld(st))
        CLEANUPS.append(_world[0].close)
    return _world[0]


def witness(w):
    s = Session(w.side.url, w.st.domain, wait=5)
    s.login("carol", USERS["carol"], "witness")
    return s


def created(w, domain):
    s = Session(w.side.url, domain, wait=5)
    return s, s.create()


@case
def test_starttls_login_and_chat_with_prosody_requiring_tls(st):
    w = world(st)
    s = Session(w.side.url, "secure.test", wait=5)
    jid = s.login("alice", "alice-pw", "tls")
    expect(s.created.attr("secure") == "true", "secure='true' over TLS: %r" % s.created)
    starttls = s.features.find("{urn:ietf:params:xml:ns:xmpp-tls}starttls")
    expect(starttls is None, "the client never sees <starttls/>")
    msg = "<message xmlns='jabber:client' to='%s' id='m1'><body>over TLS</body></message>" % jid
    got, _ = s.until(lambda c: c.get("id") == "m1", msg)
    expect(got.findtext("{jabber:client}body") == "over TLS", got)
    expect(log_has(w.side, "TLS to the XMPP server for secure.test: TLSv1."), "TLS logged")
    s.terminate()


@case
def test_direct_tls(st):
    w = world(st)
    s = Session(w.side.url, "direct.test", wait=5)
    s.login("alice", "alice-pw", "direct")
    expect(s.created.attr("secure") == "true", s.created)
    expect(log_has(w.side, "for direct.test (direct TLS)"), "connected with direct TLS")
    expect(ping(s, "direct.test", "d1"), "a ping over direct TLS")
    s.terminate()


@case
def test_tls_peer_checks(st):
    w = world(st)
    wit = witness(w)
    refused = {
        "wrongname.test": "certificate is not valid for wrongname.test",
        "untrusted.test": "certificate not trusted",
        "badpin.test": "does not match the configured pin",
        "nostarttls.test": "does not offer STARTTLS, and TLS is required",
    }
    for domain, why in refused.items():
        _, r = created(w, domain)
        expect(r.type == "terminate" and r.condition == "remote-connection-failed",
               "%s: %r" % (domain, r))
        wait_log(w.side, why)
    for domain in ("srvid.test", "pinned.test"):  # an SRV-ID names it; a pin replaces the CA
        s, r = created(w, domain)
        expect(r.type != "terminate" and r.attr("secure") == "true", "%s: %r" % (domain, r))
        s.terminate()
    expect(ping(wit, st.domain, "w1"), "the witness did not notice")
    wit.terminate()


def machine_address():
    """An IPv4 address of this machine that is not loopback."""
    import subprocess
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    v4 = [a for a in out if "." in a and not a.startswith("127.")]
    expect(v4, "this test needs a non-loopback IPv4 address; hostname -I says %r" % out)
    return v4[0]


@case
def test_tls_required_by_default_off_loopback(st):
    addr = machine_address()
    strict, lax = FakeXmppServer(host=addr), FakeXmppServer(host=addr)
    other = side_stack(st, "backend.strict.test = %s:%d\nbackend.lax.test = %s:%d\n"
                       "no_tls_domains = lax.test\n" % (addr, strict.port, addr, lax.port))
    try:
        other.start_sessiond()
        other.start_nginx()
        r = Session(other.url, "strict.test", wait=5).create()
        expect(r.type == "terminate" and r.condition == "remote-connection-failed", r)
        wait_log(other, "the XMPP server for strict.test does not offer STARTTLS, and TLS is required")
        s = Session(other.url, "lax.test", wait=5)
        r = s.create()  # no_tls_domains: plain TCP, and the client is told it is not secure
        expect(r.type != "terminate" and r.attr("secure") == "false", r)
        s.terminate()
    finally:
        other.stop()
        strict.close()
        lax.close()


@case
def test_tls_sessions_resume(st):
    w = world(st)
    for i in range(2):
        s = Session(w.side.url, "secure.test", wait=5)
        s.login("alice", "alice-pw", "resume%d" % i)  # the server's ticket has arrived by then
        expect(s.created.attr("secure") == "true", s.created)
        s.terminate()
    wait_log(w.side, "TLS to the XMPP server for secure.test: TLSv1.3, ")
    expect(log_has(w.side, ", session resumed"), "the second connection resumed the first's TLS session")


@case
def test_srv_records_are_followed(st):
    w = world(st)
    s = Session(w.side.url, "srv.test", wait=5)
    s.login("alice", "alice-pw", "srv")
    expect(s.created.attr("secure") == "true", s.created)
    questions = set(q for q, _ in w.dns.questions)
    expect({"_xmpp-client._tcp.srv.test", "_xmpps-client._tcp.srv.test"} <= questions, questions)
    # priority 5 (direct TLS, down) is tried before priority 10 (STARTTLS, up)
    expect(log_has(w.side, "target=down.srv.test:%d address=127.0.0.1 " % w.down), "the first target was tried first")
    expect(log_has(w.side, "target=xmpp.srv.test:%d address=::1 " % w.c2s), "its IPv6 address, then IPv4")
    expect(log_has(w.side, "connected to xmpp.srv.test:%d for srv.test" % w.c2s), "then the second")
    s.terminate()
    s, r = created(w, "direct-srv.test")  # _xmpps-client: TLS from the first byte
    expect(r.attr("secure") == "true", r)
    expect(log_has(w.side, "connected to xmpp.srv.test:%d for direct-srv.test (direct TLS)" % w.dtls),
           "direct TLS from the SRV record")
    s.terminate()
    _, r = created(w, "refused.test")
    expect(r.condition == "remote-connection-failed", r)
    wait_log(w.side, "refused.test says it offers no XMPP client service")
    _, r = created(w, "a-only.test")  # no SRV: the domain itself on 5222
    expect(r.type == "terminate" or r.attr("sid"), r)
    wait_log(w.side, "a-only.test:5222")


@case
def test_route_policy(st):
    w = world(st)
    route_ok = "xmpp:127.0.0.1:%d" % w.routed.port
    for route, condition in (("xmpp:127.0.0.1:22", "host-unknown"),
                             ("xmpp:169.254.169.254:80", "host-unknown"),
                             ("127.0.0.1:5222", "improper-addressing"),
                             ("xmpp:no-port", "improper-addressing")):
        s = Session(w.side.url, "routed.test", wait=5)
        r = s.create(route=route)
        expect(r.type == "terminate" and r.condition == condition, "%s: %r" % (route, r))
    s = Session(w.side.url, "routed.test", wait=5)
    r = s.create(route=route_ok)  # allowed_routes names it: the fake server gets the stream
    expect(r.attr("sid") and r.type != "terminate", r)
    expect(w.routed.headers and "to='routed.test'" in w.routed.headers[0], w.routed.headers)
    s.terminate()
    # the domain's own backend is always a valid route
    s = Session(w.side.url, st.domain, wait=5)
    r = s.create(route="xmpp:127.0.0.1:%d" % st.c2s_port)
    expect(r.attr("sid") and r.type != "terminate", r)
    s.terminate()
    # a stream added to a session (§16.3) obeys the same policy
    s = Session(w.side.url, st.domain, wait=5)
    s.login("carol", USERS["carol"], "route")
    r = s.request(to="routed.test", route="xmpp:169.254.169.254:80")
    expect(r.type == "terminate" and r.condition == "host-unknown", "added stream's route: %r" % r)


@case
def test_route_naming_the_domain_uses_its_backend(st):
    # gloox sends route='xmpp:DOMAIN:5222' on creation. We serve a defined list
    # of domains (XEP-0124 §7.1 lets such a manager ignore 'route'): a route
    # naming the 'to' domain itself, at any port, means the domain's backend.
    if st.c2s_port == 5222:
        raise Skipped("the tests' Prosody happens to listen on 5222")
    for port in (5222, 5269):
        s = Session(st.url, st.domain, wait=5)
        create = s.create
        s.create = lambda **kw: create(route="xmpp:%s:%d" % (st.domain.upper(), port), **kw)
        jid = s.login("carol", USERS["carol"], "routed%d" % port)
        expect(jid == "carol@%s/routed%d" % (st.domain, port), jid)
        s.terminate()
    # a name that is not the domain still never becomes a connection
    for route in ("xmpp:%s.evil.test:5222" % st.domain, "xmpp:127.0.0.2:5222"):
        r = Session(st.url, st.domain, wait=5).create(route=route)
        expect(r.type == "terminate" and r.condition == "host-unknown", "%s: %r" % (route, r))


class ScriptedXmppServer:
    """Accepts one connection, answers the stream header, then runs
    script(conn) once the client sends something more (e.g. presence)."""

    HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
              b"xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='x.test' version='1.0'>")

    def __init__(self, script, features=True):
        self.script, self.features = script, features
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        try:
            conn, _ = self.sock.accept()
            conn.recv(4096)
            conn.sendall(self.HEADER + (b"<stream:features/>" if self.features else b""))
            if self.features:
                conn.recv(4096)
            self.script(conn)
        except OSError:
            pass

    def close(self):
        self.sock.close()


class SilentServer:
    """Listens and never accepts: connections complete (the kernel takes
    them), and nothing is ever said on them."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


def stall(conn):
    time.sleep(30)


def close_mid_stanza(conn):
    conn.sendall(b"<message from='a@x.test'><body>hel")
    conn.close()


def trickle(conn):
    for b in b"<message from='a@x.test'><body>slow</body></message>":
        conn.sendall(bytes([b]))
        time.sleep(0.5)


def stream_error_mid_stanza(conn):
    conn.sendall(b"<message from='a@x.test'><body>x</body><stream:error><conflict "
                 b"xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>")


@case
def test_servers_that_misbehave_end_only_their_session(st):
    servers = {
        "stall.test": (ScriptedXmppServer(stall, features=False), "did not open a stream and send its features"),
        "midclose.test": (ScriptedXmppServer(close_mid_stanza), "closed the connection in the middle of a stanza"),
        "trickle.test": (ScriptedXmppServer(trickle), "did not finish a stanza within 2 s"),
        "midstreamerror.test": (ScriptedXmppServer(stream_error_mid_stanza), "malformed XML"),
    }
    # Direct TLS to a server that answers the TLS hello with XML, and to one
    # that never answers it (a listener that never accepts: the kernel does).
    silent = SilentServer()
    tls_servers = {
        "tlsjunk.test": (ScriptedXmppServer(stall, features=False), "TLS with the XMPP server for tlsjunk.test failed"),
        "tlsstall.test": (silent, "did not finish the TLS handshake in time"),
    }
    # A name server that never answers: only the session waiting for it waits.
    blackhole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blackhole.bind(("127.0.0.1", 0))
    conf = "connect_timeout = 2\nstanza_timeout = 2\ndns_servers = 127.0.0.1:%d\n" % (
        blackhole.getsockname()[1]) + "backend.deaddns.test = srv\n" + "".join(
        "backend.%s = 127.0.0.1:%d\n" % (d, srv.port) for d, (srv, _) in servers.items()) + "".join(
        "backend.%s = 127.0.0.1:%d directtls\n" % (d, srv.port) for d, (srv, _) in tls_servers.items())
    servers.update(tls_servers)
    servers["deaddns.test"] = (blackhole, "could not be looked up and reached in time")
    other = side_stack(st, conf)
    try:
        other.start_sessiond()
        other.start_nginx()
        wit = Session(other.url, st.domain, wait=5)
        wit.login("carol", USERS["carol"], "witness")
        results = {}

        def drive(domain):
            s = Session(other.url, domain, wait=8)
            t0 = time.time()
            r = s.create()
            if r.type != "terminate":
                r = s.request("<presence xmlns='jabber:client'/>")
            while r.type != "terminate" and time.time() - t0 < 20:
                r = s.request()
            results[domain] = (r, time.time() - t0)

        threads = [threading.Thread(target=drive, args=(d,)) for d in servers]
        for t in threads:
            t.start()
        n = 0
        while any(t.is_alive() for t in threads):  # the witness keeps talking throughout
            n += 1
            expect(ping(wit, st.domain, "w%d" % n), "the witness session did not notice")
        for t in threads:
            t.join()
        for domain, (srv, why) in servers.items():
            r, took = results[domain]
            expect(r.type == "terminate" and r.condition == "remote-connection-failed",
                   "%s: %r" % (domain, r))
            expect(took < 12, "%s ended in bounded time (%.1fs)" % (domain, took))
            expect(log_has(other, why), "%s: the log says why: %s" % (domain, why))
        wit.terminate()
    finally:
        other.stop()
        for srv, _ in servers.values():
            srv.close()
