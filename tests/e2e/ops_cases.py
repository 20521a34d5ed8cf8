"""End-to-end cases for operating sessiond: boshctl (status, sessions, kick,
drain, reload, restart) as an admin runs it, and the pages nginx maps from
conf/nginx/metrics.conf (Prometheus metrics checked by promtool, the status
page in headless Chromium, the health check)."""
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request

from bosh import Session
from cases import USERS, case, expect, side_stack
from stack import wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def boshctl(st, *args, user=None):
    """Runs build/boshctl against the stack: (exit status, stdout, stderr)."""
    argv = [os.path.join(st.build, "boshctl"), "-c", st.conf] + list(args)
    if user:
        argv = ["setpriv", "--reuid=%s" % user, "--regid=nogroup", "--clear-groups"] + argv
    p = subprocess.run(argv, capture_output=True, text=True, timeout=90)
    return p.returncode, p.stdout, p.stderr


def ctl_json(st, *args):
    rc, out, err = boshctl(st, "--json", *args)
    expect(rc == 0, "boshctl --json %s: %d %s" % (" ".join(args), rc, err))
    return json.loads(out)


def get(st, path):
    """(status, headers, body) of a GET through the stack's nginx."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (st.http_port, path), timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def metric(text, name, labels=""):
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


@case
def test_boshctl_status_and_sessions(st):
    from ws_cases import login as ws_login
    alice = Session(st.url, st.domain, wait=3)
    alice.login("alice", USERS["alice"], "ops")
    carol = ws_login(st, "carol", "ops-ws")
    try:
        rc, out, err = boshctl(st, "status")
        expect(rc == 0 and "sessiond " in out and "sessions:" in out, (rc, out, err))
        s = ctl_json(st, "status")
        expect(s["sessions"]["bosh"]["active"] >= 1 and s["sessions"]["websocket"]["active"] >= 1, s)
        expect(s["pid"] == st.sessiond.pid and s["open_fds"] > 0 and s["max_fds"] > s["open_fds"], s)
        expect(s["draining"] is False and s["rss_bytes"] > 0, s)
        rows = ctl_json(st, "sessions")
        by_jid = {r["jid"]: r for r in rows}
        expect(alice.jid in by_jid and carol.jid in by_jid, rows)
        expect(by_jid[alice.jid]["transport"] == "bosh" and by_jid[carol.jid]["transport"] == "websocket", rows)
        expect(by_jid[alice.jid]["sid"] == alice.sid and by_jid[alice.jid]["state"] == "active", rows)
        only = ctl_json(st, "sessions", "--jid", "carol@*")
        expect([r["jid"] for r in only] == [carol.jid], only)
        expect(ctl_json(st, "sessions", "--domain", "nowhere.test") == [], "a filter that matches nothing")
        expect(len(ctl_json(st, "sessions", "--client", "127.0.0.1")) >= 2, "by client address")
        rc, out, _ = boshctl(st, "sessions")
        expect(rc == 0 and alice.sid in out and carol.jid in out, out)
    finally:
        alice.terminate()
        carol.close()


@case
def test_boshctl_kick(st):
    """kick by JID and by sid: the client is told the condition, the server
    stream closes, the row and the log say who did it."""
    from ws_cases import Closed, login as ws_login, ws_row
    alice = Session(st.url, st.domain, wait=5)
    alice.login("alice", USERS["alice"], "kick")
    carol = ws_login(st, "carol", "kick-ws")
    witness = Session(st.url, st.domain, wait=3)
    witness.login("bob", USERS["bob"], "witness")
    held = alice.request_async()
    time.sleep(0.3)
    rc, out, err = boshctl(st, "kick", alice.jid.split("/")[0], "--condition", "system-shutdown")
    expect(rc == 0 and "1 sessions ended" in out, (rc, out, err))
    got = held.join(10)
    expect(got is not None and not isinstance(got, Exception) and got.type == "terminate" and
           got.condition == "system-shutdown", "the held request was told: %r" % got)
    expect(st.logged('session %s kicked: by="boshctl user ' % alice.sid), "no log line naming who kicked")
    r = ws_row(st, alice.jid, lambda r: r["state"] == "ended")
    expect(r["end_condition"] == "system-shutdown", r)
    rc, out, err = boshctl(st, "kick", ctl_json(st, "sessions", "--jid", carol.jid)[0]["sid"])
    expect(rc == 0, (rc, out, err))
    msgs = []
    try:
        while True:
            msgs.append(carol.recv())
    except Closed as c:
        expect(c.code == 1001 and any("policy-violation" in m for m in msgs), (c.code, msgs))
    carol.close()
    rc, _, err = boshctl(st, "kick", "nobody@nowhere.test")
    expect(rc == 1 and "0 sessions ended" in err, "no match is an error: %r" % err)
    rc, _, err = boshctl(st, "kick", witness.jid, "--condition", "<script>")
    expect(rc == 1 and "not a condition" in err, err)
    pong = witness.request("<iq xmlns='jabber:client' type='get' id='k1'><ping xmlns='urn:xmpp:ping'/></iq>")
    expect(pong.type != "terminate", "the witness goes on")
    witness.terminate()


@case
def test_boshctl_drain(st):
    """drain: new sessions get 503 (BOSH and WebSocket), the health page says
    503, the existing ones go on; it holds across a restart; undrain."""
    from ws_cases import WS
    from restart_cases import restart
    other = side_stack(st)
    try:
        other.start_sessiond()
        other.start_nginx()
        alice = Session(other.url, st.domain, wait=3)
        alice.login("alice", USERS["alice"], "drain")
        expect(get(other, "/bosh/health")[0] == 200, "healthy at first")
        rc, out, _ = boshctl(other, "drain")
        expect(rc == 0 and "draining" in out, out)
        for when in ("now", "after a restart"):
            status, headers, body = get(other, "/bosh/health")
            expect(status == 503 and "draining" in body, (when, status, body))
            req = urllib.request.Request(other.url, method="POST", data=(
                "<body xmlns='http://jabber.org/protocol/httpbind' rid='100' to='%s' wait='3' hold='1' "
                "ver='1.6'/>" % st.domain).encode(), headers={"Content-Type": "text/xml"})
            try:
                urllib.request.urlopen(req, timeout=10)
                raise AssertionError("a new session was accepted while draining (%s)" % when)
            except urllib.error.HTTPError as e:
                expect(e.code == 503, "new BOSH session: %d (%s)" % (e.code, when))
            ws = WS(other)
            expect(ws.status == 503, "WebSocket handshake answered %d (%s)" % (ws.status, when))
            ws.close()
            pong = alice.request("<iq xmlns='jabber:client' type='get' id='d1'><ping xmlns='urn:xmpp:ping'/></iq>")
            expect(pong.type != "terminate", "the existing session goes on (%s)" % when)
            expect(ctl_json(other, "status")["draining"] is True, when)
            expect(metric(get(other, "/bosh/metrics")[2], "bosh_draining") == 1, "bosh_draining (%s)" % when)
            if when == "now":
                restart(other)
        rc, out, _ = boshctl(other, "undrain")
        expect(rc == 0 and get(other, "/bosh/health")[0] == 200, "undrained")
        fresh = Session(other.url, st.domain, wait=3)
        fresh.login("bob", USERS["bob"], "after-drain")
        fresh.terminate()
        alice.terminate()
        expect(other.logged('drain started: by="boshctl user ') and other.logged("drain ended: by="), "logged")
    finally:
        other.stop()


@case
def test_boshctl_only_for_root_and_sessiond_user(st):
    """A handler user (handler_users) may send requests, not commands; any
    other user is refused at connect. Both are logged."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        from cases import Skipped
        raise Skipped("needs root and setpriv to act as another user")
    other = side_stack(st, "handler_users = nobody\n")
    try:
        os.chmod(other.dir, 0o755)
        other.start_sessiond()
        os.chmod(os.path.join(other.dir, "bosh.conf"), 0o644)
        rc, out, err = boshctl(other, "status", user="nobody")
        expect(rc != 0 and "sessiond " not in out, "a handler user got an answer: %r" % out)
        wait_for(lambda: other.logged("command 'status' from uid 65534 refused"), 5, "the refusal logged")
        rc, out, _ = boshctl(other, "status")
        expect(rc == 0 and "sessiond " in out, "root is served")
    finally:
        other.stop()


