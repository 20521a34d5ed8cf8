"""The end-to-end cases behind Apache, in each of its three modes, with the
configs of conf/apache/:

- mod_proxy_fcgi to the handler pool of the main stack's sessiond (and to
  a pool on TCP);
- mod_fcgid: Apache runs the handlers, the first one starts sessiond (from
  the server config, and from .htaccess);
- plain CGI from .htaccess, in a folder laid out by `make install-cgi`.

Each mode runs the same BOSH cases as nginx does (login, message both ways,
wait, terminate, from cases.py); CGI mode also starting sessiond on demand.
Each Apache is started on first use and stopped by teardown().
"""
import concurrent.futures
import os
import re
import signal
import subprocess
import tempfile
import time

import bosh
import cases
from apache import Apache, tail
from bosh import Session
from cases import USERS, daemons_for, expect, row
from stack import REPO, free_port, port_open, wait_for

CASES = []
_apaches = {}      # mode -> Apache
_autostarted = []  # config files whose sessiond a handler started


def case(fn):
    CASES.append((fn.__name__, fn))
    return fn


def all_cases():
    return CASES


class Site:
    """What the cases of cases.py need of a stack: the endpoint, the database, the log."""

    def __init__(self, url, domain, db, sessiond_log):
        self.url = url
        self.domain = domain
        self.db = db
        self.sessiond_log = sessiond_log


def same_cases_as_nginx(site):
    for fn in (cases.test_login_restart_bind, cases.test_message_both_ways_held_answered_on_arrival,
               cases.test_empty_answer_after_wait, cases.test_terminate):
        fn(site)


def give_to_web_user(path):
    """As root, Apache runs its children as nobody: so do the handlers and the
    sessiond they start, as a shared host runs them as the user."""
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "nobody:nogroup", path], check=True)


def test_conf(st, extra=""):
    """The lines the nginx cases rely on: our Prosody, short timeouts."""
    return ("\n# added by tests/e2e/apache_cases.py\nlog_level = debug\nbackend.%s = 127.0.0.1:%d\n%s%s"
            % (st.domain, st.c2s_port, cases.SESSIOND_CONF, extra))


def stop_daemons(conf):
    for pid in daemons_for(conf):
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not daemons_for(conf), 10, "sessiond to stop")


def teardown():
    for a in _apaches.values():
        a.stop()
    _apaches.clear()
    for conf in _autostarted:
        for pid in daemons_for(conf):
            os.kill(pid, signal.SIGTERM)


def sanitizer_reports(st):
    """Sanitizer lines in every log of the run: the main sessiond's, the side
    stacks' and the Apache modes' (CGI stderr lands in error.log)."""
    import re
    report = re.compile(r"AddressSanitizer|LeakSanitizer|\.[ch]:\d+:\d+: runtime error:")
    found = []
    for root, _, files in os.walk(st.dir):
        for f in files:
            if f in ("sessiond.log", "sessiond.stdout", "handler.log", "error.log"):
                found += [l for l in open(os.path.join(root, f), errors="replace") if report.search(l)]
    return found


def logs(st):
    """For a failure: the tails of the Apache modes' logs."""
    out = ""
    for root, _, files in os.walk(st.dir):
        if "apache-" in root:
            for f in files:
                if f.endswith(".log"):
                    out += "--- %s ---\n%s" % (os.path.join(root, f), tail(os.path.join(root, f), 15))
    return out


# ---- mod_proxy_fcgi ----

def proxy_site(st):
    if "proxy" not in _apaches:
        _apaches["proxy"] = Apache(os.path.join(st.dir, "apache-proxy"), ["proxy", "proxy_fcgi"],
                                   "conf/apache/proxy-fcgi.conf",
                                   {"/run/bosh/handler.sock": st.handler_sock}).start()
    return Site(_apaches["proxy"].url(), st.domain, st.db, st.sessiond_log)


@case
def test_apache_proxy_fcgi(st):
    site = proxy_site(st)
    r = Session(site.url, st.domain).create()
    expect(r.status == 200 and r.attr("sid"), r)
    expect(r.headers.get("Server", "").startswith("Apache"), "answered through Apache: %r" % r.headers)
    expect(r.headers.get("X-Served-By") == "bosh-cm-test", "sessiond's answer, headers and all")
    same_cases_as_nginx(site)


