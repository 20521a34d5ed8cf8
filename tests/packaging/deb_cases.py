"""The Debian package as an admin gets it: extracted (dpkg-deb -x) into a
temporary root, its sessiond run with its own /etc/bosh/bosh.conf changed
only in its paths (into the temporary root) and its backend (the test
Prosody), the way its systemd unit runs it (as an unprivileged user of group
www-data, ready when it says READY=1), behind nginx with the package's own
snippet: two users log in over BOSH and exchange a message."""
import glob
import grp
import os
import pwd
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile

import bosh
from common import ARGS, Skipped, build_file, case, expect
from notify_cases import Notified, expect_state
from stack import Proc, Stack, free_port, port_open, wait_for
from unit_cases import verify_unit

# What the package must hold (paths in the package).
FILES = ["usr/sbin/sessiond", "usr/sbin/bosh-handler", "usr/bin/bosh-prebind", "etc/bosh/bosh.conf",
         "lib/systemd/system/bosh-sessiond.service", "etc/logrotate.d/bosh-cm",
         "usr/share/bosh-cm/sql/schema.sql", "usr/share/bosh-cm/sql/views.sql",
         "usr/share/doc/bosh-cm/examples/nginx/bosh.conf",
         "usr/share/doc/bosh-cm/examples/apache/proxy-fcgi.conf",
         "usr/share/doc/bosh-cm/examples/bosh.conf.example", "usr/share/doc/bosh-cm/copyright",
         "usr/share/doc/bosh-cm/examples/systemd/web-server-batch.conf",
         "usr/share/man/man5/bosh.conf.5.gz", "usr/share/man/man8/sessiond.8.gz",
         "usr/share/man/man8/bosh-handler.8.gz", "usr/share/man/man1/bosh-prebind.1.gz",
         "usr/share/man/man1/bosh-discovery.1.gz"]
# The directories the unit gives sessiond (RuntimeDirectory, StateDirectory, LogsDirectory).
DIRS = ["/run/bosh/", "/var/lib/bosh/", "/var/log/bosh/"]
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}


def the_deb():
    if ARGS["deb"]:
        return ARGS["deb"]
    debs = sorted(glob.glob(build_file("bosh-cm_*.deb")), key=os.path.getmtime)
    expect(debs, "no package in %s: make deb" % ARGS["build"])
    return debs[-1]


def extract(deb, root):
    subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    control = os.path.join(root, "DEBIAN")
    subprocess.run(["dpkg-deb", "-e", deb, control], check=True)
    return control


def adapt_conf(root, c2s_port):
    """The package's bosh.conf with its paths moved into root and its backend
    pointed at the test Prosody; nothing else may change."""
    path = os.path.join(root, "etc/bosh/bosh.conf")
    with open(path) as f:
        original = f.read().split("\n")
    lines = []
    for line in original:
        new = line
        if not line.lstrip().startswith("#"):
            for d in DIRS:
                new = new.replace(" " + d, " " + root + d)
            new = re.sub(r"^(backend\.localhost\s*=\s*)127\.0\.0\.1:5222$", r"\g<1>127.0.0.1:%d" % c2s_port, new)
        lines.append(new)
    changed = [(a, b) for a, b in zip(original, lines) if a != b]
    keys = sorted(a.split("=")[0].strip() for a, _ in changed)
    expect("backend.localhost" in keys and "database" in keys and "fcgi_socket" in keys,
           "the package's bosh.conf is not what the test expects (changed: %s)" % keys)
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def service_account():
    """Who the unit runs sessiond as (User=bosh, Group=www-data): as root,
    nobody stands in for bosh (the test creates no account); otherwise ourselves."""
    if os.geteuid() != 0:
        return None, []
    uid, gid = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("www-data").gr_gid
    return (uid, gid), ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups", "--"]


def make_dirs(root, account):
    """What systemd makes for RuntimeDirectory= and the others: mode 0750,
    owned by User= and Group=."""
    for d in DIRS:
        path = root + d
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o750)
        if account:
            os.chown(path, *account)


def start_nginx(root, d, port, sockets=None, wrap=()):
    """nginx with the package's snippet, only its port and socket folder
    (sockets: ROOT/run/bosh by default) changed; wrap runs it (nsenter)."""
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    shutil.copy("/etc/nginx/fastcgi_params", os.path.join(d, "fastcgi_params"))
    with open(os.path.join(root, "usr/share/doc/bosh-cm/examples/nginx/bosh.conf")) as f:
        snippet = f.read()
    expect("listen 127.0.0.1:5280;" in snippet and "unix:/run/bosh/handler.sock" in snippet,
           "the package's nginx snippet is not what the test expects")
    snippet = snippet.replace("listen 127.0.0.1:5280;", "listen 127.0.0.1:%d;" % port).replace(
        "/run/bosh/", (sockets or root + "/run/bosh") + "/")
    with open(os.path.join(d, "bosh.conf"), "w") as f:
        f.write(snippet)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""daemon off;
