"""sessiond reading the web server's FastCGI itself (fcgi_direct, the
default): nginx's kept connections, and what a FastCGI peer can get wrong,
spoken raw on fcgi_socket."""
import os
import re
import socket
import struct
import time

from bosh import NS, Session
from cases import USERS, case, expect, handler_pids, side_stack
from ops_cases import get, metric
from restart_cases import restart
from stack import wait_for

BEGIN, ABORT, END, PARAMS, STDIN, STDOUT = 1, 2, 3, 4, 5, 6


def record(rtype, rid, content=b"", padding=0, version=1):
    return struct.pack(">BBHHBB", version, rtype, rid, len(content), padding, 0) + content + b"\0" * padding


def pair(name, value):
    def length(n):
        return struct.pack(">B", n) if n < 128 else struct.pack(">I", n | 0x80000000)
    return length(len(name)) + length(len(value)) + name + value


def request(body, rid=1, keep=True, params=None, method=b"POST"):
    p = {b"REQUEST_METHOD": method, b"REMOTE_ADDR": b"127.0.0.1", b"CONTENT_LENGTH": str(len(body)).encode()}
    p.update(params or {})
    out = record(BEGIN, rid, struct.pack(">HB5x", 1, 1 if keep else 0))
    out += record(PARAMS, rid, b"".join(pair(k, v) for k, v in p.items())) + record(PARAMS, rid)
    for i in range(0, len(body), 65535):
        out += record(STDIN, rid, body[i:i + 65535])
    return out + record(STDIN, rid)


def read_answer(sock, timeout=10):
    """(stdout bytes, ended) of one answer: STDOUT records up to END_REQUEST."""
    sock.settimeout(timeout)
    buf, out = b"", b""
    while True:
        while len(buf) >= 8:
            _, rtype, _, clen, pad, _ = struct.unpack(">BBHHBB", buf[:8])
            if len(buf) < 8 + clen + pad:
                break
            content, buf = buf[8:8 + clen], buf[8 + clen + pad:]
            if rtype == STDOUT:
                out += content
            elif rtype == END:
                return out, True
        chunk = sock.recv(65536)
        if not chunk:
            return out, False
        buf += chunk


def closed(sock, timeout=5):
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def connect(st):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(st.handler_sock)
    return s


def unknown_sid_body():
    return ("<body xmlns='%s' sid='%s' rid='1'/>" % (NS, "0" * 32)).encode()


@case
def test_direct_fastcgi_keeps_nginx_connections(st):
    expect(handler_pids(st) == [], "no handler processes: %r" % handler_pids(st))
    text = get(st, "/bosh/metrics")[2]
    acc0, req0 = metric(text, "bosh_fastcgi_connections_accepted_total"), metric(text, "bosh_fastcgi_requests_total")
    s = Session(st.url, st.domain, wait=1)
    s.login("alice", USERS["alice"], "keepconn")
    for i in range(20):  # answered at once: the server's pong
        s.request("<iq xmlns='jabber:client' type='get' id='k%d'><ping xmlns='urn:xmpp:ping'/></iq>" % i)
    s.terminate()
    text = get(st, "/bosh/metrics")[2]
    acc, req = metric(text, "bosh_fastcgi_connections_accepted_total"), metric(text, "bosh_fastcgi_requests_total")
    # the metrics page itself is one request on a connection of its own
    expect(req - req0 >= 25, "requests read by sessiond: %r -> %r" % (req0, req))
    expect(acc - acc0 <= 4, "nginx kept its connections: %d accepted for %d requests" % (acc - acc0, req - req0))


