#!/usr/bin/env python3
"""`make cluster NODES=3`: several bosh-cm nodes behind HAProxy, on loopback.

Each node is what `make run` starts (nginx + handlers + sessiond) in a folder
of its own (RUN_DIR/n1 ...), with node_id n1, n2, ...; one XMPP server for
all (a local Prosody unless XMPP_SERVER names one); HAProxy in front with
conf/haproxy/haproxy.cfg, written for these nodes. The tests start the same
cluster (Cluster below)."""
import os
import re
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stack import REPO, Proc, Stack, free_port, port_open, wait_for  # noqa: E402

TEMPLATE = os.path.join(REPO, "conf", "haproxy", "haproxy.cfg")
BEHIND = os.path.join(REPO, "conf", "haproxy", "nginx-behind-haproxy.conf")


def haproxy_config(port, nodes):
    """The repository's haproxy.cfg for these nodes: [(name, port)]. Lines
    marked "per node" and the section "backend node_n1" are written once per
    node from the n1 ones; those of n2, n3 are dropped."""
    def for_node(text, name, nport):
        return re.sub(r"10\.0\.0\.1:80", "127.0.0.1:%d" % nport, re.sub(r"n1", name, text))
    sections = re.split(r"\n(?=\S)", open(TEMPLATE).read())  # a section starts at column 0
    out = []
    for sec in sections:
        m = re.match(r"backend node_(n\d+)", sec)
        if m:
            if m.group(1) == "n1":
                out.extend(for_node(sec, n, p) for n, p in nodes)
            continue
        lines = []
        for line in sec.splitlines():
            if "# per node" not in line:
                lines.append(line.replace("bind 127.0.0.1:5380", "bind 127.0.0.1:%d" % port))
            elif re.search(r"n1\b|n1-", line):
                lines.extend(for_node(line, n, p).replace(" # per node", "") for n, p in nodes)
        out.append("\n".join(lines))
    # HAProxy needs two descriptors per connection: fit maxconn to our limit
    import resource
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    text = "\n".join(out) + "\n"
    if limit != resource.RLIM_INFINITY and limit < 200100:
        text = text.replace("maxconn 100000", "maxconn %d" % max(256, (limit - 100) // 2))
    return text


class Cluster:
    def __init__(self, build="build", nodes=3, workdir=None, port=None, domain="localhost",
                 xmpp_server=None, sessiond_bin=None, handler_bin=None, extra_conf=""):
        import tempfile
        self.dir = workdir or tempfile.mkdtemp(prefix="bosh-cluster-")
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o711)
        self.port = port or free_port()
        self.domain = domain
        self.build = build
        self.xmpp_server = xmpp_server
        self.prosody_stack = None
        self.haproxy = None
        self.names = ["n%d" % (i + 1) for i in range(nodes)]
        self.kw = dict(build=build, domain=domain, sessiond_bin=sessiond_bin, handler_bin=handler_bin)
        self.extra_conf = extra_conf
        self.nodes = {}

    @property
    def url(self):
        return "http://127.0.0.1:%d/http-bind" % self.port

    @property
    def ws_url(self):
        return "ws://127.0.0.1:%d/xmpp-websocket" % self.port

    def start(self, users=()):
        """Starts everything; what was started is stopped again if a part fails."""
        try:
            return self._start(users)
        except BaseException:
            self.stop()
            raise

    def _start(self, users):
        if not self.xmpp_server:
            # The XMPP server all nodes share: a Prosody in a folder of its own.
            self.prosody_stack = Stack(workdir=os.path.join(self.dir, "prosody"), **self.kw)
            self.prosody_stack.start_prosody()
            for user, pw in users:
                self.prosody_stack.add_user(user, pw)
            self.xmpp_server = "127.0.0.1:%d" % self.prosody_stack.c2s_port
        behind = open(BEHIND).read()
        for name in self.names:
            st = Stack(workdir=os.path.join(self.dir, name), xmpp_server=self.xmpp_server,
                       extra_conf="node_id = %s\n%s" % (name, self.extra_conf), **self.kw)
            st.nginx_extra = "\n".join(l for l in behind.splitlines() if not l.startswith("#")) + "\n"
            st.start_sessiond("log_level = info")
            st.start_nginx()
            self.nodes[name] = st
        self.start_haproxy()
        return self

    def start_haproxy(self):
        d = os.path.join(self.dir, "haproxy")
        os.makedirs(d, exist_ok=True)
        cfg = os.path.join(d, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(haproxy_config(self.port, [(n, self.nodes[n].http_port) for n in self.names]))
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        self.haproxy = Proc("haproxy", [haproxy, "-db", "-f", cfg], os.path.join(d, "haproxy.log"))
        wait_for(lambda: port_open(self.port) or not self.haproxy.alive(), 20, "haproxy")
        if not self.haproxy.alive():
            raise RuntimeError("haproxy did not start:\n" + Stack.tail(os.path.join(d, "haproxy.log")))
        # every node up in its checks before a test counts on the balance
        time.sleep(2.5)

    def stop(self):
        if self.haproxy:
            self.haproxy.stop()
            self.haproxy = None
        for st in self.nodes.values():
            st.stop()
        if self.prosody_stack:
            self.prosody_stack.stop()


def run_forever():
    """`make cluster`: the cluster in the foreground until Ctrl-C."""
    nodes = int(os.environ.get("NODES") or 3)
    port = int(os.environ.get("PORT") or 5380)
    domain = os.environ.get("XMPP_DOMAIN") or "localhost"
    server = os.environ.get("XMPP_SERVER") or None
    run_dir = os.environ.get("RUN_DIR") or os.path.join(REPO, "run-cluster")
    Proc.new_session = False
    c = Cluster(nodes=nodes, workdir=run_dir, port=port, domain=domain, xmpp_server=server)
    stopping = []
    signal.signal(signal.SIGINT, lambda *a: stopping.append(1))
    signal.signal(signal.SIGTERM, lambda *a: stopping.append(1))
    try:
        users = (("alice", "alice-secret"), ("bob", "bob-secret")) if not server else ()
        c.start(users)
        print("Data folder: %s (n1 ... n%d: each node's database, logs, nginx; haproxy/)" % (run_dir, nodes))
        for name, st in c.nodes.items():
            print("Node %s: http://127.0.0.1:%d/http-bind, boshctl -c %s" % (name, st.http_port, st.conf))
        if not server:
            print("Accounts: alice@%s / alice-secret, bob@%s / bob-secret" % (domain, domain))
        print("WebSocket endpoint: %s" % c.ws_url)
        print("BOSH endpoint: %s" % c.url, flush=True)
        while not stopping:
            for p in [c.haproxy] + [s.nginx for s in c.nodes.values()] + [s.sessiond for s in c.nodes.values()]:
                if p and not p.alive():
                    print("%s exited; stopping" % p.name, flush=True)
                    stopping.append(0)
            time.sleep(0.5)
    finally:
        c.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["run"]:
        run_forever()
    else:
        print("usage: cluster.py run", file=sys.stderr)
        sys.exit(2)