@case
def test_boshctl_restart_reload_and_counters(st):
    """restart waits for the outcome and prints it; a refused restart says
    why and exits 1; counters go on across a restart; reload says what
    changed."""
    other = side_stack(st)
    try:
        other.start_sessiond()
        other.start_nginx()
        alice = Session(other.url, st.domain, wait=3)
        alice.login("alice", USERS["alice"], "counters")
        alice.request("<message xmlns='jabber:client' to='%s' id='c1'><body>x</body></message>" % alice.jid)
        _, _, before = get(other, "/bosh/metrics")
        rc, out, err = boshctl(other, "restart")
        expect(rc == 0 and "restarted in place: 1 sessions taken over" in out, (rc, out, err))
        _, _, after = get(other, "/bosh/metrics")
        for name, labels in (("bosh_sessions_created_total", '{transport="bosh"}'),
                             ("bosh_stanzas_total", '{direction="to_server"}')):
            b, a = metric(before, name, labels), metric(after, name, labels)
            expect(b and a is not None and a >= b, "%s%s went from %r to %r" % (name, labels, b, a))
        expect(metric(after, "bosh_restarts_total") == 1, "bosh_restarts_total after one restart")
        # the new binary's check fails: refused, said, still serving
        with open(other.conf, "a") as f:
            f.write("tls_ca_file = %s\n" % os.path.join(other.dir, "missing-ca.pem"))
        rc, out, err = boshctl(other, "restart")
        expect(rc == 1 and "restart refused" in err and "missing-ca.pem" in err, (rc, out, err))
        rc, out, err = boshctl(other, "reload")
        expect(rc == 0 and "tls_ca_file" in out and "restart" in out, (rc, out, err))
        pong = alice.request("<iq xmlns='jabber:client' type='get' id='c2'><ping xmlns='urn:xmpp:ping'/></iq>")
        expect(pong.type != "terminate", "still serving after the refusal")
        _, _, last = get(other, "/bosh/metrics")
        expect(metric(last, "bosh_restart_refusals_total") == 1, "the refusal is counted")
        alice.terminate()
    finally:
        other.stop()