@case
def test_raw_fastcgi_requests_one_after_another_on_a_kept_connection(st):
    c = connect(st)
    try:
        for rid in (1, 2, 7):
            c.sendall(request(unknown_sid_body(), rid=rid))
            out, ended = read_answer(c)
            expect(ended and b"item-not-found" in out, "request %d answered: %r" % (rid, out[:200]))
        # byte by byte: read in part, kept, then acted on
        for b in request(unknown_sid_body(), rid=3):
            c.send(bytes([b]))
        out, ended = read_answer(c)
        expect(ended and b"item-not-found" in out, "a request sent a byte at a time: %r" % out[:200])
        # padding and a pair split over two PARAMS records
        body = unknown_sid_body()
        p = pair(b"REQUEST_METHOD", b"POST") + pair(b"CONTENT_LENGTH", str(len(body)).encode())
        raw = record(BEGIN, 4, struct.pack(">HB5x", 1, 1)) + record(PARAMS, 4, p[:5], padding=3)
        raw += record(PARAMS, 4, p[5:], padding=7) + record(PARAMS, 4) + record(STDIN, 4, body, padding=2)
        raw += record(STDIN, 4, padding=5)
        c.sendall(raw)
        out, ended = read_answer(c)
        expect(ended and b"item-not-found" in out, "padding and a split pair: %r" % out[:200])
    finally:
        c.close()
    # without FCGI_KEEP_CONN (Apache's default), closed after the answer
    c = connect(st)
    try:
        c.sendall(request(unknown_sid_body(), keep=False))
        out, ended = read_answer(c)
        expect(ended and b"item-not-found" in out, "answered: %r" % out[:200])
        expect(closed(c), "closed after the answer when the web server did not keep it")
    finally:
        c.close()


@case
def test_raw_fastcgi_oversized_body_is_answered_and_the_connection_goes_on(st):
    c = connect(st)
    try:
        big = ("<body xmlns='%s' rid='1' to='%s'><message>%s</message></body>"
               % (NS, st.domain, "x" * 300000)).encode()
        c.sendall(request(big))
        out, ended = read_answer(c)
        expect(ended and b"bad-request" in out, "an oversized body gets bad-request: %r" % out[:300])
        c.sendall(request(unknown_sid_body(), rid=2))
        out, ended = read_answer(c)
        expect(ended and b"item-not-found" in out, "the kept connection goes on after it: %r" % out[:200])
    finally:
        c.close()
    log = open(st.sessiond_log, errors="replace").read()
    expect("max_data_held" in log, "the reason is logged")


