"""Starts and stops the real parts: Prosody, nginx, sessiond with its handlers.

Every process is started by us, on loopback ports picked free at run time,
with its own data folder, and stopped by the PID we got when we started it.
Configs come from the repository (conf/); only ports and paths are filled in.

The entry point of `make run` (python3 tools/stack.py run); the tests start
their stacks with it too.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_pids(pid):
    """The PIDs of pid's children (a sessiond's handlers, nginx's workers)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def wait_for(predicate, timeout=20.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for " + what)


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def fill(template, values):
    with open(template) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace(k, str(v))
    return text


class Proc:
    """A process we started; stopped by its PID only."""

    # Tests give each process a session of its own, so a Ctrl-C reaches only
    # the test runner, which then stops them in order. `make run` keeps them in
    # its session, so a benchmark that measures that session sees them all.
    new_session = True

    def __init__(self, name, argv, log, env=None, cwd=None, batch=False):
        self.name = name
        self.log = log
        out = open(log, "ab")
        # batch: SCHED_BATCH from the start, inherited by every process it forks
        # (chrt execs the program: the PID stays the program's)
        if batch:
            argv = ["chrt", "--batch", "0"] + argv
        self.p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                  stdin=subprocess.DEVNULL, start_new_session=Proc.new_session)
        out.close()

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.p.pid, sig)

    def stop(self, timeout=10):
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


