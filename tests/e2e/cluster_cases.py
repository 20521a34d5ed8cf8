"""End-to-end cases for several nodes behind HAProxy (tools/cluster.py, the
same cluster `make cluster` starts): every request of a session reaches the
node its sid names, new sessions spread over the nodes that are not drained,
a node drained, lost or restarted costs nothing of the others."""
import os
import shutil
import signal
import subprocess
import threading
import time

from bosh import Session
from cases import USERS, Skipped, case, expect

HERE = os.path.dirname(os.path.abspath(__file__))


def cluster(st, nodes=3):
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "tools"))
    from cluster import Cluster
    if not shutil.which("haproxy") and not os.path.exists("/usr/sbin/haproxy"):
        raise AssertionError("haproxy is not installed (Debian package haproxy; make test installs it)")
    return Cluster(build=st.build, nodes=nodes, workdir=os.path.join(st.dir, "cluster-%d" % time.time_ns()),
                   domain=st.domain, xmpp_server="127.0.0.1:%d" % st.c2s_port,
                   sessiond_bin=st.sessiond_bin, handler_bin=st.handler_bin).start()


def node_of(s):
    return s.sid.split("-", 1)[0]


def ping(s, ident):
    r = s.until(lambda c: c.get("id") == ident,
                "<iq xmlns='jabber:client' type='get' id='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % ident)[0]
    return r.get("type") == "result"


def logins(c, st, n, tag):
    users = ["alice", "bob", "carol"]
    out = []
    for i in range(n):
        s = Session(c.url, st.domain, wait=2)
        s.login(users[i % 3], USERS[users[i % 3]], "%s%d" % (tag, i))
        out.append(s)
    return out


class Echo:
    """Sessions echoing messages to themselves through the cluster, counting
    what is lost, doubled, or failed."""

    def __init__(self, sessions):
        self.sessions = sessions
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.msgs = self.lost = self.dup = 0
        self.errors = {}
        self.threads = [threading.Thread(target=self.run, args=(s,)) for s in sessions]

    def run(self, s):
        seq, seen = 0, set()
        while not self.stop.is_set():
            seq += 1
            mid = "e%d" % seq
            payload = "<message xmlns='jabber:client' to='%s' id='%s'><body>x</body></message>" % (s.jid, mid)
            got = False
            try:
                for _ in range(4):
                    r = s.request(payload)
                    payload = ""
                    if r.type == "terminate" or r.status != 200:
                        raise RuntimeError("%s %s" % (r.status, r.condition))
                    for el in r.children():
                        eid = el.get("id")
                        with self.lock:
                            self.dup += eid in seen
                        seen.add(eid)
                        got = got or eid == mid
                    if got:
                        break
            except Exception as e:
                with self.lock:
                    self.errors[s.sid] = repr(e)
                return
            with self.lock:
                if got:
                    self.msgs += 1
                else:
                    self.lost += 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def boshctl(st, *args):
    p = subprocess.run([os.path.join(st.build, "boshctl"), "-c", st.conf] + list(args),
                       capture_output=True, text=True, timeout=90)
    return p.returncode, p.stdout + p.stderr


@case
def test_cluster_routes_by_sid_and_spreads_new_sessions(st):
    """Sessions through HAProxy land on every node; every request of a
    session goes to its node (a chat across nodes works); WebSocket too."""
    from ws_cases import FRAMING, login as ws_login, ping_iq
    c = cluster(st)
    try:
        ss = logins(c, st, 9, "spread")
        nodes = {node_of(s) for s in ss}
        expect(nodes == {"n1", "n2", "n3"}, "sessions on %s only" % sorted(nodes))
        a, b = next((x, y) for x in ss for y in ss if node_of(x) != node_of(y))
        msg = "<message xmlns='jabber:client' to='%s' id='x1' type='chat'><body>across</body></message>"
        a.request(msg % b.jid)
        got, _ = b.until(lambda el: el.get("id") == "x1")
        expect(got.findtext("{jabber:client}body") == "across", "a chat across nodes")
        for s in ss:
            expect(ping(s, "p-" + s.sid[:6]), "session %s answered through HAProxy" % s.sid)
        for name, node in c.nodes.items():
            n = sum(1 for s in ss if node_of(s) == name)
            rc, out = boshctl(node, "--json", "sessions")
            expect(rc == 0 and out.count('"sid"') == n, "%s holds its %d sessions: %s" % (name, n, out[:200]))
        w = ws_login(c, "alice", "ws-cluster", port=c.port)
        expect(ping_iq(w, c, "w1").get("type") == "result", "WebSocket through HAProxy")
        w.send("<close xmlns='%s'/>" % FRAMING)
        w.until_closed()
        w.close()
        for s in ss:
            expect(s.terminate().type == "terminate", "terminate through HAProxy")
    finally:
        c.stop()


@case
def test_cluster_strophe(st):
    """Strophe.js (Node) over BOSH and over WebSocket through HAProxy."""
    import json
    from strophe_case import CHAT, USERS as SUSERS, _check_node
    node = _check_node()
    c = cluster(st)
    try:
        for url in (c.url, c.ws_url):
            argv = [node, CHAT, url, st.domain, "alice@" + st.domain, SUSERS["alice"],
                    "bob@" + st.domain, SUSERS["bob"]]
            p = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            detail = "\n--- stdout ---\n%s\n--- stderr ---\n%s" % (p.stdout, p.stderr[-2000:])
            expect(p.returncode == 0, "Strophe over %s failed%s" % (url, detail))
            out = json.loads([ln for ln in p.stdout.splitlines() if ln.strip()][-1])
            expect(out.get("ok"), "Strophe over %s reported failure%s" % (url, detail))
    finally:
        c.stop()


@case
def test_cluster_misrouted_sid_is_item_not_found(st):
    """A request carrying another node's sid, sent straight to a node (past
    HAProxy): item-not-found and a log line, never a new session."""
    c = cluster(st, nodes=2)
    try:
        s = logins(c, st, 1, "misrouted")[0]
        mine = node_of(s)
        other = c.nodes["n2" if mine == "n1" else "n1"]
        direct = Session(other.url, st.domain, wait=2)
        direct.sid, direct.rid = s.sid, s.rid
        r = direct.request()
        expect(r.type == "terminate" and r.condition == "item-not-found", "answered %r" % r)
        expect(other.logged("of node '%s' reached node '%s'" % (mine, "n2" if mine == "n1" else "n1")),
               "no misrouted log line")
        expect(ping(s, "m1"), "the session goes on through HAProxy")
        s.terminate()
    finally:
        c.stop()


@case
def test_cluster_drain_a_node_under_load(st):
    """boshctl drain n2 under echo load: new sessions avoid n2, n2's own go on,
    nothing lost anywhere; undrain and n2 takes new ones again."""
    c = cluster(st)
    try:
        ss = logins(c, st, 9, "drain")
        on_n2 = [s for s in ss if node_of(s) == "n2"]
        expect(on_n2, "a session on n2 before the drain")
        with Echo(ss) as e:
            rc, out = boshctl(c.nodes["n2"], "drain")
            expect(rc == 0, out)
            time.sleep(2.5)  # HAProxy's check (every second, 2 to fall) takes n2 out of new_sessions
            fresh = logins(c, st, 6, "after-drain")
            expect(all(node_of(s) != "n2" for s in fresh), "new sessions on n2 while drained: %s"
                   % [s.sid for s in fresh])
            time.sleep(1)
        expect(not e.errors and e.lost == 0 and e.dup == 0 and e.msgs > 0,
               "under load: msgs=%d lost=%d dup=%d errors=%r" % (e.msgs, e.lost, e.dup, e.errors))
        for s in on_n2:
            expect(ping(s, "d-" + s.sid[3:9]), "n2's own sessions go on")
        boshctl(c.nodes["n2"], "undrain")
        time.sleep(2.5)
        more = logins(c, st, 6, "undrained")
        expect(any(node_of(s) == "n2" for s in more), "n2 takes new sessions again")
        for s in ss + fresh + more:
            s.terminate()
    finally:
        c.stop()


@case
def test_cluster_lose_a_node_under_load(st):
    """n3 killed (SIGKILL, its nginx too: a power loss) under echo load: only
    n3's sessions end, each client is told by a clean 5xx from HAProxy, and
    logs in again on n1 or n2; the others lose nothing."""
    c = cluster(st)
    try:
        ss = logins(c, st, 9, "lose")
        lost = [s for s in ss if node_of(s) == "n3"]
        kept = [s for s in ss if node_of(s) != "n3"]
        expect(lost and kept, "sessions on n3 and elsewhere")
        with Echo(kept) as e:
            n3 = c.nodes["n3"]
            from stack import child_pids
            # the whole node at once, as a power loss: sessiond, its handlers, nginx and its workers
            doomed = [n3.sessiond.pid, n3.nginx.pid] + child_pids(n3.sessiond.pid) + child_pids(n3.nginx.pid)
            for pid in doomed:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(3)
            for s in lost:
                r = s.request("")
                expect(r.status >= 500, "a session of the lost node got %r" % r)
            again = [Session(c.url, st.domain, wait=2) for _ in lost]
            for i, s in enumerate(again):
                s.login("alice", USERS["alice"], "relogin%d" % i)
                expect(node_of(s) in ("n1", "n2"), "logged in again on %s" % s.sid)
            time.sleep(1)
        expect(not e.errors and e.lost == 0 and e.dup == 0 and e.msgs > 0,
               "the other nodes' sessions: msgs=%d lost=%d dup=%d errors=%r" % (e.msgs, e.lost, e.dup, e.errors))
        for s in kept + again:
            s.terminate()
    finally:
        c.stop()


@case
def test_cluster_rolling_restart_under_load(st):
    """A graceful restart of each node in turn (an upgrade) under echo load:
    nothing lost, nothing doubled, every session still there."""
    from restart_cases import restart
    c = cluster(st)
    try:
        ss = logins(c, st, 9, "rolling")
        with Echo(ss) as e:
            for name in c.names:
                restart(c.nodes[name])
                time.sleep(0.5)
            time.sleep(1)
        expect(not e.errors and e.lost == 0 and e.dup == 0 and e.msgs > 0,
               "msgs=%d lost=%d dup=%d errors=%r" % (e.msgs, e.lost, e.dup, e.errors))
        for s in ss:
            expect(ping(s, "r-" + s.sid[3:9]), "session %s after the rolling restart" % s.sid)
            s.terminate()
    finally:
        c.stop()