@case
def test_apache_proxy_fcgi_over_tcp(st):
    """fcgi_socket = HOST:PORT and the ProxyPass line for it from proxy-fcgi.conf."""
    port = free_port()
    other = cases.side_stack(st, "fcgi_socket = 127.0.0.1:%d\n" % port)
    d = os.path.join(st.dir, "apache-proxy-tcp")
    a = Apache(d, ["proxy", "proxy_fcgi"], "conf/apache/proxy-fcgi.conf",
               {'"unix:/run/bosh/handler.sock|fcgi://localhost/"': '"fcgi://127.0.0.1:%d/"' % port})
    try:
        other.start_sessiond()
        wait_for(lambda: port_open(port), 10, "the handler pool on TCP")
        a.start()
        site = Site(a.url(), st.domain, other.db, other.sessiond_log)
        cases.test_login_restart_bind(site)
    finally:
        a.stop()
        other.stop()


# ---- mod_fcgid ----

def fcgid_site(st):
    d = os.path.join(st.dir, "apache-fcgid")
    data = os.path.join(d, "bosh")
    conf = os.path.join(data, "bosh.conf")
    if "fcgid" not in _apaches:
        os.makedirs(data)
        with open(conf, "w") as f:
            f.write("control_socket = sessiond.sock\ndatabase = sessions.db\nlog_file = sessiond.log\n"
                    "handler_log_file = handler.log\npid_file = sessiond.pid\nhandlers = 0\n"
                    "autostart = 1\n" + test_conf(st))
        give_to_web_user(data)
        _autostarted.append(conf)
        hdir = os.path.dirname(st.handler_bin)
        # The database path comes from the environment, as a host would set it.
        extra = ("FcgidInitialEnv ASAN_OPTIONS detect_leaks=0:abort_on_error=0\n"
                 "FcgidInitialEnv BOSH_DATABASE from-env.db\n")
        _apaches["fcgid"] = Apache(d, ["fcgid"], "conf/apache/fcgid.conf",
                                   {"/etc/bosh/bosh.conf": conf,
                                    "/usr/local/sbin/bosh-handler": st.handler_bin,
                                    '"/usr/local/sbin"': '"%s"' % hdir,
                                    '<Files "bosh-handler">': '<Files "%s">'
                                    % os.path.basename(st.handler_bin)},
                                   extra).start()
    return Site(_apaches["fcgid"].url(), st.domain, os.path.join(data, "from-env.db"),
                os.path.join(data, "sessiond.log")), conf


def fcgid_handlers(st):
    """The handler processes mod_fcgid runs (sessiond's own are started with -c)."""
    return [p for p in map(int, filter(str.isdigit, os.listdir("/proc")))
            if cmdline(p) == [st.handler_bin]]


def warm_up(site, st, n):
    """mod_fcgid starts a handler only when every one is busy, and the request
    waits up to a second for it; sessiond answers a request that comes after
    such a gap at once (a page restoring its session). The timed cases of
    cases.py expect no such gap: start n handlers first, as traffic would."""
    def hold(_):
        s = Session(site.url, site.domain, wait=2)
        s.create()
        s.request()
        s.terminate()
    deadline = time.time() + 30
    while len(fcgid_handlers(st)) < n and time.time() < deadline:
        with concurrent.futures.ThreadPoolExecutor(n) as ex:
            list(ex.map(hold, range(n)))
    expect(len(fcgid_handlers(st)) >= n, "mod_fcgid runs %d handlers" % len(fcgid_handlers(st)))


@case
def test_apache_fcgid(st):
    site, conf = fcgid_site(st)
    expect(not daemons_for(conf), "no sessiond before the first request")
    s = Session(site.url, st.domain)
    expect(s.create().attr("sid"), "the first request is answered")
    s.terminate()
    pids = daemons_for(conf)
    expect(len(pids) == 1, "one sessiond, started by a handler: %r" % pids)
    ppid = int(re.search(r"^PPid:\s+(\d+)", open("/proc/%d/status" % pids[0]).read(), re.M).group(1))
    expect(fcgid_handlers(st) and ppid not in fcgid_handlers(st),
           "sessiond is a daemon of its own, not a handler's child")
    expect(os.path.exists(site.db), "BOSH_DATABASE from FcgidInitialEnv reached sessiond")
    warm_up(site, st, 6)
    same_cases_as_nginx(site)
    expect(daemons_for(conf) == pids, "still the one sessiond")


