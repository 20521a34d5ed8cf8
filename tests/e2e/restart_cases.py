"""End-to-end cases for restarting sessiond gracefully (SIGUSR2): sessions,
held requests, handlers and XMPP connections, even one in the middle of a
stanza, carry on in the successor with nothing lost."""
import os
import re
import signal
import sqlite3
import threading
import time

from backend_cases import ScriptedXmppServer, log_has, wait_log
from bosh import Session, body as bosh_body, post_raw
from cases import USERS, FakeXmppServer, Skipped, case, expect, handler_pids, side_stack
from stack import child_pids, wait_for


def restart(stack, times=1):
    """SIGUSR2, then wait until the successor says it has taken over."""
    before = open(stack.sessiond_log, errors="replace").read().count("restarted in place:")
    stack.sessiond.signal(signal.SIGUSR2)
    deadline = time.time() + 20
    while time.time() < deadline:
        if open(stack.sessiond_log, errors="replace").read().count("restarted in place:") > before:
            return
        expect(stack.sessiond.alive(), "sessiond died restarting")
        time.sleep(0.05)
    raise AssertionError("no 'restarted in place' in the log")


@case
def test_graceful_restart_keeps_sessions_and_held_requests(st):
    other = side_stack(st)
    try:
        other.start_sessiond()
        other.start_nginx()
        alice = Session(other.url, st.domain, wait=3)
        alice.login("alice", USERS["alice"], "restart")
        bob = Session(other.url, st.domain, wait=3)
        bob.login("bob", USERS["bob"], "restart")
        held = alice.request_async()  # held across the restart
        time.sleep(0.3)
        pid, handlers = other.sessiond.pid, sorted(handler_pids(other))
        restart(other)
        expect(other.sessiond.pid == pid, "the same process")
        msg = "<message xmlns='jabber:client' to='%s' id='r1'><body>after restart</body></message>" % alice.jid
        sent = bob.request_async(msg)  # held in its turn: nothing comes for bob
        got = held.join(15)
        expect(got is not None and not isinstance(got, Exception), "the held request was answered: %r" % got)
        bodies = [c.findtext("{jabber:client}body") for c in got.children()]
        expect("after restart" in bodies, "alice's held request got bob's message: %r" % got)
        # a repeated rid still gets the very same answer (the answers went along)
        again = alice.request(rid=alice.rid)
        expect(again.text == got.text, "repeated rid after the restart: %r vs %r" % (again, got))
        pending = alice.request_async()  # keep alice alive while bob's request is held
        r = sent.join(15)
        expect(r is not None and not isinstance(r, Exception) and r.type != "terminate",
               "bob's session survived: %r" % r)
        pending.join(15)
        expect(sorted(handler_pids(other)) == handlers, "the handlers carried on")
        db = sqlite3.connect(other.db)
        states = [r[0] for r in db.execute("select state from sessions where sid in (?, ?)",
                                           (alice.sid, bob.sid))]
        db.close()
        expect(states == ["active", "active"], "rows still active, not lost: %r" % states)
        carol = Session(other.url, st.domain, wait=5)
        carol.login("carol", USERS["carol"], "after")  # new sessions work too
        for s in (alice, bob, carol):
            expect(s.terminate().type == "terminate", "terminate after restart")
    finally:
        other.stop()


@case
def test_graceful_restart_keeps_checking_keys_of_repeated_rids(st):
    from cases import key_chain
    other = side_stack(st)
    try:
        other.start_sessiond()
        other.start_nginx()
        k = key_chain(6)
        s = Session(other.url, st.domain, wait=1)
        s.create(newkey=k[6])
        first = s.request(key=k[5])
        second = s.request(key=k[4])
        restart(other)
        # the successor checks a repeat against the key chain: the key its first sending carried
        expect(s.request(rid=s.rid - 1, key=k[5]).text == first.text, "older rid sent again")
        expect(s.request(rid=s.rid, key=k[4]).text == second.text, "last rid sent again")
        expect(s.request(key=k[3]).type is None, "the session goes on")
        r = s.request(rid=s.rid, key=k[2])
        expect(r.type == "terminate" and r.condition == "item-not-found", "a repeat with another key: %r" % r)
    finally:
        other.stop()


