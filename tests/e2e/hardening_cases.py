"""End-to-end cases for what an admin relies on around sessiond: the files it
creates (no symbolic link followed, the database not readable by all), who
may talk on its control socket, the pid file that `sessiond -r` trusts,
SIGHUP (new log files, configuration read again, sessions untouched), and a
log that bytes from outside cannot forge or flood."""
import os
import pwd
import grp
import re
import signal
import struct
import subprocess
import sys
import time

from bosh import CLIENT, Session, post_raw
from cases import USERS, Skipped, case, expect, side_stack
from stack import Proc, child_pids, somaxconn, wait_for


def log_text(stack):
    with open(stack.sessiond_log, errors="replace", newline="") as f:  # a raw CR stays one
        return f.read()


def wait_log(stack, pattern, timeout=10, since=0):
    """The first match of the regular expression in the log after offset since."""
    found = []

    def look():
        m = re.search(pattern, log_text(stack)[since:])
        if m:
            found.append(m)
        return bool(m)
    wait_for(look, timeout, "log line matching %r" % pattern)
    return found[0]


def chat(a, b, text):
    """a sends b a message; b's next answers carry it."""
    held = b.request_async()
    time.sleep(0.2)
    sent = a.request_async("<message xmlns='jabber:client' to='%s' type='chat'><body>%s</body></message>"
                           % (b.jid, text))
    got = held.join(10)
    sent.join(10)
    bodies = [c.findtext("{%s}body" % CLIENT) for c in got.children()] if got is not None else []
    if text not in bodies:  # it may come in the next answer
        bodies += [c.findtext("{%s}body" % CLIENT) for c in b.request().children()]
    expect(text in bodies, "%s got %r: %r" % (b.jid, text, got))


def hup(stack, since, pattern=r"SIGHUP: [^\n]*"):
    """SIGHUP; the first log line after since that matches pattern."""
    stack.sessiond.signal(signal.SIGHUP)
    found = []

    def look():
        m = re.search(pattern, log_text(stack)[since:])
        if m:
            found.append(m)
        return bool(m) or not stack.sessiond.alive()
    wait_for(look, 10, "log line matching %r" % pattern)
    expect(stack.sessiond.alive(), "sessiond stopped on SIGHUP")
    return found[0]


# ---- files ----

@case
def test_links_at_log_and_pid_file_are_not_followed(st):
    other = side_stack(st, "pid_file = sessiond.pid\n")
    victims = {}
    try:
        for name in ("sessiond.log", "sessiond.pid"):
            victim = os.path.join(other.dir, "victim-of-" + name)
            with open(victim, "w") as f:
                f.write("precious\n")
            os.symlink(victim, os.path.join(other.dir, name))
            victims[name] = victim
        other.start_sessiond()
        pidfile = os.path.join(other.dir, "sessiond.pid")
        wait_for(lambda: os.path.exists(pidfile) and (not os.path.islink(pidfile) or
                                                      open(pidfile).read() != "precious\n"),
                 10, "the pid file")
        for name, victim in victims.items():
            expect(open(victim).read() == "precious\n", "%s written through the link at %s: %r"
                   % (victim, name, open(victim).read()[:200]))
        expect(int(open(pidfile).read()) == other.sessiond.pid, "the pid file is a file of its own")
        expect(os.path.islink(os.path.join(other.dir, "sessiond.log")), "the link at the log stays a link")
        stdout = open(os.path.join(other.dir, "sessiond.stdout"), errors="replace").read()
        expect("cannot open log file" in stdout, "the refusal is said on stderr: " + stdout[-500:])
    finally:
        other.stop()


@case
def test_database_is_not_readable_by_all(st):
    other = side_stack(st)
    try:
        # a database left world-readable by an older version is brought down too
        open(other.db, "w").close()
        os.chmod(other.db, 0o644)
        other.start_sessiond()
        other.start_nginx()
        s = Session(other.url, st.domain, wait=2)
        s.login("alice", USERS["alice"], "mode")  # rows written: -wal and -shm exist
        time.sleep(0.3)
        for suffix in ("", "-wal", "-shm"):
            path = other.db + suffix
            expect(os.path.exists(path), path + " exists")
            mode = os.stat(path).st_mode & 0o777
            expect(mode == 0o640, "%s is %o, not 640" % (path, mode))
        s.terminate()
    finally:
        other.stop()


# ---- the control socket ----