def cmdline(pid):
    try:
        return open("/proc/%d/cmdline" % pid).read().split("\0")[:-1]
    except OSError:
        return []


@case
def test_apache_fcgid_held_requests_do_not_starve_others(st):
    """mod_fcgid counts a handler busy while its request is held: with the
    process limits of conf/apache/fcgid.conf, held requests leave room."""
    site, _ = fcgid_site(st)
    warm_up(site, st, 8)
    held = []
    for i in range(6):
        s = Session(site.url, st.domain, wait=15)
        s.create()
        held.append((s, s.request_async()))
    time.sleep(1)
    expect(not any(p.done() for _, p in held), "six requests held")
    t0 = time.time()
    s = cases.login(site, "carol", "starve")
    expect(time.time() - t0 < 10, "a login beside six held requests took %.1fs" % (time.time() - t0))
    s.terminate()
    for s, p in held:
        s.terminate()
        expect(isinstance(p.join(10), bosh.Response), "held request answered at terminate")


# ---- plain CGI from .htaccess (make install-cgi) ----

def install_cgi(st, d, extra=""):
    r = subprocess.run(["make", "-s", "-C", REPO, "install-cgi", "DIR=" + d,
                        "CGI_HANDLER=" + st.handler_bin, "CGI_SESSIOND=" + st.sessiond_bin],
                       capture_output=True, text=True, timeout=300)
    expect(r.returncode == 0, "make install-cgi: " + r.stdout + r.stderr)
    with open(os.path.join(d, "bosh.conf"), "a") as f:
        f.write(test_conf(st, extra))
    give_to_web_user(d)
    conf = os.path.realpath(os.path.join(d, "bosh.conf"))  # what the handler finds beside itself
    _autostarted.append(conf)
    return conf


def cgi_apache(st):
    if "cgi" not in _apaches:
        d = os.path.join(st.dir, "apache-cgi")
        _apaches["cgi"] = a = Apache(d, ["cgid"], None,
                                     extra="SetEnv ASAN_OPTIONS detect_leaks=0:abort_on_error=0\n")
        install_cgi(st, os.path.join(a.htdocs, "chat"))
        # a path from SetEnv in .htaccess, as a user would set it there
        with open(os.path.join(a.htdocs, "chat", ".htaccess"), "a") as f:
            f.write("SetEnv BOSH_HANDLER_LOG_FILE data/handler-setenv.log\n")
        a.start()
    return _apaches["cgi"]


def cgi_site(st):
    a = cgi_apache(st)
    d = os.path.join(a.htdocs, "chat")
    return (Site(a.url("/chat/http-bind"), st.domain, os.path.join(d, "data", "sessions.db"),
                 os.path.join(d, "data", "sessiond.log")), os.path.realpath(os.path.join(d, "bosh.conf")))


def create(site, **kw):
    s = Session(site.url, site.domain, wait=2, **kw)
    return s, s.create()


@case
def test_apache_cgi_first_request_starts_sessiond(st):
    site, conf = cgi_site(st)
    expect(not daemons_for(conf), "no sessiond before the first request")
    s, r = create(site)
    expect(r.status == 200 and r.attr("sid"), r)
    pid = int(open(os.path.join(os.path.dirname(conf), "data", "sessiond.pid")).read())
    expect(daemons_for(conf) == [pid], "one sessiond, started by the first request: %r" % daemons_for(conf))
    uid = re.search(r"^Uid:\s+(\d+)", open("/proc/%d/status" % pid).read(), re.M).group(1)
    want = os.stat(os.path.dirname(conf)).st_uid
    expect(int(uid) == want, "sessiond runs as the folder's owner, no root: %s" % uid)
    log = os.path.join(os.path.dirname(conf), "data", "handler-setenv.log")
    expect(os.path.exists(log) and "autostart: started sessiond" in open(log).read(),
           "the handler log named by SetEnv in .htaccess")
    s.terminate()
    same_cases_as_nginx(site)


