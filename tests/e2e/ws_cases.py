"""End-to-end cases for XMPP over WebSocket (RFC 7395) through nginx, with a
small client of our own (stdlib only: the handshake and masked frames), so
that every rule broken is broken on purpose."""
import base64
import os
import re
import socket
import sqlite3
import struct
import time
import xml.etree.ElementTree as ET

from cases import USERS, case, expect, side_stack

FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"


class Closed(Exception):
    def __init__(self, code):
        super().__init__("closed with %r" % (code,))
        self.code = code


class WS:
    """One WebSocket connection to nginx's /xmpp-websocket."""

    def __init__(self, st, protocol="xmpp", upgrade=True, path="/xmpp-websocket", extra="", port=None,
                 unix=None):
        """unix: the path of sessiond's ws_socket, to talk to it without nginx between."""
        port = port or st.http_port
        if unix:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(unix)
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.answer_pings = True
        self.pings = 0
        key = base64.b64encode(os.urandom(16)).decode()
        req = "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % (path, port)
        if upgrade:
            req += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            req += "Sec-WebSocket-Key: %s\r\n" % key
        if protocol:
            req += "Sec-WebSocket-Protocol: %s\r\n" % protocol
        self.sock.sendall((req + extra + "\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            head += chunk
        head, _, self.rest = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
        self.headers = {k.strip().lower(): v.strip() for k, _, v in
                        (ln.partition(":") for ln in lines[1:])}

    def _read(self, n):
        while len(self.rest) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed(None)
            self.rest += chunk
        out, self.rest = self.rest[:n], self.rest[n:]
        return out

    def frame(self, opcode, payload, mask=True, fin=True):
        head = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            head += bytes([mbit | n])
        elif n < 65536:
            head += bytes([mbit | 126]) + struct.pack(">H", n)
        else:
            head += bytes([mbit | 127]) + struct.pack(">Q", n)
        if mask:
            key = os.urandom(4)
            head += key
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + payload)

    def send(self, text):
        self.frame(1, text.encode() if isinstance(text, str) else text)

    def recv_frame(self):
        b0, b1 = self._read(2)
        n = b1 & 0x7f
        if n == 126:
            n = struct.unpack(">H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._read(8))[0]
        expect(not b1 & 0x80, "the server masked a frame")
        return b0 & 0x0f, self._read(n)

    def recv(self, timeout=10):
        """The next text message; pings are answered (unless told not to);
        a close frame raises Closed(code), after answering it."""
        self.sock.settimeout(timeout)
        while True:
            op, data = self.recv_frame()
            if op == 9:
                self.pings += 1
                if self.answer_pings:
                    self.frame(10, data)
                continue
            if op == 8:
                code = struct.unpack(">H", data[:2])[0] if len(data) >= 2 else 1005
                try:
                    self.frame(8, data[:2])
                except OSError:
                    pass
                raise Closed(code)
            if op == 1:
                return data.decode()

    def element(self, timeout=10):
        return ET.fromstring(self.recv(timeout))

    def until_closed(self, timeout=10):
        """Messages until the close frame: (messages, code)."""
        msgs = []
        try:
            while True:
                msgs.append(self.recv(timeout))
        except Closed as c:
            return msgs, c.code

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def open_elem(domain):
    return "<open xmlns='%s' to='%s' version='1.0'/>" % (FRAMING, domain)


def tag(e):
    return e.tag.rsplit("}", 1)[-1]


def start(st, port=None, unix=None, domain=None):
    domain = domain or st.domain
    ws = WS(st, port=port, unix=unix)
    expect(ws.status == 101, "handshake answered %d" % ws.status)
    expect(ws.headers.get("sec-websocket-protocol") == "xmpp", ws.headers)
    ws.send(open_elem(domain))
    o = ws.element()
    expect(tag(o) == "open" and o.get("from") == domain, "not an <open/>: %r" % o)
    return ws


def login(st, user, resource="ws", port=None, unix=None, domain=None, password=None):
    domain = domain or st.domain
    ws = start(st, port, unix, domain)
    feats = ws.element()
    expect(tag(feats) == "features", feats)
    plain = base64.b64encode(("\0%s\0%s" % (user, password or USERS[user])).encode()).decode()
    ws.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>" % plain)
    ok = ws.element()
    expect(tag(ok) == "success", "SASL: %s" % ET.tostring(ok))
    ws.send(open_elem(domain))  # the stream restart (RFC 7395 §3.5)
    expect(tag(ws.element()) == "open", "no <open/> after the restart")
    feats = ws.element()
    expect("bind" in ET.tostring(feats).decode(), "no bind feature: %s" % ET.tostring(feats))
    ws.send("<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            "<resource>%s</resource></bind></iq>" % resource)
    res = ws.element()
    jid = res.find(".//{urn:ietf:params:xml:ns:xmpp-bind}jid")
    expect(res.get("type") == "result" and jid is not None, ET.tostring(res))
    ws.jid = jid.text
    return ws


def ping_iq(ws, st, ident):
    ws.send("<iq xmlns='jabber:client' type='get' id='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
            % (ident, st.domain))
    while True:
        e = ws.element()
        if e.get("id") == ident:
            return e


def ws_row(st, jid, until, wait=5.0):
    deadline = time.time() + wait
    while True:
        db = sqlite3.connect(st.db, timeout=5)
        db.row_factory = sqlite3.Row
        r = db.execute("select * from sessions where jid=? order by created_at desc", (jid,)).fetchone()
        db.close()
        if r is not None and until(dict(r)):
            return dict(r)
        if time.time() > deadline:
            raise AssertionError("row for %s: %r" % (jid, dict(r) if r else None))
        time.sleep(0.1)


@case
def test_ws_login_chat_and_close(st):
    a = login(st, "alice", "wsa")
    b = login(st, "bob", "wsb")
    a.send("<message xmlns='jabber:client' to='%s' type='chat'><body>hi bob</body></message>" % b.jid)
    m = b.element()
    expect(tag(m) == "message" and m.findtext("{jabber:client}body") == "hi bob", ET.tostring(m))
    b.send("<message xmlns='jabber:client' to='%s' type='chat'><body>hi alice</body></message>" % a.jid)
    m = a.element()
    expect(tag(m) == "message" and m.findtext("{jabber:client}body") == "hi alice", ET.tostring(m))
    r = ws_row(st, a.jid, lambda r: r["state"] == "active")
    expect(r["transport"] == "websocket", r)
    db = sqlite3.connect(st.db, timeout=5)
    shown = db.execute("select transport from active_sessions where jid=?", (a.jid,)).fetchone()
    db.close()
    expect(shown == ("websocket",), "active_sessions shows %r" % (shown,))
    for ws in (a, b):
        ws.send("<close xmlns='%s'/>" % FRAMING)
        msgs, code = ws.until_closed()
        expect(any("<close" in x for x in msgs), "no <close/> back: %r" % msgs)
        expect(code == 1000, "close code %r" % code)
        ws.close()
    r = ws_row(st, a.jid, lambda r: r["state"] == "ended")
    expect(r["end_condition"] == "terminate" and r["transport"] == "websocket", r)
    expect(st.logged("session %s ended: jid=%s" % (r["sid"], a.jid)), "no end log line")


@case
def test_ws_server_stream_error_passed_through(st):
    """RFC 7395 §3.4: the server's <stream:error/> reaches the client as it is,
    then <close/> and the close frame. Prosody ends the older of two streams
    bound to one full JID with <conflict/>."""
    from cases import login as bosh_login
    old = login(st, "alice", "twice")
    newer = bosh_login(st, "alice", "twice")
    msgs, code = old.until_closed()
    old.close()
    errors = [m for m in msgs if "stream:error" in m or "<error" in m]
    expect(errors and "conflict" in errors[0], "no <stream:error><conflict/> passed on: %r" % msgs)
    expect(msgs.index(errors[0]) < max(i for i, m in enumerate(msgs) if "<close" in m), msgs)
    expect(code == 1000, "close code %r" % code)
    deadline = time.time() + 5
    while True:
        db = sqlite3.connect(st.db, timeout=5)
        r = db.execute("select state, end_condition from sessions where jid=? and transport='websocket' "
                       "order by created_at desc", (old.jid,)).fetchone()
        db.close()
        if (r and r[0] == "ended") or time.time() > deadline:
            break
        time.sleep(0.1)
    expect(r == ("ended", "remote-stream-error"), r)
    newer.terminate()


@case
def test_ws_handshake_refusals(st):
    for kw, want in (({"protocol": None}, 400), ({"protocol": "mqtt"}, 400), ({"upgrade": False}, 400)):
        ws = WS(st, **kw)
        expect(ws.status == want, "%r answered %d, not %d" % (kw, ws.status, want))
        ws.close()
    # a session beside them is fine
    w = login(st, "carol", "wsc")
    expect(ping_iq(w, st, "p1").get("type") == "result", "no pong")
    w.close()


def bad_input(st, send, want_code, log_text, after_open=True):
    witness = login(st, "carol", "witness")
    ws = start(st) if after_open else WS(st)
    if after_open:
        ws.element()  # the features
    send(ws)
    msgs, code = ws.until_closed()
    ws.close()
    expect(code == want_code, "close code %r, not %r (messages %r)" % (code, want_code, msgs))
    if log_text:
        deadline = time.time() + 3
        while not st.logged(log_text) and time.time() < deadline:
            time.sleep(0.1)
        expect(st.logged(log_text), "no log line %r" % log_text)
    expect(ping_iq(witness, st, "w1").get("type") == "result", "the other session was harmed")
    witness.send("<close xmlns='%s'/>" % FRAMING)
    witness.until_closed()
    witness.close()
    return msgs


@case
def test_ws_unmasked_frame(st):
    bad_input(st, lambda ws: ws.frame(1, b"<presence xmlns='jabber:client'/>", mask=False), 1002, None)


@case
def test_ws_binary_frame(st):
    bad_input(st, lambda ws: ws.frame(2, b"<presence xmlns='jabber:client'/>"), 1003, None)


@case
def test_ws_two_stanzas_in_one_message(st):
    msgs = bad_input(st, lambda ws: ws.send("<presence xmlns='jabber:client'/><presence xmlns='jabber:client'/>"),
                     1008, "closing with not-well-formed")
    expect(any("not-well-formed" in m for m in msgs) and any("<close" in m for m in msgs), msgs)


@case
def test_ws_doctype(st):
    bad_input(st, lambda ws: ws.send("<!DOCTYPE x [<!ENTITY a 'b'>]><presence xmlns='jabber:client'/>"),
              1008, "closing with not-well-formed")


@case
def test_ws_invalid_utf8(st):
    bad_input(st, lambda ws: ws.frame(1, b"<message xmlns='jabber:client'><body>\xc3\x28</body></message>"),
              1007, None)


@case
def test_ws_client_that_stops_answering_pings_is_ended(st):
    other = side_stack(st, "ws_ping_interval = 1\n")
    try:
        other.start_sessiond()
        other.start_nginx()
        quiet = start(other)
        quiet.element()
        quiet.answer_pings = False
        lively = start(other)
        lively.element()
        code = None
        deadline = time.time() + 10
        while code is None and time.time() < deadline:
            for ws in (lively, quiet):
                try:
                    ws.recv(timeout=0.2)
                except socket.timeout:
                    pass
                except Closed as c:
                    expect(ws is quiet, "the client answering pings was closed (%r)" % c.code)
                    code = c.code
        expect(quiet.pings >= 1, "no ping came")
        expect(code == 1001, "close code %r" % code)
        expect(other.logged("no answer to a WebSocket ping"), "no log line")
        for _ in range(10):  # two more seconds: the one that answers stays
            try:
                lively.recv(timeout=0.2)
            except socket.timeout:
                pass
        expect(lively.pings >= 2, "the lively client got %d pings" % lively.pings)
        lively.send("<close xmlns='%s'/>" % FRAMING)
        _, code = lively.until_closed()
        expect(code == 1000, "lively close %r" % code)
        quiet.close()
        lively.close()
    finally:
        other.stop()


def chat(frm, to, ident, text):
    frm.send("<message xmlns='jabber:client' to='%s' id='%s' type='chat'><body>%s</body></message>"
             % (to.jid, ident, text))


def next_message(ws, timeout=10):
    while True:
        e = ws.element(timeout)
        if tag(e) == "message":
            return e


@case
def test_ws_sessions_carried_over_a_restart(st):
    """A graceful restart hands every WebSocket session to the successor:
    the same sids, no close frame, an idle (parked) session, one in the middle
    of a frame and one in the middle of a fragmented message go on as if
    nothing happened; a connection not yet a session is closed with 1012; the
    listener is handed over; BOSH beside it too."""
    from restart_cases import restart
    from cases import login as bosh_login
    bosh = bosh_login(st, "bob", "bosh-beside-ws")
    idle = login(st, "alice", "idle")
    half_frame = login(st, "carol", "half-frame")
    half_msg = login(st, "bob", "half-message")
    hello = start(st)  # an <open/> answered, then nothing: it still becomes a session first
    time.sleep(1.5)  # the idle one parks (its wslay state freed)
    rows = {w.jid: ws_row(st, w.jid, lambda r: r["state"] == "active") for w in (idle, half_frame, half_msg)}
    # half a frame: its header and some of its payload
    ping = ("<iq xmlns='jabber:client' type='get' id='hf' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
            % st.domain).encode()
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(ping))
    frame = bytes([0x81, 0x80 | len(ping)]) + key + masked
    half_frame.sock.sendall(frame[:20])
    # half a message: a text frame without FIN, then a ping between the fragments
    iq = ("<iq xmlns='jabber:client' type='get' id='hm' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
          % st.domain).encode()
    half_msg.frame(1, iq[:30], fin=False)
    half_msg.frame(9, b"between")
    time.sleep(0.3)
    pid = st.sessiond.pid
    restart(st)
    expect(st.sessiond.pid == pid, "not restarted in place")
    m = re.search(r"restart: (\d+) websocket sessions carried over \((\d+) bytes half read",
                  open(st.sessiond_log, errors="replace").read())
    expect(m and int(m.group(1)) >= 4 and int(m.group(2)) >= 20 + 30,
           "the half frame and half message were not carried: %r" % (m and m.group(0)))
    # the rest of the frame and of the message, to the successor
    half_frame.sock.sendall(frame[20:])
    half_msg.frame(0, iq[30:])
    for ws, ident in ((half_frame, "hf"), (half_msg, "hm")):
        while True:
            e = ws.element()
            if e.get("id") == ident:
                break
        expect(e.get("type") == "result", "no answer to the %s iq after the restart" % ident)
    expect(ping_iq(idle, st, "i1").get("type") == "result", "the idle session did not survive")
    chat(idle, half_msg, "c1", "after the restart")
    got = next_message(half_msg)
    expect(got.findtext("{jabber:client}body") == "after the restart", ET.tostring(got))
    for w in (idle, half_frame, half_msg):
        r = ws_row(st, w.jid, lambda r: r["state"] == "active")
        expect(r["sid"] == rows[w.jid]["sid"], "a new session for %s: %r" % (w.jid, r))
    # the one that had only said <open/> is carried too (it is a session): features came before
    hello.send("<close xmlns='%s'/>" % FRAMING)
    msgs, code = hello.until_closed()
    expect(code == 1000 and any("<close" in m for m in msgs), (code, msgs))
    hello.close()
    # the listener was handed over: a new session starts in the successor
    again = login(st, "alice", "after-restart")
    expect(ping_iq(again, st, "r1").get("type") == "result", "no pong after the restart")
    for w in (again, idle, half_frame, half_msg):
        w.send("<close xmlns='%s'/>" % FRAMING)
        _, code = w.until_closed()
        expect(code == 1000, "close code %r" % code)
        w.close()
    r = ws_row(st, idle.jid, lambda r: r["state"] == "ended")
    expect(r["end_condition"] == "terminate", r)
    pong, _ = bosh.until(lambda c: c.get("id") == "bp",
                         "<iq xmlns='jabber:client' type='get' id='bp' to='%s'><ping xmlns='urn:xmpp:ping'/>"
                         "</iq>" % st.domain)
    expect(pong.get("type") == "result", "the BOSH session did not survive")
    bosh.terminate()


@case
def test_ws_restart_drains_sessions_over_tls(st):
    """A WebSocket session whose server stream is TLS cannot move: the process
    that drains keeps it, WebSocket and all, until it ends; a plain one moves."""
    from backend_cases import wait_log, world
    from restart_cases import restart
    w = world(st)
    tls = login(w.side, "alice", "drain", domain="secure.test", password="alice-pw")
    plain = login(w.side, "carol", "moves")
    # one drainer at a time: an earlier case's may still be finishing on this shared stack
    from ops_cases import ctl_json
    from stack import wait_for
    wait_for(lambda: not ctl_json(w.side, "status")["drainer"], 30, "the last drainer to finish")
    restart(w.side)
    wait_log(w.side, "1 drained here over TLS")
    wait_log(w.side, "sessions over TLS in process")
    tls.send("<iq xmlns='jabber:client' type='get' id='t1' to='secure.test'><ping xmlns='urn:xmpp:ping'/></iq>")
    while True:
        e = tls.element()
        if e.get("id") == "t1":
            break
    expect(e.get("type") == "result", "the TLS session goes on in the draining process")
    expect(ping_iq(plain, w.side, "p1").get("type") == "result", "the plain session moved")
    tls.send("<close xmlns='%s'/>" % FRAMING)
    _, code = tls.until_closed()
    expect(code == 1000, "close code %r from the drainer" % code)
    tls.close()
    wait_log(w.side, "drained: every session over TLS has ended", timeout=15)
    expect(ping_iq(plain, w.side, "p2").get("type") == "result", "the plain session carries on")
    plain.close()


@case
def test_ws_restart_closes_connections_not_yet_sessions_1012(st):
    """A WebSocket whose 101 is out but that has not sent <open/> is no session
    yet: the restart closes it with 1012 (service restart), after <close/>."""
    from restart_cases import restart
    ws = WS(st)
    expect(ws.status == 101, "handshake answered %d" % ws.status)
    time.sleep(0.3)
    restart(st)
    msgs, code = ws.until_closed()
    ws.close()
    expect(code == 1012, "close code %r (messages %r)" % (code, msgs))
    expect(any("<close" in m for m in msgs), "no <close/> before the close frame: %r" % msgs)


@case
def test_ws_restart_carries_what_the_client_had_not_read(st):
    """A client that reads nothing while its server sends: what sessiond
    queued for it (wslay's queue, a frame half written) goes to the successor
    and reaches the client whole and in order after the restart."""
    from restart_cases import restart
    other = side_stack(st, "max_client_buffer = 262144\n")
    try:
        other.start_sessiond()
        other.start_nginx()
        # straight to ws_socket: nginx's buffers would take what sessiond is to keep
        slow = login(other, "alice", "reads-later", unix=other.ws_sock)
        slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        bob = login(other, "bob", "sender")
        n = 400
        for i in range(n):
            chat(bob, slow, "m%d" % i, "%d %s" % (i, "y" * 3000))
        expect(ping_iq(bob, other, "s1").get("type") == "result", "the sender was harmed")
        time.sleep(1)  # what fits into the sockets is there; the rest waits in sessiond
        t0 = time.time()
        restart(other)
        m = re.search(r"carried over \((\d+) bytes half read, (\d+) bytes not yet written\)",
                      open(other.sessiond_log, errors="replace").read())
        expect(m and int(m.group(2)) > 0, "nothing was left to write at the restart: %r" % (m and m.group(0)))
        seen = 0
        while seen < n:
            e = next_message(slow, timeout=20)
            body = e.findtext("{jabber:client}body") or ""
            expect(body.startswith("%d " % seen) and len(body) == len("%d " % seen) + 3000,
                   "message %d came as %r" % (seen, body[:40]))
            seen += 1
        expect(ping_iq(slow, other, "s2").get("type") == "result", "no pong after reading")
        print("read in %.1fs" % (time.time() - t0))
        slow.close()
        bob.close()
    finally:
        other.stop()


@case
def test_ws_origin_and_client_address(st):
    # cors_origins of the test configuration decide, as for BOSH
    ws = WS(st, extra="Origin: https://evil.example\r\n")
    expect(ws.status == 403, "a foreign Origin answered %d" % ws.status)
    ws.close()
    # nginx (a Unix socket peer) says who the client is: X-Real-IP from $remote_addr
    w = login(st, "carol", "addr")
    r = ws_row(st, w.jid, lambda r: r["state"] == "active")
    expect(r["client_addr"] == "127.0.0.1", r)
    w.close()


@case
def test_ws_x_forwarded_for_only_from_trusted_proxies(st):
    """On a TCP ws_socket, X-Forwarded-For names the client only when the peer
    is in trusted_proxies (loopback by default); from anyone else it is the
    peer's own address that counts, whatever the header says."""
    from stack import free_port
    for trusted, want in (("", "192.0.2.7"), ("trusted_proxies = 10.0.0.0/8 2001:db8::/32\n", "127.0.0.1")):
        port = free_port()
        other = side_stack(st, "ws_socket = 127.0.0.1:%d\n%s" % (port, trusted))
        try:
            other.start_sessiond()
            w = WS(other, port=port, extra="X-Forwarded-For: 192.0.2.7\r\nX-Real-IP: 192.0.2.7\r\n")
            expect(w.status == 101, "handshake answered %d" % w.status)
            w.send(open_elem(st.domain))
            expect(tag(w.element()) == "open", "no <open/>")
            deadline = time.time() + 5
            while True:
                db = sqlite3.connect(other.db, timeout=5)
                row = db.execute("select client_addr from sessions where transport='websocket'").fetchone()
                db.close()
                if row or time.time() > deadline:
                    break
                time.sleep(0.1)
            expect(row and row[0] == want, "with %r the client is %r, not %r" % (trusted, row, want))
            w.close()
        finally:
            other.stop()


@case
def test_ws_client_that_never_reads_pauses_its_server_stream(st):
    other = side_stack(st, "max_client_buffer = 65536\n")
    try:
        other.start_sessiond()
        other.start_nginx()
        slow = login(other, "alice", "never-reads")
        slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        bob = login(other, "bob", "flooder")
        body = "x" * 4000
        sent = 0
        deadline = time.time() + 60
        while not other.logged("bytes queued for the client; reading paused") and time.time() < deadline:
            for _ in range(100):
                bob.send("<message xmlns='jabber:client' to='%s' type='chat'><body>%s</body></message>"
                         % (slow.jid, body))
                sent += 1
            time.sleep(0.05)
        expect(other.logged("bytes queued for the client; reading paused"),
               "reading never paused after %d messages" % sent)
        # the flooder itself is served all along
        expect(ping_iq(bob, other, "f1").get("type") == "result", "the other session was harmed")
        slow.close()  # gone without a close: its session ends
        wait_log = time.time() + 10
        while not other.logged("jid=%s" % slow.jid) and time.time() < wait_log:
            time.sleep(0.1)
        expect(other.logged("jid=%s" % slow.jid), "no end line for the client that never read")
        bob.close()
    finally:
        other.stop()


@case
def test_ws_queues_are_charged_to_the_memory_budget(st):
    """Two WebSocket clients that do not read, each queue under
    max_client_buffer, together past 3/4 of max_memory: their server streams
    stop, once logged; a witness goes on; then everything arrives, in order."""
    other = side_stack(st, "max_client_buffer = 33554432\nmax_memory = 2097152\n")
    try:
        other.start_sessiond()
        other.start_nginx()
        # straight to ws_socket, so that nginx's buffers do not take the bytes
        slow = [login(other, u, "reads-later", unix=other.ws_sock) for u in ("alice", "carol")]
        for w in slow:
            w.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        bob = login(other, "bob", "sender")
        witness = login(other, "bob", "witness")
        n, body = 1500, "z" * 1000
        for i in range(n):
            for w in slow:
                chat(bob, w, "m%d" % i, "%d %s" % (i, body))
        deadline = time.time() + 20
        while not other.logged("(memory budget)") and time.time() < deadline:
            time.sleep(0.1)
        log = open(other.sessiond_log, errors="replace").read()
        expect("past 3/4 of max_memory" in log and "reading paused (memory budget)" in log,
               "the budget did not stop the streams:\n%s" % log[-3000:])
        expect(ping_iq(witness, other, "w1").get("type") == "result", "the witness was harmed")
        for w in slow:
            for i in range(n):
                e = next_message(w, timeout=20)
                got = e.findtext("{jabber:client}body") or ""
                expect(got == "%d %s" % (i, body), "message %d came as %r" % (i, got[:30]))
        deadline = time.time() + 10
        while "under half of max_memory again" not in open(other.sessiond_log).read() and time.time() < deadline:
            time.sleep(0.1)
        expect("under half of max_memory again" in open(other.sessiond_log).read(), "the episode's end is logged")
        for w in slow + [bob, witness]:
            w.close()
    finally:
        other.stop()


@case
def test_ws_strophe_chat(st):
    """Strophe.js (Node, its `ws` package) with a ws:// URL: login, a chat both
    ways, logout, through nginx; both rows say websocket."""
    import json
    import subprocess
    from strophe_case import CHAT, USERS as SUSERS, _check_node
    node = _check_node()
    user1, user2 = "alice@" + st.domain, "bob@" + st.domain
    argv = [node, CHAT, st.ws_url, st.domain, user1, SUSERS["alice"], user2, SUSERS["bob"]]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    detail = "\n--- stdout ---\n%s\n--- stderr ---\n%s" % (p.stdout, p.stderr[-3000:])
    expect(p.returncode == 0, "Strophe client failed (exit %d)%s" % (p.returncode, detail))
    out = json.loads([ln for ln in p.stdout.splitlines() if ln.strip()][-1])
    expect(out.get("ok"), "Strophe client reported failure" + detail)
    for who, bare in (("user1", user1), ("user2", user2)):
        jid = out[who].get("jid") or ""
        expect(jid.startswith(bare + "/"), "%s bound %r%s" % (who, jid, detail))
        r = ws_row(st, jid, lambda r: r["state"] == "ended")
        expect(r["transport"] == "websocket" and r["end_condition"] == "terminate", r)


@case
def test_ws_through_apache_wstunnel(st):
    """conf/apache/websocket.conf (mod_proxy_wstunnel to the Unix ws_socket)."""
    from apache import Apache
    a = Apache(os.path.join(st.dir, "apache-ws"), ["proxy", "proxy_wstunnel"], "conf/apache/websocket.conf",
               {"/run/bosh/ws.sock": st.ws_sock})
    try:
        a.start()
        w = login(st, "carol", "apache", port=a.port)
        expect(ping_iq(w, st, "a1").get("type") == "result", "no pong through Apache")
        r = ws_row(st, w.jid, lambda r: r["state"] == "active")
        expect(r["transport"] == "websocket" and r["client_addr"] == "127.0.0.1", r)
        w.send("<close xmlns='%s'/>" % FRAMING)
        msgs, code = w.until_closed()
        expect(code == 1000 and any("<close" in m for m in msgs), (code, msgs))
        w.close()
    finally:
        a.stop()