def frame(flags, attrs):
    """A request frame (common/frame.h) as a plain-CGI handler sends it."""
    fields = [(2, struct.pack(">I", flags)), (4, b"POST\0"), (3, b"10.0.0.66\0")]
    fields += [(6, k.encode() + b"\0" + v.encode() + b"\0") for k, v in attrs.items()]
    body = b"".join(bytes([t]) + struct.pack(">I", len(v)) + v for t, v in fields)
    return b"BF\x01\x01" + struct.pack(">I", len(body)) + body


# the system's python: one under /root may not be for other users to run
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

SENDER = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
    s.send(bytes.fromhex(sys.argv[2]))
    d = s.recv(100000)
except OSError as e:
    print("error %s" % e)
    sys.exit()
print("answer" if d[:4] == b"BF\x01\x02" else "closed" if not d else "other")
"""


def send_as(user, control, data):
    """Sends one frame from a process of that user (setuid in the forked
    child), in the socket's group so the file's mode lets it connect."""
    pw = pwd.getpwnam(user)
    socket_gid = os.stat(control).st_gid
    r = subprocess.run([PYTHON, "-c", SENDER, control, data.hex()], capture_output=True,
                       text=True, timeout=20, user=pw.pw_uid, group=pw.pw_gid,
                       extra_groups=[socket_gid], cwd="/")
    return r.stdout.strip() + r.stderr.strip()


@case
def test_control_socket_checks_who_sends(st):
    if os.geteuid() != 0:
        raise Skipped("needs root to run a sender as other users")
    for name in ("nobody", "daemon"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            raise Skipped("no user " + name)
    other = side_stack(st)
    try:
        other.start_sessiond()
        control = os.path.join(other.dir, "sessiond.sock")
        plain = frame(0, {"rid": "1"})  # no 'to': answered improper-addressing
        handover = frame(2, {"rid": "1"})
        # by default only sessiond's own user (root here) and root
        expect(send_as("root", control, handover) == "answer", "sessiond's own user may hand over")
        since = len(log_text(other))
        got = send_as("nobody", control, plain)
        expect(got == "closed" or got.startswith("error"), "nobody refused: " + got)
        wait_log(other, r"refused a process of uid %d" % pwd.getpwnam("nobody").pw_uid, since=since)
        # handler_users: its requests are served, its hand-over frames are not
        other.write_conf("handler_users = nobody\n")
        hup(other, since, r"changed: [^\n]*handler_users")
        expect(send_as("nobody", control, plain) == "answer", "a handler_users process is served")
        since = len(log_text(other))
        got = send_as("nobody", control, handover)
        expect(got == "closed" or got.startswith("error"), "hand-over from nobody refused: " + got)
        uid = pwd.getpwnam("nobody").pw_uid
        wait_log(other, r"hand-over frame from uid %d refused" % uid, since=since)
        # any other user: refused whatever it sends
        since = len(log_text(other))
        got = send_as("daemon", control, plain)
        expect(got == "closed" or got.startswith("error"), "daemon refused: " + got)
        wait_log(other, r"refused a process of uid %d" % pwd.getpwnam("daemon").pw_uid, since=since)
        expect(other.sessiond.alive(), "sessiond still runs")
    finally:
        other.stop()


# ---- the pid file and sessiond -r ----

@case
def test_restart_command_signals_only_a_sessiond(st):
    other = side_stack(st, "pid_file = sessiond.pid\n")
    pidfile = os.path.join(other.dir, "sessiond.pid")
    sleeper = Proc("sleep", ["sleep", "60"], os.path.join(other.dir, "sleep.log"))
    try:
        # a stale pid file naming a process that is not a sessiond
        other.write_conf()
        with open(pidfile, "w") as f:
            f.write("%d\n" % sleeper.pid)
        r = subprocess.run([other.sessiond_bin, "-r", "-c", other.conf], capture_output=True, text=True,
                           timeout=30)
        time.sleep(0.3)
        expect(r.returncode != 0, "sessiond -r refused: %r" % r)
        expect(sleeper.alive(), "the sleep was not signalled")
        expect("nothing signalled" in r.stderr, r.stderr)
        # a running sessiond's file rewritten in place to name the sleep
        other.start_sessiond()
        wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip() == str(other.sessiond.pid),
                 10, "sessiond's pid file")
        with open(pidfile, "r+") as f:
            f.write("%d\n" % sleeper.pid)
            f.truncate()
        r = subprocess.run([other.sessiond_bin, "-r", "-c", other.conf], capture_output=True, text=True,
                           timeout=30)
        time.sleep(0.3)
        expect(r.returncode != 0 and sleeper.alive(), "a tampered pid file: refused, sleep alive: %r" % r)
        expect("not a sessiond" in r.stderr, r.stderr)
        r = subprocess.run([other.sessiond_bin, "--reload", "-c", other.conf], capture_output=True,
                           text=True, timeout=30)
        time.sleep(0.3)
        expect(r.returncode != 0 and sleeper.alive(), "--reload refused too: %r" % r)
        expect(other.sessiond.alive(), "sessiond untouched")
    finally:
        sleeper.stop()
        other.stop()


# ---- SIGHUP ----

@case
def test_hup_keeps_sessions(st):
    other = side_stack(st)
    try:
        other.start_sessiond()
        other.start_nginx()
        a = Session(other.url, st.domain, wait=1)
        a.login("alice", USERS["alice"], "hup")
        b = Session(other.url, st.domain, wait=1)
        b.login("bob", USERS["bob"], "hup")
        pid = other.sessiond.pid
        held = a.request_async()  # held across the signal
        time.sleep(0.3)
        hup(other, 0)
        time.sleep(0.5)
        expect(other.sessiond.alive() and other.sessiond.pid == pid, "sessiond still runs, same PID")
        got = held.join(10)
        expect(got is not None and not isinstance(got, Exception) and got.type != "terminate",
               "the held request lived on: %r" % got)
        chat(a, b, "after HUP")
        chat(b, a, "back after HUP")
        for s in (a, b):
            expect(s.terminate().type == "terminate", "terminate")
    finally:
        other.stop()


@case
def test_hup_reopens_the_log_file(st):
    # with the handler processes, which reopen theirs too
    other = side_stack(st, "pid_file = sessiond.pid\nfcgi_direct = 0\n")
    try:
        other.start_sessiond()
        pidfile = os.path.join(other.dir, "sessiond.pid")
        wait_for(lambda: os.path.exists(pidfile), 10, "the pid file")
        rotated = other.sessiond_log + ".1"
        os.rename(other.sessiond_log, rotated)  # what logrotate does, then its postrotate:
        r = subprocess.run([other.sessiond_bin, "-c", other.conf, "--reload"], capture_output=True,
                           text=True, timeout=30)
        expect(r.returncode == 0, "sessiond --reload: %r" % r)
        wait_for(lambda: os.path.exists(other.sessiond_log) or not other.sessiond.alive(), 10,
                 "a new log file")
        expect(other.sessiond.alive(), "sessiond stopped on SIGHUP")
        # the file did not change, and nothing is said to have (max_sessions lowered
        # to the open-file limit at start is not a change)
        wait_log(other, r"SIGHUP: log files reopened[^\n]*changed: nothing\n")
        # the handlers were replaced and opened it too (handler_log_file is the same file)
        wait_log(other, r"handler processes replaced")
        expect("SIGHUP" not in open(rotated, errors="replace").read(), "new lines go to the new file")
        expect(other.sessiond.alive(), "still running")
    finally:
        other.stop()


@case
def test_hup_applies_the_new_configuration(st):
    other = side_stack(st)
    try:
        other.start_sessiond()
        other.start_nginx()
        pid = other.sessiond.pid
        origin = "https://new.example"

        def preflight():
            import http.client
            conn = http.client.HTTPConnection("127.0.0.1", other.http_port, timeout=10)
            conn.request("OPTIONS", "/http-bind", headers={"Origin": origin,
                                                          "Access-Control-Request-Method": "POST"})
            r = conn.getresponse()
            r.read()
            conn.close()
            return r.getheader("Access-Control-Allow-Origin")

        expect(preflight() is None, "origin not allowed yet")
        s = Session(other.url, "added.test", wait=2)
        expect(s.create().condition == "host-unknown", "added.test not served yet")
        s = Session(other.url, st.domain, wait=2)
        s.create()
        wait_log(other, r"connected to 127\.0\.0\.1:\d+ for %s" % re.escape(st.domain))  # debug
        s.terminate()
        # the admin edits the file: log level, CORS, a new backend
        since = len(log_text(other))
        other.write_conf("log_level = info\ncors_origins = %s\nbackend.added.test = 127.0.0.1:%d\n"
                         % (origin, st.c2s_port))
        m = hup(other, since)
        line = m.group(0)
        for key in ("log_level", "cors_origins", "backend.added.test"):
            expect(key in line, "the log names %s: %s" % (key, line))
        expect(other.sessiond.pid == pid and other.sessiond.alive(), "no restart")
        expect(preflight() == origin, "the new origin is allowed")
        since = len(log_text(other))
        s = Session(other.url, st.domain, wait=2)
        s.login("carol", USERS["carol"], "hup")
        s.terminate()
        s = Session(other.url, "added.test", wait=2)
        s.create()
        wait_log(other, r"session [0-9a-f]+ created: domain=added\.test", since=since)
        expect(not re.search(r"debug: connected to", log_text(other)[since:]), "no debug lines at info")
        # a key that needs a restart is named as such, and not applied
        since = len(log_text(other))
        other.write_conf("log_level = info\ncors_origins = %s\nbackend.added.test = 127.0.0.1:%d\n"
                         "database = elsewhere.db\n" % (origin, st.c2s_port))
        hup(other, since, r"applied only when sessiond restarts[^\n]*database")
        expect(not os.path.exists(os.path.join(other.dir, "elsewhere.db")), "database kept")
    finally:
        other.stop()


@case
def test_hup_with_a_broken_configuration_keeps_the_old_one(st):
    other = side_stack(st)
    try:
        other.start_sessiond()
        other.start_nginx()
        pid = other.sessiond.pid
        a = Session(other.url, st.domain, wait=2)
        a.login("alice", USERS["alice"], "broken")
        since = len(log_text(other))
        other.write_conf("cors_origins = https://new.example\nmax_wait = banana\n")
        hup(other, since, r"NOT reloaded[^\n]*max_wait[^\n]*not a number")
        time.sleep(0.3)
        expect(other.sessiond.alive() and other.sessiond.pid == pid, "still running")
        expect("changed:" not in log_text(other)[since:], "nothing applied")
        r = a.request()
        expect(r.status == 200 and r.type != "terminate", "the session goes on: %r" % r)
        a.terminate()
    finally:
        other.stop()


@case
def test_batch_scheduling_by_default_off_on_reload_and_never_over_an_outside_policy(st):
    """sessiond runs as SCHED_BATCH unless batch_scheduling = 0 (applied on
    SIGHUP, both ways); a policy set from outside (here SCHED_IDLE) is left
    alone and said so. The web server make run starts runs as SCHED_BATCH too."""
    for pid in [st.nginx.pid] + child_pids(st.nginx.pid):
        expect(os.sched_getscheduler(pid) == os.SCHED_BATCH, "nginx process %d is not SCHED_BATCH" % pid)
    other = side_stack(st)
    try:
        other.start_sessiond()
        pid = other.sessiond.pid
        wait_for(lambda: os.sched_getscheduler(pid) == os.SCHED_BATCH, 5, "sessiond as SCHED_BATCH")
        since = len(log_text(other))
        other.write_conf("batch_scheduling = 0\n")
        hup(other, since, r"changed: [^\n]*batch_scheduling")
        expect(os.sched_getscheduler(pid) == os.SCHED_OTHER, "batch_scheduling = 0 is SCHED_OTHER")
        since = len(log_text(other))
        other.write_conf("batch_scheduling = 1\n")
        hup(other, since, r"changed: [^\n]*batch_scheduling")
        expect(os.sched_getscheduler(pid) == os.SCHED_BATCH, "batch_scheduling = 1 again")
        # systemd's CPUSchedulingResetOnFork: the flag stays with the policy sessiond sets
        os.sched_setscheduler(pid, os.SCHED_OTHER | os.SCHED_RESET_ON_FORK, os.sched_param(0))
        since = len(log_text(other))
        hup(other, since, r"SIGHUP: log files reopened[^\n]*")
        expect(os.sched_getscheduler(pid) == os.SCHED_BATCH | os.SCHED_RESET_ON_FORK,
               "with reset-on-fork: policy %r" % os.sched_getscheduler(pid))
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
        since = len(log_text(other))
        hup(other, since, r"SIGHUP: log files reopened[^\n]*")
        expect(os.sched_getscheduler(pid) == os.SCHED_IDLE, "the outside policy was replaced")
        expect(re.search(r"batch_scheduling: left as started", log_text(other)[since:]),
               "leaving the outside policy is not logged")
        expect(other.sessiond.alive() and other.sessiond.pid == pid, "still running")
    finally:
        other.stop()


# What the system may refuse sessiond, refused by a preloaded shim: a
# sandbox whose system call filter says EPERM, a kernel without a call, a
# listen() that fails, a /proc that cannot be read (or says something else).
FAULT_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fault(const char *name)
{
	const char *m = getenv("FAULT");
	return m && strcmp(m, name) == 0;
}

int sched_setscheduler(pid_t pid, int policy, const struct sched_param *param)
{
	if (fault("sched-set")) {
		errno = EPERM;
		return -1;
	}
	return (int)syscall(SYS_sched_setscheduler, pid, policy, param);
}

int sched_getscheduler(pid_t pid)
{
	if (fault("sched-get")) {
		errno = ENOSYS;
		return -1;
	}
	return (int)syscall(SYS_sched_getscheduler, pid);
}

/* a second listen() on a socket fails */
int listen(int fd, int backlog)
{
	static int seen[64], n;
	if (fault("relisten")) {
		for (int i = 0; i < n; i++)
			if (seen[i] == fd) {
				errno = EINVAL;
				return -1;
			}
		if (n < 64)
			seen[n++] = fd;
	}
	return (int)syscall(SYS_listen, fd, backlog);
}

/* the first exec of a successor (its -R argument: the snapshot) fails */
int execv(const char *path, char *const argv[])
{
	static int (*real)(const char *, char *const[]);
	static int failed;
	if (fault("exec-successor") && !failed)
		for (int i = 0; argv[i]; i++)
			if (strcmp(argv[i], "-R") == 0) {
				failed = 1;
				errno = E2BIG;
				return -1;
			}
	if (!real)
		real = (int (*)(const char *, char *const[]))dlsym(RTLD_NEXT, "execv");
	return real(path, argv);
}

FILE *fopen(const char *path, const char *mode)
{
	static FILE *(*real)(const char *, const char *);
	static char low[] = "512\n";
	if (strcmp(path, "/proc/sys/net/core/somaxconn") == 0) {
		if (fault("somaxconn-unreadable")) {
			errno = EACCES;
			return NULL;
		}
		if (fault("somaxconn-512"))
			return fmemopen(low, sizeof low - 1, "r");
	}
	if (!real)
		real = (FILE *(*)(const char *, const char *))dlsym(RTLD_NEXT, "fopen");
	return real(path, mode);
}
"""