@case
def test_apache_cgi_only_the_endpoint_is_served(st):
    site, conf = cgi_site(st)
    base = site.url.rsplit("/", 1)[0]
    import urllib.request
    import urllib.error
    for name in ("bosh.conf", "sessiond", "data/sessions.db", "data/sessiond.log", ".htaccess"):
        try:
            urllib.request.urlopen(base + "/" + name, timeout=10)
            raise AssertionError("%s is readable from the web" % name)
        except urllib.error.HTTPError as e:
            expect(e.code == 403, "%s: %d" % (name, e.code))


@case
def test_apache_cgi_20_first_requests_start_one_sessiond(st):
    site, conf = cgi_site(st)
    stop_daemons(conf)
    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        results = list(ex.map(lambda _: create(site)[1], range(20)))
    expect(all(r.status == 200 and r.attr("sid") for r in results), results)
    expect(len(set(r.attr("sid") for r in results)) == 20, "20 sessions")
    expect(len(daemons_for(conf)) == 1, "one sessiond for 20 racing requests: %r" % daemons_for(conf))


@case
def test_apache_cgi_sessiond_killed_between_requests(st):
    site, conf = cgi_site(st)
    s = cases.login(site, "alice", "killed")
    row(site, s.sid, until=lambda r: r["rid"] == s.rid)
    old = daemons_for(conf)
    expect(len(old) == 1, old)
    os.kill(old[0], signal.SIGKILL)
    wait_for(lambda: not os.path.exists("/proc/%d" % old[0]), 10, "sessiond to die")
    r = s.request()
    # the documented answer for a session whose sessiond went away
    expect(r.status == 200 and r.type == "terminate" and r.condition == "remote-connection-failed", r)
    new = daemons_for(conf)
    expect(len(new) == 1 and new != old, "the request started a new sessiond: %r -> %r" % (old, new))
    expect(row(site, s.sid)["state"] == "lost", "the row says lost")
    s2 = cases.login(site, "alice", "after")
    s2.terminate()


@case
def test_apache_cgi_sessiond_killed_under_a_held_request(st):
    site, conf = cgi_site(st)
    s = cases.login(site, "bob", "held-kill")
    held = s.request_async()
    time.sleep(0.5)
    expect(not held.done(), "held")
    old = daemons_for(conf)
    os.kill(old[0], signal.SIGKILL)
    # the handler sees sessiond go with the request unanswered, and asks a new one
    r = held.join(15)
    expect(isinstance(r, bosh.Response) and r.status == 200 and r.type == "terminate" and
           r.condition == "remote-connection-failed", r)
    new = daemons_for(conf)
    expect(len(new) == 1 and new != old, "a new sessiond: %r -> %r" % (old, new))


@case
def test_apache_cgi_idle_exit(st):
    site, conf = cgi_site(st)
    with open(conf) as f:
        original = f.read()
    try:
        with open(conf, "a") as f:
            f.write("idle_exit = 2\n")
        stop_daemons(conf)
        s, r = create(site)
        pid = daemons_for(conf)
        expect(r.attr("sid") and len(pid) == 1, pid)
        s.terminate()
        # no session left: it leaves after 2 s (checked every half second)
        wait_for(lambda: not daemons_for(conf), 15, "sessiond to leave after idle_exit")
        expect(re.search(r"no session for 2 s \(idle_exit\): stopping", open(site.sessiond_log).read()),
               "the exit is logged")
        for name in ("sessiond.sock", "sessiond.pid"):
            expect(not os.path.exists(os.path.join(os.path.dirname(conf), "data", name)),
                   "its %s is gone" % name)
        s, r = create(site)
        expect(r.status == 200 and r.attr("sid"), "the next request starts it again: %r" % r)
        s.terminate()
    finally:
        with open(conf, "w") as f:
            f.write(original)
        stop_daemons(conf)