@case
def test_metrics_pass_promtool(st):
    """The metrics page through nginx: Prometheus text that promtool accepts,
    with the figures of what just happened."""
    promtool = shutil.which("promtool")
    if not promtool:
        raise AssertionError("promtool is not installed (Debian package prometheus; make test installs it)")
    s = Session(st.url, st.domain, wait=2)
    s.login("alice", USERS["alice"], "metrics")
    s.request("<message xmlns='jabber:client' to='%s' id='m1'><body>x</body></message>" % s.jid)
    status, headers, text = get(st, "/bosh/metrics")
    expect(status == 200 and headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"),
           (status, headers))
    p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    expect(p.returncode == 0, "promtool check metrics:\n%s%s" % (p.stdout, p.stderr))
    expect(metric(text, "bosh_sessions_created_total", '{transport="bosh"}') >= 1, "sessions created")
    expect(metric(text, "bosh_stanzas_total", '{direction="to_server"}') >= 1, "stanzas to the server")
    expect(metric(text, "bosh_http_responses_total", '{code="200"}') >= 3, "answers counted")
    expect(metric(text, "bosh_backend_connects_total", '{result="ok"}') >= 1, "backend connects")
    expect(metric(text, "process_open_fds") > 0, "process figures")
    s.terminate()
    _, _, later = get(st, "/bosh/metrics")
    expect(metric(later, "bosh_sessions_ended_total", '{transport="bosh",condition="terminate"}') >= 1,
           "the end counted by condition")


@case
def test_status_page_in_a_browser(st):
    """The status page, as an admin sees it in Chromium (a screenshot is kept);
    it is inert: no script, the answer's CSP allows none."""
    from browser_case import Chromium
    status, headers, html = get(st, "/bosh/status")
    expect(status == 200 and "sessiond status" in html and "<svg" in html, (status, html[:300]))
    expect("<script" not in html.lower() and "sandbox" in headers.get("Content-Security-Policy", ""),
           headers)
    shot = os.path.join(st.dir, "status-page.png")
    url = "http://127.0.0.1:%d/bosh/status" % st.http_port
    with Chromium(st.dir, url, ["--screenshot=%s" % shot, "--window-size=900,1100",
                                "--hide-scrollbars"]) as c:
        wait_for(lambda: os.path.exists(shot) and os.path.getsize(shot) > 0, 60, "the screenshot")
        time.sleep(0.5)
    expect(os.path.getsize(shot) > 10000, "a screenshot with something on it")
    keep = os.path.join(REPO, "build", "e2e-output")  # kept after the run, as webchat_cases.py's
    os.makedirs(keep, exist_ok=True)
    shutil.copy(shot, os.path.join(keep, "status-page.png"))
    print("status page screenshot: %s" % os.path.join(keep, "status-page.png"))