def fault_env(st, fault):
    """Variables that start a sessiond with FAULT_SHIM preloaded (built once
    into the run's folder), failing what fault names."""
    src, shim = os.path.join(st.dir, "fault_shim.c"), os.path.join(st.dir, "fault_shim.so")
    if not os.path.exists(shim):
        with open(src, "w") as f:
            f.write(FAULT_SHIM)
        r = subprocess.run(["cc", "-shared", "-fPIC", "-o", shim, src, "-ldl"], capture_output=True, text=True)
        expect(r.returncode == 0, "the shim did not build: %s" % r.stderr)
    # the shim before ASan's runtime: ASan is told not to mind
    return {"LD_PRELOAD": shim, "FAULT": fault,
            "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:verify_asan_link_order=0"}


@case
def test_what_the_system_refuses_is_said_and_sessiond_serves_all_the_same(st):
    backlog = "fcgi_socket: listen backlog 512 (net.core.somaxconn) is below max_sessions"
    # (fault, what is said, said at start, said on SIGHUP, not said at all)
    faults = [
        ("sched-set", "batch_scheduling = 1: cannot change the scheduling policy: Operation not permitted", True,
         True, None),
        ("sched-get", "batch_scheduling: cannot read the scheduling policy: Function not implemented", True,
         True, None),
        # a fresh socket was listened on just now: listened on again only on SIGHUP
        ("relisten", "fcgi_socket: listen again for the backlog: Invalid argument", False, True, None),
        ("somaxconn-512", backlog, True, False, None),
        ("somaxconn-unreadable", None, False, False, "listen backlog"),
    ]
    for fault, said, at_start, on_hup, unsaid in faults:
        other = side_stack(st)
        was = None
        try:
            if unsaid and os.geteuid() == 0:
                # a real cap that would be warned about if it could be read
                other.raise_somaxconn = False
                was = somaxconn()
                somaxconn(512)
            other.start_sessiond(env=fault_env(st, fault))
            pid = other.sessiond.pid
            if said and at_start:
                wait_log(other, re.escape(said))
            if fault.startswith("sched"):
                expect(os.sched_getscheduler(pid) == os.SCHED_OTHER, "the policy changed after all (%s)" % fault)
            since = len(log_text(other))
            hup(other, since)
            if said:
                log = log_text(other)
                expect((said in log[:since]) == at_start, "(%s) said at start: %s" % (fault, not at_start))
                expect((said in log[since:]) == on_hup, "(%s) said on SIGHUP: %s" % (fault, not on_hup))
            other.start_nginx()
            s = Session(other.url, st.domain, wait=2)
            s.login("alice", USERS["alice"], "fault-" + fault)
            got, _ = s.until(lambda c: c.get("id") == "m1",
                             "<message xmlns='jabber:client' to='%s' id='m1'><body>as ever</body></message>" % s.jid)
            expect(got.findtext("{jabber:client}body") == "as ever", got)
            s.terminate()
            expect(other.sessiond.alive() and other.sessiond.pid == pid, "sessiond still running (%s)" % fault)
            if unsaid:
                expect(unsaid not in log_text(other), "(%s) said %r" % (fault, unsaid))
        finally:
            if was is not None:
                somaxconn(was)
            other.stop()