@case
def test_raw_fastcgi_protocol_errors_close_only_that_connection(st):
    alice = Session(st.url, st.domain, wait=2)
    alice.login("alice", USERS["alice"], "fcgi-witness")
    body = unknown_sid_body()
    bad = [
        (record(BEGIN, 1, struct.pack(">HB5x", 1, 1), version=2), "version"),
        (record(STDIN, 1, b"x"), "before BEGIN_REQUEST"),
        (record(BEGIN, 1, struct.pack(">HB5x", 2, 1)), "role"),
        (record(BEGIN, 1, struct.pack(">HB5x", 1, 1)) + record(PARAMS, 2, pair(b"A", b"B")), "another id"),
        (record(BEGIN, 1, struct.pack(">HB5x", 1, 1)) + record(STDIN, 1, body), "STDIN before the end of PARAMS"),
        (record(BEGIN, 1, struct.pack(">HB5x", 1, 1)) + record(PARAMS, 1, b"\x05\x01AB") + record(PARAMS, 1)
         + record(STDIN, 1), "a pair cut short"),
        (record(BEGIN, 1, struct.pack(">HB5x", 1, 1)) + b"".join(
            record(PARAMS, 1, pair(b"HTTP_X", b"v" * 60000)) for _ in range(2)), "parameters over the limit"),
        (record(BEGIN, 1, struct.pack(">HB5x", 1, 1)) + record(ABORT, 1), "ABORT_REQUEST"),
        (request(body) + request(body, rid=2), "a second request before the answer"),
        (record(9, 1, b"x"), "an unknown record type"),
    ]
    for raw, what in bad:
        c = connect(st)
        try:
            c.sendall(raw)
            if what == "a second request before the answer":
                read_answer(c, timeout=5)  # either order: the connection must end
            expect(closed(c), "closed after %s" % what)
        finally:
            c.close()
    r = alice.request("<iq xmlns='jabber:client' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
    expect(r.status == 200 and r.type is None, "another session is untouched: %r" % r)
    alice.terminate()
    log = open(st.sessiond_log, errors="replace").read()
    expect(re.search(r"FastCGI from the web server: [^\n]*; closing the connection", log),
           "a log line says why")


@case
def test_kept_idle_connections_survive_a_restart(st):
    other = side_stack(st)
    try:
        other.start_sessiond()
        idle = connect(other)
        half = connect(other)
        idle.sendall(request(unknown_sid_body()))
        read_answer(idle)
        raw = request(unknown_sid_body(), rid=5)
        half.sendall(raw[:20])  # a request read in part goes over too
        restart(other)
        idle.sendall(request(unknown_sid_body(), rid=2))
        out, ended = read_answer(idle)
        expect(ended and b"item-not-found" in out, "an idle kept connection after a restart: %r" % out[:200])
        half.sendall(raw[20:])
        out, ended = read_answer(half)
        expect(ended and b"item-not-found" in out, "the rest of a request sent across a restart: %r" % out[:200])
        idle.close()
        half.close()
    finally:
        other.stop()


def fill_past_the_budget(other, conns, limit=256):
    """sessiond at an open file limit of limit (a budget of limit - 64: the
    rest kept for XMPP connections and the database), then limit connections:
    into conns; the last 40, each with a request sent, wait outside its
    descriptor table, neither answered nor closed. Returns those 40."""
    import resource
    other.start_sessiond()
    # both limits: sessiond raises its soft limit to the hard one at start
    resource.prlimit(other.sessiond.pid, resource.RLIMIT_NOFILE, (limit, limit))
    restart(other)  # the successor's budget comes from the lower limit
    for _ in range(limit):
        conns.append(connect(other))
    last = conns[-40:]  # past the budget whatever sessiond itself holds
    for i, c in enumerate(last):
        c.sendall(request(unknown_sid_body(), rid=i + 1))
    deadline = time.time() + 10
    while "waiting outside the descriptor table" not in open(other.sessiond_log, errors="replace").read():
        expect(time.time() < deadline, "no connection waits outside the descriptor table")
        time.sleep(0.05)
    for c in last:  # neither answered nor closed before their turn
        c.settimeout(0.2)
        try:
            got = c.recv(1)
        except socket.timeout:
            got = None
        expect(got is None, "a connection past the budget was answered or closed early: %r" % got)
        c.settimeout(None)
    return last


@case
def test_connections_past_the_descriptor_budget_wait_and_survive_a_restart(st):
    # A burst at the open file limit: connections past sessiond's descriptor
    # budget are accepted all the same and wait outside its descriptor table
    # (none refused, as nginx would answer with a 502); a graceful restart
    # hands them over with the rest; as descriptors free up they are served.
    other = side_stack(st)
    conns = []
    try:
        last = fill_past_the_budget(other, conns)
        restart(other)
        for c in conns[:-40]:  # room again
            c.close()
        for i, c in enumerate(last):
            out, ended = read_answer(c)
            expect(ended and b"item-not-found" in out, "connection %d of the waiting ones: %r" % (i, out[:200]))
    finally:
        for c in conns:
            c.close()
        other.stop()


@case
def test_connections_waiting_past_the_budget_are_closed_when_a_restart_turns_fcgi_direct_off(st):
    # Not the successor's to serve (its handlers accept now): closed at once,
    # which the web server answers with a 502 rather than a wait, and said.
    other = side_stack(st)
    conns = []
    try:
        last = fill_past_the_budget(other, conns)
        other.write_conf("fcgi_direct = 0\n")
        restart(other)
        for i, c in enumerate(last):
            expect(closed(c), "waiting connection %d not closed" % i)
        log = open(other.sessiond_log, errors="replace").read()
        expect(re.search(r"restart: \d+ FastCGI connections waiting past the descriptor budget closed "
                         r"\(fcgi_direct is off now\)", log), "not said")
        for c in conns[:-40]:  # the kept ones, served to their end: room again
            c.close()
        fresh = connect(other)  # a handler's
        fresh.sendall(request(unknown_sid_body(), rid=99))
        out, ended = read_answer(fresh)
        expect(ended and b"item-not-found" in out, "a new connection after the restart: %r" % out[:200])
        fresh.close()
    finally:
        for c in conns:
            c.close()
        other.stop()


@case
def test_handler_mode_with_kept_connections(st):
    # fcgi_direct = 0 with nginx's fastcgi_keep_conn on (the shipped file):
    # the handler passes the connection, sessiond reads what follows on it
    other = side_stack(st, "fcgi_direct = 0\n")
    try:
        other.start_sessiond()
        other.start_nginx(keep_conn=True)
        s = Session(other.url, st.domain, wait=1)
        s.login("carol", USERS["carol"], "handler-keep")
        for _ in range(10):
            r = s.request()
            expect(r.status == 200, r)
        s.terminate()
        expect(len(handler_pids(other)) == 2, "the handlers run: %r" % handler_pids(other))
        text = get(other, "/bosh/metrics")[2]
        expect(metric(text, "bosh_fastcgi_requests_total") >= 10,
               "requests after the first on a kept connection were read by sessiond")
    finally:
        other.stop()


@case
def test_a_restart_in_place_turns_fcgi_direct_off_and_on_keeping_sessions_and_connections(st):
    # fcgi_direct = 1 -> 0 -> 1 across restarts in place: the handlers start, the
    # connections nginx keeps are served to their end by sessiond (as a
    # handler would pass them), new ones go to the handlers, no session is lost
    other = side_stack(st)
    try:
        other.start_sessiond()
        other.start_nginx()
        s = Session(other.url, st.domain, wait=2)
        s.login("carol", USERS["carol"], "direct-off")
        kept = connect(other)
        kept.sendall(request(unknown_sid_body()))
        read_answer(kept)
        expect(not handler_pids(other), "fcgi_direct: no handlers yet")
        other.write_conf("fcgi_direct = 0\n")
        restart(other)
        wait_for(lambda: len(handler_pids(other)) == 2, 10, "the handlers of fcgi_direct = 0")
        kept.sendall(request(unknown_sid_body(), rid=2))
        out, ended = read_answer(kept)
        expect(ended and b"item-not-found" in out, "a kept connection after the restart: %r" % out[:200])
        fresh = connect(other)
        fresh.sendall(request(unknown_sid_body(), rid=3))
        out, ended = read_answer(fresh)
        expect(ended and b"item-not-found" in out, "a new connection, through a handler: %r" % out[:200])
        got, _ = s.until(lambda c: c.get("id") == "d1",
                         "<message xmlns='jabber:client' to='%s' id='d1'><body>after</body></message>" % s.jid)
        expect(got.findtext("{jabber:client}body") == "after", got)
        # and back on: the handlers stop, sessiond takes new connections itself
        other.write_conf("")
        restart(other)
        wait_for(lambda: not handler_pids(other), 10, "the handlers to stop")
        for k, conn in ((4, kept), (5, fresh), (6, connect(other))):
            conn.sendall(request(unknown_sid_body(), rid=k))
            out, ended = read_answer(conn)
            expect(ended and b"item-not-found" in out, "rid %d after fcgi_direct is on again: %r" % (k, out[:200]))
            conn.close()
        got, _ = s.until(lambda c: c.get("id") == "d2",
                         "<message xmlns='jabber:client' to='%s' id='d2'><body>again</body></message>" % s.jid)
        expect(got.findtext("{jabber:client}body") == "again", got)
        s.terminate()
    finally:
        other.stop()


@case
def test_a_restart_abandoned_at_exec_keeps_connections_and_sessions(st):
    # exec fails after the snapshot was taken (connections, sessions, the
    # park): the running sessiond takes back everything it had set aside for
    # its successor, and the next restart goes through.
    import signal
    from hardening_cases import fault_env
    other = side_stack(st)
    try:
        other.start_sessiond(env=fault_env(st, "exec-successor"))
        other.start_nginx()
        s = Session(other.url, st.domain, wait=2)
        s.login("alice", USERS["alice"], "abandoned")
        kept = connect(other)
        kept.sendall(request(unknown_sid_body()))
        read_answer(kept)
        other.sessiond.signal(signal.SIGUSR2)
        deadline = time.time() + 10
        while 'restart abandoned: reason="exec' not in open(other.sessiond_log, errors="replace").read():
            expect(time.time() < deadline, "no abandoned restart in the log")
            time.sleep(0.05)
        for rid in (2, 3):
            kept.sendall(request(unknown_sid_body(), rid=rid))
            out, ended = read_answer(kept)
            expect(ended and b"item-not-found" in out, "the kept connection after the abandoned restart: %r" % out[:200])
        got, _ = s.until(lambda c: c.get("id") == "a1",
                         "<message xmlns='jabber:client' to='%s' id='a1'><body>still</body></message>" % s.jid)
        expect(got.findtext("{jabber:client}body") == "still", got)
        restart(other)  # the shim fails the first exec only
        kept.sendall(request(unknown_sid_body(), rid=4))
        out, ended = read_answer(kept)
        expect(ended and b"item-not-found" in out, "the kept connection after the restart: %r" % out[:200])
        got, _ = s.until(lambda c: c.get("id") == "a2",
                         "<message xmlns='jabber:client' to='%s' id='a2'><body>again</body></message>" % s.jid)
        expect(got.findtext("{jabber:client}body") == "again", got)
        s.terminate()
        kept.close()
    finally:
        other.stop()