@case
def test_log_to_syslog(st):
    """log_file = syslog: sessiond's and the handlers' lines go to /dev/log
    (facility daemon, PROG[PID]), event lines as key=value. The test listens
    on /dev/log itself: bound there when nothing is (a container), or, when
    a syslog daemon owns it, bind-mounted over it in a mount namespace of
    sessiond's own, so the system's log sees nothing of the test."""
    import socket
    import signal
    from stack import Proc
    if os.geteuid() != 0:
        from cases import Skipped
        raise Skipped("needs root to listen on /dev/log")
    sock_path = os.path.join(st.dir, "devlog.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(sock_path)
    rx.settimeout(1)
    os.chmod(sock_path, 0o666)  # the service user writes there too
    os.chmod(st.dir, os.stat(st.dir).st_mode | 0o011)
    own_devlog = not os.path.exists("/dev/log")
    # the handler processes log there too (fcgi_direct = 0)
    other = side_stack(st, "log_file = syslog\nhandler_log_file = syslog\nfcgi_direct = 0\n")
    proc = None
    try:
        other.write_conf("log_file = syslog\nhandler_log_file = syslog\nfcgi_direct = 0\n")
        argv = [other.sessiond_bin, "-f", "-c", other.conf]
        if own_devlog:
            os.symlink(sock_path, "/dev/log")
        else:
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    'mount --bind "$0" /dev/log && exec "$@"', sock_path] + argv
        proc = Proc("sessiond-syslog", argv, os.path.join(other.dir, "stdout.log"))
        lines = []

        def saw(text):
            deadline = time.time() + 10
            while time.time() < deadline:
                if any(text in l for l in lines):
                    return True
                try:
                    lines.append(rx.recv(65536).decode(errors="replace"))
                except socket.timeout:
                    pass
            return False
        expect(saw("sessiond ready"), "no 'sessiond ready' through syslog: %r" % lines[-5:])
        ready = [l for l in lines if "sessiond ready" in l][0]
        expect(re.match(r"<30>\w{3} [ \d]\d \d\d:\d\d:\d\d sessiond\[\d+\]: sessiond ready", ready),
               "facility daemon, level info, sessiond[PID]: %r" % ready)
        expect(saw("bosh-handler["), "the handlers log to syslog too: %r" % lines[-5:])
        other.start_nginx()
        s = Session(other.url, st.domain, wait=2)
        s.login("alice", USERS["alice"], "syslog")
        s.terminate()
        expect(saw("created: domain=%s transport=bosh client=127.0.0.1 user_agent=" % st.domain),
               "the created event: %r" % lines[-5:])
        expect(saw("ended: jid=%s" % s.jid) and saw("condition=terminate transport=bosh"), lines[-5:])
        expect(not os.path.exists(os.path.join(other.dir, "syslog")), "no file named syslog")
    finally:
        if proc:
            proc.signal(signal.SIGTERM)
            proc.stop()
        other.stop()
        if own_devlog and os.path.islink("/dev/log"):
            os.unlink("/dev/log")
        rx.close()


def control_frame(command, attrs=None):
    """boshctl's request (common/frame.h): method CONTROL, the command, its
    attributes; the answer comes on a descriptor passed with it."""
    import struct
    fields = [(2, struct.pack(">I", 1)), (4, b"CONTROL\0"), (13, command.encode() + b"\0")]
    fields += [(6, k.encode() + b"\0" + v.encode() + b"\0") for k, v in (attrs or {}).items()]
    body = b"".join(bytes([t]) + struct.pack(">I", len(v)) + v for t, v in fields)
    return b"BF\x01\x01" + struct.pack(">I", len(body)) + body


@case
def test_a_boshctl_that_does_not_read_its_answer_is_dropped_and_holds_nothing_up(st):
    import socket
    other = side_stack(st)
    try:
        other.start_sessiond()
        other.start_nginx()
        held = [Session(other.url, st.domain, wait=1) for _ in range(40)]
        for s in held:  # an answer to 'sessions --json' of several KiB
            s.create()
        mine, theirs = socket.socketpair()
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)  # the least the kernel allows
        c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        c.connect(os.path.join(other.dir, "sessiond.sock"))
        socket.send_fds(c, [control_frame("sessions", {"json": "1"})], [theirs.fileno()])
        theirs.close()
        c.close()
        t0 = time.time()
        # meanwhile: other commands answered, a login served
        rc, out, err = boshctl(other, "status")
        expect(rc == 0 and "sessiond" in out, "boshctl status while one does not read: %d %s" % (rc, err))
        alice = Session(other.url, st.domain, wait=1)
        alice.login("alice", USERS["alice"], "unread")
        alice.terminate()
        log = lambda: open(other.sessiond_log, errors="replace").read()
        wait_for(lambda: "boshctl did not read its answer within 10 s; dropped" in log(), 15, "the drop")
        expect(time.time() - t0 > 8, "dropped before its time")
        mine.settimeout(5)
        got = b""
        while True:
            chunk = mine.recv(65536)
            if not chunk:
                break
            got += chunk
        expect(got.startswith(b"0\n") and len(got) > 1000, "the part of the answer that fitted: %r" % got[:100])
        expect(not got.rstrip().endswith(b"]"), "all of it was written after all: the case tests nothing")
        mine.close()
        expect(other.sessiond.alive(), "sessiond still runs")
    finally:
        other.stop()