# ---- what bytes from outside can do to the log ----

@case
def test_control_bytes_from_clients_are_escaped_in_the_log(st):
    mark = "M%d" % int(time.time() * 1000)
    since = len(log_text(st))
    # 'to' and 'route' with a newline and a tab (character references: XML
    # turns a literal newline in an attribute into a space)
    r = post_raw(st.url, "<body xmlns='http://jabber.org/protocol/httpbind' rid='3' wait='1' hold='1' "
                 "to='evil&#10;2026-01-01T00:00:00.000Z sessiond[1] info: forged-%s'/>" % mark)
    expect(r.condition == "host-unknown", r)
    raw = post_raw(st.url, "<body xmlns='http://jabber.org/protocol/httpbind' rid='5' wait='1' hold='1' "
                   "to='%s' route='xmpp:evil&#9;host&#13;%s:5222' xmlns:xmpp='urn:xmpp:xbosh'/>"
                   % (st.domain, mark))
    expect(raw.type == "terminate", raw)
    # a User-Agent with an escape sequence and DEL
    s = Session(st.url, st.domain, wait=1)
    r = post_raw(st.url, "<body xmlns='http://jabber.org/protocol/httpbind' rid='7' wait='1' hold='1' "
                 "to='%s' xmlns:xmpp='urn:xmpp:xbosh' xmpp:version='1.0'/>" % st.domain,
                 headers={"User-Agent": "ua-%s\x1b[31mred\x7f" % mark})
    s.sid, s.rid = r.attr("sid"), 7
    wait_log(st, r"unknown domain 'evil[^\n]*\n?[^\n]*forged-%s" % mark, since=since)
    wait_log(st, r"route '[^\n]*%s" % mark, since=since)
    log = log_text(st)[since:]
    expect("evil\\x0a2026-01-01T00:00:00.000Z sessiond[1] info: forged-" + mark in log,
           "the newline in 'to' written as \\x0a")
    expect("\nforged" not in log and "\n2026-01-01T00:00:00.000Z sessiond[1]" not in log,
           "no forged line")
    expect("evil\\x09host\\x0d%s" % mark in log, "tab and CR in the route escaped")
    wait_log(st, r'user_agent="ua-%s' % mark, since=since)
    log = log_text(st)[since:]
    expect("ua-%s\\x1b[31mred\\x7f" % mark in log and "\x1b" not in log and "\x7f" not in log,
           "the User-Agent's ESC and DEL escaped")
    s.terminate()


@case
def test_a_flood_of_unknown_sids_is_logged_in_bounds(st):
    other = side_stack(st)
    try:
        other.start_sessiond()
        other.start_nginx()
        since = len(log_text(other))
        t0 = time.time()
        n = 200
        for i in range(n):
            r = post_raw(other.url, "<body xmlns='http://jabber.org/protocol/httpbind' sid='flood%d' rid='1'/>"
                         % i)
            expect(r.condition == "item-not-found", r)
        elapsed = time.time() - t0
        time.sleep(1.5)  # the last report comes a second after the last dropped line
        log = log_text(other)[since:]
        logged = len(re.findall(r"for unknown session 'flood\d+'", log))
        suppressed = sum(int(x) for x in re.findall(r"suppressed (\d+) similar lines \(unknown sid\)", log))
        bound = 20 + 10 * (elapsed + 1)
        expect(logged <= bound, "%d lines in %.1fs, more than %d" % (logged, elapsed, bound))
        expect(logged + suppressed == n, "%d logged + %d counted as suppressed = %d" % (logged, suppressed, n))
        expect(suppressed, "a suppressed-count line")
    finally:
        other.stop()