@case
def test_graceful_restart_in_the_middle_of_a_stanza(st):
    go_on = threading.Event()

    def half_then_rest(conn):
        conn.sendall(b"<message from='a@half.test' id='h1'><body>first half")
        go_on.wait(20)
        conn.sendall(b", second half</body></message>")
        time.sleep(5)

    fake = ScriptedXmppServer(half_then_rest)
    other = side_stack(st, "backend.half.test = 127.0.0.1:%d\n" % fake.port)
    try:
        other.start_sessiond()
        other.start_nginx()
        s = Session(other.url, "half.test", wait=10)
        s.create()
        held = s.request_async("<presence xmlns='jabber:client'/>")
        time.sleep(0.5)  # the first half has arrived and sits in the parser
        restart(other)
        go_on.set()
        got = held.join(15)
        expect(got is not None and not isinstance(got, Exception), got)
        bodies = [c.findtext("{jabber:client}body") for c in got.children()]
        expect(bodies == ["first half, second half"], "the stanza arrived whole: %r" % got)
    finally:
        other.stop()
        fake.close()


@case
def test_restart_refused_when_the_new_binary_cannot_start(st):
    other = side_stack(st)
    try:
        other.start_sessiond()
        other.start_nginx()
        s = Session(other.url, st.domain, wait=5)
        s.login("alice", USERS["alice"], "refused")
        with open(other.conf, "a") as f:
            f.write("this line is not a setting\n")
        other.sessiond.signal(signal.SIGUSR2)
        wait_log(other, "restart refused")
        expect(other.sessiond.alive(), "still running")
        pong = s.request("<iq xmlns='jabber:client' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
        expect(pong.type != "terminate", "the session carries on: %r" % pong)
        expect(not log_has(other, "restarted in place"), "no restart happened")
        s.terminate()
    finally:
        other.stop()


@case
def test_graceful_restart_drains_tls_sessions(st):
    from backend_cases import ping, world
    w = world(st)
    tls = Session(w.side.url, "secure.test", wait=3)
    tls.login("alice", "alice-pw", "drain")
    plain = Session(w.side.url, st.domain, wait=3)
    plain.login("carol", USERS["carol"], "drain")
    restart(w.side)
    wait_log(w.side, "sessions over TLS in process")
    # an OpenSSL connection cannot move: a forked child keeps it, and the
    # successor forwards the session's requests there
    expect(ping(tls, "secure.test", "d1"), "the TLS session goes on in the draining process")
    expect(ping(plain, st.domain, "d2"), "the plain session moved to the successor")
    fresh = Session(w.side.url, "secure.test", wait=3)
    fresh.login("alice", "alice-pw", "fresh")  # new TLS sessions start in the successor
    expect(ping(fresh, "secure.test", "d3"), "a new TLS session")
    expect(tls.terminate().type == "terminate", "terminate through the drainer")
    wait_log(w.side, "drained: every session over TLS has ended", timeout=15)
    wait_log(w.side, "the process draining sessions of the last restart has finished", timeout=5)
    expect(ping(fresh, "secure.test", "d4") and ping(plain, st.domain, "d5"), "the rest carries on")
    fresh.terminate()
    plain.terminate()


# Apache takes seconds to restart while it waits for its children: the
# sessions must outlive that without polling.
LONG_INACTIVITY = "default_inactivity = 30\nmax_inactivity = 60\n"


def web_server_restarts_keep_sessions(st, url, reload, restart):
    """A reload lets the held request finish; a restart drops it unanswered,
    and the client sending the same rid again gets what came meanwhile."""
    alice = Session(url, st.domain, wait=4)
    alice.login("alice", USERS["alice"], "web")
    bob = Session(url, st.domain, wait=4)
    bob.login("bob", USERS["bob"], "web")
    msg = "<message xmlns='jabber:client' to='%s' id='%s'><body>%s</body></message>"
    held = alice.request_async()
    time.sleep(0.3)
    reload()
    time.sleep(0.5)
    bob.request_async(msg % (alice.jid, "n1", "after reload"))
    got = held.join(10)
    expect(got is not None and not isinstance(got, Exception) and
           "after reload" in [c.findtext("{jabber:client}body") for c in got.children()],
           "the held request got the message across the reload: %r" % got)
    held = alice.request_async()
    time.sleep(0.3)
    restart()
    lost = held.join(10)
    expect(isinstance(lost, Exception) or lost is None or lost.status != 200,
           "the restart closed the held request: %r" % lost)
    bob.request_async(msg % (alice.jid, "n2", "after restart"))
    time.sleep(0.3)
    # The same rid again: its answer if one was written before the restart
    # ate it, else what came meanwhile; never item-not-found.
    again = alice.request(rid=alice.rid)
    expect(again.type != "terminate", "the same rid again is answered: %r" % again)
    if "after restart" not in [c.findtext("{jabber:client}body") for c in again.children()]:
        got, _ = alice.until(lambda c: c.get("id") == "n2")
        expect(got.findtext("{jabber:client}body") == "after restart", got)
    alice.terminate()
    bob.terminate()


@case
def test_nginx_reload_and_restart_keep_sessions(st):
    other = side_stack(st, LONG_INACTIVITY)
    try:
        other.start_sessiond()
        other.start_nginx()

        def restart_nginx():
            other.nginx.stop()
            other.start_nginx()
        web_server_restarts_keep_sessions(st, other.url, lambda: other.nginx.signal(signal.SIGHUP),
                                          restart_nginx)
    finally:
        other.stop()


@case
def test_apache_graceful_and_hard_restart_keep_sessions(st):
    from apache import Apache
    other = side_stack(st, LONG_INACTIVITY)
    a = Apache(os.path.join(other.dir, "apache"), ["proxy", "proxy_fcgi"], "conf/apache/proxy-fcgi.conf",
               {"/run/bosh/handler.sock": other.handler_sock})
    try:
        other.start_sessiond()
        a.start()
        # SIGUSR1: graceful restart (apachectl graceful); SIGHUP: restart, children killed
        def restarted(n):
            with open(a.error_log, errors="replace") as f:
                return f.read().count("resuming normal operations") >= n

        def hard_restart():
            a.proc.signal(signal.SIGHUP)
            wait_for(lambda: restarted(3), 20, "apache2 to restart")
        web_server_restarts_keep_sessions(st, a.url(), lambda: a.proc.signal(signal.SIGUSR1),
                                          hard_restart)
    finally:
        a.stop()
        other.stop()


@case
def test_restart_command(st):
    import subprocess
    other = side_stack(st, "pid_file = sessiond.pid\n")
    try:
        other.start_sessiond()
        other.start_nginx()
        s = Session(other.url, st.domain, wait=3)
        s.login("alice", USERS["alice"], "cmd")
        wait_for_file = time.time() + 5
        while not os.path.exists(os.path.join(other.dir, "sessiond.pid")) and time.time() < wait_for_file:
            time.sleep(0.05)
        r = subprocess.run([other.sessiond_bin, "-r", "-c", other.conf], capture_output=True,
                           text=True, timeout=30)
        expect(r.returncode == 0 and "restarted in place" in r.stdout, "sessiond -r: %r" % (r,))
        expect(log_has(other, "restarted in place: 1 sessions taken over"), "the log says so")
        pong = s.request("<iq xmlns='jabber:client' type='get' id='c1'><ping xmlns='urn:xmpp:ping'/></iq>")
        expect(pong.type != "terminate", pong)
        s.terminate()
    finally:
        other.stop()


def listen_backlog(path):
    """The backlog of the Unix socket listening at path (ss: Send-Q). sessiond
    binds its sockets under a temporary name and renames them, and ss knows
    them by that name: a client's peer name is it."""
    import socket
    import subprocess
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        c.connect(path)
        bound = c.getpeername()
    finally:
        c.close()
    out = subprocess.run(["ss", "-xlH", "src", bound], capture_output=True, text=True).stdout.split()
    return int(out[3]) if len(out) > 3 and out[1] == "LISTEN" else None


@case
def test_listen_backlog_below_max_sessions_is_said_and_a_raised_one_taken_on_reload_and_restart(st):
    """net.core.somaxconn caps fcgi_socket's backlog: below max_sessions, a
    warning says what follows and what to do; raised, SIGHUP and `sessiond -r`
    take it without a new socket."""
    import subprocess
    from stack import somaxconn
    if os.geteuid() != 0:
        raise Skipped("needs root: lowers net.core.somaxconn for a moment")
    was = somaxconn()
    other = side_stack(st, "pid_file = sessiond.pid\nmax_sessions = 1000\n")
    try:
        somaxconn(512)
        other.raise_somaxconn = False
        other.start_sessiond()
        somaxconn(was)  # back at once: other tests' sockets need it
        wait_log(other, "listen backlog 512 (net.core.somaxconn) is below max_sessions 1000")
        expect(listen_backlog(other.handler_sock) == 512, "backlog %r" % listen_backlog(other.handler_sock))

        def hup_at(cap):
            """SIGHUP with the cap at cap for the moment; the log lines it brought."""
            somaxconn(cap)
            since = len(open(other.sessiond_log, errors="replace").read())
            other.sessiond.signal(signal.SIGHUP)
            wait_for(lambda: "SIGHUP: log files reopened" in
                     open(other.sessiond_log, errors="replace").read()[since:], 10, "the reload")
            somaxconn(was)
            return open(other.sessiond_log, errors="replace").read()[since:]

        # the same cap again (logrotate's nightly SIGHUP): not said twice
        expect("is below max_sessions" not in hup_at(512), "the same warning at every SIGHUP")
        # raised and SIGHUP: listened again, no warning
        expect("is below max_sessions" not in hup_at(1500), "warned with the cap above max_sessions")
        expect(listen_backlog(other.handler_sock) == 1500,
               "after SIGHUP: backlog %r, not 1500" % listen_backlog(other.handler_sock))
        other.start_nginx()
        s = Session(other.url, st.domain, wait=3)
        s.login("alice", USERS["alice"], "backlog")
        wait_for(lambda: os.path.exists(os.path.join(other.dir, "sessiond.pid")), 5, "the pid file")
        r = subprocess.run([other.sessiond_bin, "-r", "-c", other.conf], capture_output=True,
                           text=True, timeout=30)
        expect(r.returncode == 0 and "restarted in place" in r.stdout, "sessiond -r: %r" % (r,))
        want = min(was, 65535)
        expect(listen_backlog(other.handler_sock) == want,
               "after the restart: backlog %r, not %d" % (listen_backlog(other.handler_sock), want))
        pong = s.request("<iq xmlns='jabber:client' type='get' id='b1'><ping xmlns='urn:xmpp:ping'/></iq>")
        expect(pong.type != "terminate", pong)
        s.terminate()
    finally:
        somaxconn(was)
        other.stop()


@case
def test_disk_full_keeps_serving_and_catches_up(st):
    import subprocess
    disk = os.path.join(st.dir, "small-disk")
    os.makedirs(disk, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", disk], capture_output=True, text=True)
    expect(r.returncode == 0, "this test mounts a 4 MiB tmpfs (needs root): %s" % r.stderr.strip())
    other = side_stack(st, "database = %s/sessions.db\n" % disk)
    try:
        other.start_sessiond()
        other.start_nginx()
        alice = Session(other.url, st.domain, wait=3)
        alice.login("alice", USERS["alice"], "full")
        time.sleep(0.3)
        # the disk fills up (unbuffered: nothing left to fail again at close)
        with open(os.path.join(disk, "filler"), "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        bob = Session(other.url, st.domain, wait=3)
        bob.login("bob", USERS["bob"], "full")  # served from memory meanwhile
        got, _ = bob.until(lambda c: c.get("id") == "f1",
                           "<message xmlns='jabber:client' to='%s' id='f1'><body>full</body></message>"
                           % bob.jid)
        expect(got.findtext("{jabber:client}body") == "full", got)
        wait_log(other, "cannot write session rows (database or disk is full)")
        with open(other.sessiond_log) as f:
            expect(f.read().count("cannot write session rows") == 1, "logged once per incident")
        os.unlink(os.path.join(disk, "filler"))
        wait_log(other, "session rows written again")
        db = sqlite3.connect(os.path.join(disk, "sessions.db"))
        jid = db.execute("select jid from sessions where sid=?", (bob.sid,)).fetchone()
        db.close()
        expect(jid == (bob.jid,), "bob's row caught up: %r" % (jid,))
        alice.terminate()
        bob.terminate()
    finally:
        other.stop()
        subprocess.run(["umount", disk], capture_output=True)


@case
def test_drain_time_ends_tls_sessions_with_system_shutdown(st):
    from backend_cases import world
    w = world(st)
    other = side_stack(st, "tls_ca_file = %s\nbackend.secure.test = 127.0.0.1:%d starttls\n"
                       "drain_time = 1\n" % (w.ca[1], w.c2s))
    try:
        other.start_sessiond()
        other.start_nginx()
        tls = Session(other.url, "secure.test", wait=2)
        tls.login("alice", "alice-pw", "drained")
        restart(other)
        wait_log(other, "drain_time passed with 1 sessions left; ending them")
        r = tls.request()
        expect(r.type == "terminate" and r.condition == "system-shutdown", r)
        wait_log(other, "the process draining sessions of the last restart has finished", timeout=15)
    finally:
        other.stop()


@case
def test_restart_refused_when_the_new_binary_reads_another_state_format(st):
    import shutil
    other = side_stack(st)
    own = os.path.join(other.dir, "sessiond")  # a copy of its own, to "upgrade"
    shutil.copy(st.sessiond_bin, own)
    other.sessiond_bin = own
    try:
        other.start_sessiond()
        other.start_nginx()
        s = Session(other.url, st.domain, wait=3)
        s.login("alice", USERS["alice"], "format")
        os.unlink(own)  # the upgrade: a binary whose state format is another
        with open(own, "w") as f:
            f.write('#!/bin/sh\nfor a; do [ "$a" = -T ] && exit 3; done\nexit 0\n')
        os.chmod(own, 0o755)
        other.sessiond.signal(signal.SIGUSR2)
        wait_log(other, "keeps its state in another format")
        expect(other.sessiond.alive() and not log_has(other, "restarted in place"), "still the old one")
        pong = s.request("<iq xmlns='jabber:client' type='get' id='f1'><ping xmlns='urn:xmpp:ping'/></iq>")
        expect(pong.type != "terminate", pong)
        s.terminate()
    finally:
        other.stop()


@case
def test_graceful_restart_keeps_a_request_waiting_for_its_turn(st):
    other = side_stack(st)
    try:
        other.start_sessiond()
        other.start_nginx()
        s = Session(other.url, st.domain, wait=3, hold=2)  # requests = 3: a rid may come early
        s.login("alice", USERS["alice"], "ahead")
        first, second = s.next_rid(), s.next_rid()
        msg = ("<message xmlns='jabber:client' to='%s' id='a1'><body>sent early</body></message>"
               % s.jid)
        early = s.request_async(msg, rid=second)  # waits for 'first' to arrive
        time.sleep(0.3)
        restart(other)
        r1 = s.request(rid=first)
        got = early.join(10)
        bodies = [c.findtext("{jabber:client}body") for x in (r1, got) if x is not None and
                  not isinstance(x, Exception) for c in x.children()]
        if "sent early" not in bodies:
            c, _ = s.until(lambda c: c.get("id") == "a1")
            bodies.append(c.findtext("{jabber:client}body"))
        expect("sent early" in bodies, "the early request was processed after the restart: %r" % bodies)
        s.terminate()
    finally:
        other.stop()


def chat_on(witness, tag):
    """The witness session, on the real Prosody, still chats."""
    msg = ("<message xmlns='jabber:client' to='%s' id='%s'><body>still here</body></message>"
           % (witness.jid, tag))
    got, _ = witness.until(lambda c: c.get("id") == tag, msg)
    expect(got.findtext("{jabber:client}body") == "still here", got)


@case
def test_graceful_restart_keeps_a_crowded_stream_header(st):
    # more attributes and namespaces on the server's stream header than the
    # reader of the snapshot used to take (64)
    extra = b"".join(b" a%d='%d'" % (i, i) for i in range(100))
    extra += b"".join(b" xmlns:p%d='urn:p%d'" % (i, i) for i in range(70))
    fake = FakeXmppServer(header_extra=extra)
    other = side_stack(st, "backend.crowded.test = 127.0.0.1:%d\n" % fake.port)
    try:
        other.start_sessiond()
        other.start_nginx()
        witness = Session(other.url, st.domain, wait=3)
        witness.login("carol", USERS["carol"], "crowded")
        s = Session(other.url, "crowded.test", wait=1)
        expect(s.create().attr("sid"), "a session on the fake server")
        restart(other)
        expect(log_has(other, "restarted in place: 2 sessions taken over"), "both sessions moved")
        r = s.request()
        expect(r.type is None, "the session with the crowded header goes on: %r" % r)
        chat_on(witness, "c1")
        witness.terminate()
        s.terminate()
    finally:
        other.stop()
        fake.close()


@case
def test_graceful_restart_keeps_a_queue_past_64_mib(st):
    count, size = 72000, 1000  # about 75 MB, more than max_client_buffer takes
    fake = FakeXmppServer(flood=(count, size))
    other = side_stack(st, "backend.fake.test = 127.0.0.1:%d\nmax_client_buffer = 67108864\n"
                       "max_inactivity = 120\ndefault_inactivity = 120\n" % fake.port)
    try:
        other.start_sessiond()
        other.start_nginx()
        witness = Session(other.url, st.domain, wait=3)
        witness.login("carol", USERS["carol"], "queue")
        s = Session(other.url, "fake.test", wait=3)
        s.create()
        first = s.request("<presence xmlns='jabber:client'/>")  # starts the flood; then no polls
        ids = [c.get("id") for c in first.children()]
        wait_log(other, "; reading paused", timeout=90)
        queued = int(re.search(r"session %s: (\d+) bytes queued for the client; reading paused" % s.sid,
                               open(other.sessiond_log, errors="replace").read()).group(1))
        expect(queued > 64 << 20, "the queue is past 64 MiB: %d bytes" % queued)
        restart(other)
        expect(log_has(other, "restarted in place: 2 sessions taken over"), "both sessions moved")
        chat_on(witness, "q1")
        deadline = time.time() + 120
        while len(ids) < count:  # everything, in order, the queue first
            r = s.request(timeout=120)
            expect(r.type is None, "the session with the big queue goes on: %r" % r)
            expect(time.time() < deadline, "drained in time: %d of %d messages" % (len(ids), count))
            ids += [c.get("id") for c in r.children()]
        expect(ids == ["f%d" % i for i in range(count)], "all %d messages, in order" % count)
        s.terminate()
        witness.terminate()
    finally:
        other.stop()
        fake.close()


def refused_then_serving(other, s, why, tag):
    """SIGUSR2 is refused with why in the log, and the session carries on."""
    other.sessiond.signal(signal.SIGUSR2)
    wait_log(other, "restart refused")
    expect(log_has(other, why), "the log says why: %s\n%s" % (why, other.tail(other.sessiond_log, 5)))
    time.sleep(0.3)
    expect(other.sessiond.alive() and not log_has(other, "restarted in place"), "still the old process")
    pong = s.request("<iq xmlns='jabber:client' type='get' id='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % tag)
    expect(pong.type != "terminate", "the session carries on: %r" % pong)


@case
def test_restart_refused_when_the_service_user_cannot_read_the_ca_file(st):
    import shutil
    other = side_stack(st)
    ca = os.path.join(other.dir, "ca.pem")
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", ca)
    os.chmod(ca, 0o644)
    extra = "tls_ca_file = %s\n" % ca
    if os.geteuid() == 0:  # as in production: started as root, serving as another user
        import pwd
        import grp
        extra += "user = nobody\ngroup = nogroup\n"
        os.chown(other.dir, pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid)
    try:
        other.start_sessiond(extra)
        other.start_nginx()
        s = Session(other.url, st.domain, wait=3)
        s.login("alice", USERS["alice"], "ca")
        # root may still read it (sessiond read it as root at start); the successor would not
        os.chmod(ca, 0o600 if os.geteuid() == 0 else 0)
        refused_then_serving(other, s, "cannot load the CA certificates from %s" % ca, "ca1")
        os.chmod(ca, 0o644)
        restart(other)  # once readable, the same restart goes through
        pong = s.request("<iq xmlns='jabber:client' type='get' id='ca2'><ping xmlns='urn:xmpp:ping'/></iq>")
        expect(pong.type != "terminate", pong)
        s.terminate()
    finally:
        other.stop()


@case
def test_restart_refused_when_the_database_is_too_new(st):
    other = side_stack(st)
    try:
        other.start_sessiond()
        other.start_nginx()
        s = Session(other.url, st.domain, wait=3)
        s.login("alice", USERS["alice"], "db")
        db = sqlite3.connect(other.db)
        db.execute("pragma user_version = 99")  # a later sessiond's schema
        db.commit()
        db.close()
        refused_then_serving(other, s, "database schema version 99 is newer than this sessiond", "db1")
        s.terminate()
    finally:
        other.stop()


# ---- descriptors: nothing leaks across restarts and drains ----

def fd_targets(pid):
    d = "/proc/%d/fd" % pid
    out = {}
    for n in os.listdir(d):
        try:
            out[int(n)] = os.readlink(os.path.join(d, n))
        except OSError:
            pass
    return out


def handlers_of(stack):
    pids = []
    for p in child_pids(stack.sessiond.pid):
        try:
            if "bosh-handler" in os.readlink("/proc/%d/exe" % p):
                pids.append(p)
        except OSError:
            pass
    return pids


def handler_extra_fds(stack, pid):
    """What a handler holds besides its listener (0), stdio and log file, and
    one connection to sessiond: [] when clean."""
    fds = fd_targets(pid)
    sockets = [fd for fd, t in fds.items() if fd > 2 and t.startswith("socket:")]
    other = [t for fd, t in fds.items() if fd > 2 and not t.startswith("socket:")
             and t != stack.sessiond_log]
    expect(fds.get(0, "").startswith("socket:"), "handler %d: its listener is descriptor 0: %r" % (pid, fds))
    return other + ["socket"] * (len(sockets) - 1 if sockets else 0)


def warm_up_handlers(stack, want):
    """Requests until every handler holds its connection to sessiond."""
    for _ in range(60):
        pids = handlers_of(stack)
        if len(pids) == want and all(
                sum(1 for fd, t in fd_targets(p).items() if fd > 2 and t.startswith("socket:")) >= 1
                for p in pids):
            return
        post_raw(stack.url, bosh_body({"sid": "0" * 32, "rid": 1}))
        time.sleep(0.05)
    raise AssertionError("handlers did not all connect: %r" % handlers_of(stack))


def cgi_frame(attrs):
    """A request frame as a plain CGI handler sends it (no connection attached)."""
    import struct

    def field(tag, data):
        return struct.pack(">BI", tag, len(data)) + data
    f = field(1, b"\0\0") + field(2, struct.pack(">I", 0)) + field(3, b"127.0.0.1\0") + field(4, b"POST\0")
    for k, v in attrs.items():
        f += field(6, k.encode() + b"\0" + str(v).encode() + b"\0")
    return b"BF\x01\x01" + struct.pack(">I", len(f)) + f


@case
def test_descriptors_after_restarts_and_drains(st):
    import socket as so
    import struct
    from backend_cases import ping, world
    w = world(st)
    # the handler processes' descriptors too: fcgi_direct = 0
    other = side_stack(st, "tls_ca_file = %s\nbackend.secure.test = 127.0.0.1:%d starttls\n"
                       "default_inactivity = 30\nmax_inactivity = 60\nfcgi_direct = 0\n" % (w.ca[1], w.c2s))
    stop = os.path.join(other.dir, "handlers-fail")
    wrapper = os.path.join(other.dir, "handler.sh")  # fails at once while stop exists
    with open(wrapper, "w") as f:
        f.write('#!/bin/sh\n[ -e %s ] && exit 1\nexec %s "$@"\n' % (stop, st.handler_bin))
    os.chmod(wrapper, 0o755)
    other.handler_bin = wrapper
    try:
        other.start_sessiond()
        other.start_nginx()
        warm_up_handlers(other, 2)
        pid = other.sessiond.pid
        baseline = len(fd_targets(pid))
        for h in handlers_of(other):
            expect(handler_extra_fds(other, h) == [], "handler %d at start: %r" % (h, fd_targets(h)))
        plain = Session(other.url, st.domain, wait=10)
        plain.login("carol", USERS["carol"], "fds")
        tls = Session(other.url, "secure.test", wait=10)
        tls.login("alice", "alice-pw", "fds")
        # one handler dies and keeps dying, so it is between starts when the
        # restart comes: the successor starts it (pool_restore)
        open(stop, "w").close()
        os.kill(handlers_of(other)[0], signal.SIGTERM)
        wait_for(lambda: open(other.sessiond_log, errors="replace").read().count("exited with status 1") >= 5,
                 20, "the handler's restarts to back off")
        held = [plain.request_async(), tls.request_async()]
        time.sleep(0.3)
        os.unlink(stop)
        restart(other)
        log = open(other.sessiond_log, errors="replace").read()
        taking_over = log[log.rindex("restarting in place:"):log.rindex("restarted in place:")]
        expect(re.search(r"handler \d+ started", taking_over),
               "the successor started the missing handler while taking over")
        wait_log(other, "sessions over TLS in process")
        wait_for(lambda: len(handlers_of(other)) == 2, 10, "two handlers")
        for h in handlers_of(other):
            expect(handler_extra_fds(other, h) == [],
                   "handler %d after the restart holds only what it needs: %r" % (h, fd_targets(h)))
        expect(ping(tls, "secure.test", "fd1") and ping(plain, st.domain, "fd2"), "both sessions go on")
        for h in held:
            h.join(15)
        # a CGI request for the drained session, with a descriptor riding along
        c = so.socket(so.AF_UNIX, so.SOCK_SEQPACKET)
        c.connect(os.path.join(other.dir, "sessiond.sock"))
        r, wr = os.pipe()
        c.sendmsg([cgi_frame({"sid": tls.sid, "rid": tls.next_rid()})],
                  [(so.SOL_SOCKET, so.SCM_RIGHTS, struct.pack("i", r))])
        os.close(r)

        def pipe_closed():
            try:
                os.write(wr, b"x")
                return False
            except BrokenPipeError:
                return True
        try:
            wait_for(pipe_closed, 5, "sessiond to close the descriptor that came with a CGI frame")
        finally:
            os.close(wr)
            c.close()
        expect(ping(tls, "secure.test", "fd3"), "the drained session goes on")
        expect(tls.terminate().type == "terminate", "terminate through the drainer")
        wait_log(other, "the process draining sessions of the last restart has finished", timeout=15)
        restart(other)  # and once more, with the plain session only
        expect(ping(plain, st.domain, "fd4"), "the plain session goes on")
        plain.terminate()
        time.sleep(0.5)
        warm_up_handlers(other, 2)
        for h in handlers_of(other):
            expect(handler_extra_fds(other, h) == [], "handler %d at the end: %r" % (h, fd_targets(h)))
        expect(other.sessiond.pid == pid, "the same process")
        now = len(fd_targets(pid))
        expect(now == baseline, "sessiond's descriptors back to %d: %d now: %r" % (baseline, now, fd_targets(pid)))
    finally:
        other.stop()


def listening_inodes():
    """Inodes of every listening socket on the host (TCP, TCP6, Unix)."""
    found = set()
    for name in ("tcp", "tcp6"):
        with open("/proc/net/" + name) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A":
                    found.add(cols[9])
    with open("/proc/net/unix") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if int(cols[3], 16) & 0x10000:  # __SO_ACCEPTCON
                found.add(cols[6])
    return found


def process_listeners(pid):
    inodes = listening_inodes()
    return [t for t in fd_targets(pid).values()
            if t.startswith("socket:[") and t[len("socket:["):-1] in inodes]


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@case
def test_drainer_holds_no_listener_and_stops_with_sessiond(st):
    from backend_cases import ping, world
    from stack import free_port
    w = world(st)
    port = free_port()
    other = side_stack(st, "tls_ca_file = %s\nbackend.secure.test = 127.0.0.1:%d starttls\n"
                       "fcgi_socket = 127.0.0.1:%d\n" % (w.ca[1], w.c2s, port) + LONG_INACTIVITY)
    drainer = None
    try:
        other.start_sessiond()
        other.start_nginx()
        conf = os.path.join(other.dir, "nginx", "bosh.conf")  # FastCGI over TCP
        with open(conf) as f:
            text = f.read().replace("unix:" + other.handler_sock, "127.0.0.1:%d" % port)
        with open(conf, "w") as f:
            f.write(text)
        other.nginx.signal(signal.SIGHUP)
        time.sleep(1)
        tls = Session(other.url, "secure.test", wait=3)
        tls.login("alice", "alice-pw", "drainer")
        restart(other)
        wait_log(other, "sessions over TLS in process")
        drainer = int(re.search(r"draining \d+ sessions over TLS in process (\d+)",
                                open(other.sessiond_log, errors="replace").read()).group(1))
        expect(process_listeners(other.sessiond.pid), "sessiond listens (the check sees listeners)")
        expect(process_listeners(drainer) == [], "the drainer listens on nothing: %r" % process_listeners(drainer))
        expect(ping(tls, "secure.test", "dr1"), "the TLS session goes on in the drainer")
        restart(other)  # sessiond execs again: the drainer's parent stays, and so does it
        expect(pid_alive(drainer) and ping(tls, "secure.test", "dr2"), "the drainer outlives a restart")
        other.stop_sessiond()  # SIGTERM
        # long before its session's inactivity (30 s) or drain_time could end it
        wait_for(lambda: not pid_alive(drainer), 5, "the drainer to stop with sessiond")
        wait_log(other, "draining process stopped")
        other.start_sessiond()  # the FastCGI port is free again
        expect(other.sessiond.alive(), "a new sessiond on the same port")
    finally:
        if drainer and pid_alive(drainer):
            os.kill(drainer, signal.SIGKILL)
        other.stop()