%(user)s
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log info;
events { worker_connections 256; }
http {
	access_log %(d)s/access.log;
	client_body_temp_path %(d)s/tmp;
	proxy_temp_path %(d)s/tmp;
	fastcgi_temp_path %(d)s/tmp;
	uwsgi_temp_path %(d)s/tmp;
	scgi_temp_path %(d)s/tmp;
	include bosh.conf;
}
""" % {"d": d, "user": "user www-data www-data;" if os.geteuid() == 0 else ""})
    nginx = Proc("nginx", list(wrap) + ["nginx", "-p", d, "-e", os.path.join(d, "error.log"), "-c", conf],
                 os.path.join(d, "stdout.log"))
    wait_for(lambda: port_open(port) or not nginx.alive(), 20, "nginx")
    expect(nginx.alive(), "nginx did not start:\n" + Stack.tail(os.path.join(d, "error.log")))
    return nginx


def log_in(url):
    """alice and bob, logged in over BOSH, bob available."""
    alice, bob = bosh.Session(url, "localhost", wait=3), bosh.Session(url, "localhost", wait=3)
    alice.login("alice", PASSWORDS["alice"], "deb")
    bob.login("bob", PASSWORDS["bob"], "deb")
    expect(alice.jid == "alice@localhost/deb", "bound %r" % alice.jid)
    bob.request("<presence xmlns='jabber:client'/>")
    return alice, bob


def message(alice, bob, text):
    """alice's message reaches bob."""
    msg = ("<message xmlns='jabber:client' to='%s' type='chat'><body>%s</body></message>" % (bob.jid, text))
    alice.request(msg)
    got, _ = bob.until(lambda c: c.tag == "{jabber:client}message" and
                       c.findtext("{jabber:client}body") == text)
    expect(got.get("from", "").startswith("alice@localhost"), "message from %r" % got.get("from"))


def chat(url):
    alice, bob = log_in(url)
    message(alice, bob, "from the package")
    alice.terminate()
    bob.terminate()
    return alice.sid


@case
def deb_contents_and_scripts():
    d = tempfile.mkdtemp(prefix="bosh-deb-")
    try:
        root = os.path.join(d, "root")
        control = extract(the_deb(), root)
        missing = [f for f in FILES if not os.path.exists(os.path.join(root, f))]
        expect(not missing, "missing from the package: %s" % missing)
        with open(os.path.join(control, "conffiles")) as f:
            conffiles = f.read().split()
        expect("/etc/bosh/bosh.conf" in conffiles, "bosh.conf is not a conffile: %s" % conffiles)
        with open(os.path.join(control, "postinst")) as f:
            postinst = f.read()
        expect(re.search(r"adduser --system .*bosh", postinst.replace("\\\n", " ")),
               "postinst creates no bosh system user")
        unit = os.path.join(root, "lib/systemd/system/bosh-sessiond.service")
        with open(unit) as f:
            text = f.read()
        local = os.path.join(d, "bosh-sessiond.service")
        with open(local, "w") as f:
            f.write(text.replace("/usr/sbin/sessiond", os.path.join(root, "usr/sbin/sessiond")))
        # the unit as packaged, its Documentation= pages from the package
        problems = verify_unit(local, os.path.join(root, "usr/share/man"))
        expect(not problems, "systemd-analyze verify on the packaged unit:\n" + "\n".join(problems))
    finally:
        shutil.rmtree(d, ignore_errors=True)


@case
def deb_sessiond_serves_behind_nginx():
    if not shutil.which("nginx") or not shutil.which("prosody"):
        raise Skipped("nginx or prosody is not installed")
    d = tempfile.mkdtemp(prefix="bosh-deb-")
    os.chmod(d, 0o711)
    root = os.path.join(d, "root")
    st = Stack(workdir=os.path.join(d, "stack"))
    sessiond = nginx = n = None
    ok = False
    try:
        extract(the_deb(), root)
        for p in (root, os.path.join(root, "run"), os.path.join(root, "var"), os.path.join(root, "var/lib"),
                  os.path.join(root, "var/log")):
            os.makedirs(p, exist_ok=True)
            os.chmod(p, 0o755)
        st.start_prosody()
        for user, password in PASSWORDS.items():
            st.add_user(user, password)
        conf = adapt_conf(root, st.c2s_port)
        account, as_service = service_account()
        make_dirs(root, account)
        n = Notified(os.path.join(d, "notify"))
        os.chmod(os.path.join(d, "notify"), 0o777)
        env = dict(os.environ, NOTIFY_SOCKET=n.name)
        sessiond = Proc("sessiond", as_service + [os.path.join(root, "usr/sbin/sessiond"), "-f", "-c", conf],
                        os.path.join(d, "sessiond.stdout"), env=env)
        try:
            expect_state(n, sessiond.pid, "READY", "the package's sessiond")
        except AssertionError:
            raise AssertionError("sessiond did not say READY=1:\n" +
                                 Stack.tail(os.path.join(root, "var/log/bosh/sessiond.log")) +
                                 Stack.tail(os.path.join(d, "sessiond.stdout")))
        port = free_port()
        nginx = start_nginx(root, os.path.join(d, "nginx"), port)
        sid = chat("http://127.0.0.1:%d/http-bind" % port)
        db = sqlite3.connect(os.path.join(root, "var/lib/bosh/sessions.db"), timeout=5)
        row = db.execute("select jid from sessions where sid=?", (sid,)).fetchone()
        db.close()
        expect(row and row[0].startswith("alice@localhost"), "the session's row: %r" % (row,))
        if account:
            st_db = os.stat(os.path.join(root, "var/lib/bosh/sessions.db"))
            expect(st_db.st_uid == account[0], "the database does not belong to the service user")
        sessiond.signal(signal.SIGTERM)
        expect_state(n, sessiond.pid, "STOPPING", "SIGTERM")
        expect(sessiond.p.wait(20) == 0, "sessiond exited %s" % sessiond.p.returncode)
        ok = True
    finally:
        for p in (nginx, sessiond):
            if p:
                p.stop()
        st.stop()
        if n:
            n.close()
        if ok:
            shutil.rmtree(d, ignore_errors=True)
        else:
            print("data folder kept: " + d)