@case
def test_apache_cgi_sessiond_cannot_start(st):
    a = cgi_apache(st)
    d = os.path.join(a.htdocs, "broken")
    conf = install_cgi(st, d, "database = no-such-folder/sessions.db\n")
    t0 = time.time()
    r = bosh.post_raw(a.url("/broken/http-bind"),
                      bosh.body({"to": st.domain, "rid": 5, "wait": 2, "ver": "1.11"}))
    took = time.time() - t0
    expect(r.status == 503 and r.type == "terminate" and r.condition == "remote-connection-failed", r)
    expect(r.headers.get("Content-Security-Policy") == "sandbox; default-src 'none'" and
           r.headers.get("X-Content-Type-Options") == "nosniff", "inert as a document: %r" % r.headers)
    # sessiond says at once that it failed: the handler does not wait out its 10 s
    expect(took < 8, "answered after %.1fs" % took)
    expect(not daemons_for(conf), "no sessiond left behind")
    log = open(os.path.join(d, "data", "handler.log"), errors="replace").read()
    expect(re.search(r"autostart: .*sessiond -c .*bosh\.conf did not start", log), "logged: " + log[-500:])
    expect("no-such-folder" in open(os.path.join(d, "data", "sessiond.log"), errors="replace").read(),
           "sessiond's reason is in its log")


@case
def test_apache_fcgid_from_htaccess(st):
    """A folder of make install-cgi with htaccess-fcgid, on a host with mod_fcgid."""
    d = os.path.join(st.dir, "apache-fcgid-htaccess")
    a = Apache(d, ["fcgid"], None, extra="FcgidInitialEnv ASAN_OPTIONS detect_leaks=0:abort_on_error=0\n"
               "FcgidIOTimeout 90\nFcgidBusyTimeout 120\nFcgidMaxProcessesPerClass 64\n")
    _apaches["fcgid-htaccess"] = a
    chat = os.path.join(a.htdocs, "chat")
    conf = install_cgi(st, chat)
    subprocess.run(["install", "-m", "644", os.path.join(REPO, "conf/apache/htaccess-fcgid"),
                    os.path.join(chat, ".htaccess")], check=True)
    a.start()
    site = Site(a.url("/chat/http-bind"), st.domain, os.path.join(chat, "data", "sessions.db"),
                os.path.join(chat, "data", "sessiond.log"))
    expect(not daemons_for(conf), "no sessiond before the first request")
    cases.test_login_restart_bind(site)
    cases.test_empty_answer_after_wait(site)
    expect(len(daemons_for(conf)) == 1, "one sessiond: %r" % daemons_for(conf))
    handlers = [p for p in map(int, filter(str.isdigit, os.listdir("/proc")))
                if cmdline(p) == [os.path.join(chat, "http-bind")]]
    expect(handlers, "mod_fcgid runs http-bind as a FastCGI process")


# ---- installing ----

@case
def test_make_install(st):
    dest = tempfile.mkdtemp(prefix="bosh-install-", dir=st.dir)
    r = subprocess.run(["make", "-s", "-C", REPO, "install", "PREFIX=/opt/bosh", "DESTDIR=" + dest],
                       capture_output=True, text=True, timeout=300)
    expect(r.returncode == 0, "make install: " + r.stdout + r.stderr)
    root = os.path.join(dest, "opt/bosh")
    for f in ("sbin/sessiond", "sbin/bosh-handler", "bin/bosh-prebind", "bin/bosh-discovery",
              "share/bosh-cm/sql/schema.sql", "share/bosh-cm/sql/views.sql",
              "share/man/man8/sessiond.8", "share/man/man8/bosh-handler.8",
              "share/doc/bosh-cm/examples/bosh.conf.example",
              "share/doc/bosh-cm/examples/nginx/bosh.conf",
              "share/doc/bosh-cm/examples/apache/proxy-fcgi.conf",
              "share/doc/bosh-cm/examples/apache/fcgid.conf",
              "share/doc/bosh-cm/examples/apache/htaccess-cgi",
              "share/doc/bosh-cm/examples/logrotate/bosh-sessiond"):
        expect(os.path.isfile(os.path.join(root, f)), "installed: " + f)
    expect(os.access(os.path.join(root, "sbin/sessiond"), os.X_OK), "sessiond is executable")
    r = subprocess.run([os.path.join(root, "sbin/sessiond"), "-t", "-c", st.conf],
                       capture_output=True, text=True, timeout=30)
    expect(r.returncode == 0 and "OK" in r.stdout, "the installed sessiond runs: %r" % r)