class Stack:
    def __init__(self, build="build", workdir=None, domain="localhost", xmpp_server=None,
                 http_port=None, sessiond_bin=None, handler_bin=None, extra_conf=""):
        self.build = os.path.join(REPO, build) if not os.path.isabs(build) else build
        self.dir = workdir or tempfile.mkdtemp(prefix="bosh-e2e-")
        os.makedirs(self.dir, exist_ok=True)
        # As root, nginx workers run as nobody:nogroup, and sessiond gives its
        # sockets to that group (mode 0660), as on a real server.
        self.as_root = os.geteuid() == 0
        os.chmod(self.dir, 0o711)
        self.domain = domain
        self.xmpp_server = xmpp_server
        self.http_port = http_port or free_port()
        self.c2s_port = free_port()
        self.sessiond_bin = sessiond_bin or os.path.join(self.build, "sessiond")
        self.handler_bin = handler_bin or os.path.join(self.build, "bosh-handler")
        self.extra_conf = extra_conf
        self.raise_somaxconn = True
        self.nginx_extra = ""  # lines for nginx's server block (behind a load balancer: set_real_ip_from)
        self.local_conf = ""  # the user's own lines (make run's local.conf), written last
        self.chat_ready = False  # the web chat has its Strophe (publish_chat)
        self.prosody = self.nginx = self.sessiond = None
        self.db = os.path.join(self.dir, "sessions.db")
        self.conf = os.path.join(self.dir, "bosh.conf")
        self.handler_sock = os.path.join(self.dir, "handler.sock")
        self.ws_sock = os.path.join(self.dir, "ws.sock")
        self.sessiond_log = os.path.join(self.dir, "sessiond.log")

    @property
    def url(self):
        return "http://127.0.0.1:%d/http-bind" % self.http_port

    @property
    def ws_url(self):
        return "ws://127.0.0.1:%d/xmpp-websocket" % self.http_port

    # ---- Prosody ----
    def start_prosody(self, any_password=False):
        """any_password: accept every user and password (load generators log
        in as many users no one registered), with warnings only in the log."""
        d = os.path.join(self.dir, "prosody")
        os.makedirs(os.path.join(d, "data"), exist_ok=True)
        cfg = os.path.join(d, "prosody.cfg.lua")
        text = fill(os.path.join(REPO, "conf/prosody/demo.cfg.lua"),
                    {"@DIR@": d, "@C2S_PORT@": self.c2s_port, "@DOMAIN@": self.domain})
        if any_password:
            text = text.replace('authentication = "internal_hashed"',
                                'authentication = "insecure"\ninsecure_open_authentication = '
                                '"Yes please, I know what I\'m doing!"').replace(
                'levels = { min = "info" }', 'levels = { min = "warn" }')
        with open(cfg, "w") as f:
            f.write(text)
        self.prosody_cfg = cfg
        self.prosody = Proc("prosody", ["prosody", "--config", cfg], os.path.join(d, "stdout.log"))
        wait_for(lambda: port_open(self.c2s_port) or not self.prosody.alive(), 30, "prosody")
        if not self.prosody.alive():
            raise RuntimeError("prosody did not start:\n" + self.tail(os.path.join(d, "prosody.log")))

    def add_user(self, user, password):
        r = subprocess.run(["prosodyctl", "--config", self.prosody_cfg, "register", user,
                            self.domain, password], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("prosodyctl register failed: " + r.stdout + r.stderr)

    # ---- sessiond ----
    def fcgi_direct(self):
        """Whether sessiond reads FastCGI itself: fcgi_direct in the written
        config (its last value), 1 unless said otherwise."""
        try:
            with open(self.conf) as f:
                vals = re.findall(r"^\s*fcgi_direct\s*=\s*(\d)", f.read(), re.M)
        except OSError:
            vals = []
        return not vals or vals[-1] != "0"

    def write_conf(self, extra=""):
        backend = self.xmpp_server or "127.0.0.1:%d" % self.c2s_port
        # The parser takes the last value of a key, but refuses a backend
        # domain given twice: the user's own line for it replaces ours.
        if self.domain in local_backends(self.local_conf):
            backend = None
        with open(self.conf, "w") as f:
            f.write("# written by tools/stack.py\n"
                    "control_socket = sessiond.sock\n"
                    "fcgi_socket = handler.sock\n"
                    "ws_socket = ws.sock\n"
                    "database = sessions.db\n"
                    "log_file = sessiond.log\n"
                    "handler_log_file = sessiond.log\n"
                    "log_level = debug\n"
                    "handlers = 2\n"
                    "# every client of a stack on loopback (load tools included) has one address\n"
                    "max_sessions_per_client = 0\n"
                    "handler_path = %s\n%s\n%s\n%s\n%s\n"
                    % (self.handler_bin,
                       "backend.%s = %s" % (self.domain, backend) if backend else
                       "# backend.%s: given below" % self.domain,
                       "group = nogroup" if self.as_root else "", self.extra_conf, extra))
            if self.local_conf:
                f.write("# ---- the user's own lines (later lines win) ----\n%s\n" % self.local_conf)
            f.write(self.chat_cors_line(extra))

    def chat_cors_line(self, extra):
        """sessiond's WebSocket listener takes a browser's upgrade only from an
        origin in cors_origins, the page's own too: the web chat at / of our
        port is added to the last cors_origins written (ours, the tests' or
        the user's), unless that is *."""
        origins = []
        for text in (self.extra_conf, extra, self.local_conf):
            for line in text.splitlines():
                k, _, v = line.partition("=")
                if k.strip() == "cors_origins" and not line.lstrip().startswith("#"):
                    origins = v.split()
        if "*" in origins:
            return ""
        mine = ["http://127.0.0.1:%d" % self.http_port, "http://localhost:%d" % self.http_port]
        return "# the web chat's own origin, for its WebSocket (tools/stack.py)\ncors_origins = %s\n" % " ".join(
            origins + [o for o in mine if o not in origins])

    def start_sessiond(self, extra="", env=None):
        """env: variables for sessiond alone, over this process's."""
        self.write_conf(extra)
        if self.raise_somaxconn:
            raise_somaxconn()  # as make run does; before sessiond's listen()
        if os.path.exists(self.handler_sock):  # left by a sessiond that was killed
            os.unlink(self.handler_sock)
        own = dict(os.environ)
        own.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0")
        own.update(env or {})
        self.sessiond = Proc("sessiond", [self.sessiond_bin, "-f", "-c", self.conf],
                             os.path.join(self.dir, "sessiond.stdout"), env=own)
        control = os.path.join(self.dir, "sessiond.sock")
        # Ready when it says so: its control socket takes connections before
        # the database is open (and migrated), and a test may read it at once.
        ready = "sessiond[%d] info: sessiond ready" % self.sessiond.pid
        quiet = self.log_level() in ("warn", "error")  # the line is not written then
        wait_for(lambda: (self.accepts(control) and (quiet or self.logged(ready)))
                 or not self.sessiond.alive(), 20, "sessiond")
        if not self.sessiond.alive():
            raise RuntimeError("sessiond did not start:\n" + self.tail(self.sessiond_log) +
                               self.tail(os.path.join(self.dir, "sessiond.stdout")))

    def log_level(self):
        """The log_level of the written configuration (the last line wins)."""
        level = "info"
        with open(self.conf) as f:
            for line in f:
                k, _, v = line.partition("=")
                if k.strip() == "log_level":
                    level = v.strip()
        return level

    def logged(self, text):
        """In its log, or on its stderr when it could not open the log."""
        for path in (self.sessiond_log, os.path.join(self.dir, "sessiond.stdout")):
            try:
                with open(path, errors="replace") as f:
                    if text in f.read():
                        return True
            except OSError:
                pass
        return False

    @staticmethod
    def accepts(path):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as c:
                c.connect(path)
            return True
        except OSError:
            return False

    def stop_sessiond(self, sig=signal.SIGTERM):
        if self.sessiond:
            if sig == signal.SIGTERM:
                self.sessiond.stop()
            else:
                self.sessiond.signal(sig)
                self.sessiond.p.wait(10)
            self.sessiond = None

    # ---- the demo web chat ----
    def publish_chat(self):
        """Copies the web chat (www/chat/ and Strophe's browser build from its
        npm package) into the folder nginx serves at /; returns whether
        Strophe was there (npm ci in www/chat, which make run does)."""
        www = os.path.join(self.dir, "www")
        os.makedirs(www, exist_ok=True)
        os.chmod(www, 0o755)  # nginx's workers run as nobody when we are root
        for name in CHAT_FILES:
            shutil.copyfile(os.path.join(CHAT_SRC, name), os.path.join(www, name))
            os.chmod(os.path.join(www, name), 0o644)
        if not os.path.exists(STROPHE_JS):
            return False
        shutil.copyfile(STROPHE_JS, os.path.join(www, "strophe.umd.min.js"))
        os.chmod(os.path.join(www, "strophe.umd.min.js"), 0o644)
        return True

    @property
    def chat_url(self):
        return "http://127.0.0.1:%d/" % self.http_port

    # ---- nginx ----
    def start_nginx(self, keep_conn=None):
        d = os.path.join(self.dir, "nginx")
        os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
        shutil.copy("/etc/nginx/fastcgi_params", os.path.join(d, "fastcgi_params"))
        self.chat_ready = self.publish_chat()
        # With the handler processes (fcgi_direct = 0) every request goes
        # through one, as the README's handler section configures nginx.
        keep = "on" if (self.fcgi_direct() if keep_conn is None else keep_conn) else "off"
        server = fill(os.path.join(REPO, "conf/nginx/bosh.conf"),
                      # reuseport: the kernel spreads connections evenly over the
                      # workers, so none runs out of worker_connections first
                      {"listen 127.0.0.1:5280;": "listen 127.0.0.1:%d reuseport;" % self.http_port,
                       "fastcgi_keep_conn on;": "fastcgi_keep_conn %s;" % keep,
                       "/run/bosh/handler.sock": self.handler_sock,
                       "/run/bosh/ws.sock": self.ws_sock,
                       "root /usr/share/bosh-cm/chat;": "root %s;" % os.path.join(self.dir, "www")})
        # sessiond's pages (metrics, status, health), inside the same server block
        pages = fill(os.path.join(REPO, "conf/nginx/metrics.conf"), {"/run/bosh/handler.sock": self.handler_sock})
        server = server[:server.rindex("}")] + "\n" + pages + self.nginx_extra + "}\n"
        with open(os.path.join(d, "bosh.conf"), "w") as f:
            f.write(server)
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write("""daemon off;
%(user)s
worker_processes 2;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log info;
worker_rlimit_nofile 20000;
events { worker_connections 19000; multi_accept on; }
http {
	access_log %(d)s/access.log combined buffer=64k flush=1s;
	client_body_temp_path %(d)s/tmp;
	proxy_temp_path %(d)s/tmp;
	fastcgi_temp_path %(d)s/tmp;
	uwsgi_temp_path %(d)s/tmp;
	scgi_temp_path %(d)s/tmp;
	include bosh.conf;
}
""" % {"d": d, "user": "user nobody nogroup;" if self.as_root else ""})
        self.nginx_conf = os.path.join(d, "nginx.conf")
        # SCHED_BATCH, as sessiond sets for itself (batch_scheduling): README, Scheduling
        self.nginx = Proc("nginx", ["nginx", "-p", d, "-c", self.nginx_conf],
                          os.path.join(d, "stdout.log"), batch=True)
        wait_for(lambda: port_open(self.http_port) or not self.nginx.alive(), 20, "nginx")
        if not self.nginx.alive():
            raise RuntimeError("nginx did not start:\n" + self.tail(os.path.join(d, "error.log")) +
                               self.tail(os.path.join(d, "stdout.log")))

    def start(self, prosody=True):
        if prosody and not self.xmpp_server:
            self.start_prosody()
        self.start_sessiond()
        self.start_nginx()
        return self

    def start_for_load(self, sessiond_conf):
        """Prosody taking any user and password (load generators log in as
        users no one registered), sessiond with sessiond_conf, nginx."""
        self.start_prosody(any_password=True)
        self.start_sessiond(sessiond_conf)
        self.start_nginx()
        return self

    def stop(self):
        for p in (self.nginx, self.sessiond, self.prosody):
            if p:
                p.stop()
        self.nginx = self.sessiond = self.prosody = None

    @staticmethod
    def tail(path, n=30):
        try:
            with open(path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


CHAT_SRC = os.path.join(REPO, "www", "chat")
CHAT_FILES = ("index.html", "chat.js", "chat.css")
STROPHE_JS = os.path.join(CHAT_SRC, "node_modules", "strophe.js", "dist", "strophe.umd.min.js")

# Keys whose paths make run itself relies on (its nginx, its readiness check).
RUN_OWN_KEYS = ("control_socket", "fcgi_socket", "ws_socket", "database")


def local_backends(text):
    """The domains of the backend.DOMAIN keys in bosh.conf lines."""
    out = set()
    for line in text.splitlines():
        key = line.partition("=")[0].strip()
        if not line.lstrip().startswith("#") and key.startswith("backend."):
            out.add(key[len("backend."):])
    return out


def read_local_conf(run_dir):
    """make run's own settings: CONF=path, or RUN_DIR/local.conf if there is
    one. Returns (path or None, text); exits with a message on a file it
    cannot use. make run never writes either file."""
    path = os.environ.get("CONF") or ""
    if path:
        path = os.path.abspath(path)
        if not os.path.isfile(path):
            sys.exit("make run: CONF=%s: no such file" % path)
    else:
        path = os.path.join(run_dir, "local.conf")
        if not os.path.isfile(path):
            return None, ""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        sys.exit("make run: cannot read %s: %s" % (path, e))
    for n, line in enumerate(text.splitlines(), 1):
        key = line.partition("=")[0].strip()
        if not line.lstrip().startswith("#") and key in RUN_OWN_KEYS:
            sys.exit("make run: %s line %d: %s is make run's own (its nginx and its checks use it);\n"
                     "to try another, run sessiond with a bosh.conf of your own" % (path, n, key))
    return path, text.rstrip("\n")


SOMAXCONN = "/proc/sys/net/core/somaxconn"
SOMAXCONN_WANTED = 65535


def somaxconn(value=None):
    """The kernel's cap on listen backlogs; with value, set to it first (root)."""
    if value is not None:
        with open(SOMAXCONN, "w") as f:
            f.write("%d\n" % value)
    with open(SOMAXCONN) as f:
        return int(f.read())


def raise_somaxconn(want=SOMAXCONN_WANTED):
    """As root, raise the kernel's cap on listen backlogs (4096 by default) to
    want, for sessiond's FastCGI socket: a burst of session ends is a burst of
    new connections from the web server (README: nginx). Returns the value it
    replaced, or None if nothing changed."""
    try:
        now = somaxconn()
        if now >= want or os.geteuid() != 0:
            return None
        somaxconn(want)
        return now
    except (OSError, ValueError):
        return None


def run_forever():
    """`make run`: the whole stack in the foreground until Ctrl-C."""
    port = int(os.environ.get("PORT") or 5280)
    domain = os.environ.get("XMPP_DOMAIN") or "localhost"
    server = os.environ.get("XMPP_SERVER") or None
    run_dir = os.environ.get("RUN_DIR") or os.path.join(REPO, "run")
    local_path, local_text = read_local_conf(run_dir)
    if local_path:
        print("Local settings: %s, applied on top of the generated %s" % (
              local_path, os.path.join(run_dir, "bosh.conf")), flush=True)
    else:
        print("Local settings: none (put your own bosh.conf lines in %s, or make run CONF=path;"
              " make run never writes either)" % os.path.join(run_dir, "local.conf"), flush=True)
    if os.path.exists(run_dir):
        for name in ("sessiond.sock", "handler.sock"):
            try:
                os.unlink(os.path.join(run_dir, name))
            except OSError:
                pass
    st = Stack(build=os.environ.get("BUILD") or "build", workdir=run_dir, domain=domain,
               xmpp_server=server, http_port=port)
    st.local_conf = local_text
    Proc.new_session = False
    stopping = []

    def stop(signum, frame):
        stopping.append(signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        if not server:
            st.start_prosody()
            for user, pw in (("alice", "alice-secret"), ("bob", "bob-secret")):
                st.add_user(user, pw)
        was = raise_somaxconn()
        if was is not None:
            print("net.core.somaxconn: %d, was %d (the listen backlog a burst of session ends needs)"
                  % (SOMAXCONN_WANTED, was), flush=True)
        st.start_sessiond("log_level = info")
        st.start_nginx()
        print("Data folder: %s (database sessions.db, logs sessiond.log, nginx/, prosody/)" % run_dir)
        print("XMPP domain: %s, served by %s" % (domain, server or
              "a local Prosody on 127.0.0.1:%d" % st.c2s_port))
        if not server:
            print("Accounts: alice@%s / alice-secret, bob@%s / bob-secret" % (domain, domain))
            print("Try it:   python3 %s/tests/e2e/login.py %s alice@%s alice-secret"
                  % (REPO, st.url, domain))
        print("Sessions: sqlite3 %s 'select * from active_sessions'" % st.db)
        if st.chat_ready:
            print("Web chat: %s" % st.chat_url)
        else:
            print("Web chat: missing %s (npm ci in %s; make run does it)" % (STROPHE_JS, CHAT_SRC))
        print("BOSH endpoint: %s" % st.url)
        print("Metrics: http://127.0.0.1:%d/bosh/metrics" % port)
        print("Status: http://127.0.0.1:%d/bosh/status" % port)
        print("Admin: %s/build/boshctl -c %s status" % (REPO, st.conf))
        print("WebSocket endpoint: %s" % st.ws_url, flush=True)
        while not stopping:
            for p in (st.nginx, st.sessiond, st.prosody):
                if p and not p.alive():
                    print("%s exited; stopping" % p.name, flush=True)
                    stopping.append(0)
            time.sleep(0.5)
    finally:
        st.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["run"]:
        run_forever()
    else:
        print("usage: stack.py run", file=sys.stderr)
        sys.exit(2)
