"""sessiond speaks systemd's readiness protocol (sd_notify) as systemd sees
it: datagrams on $NOTIFY_SOCKET, each checked for the sender's PID (what
NotifyAccess=main accepts), through start, SIGHUP, a graceful restart and
SIGTERM."""
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

from common import case, expect, sessiond_bin


class Notified:
    """A NOTIFY_SOCKET: bound like systemd's, passing the sender's credentials."""

    def __init__(self, path, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind("\0" + path if abstract else path)
        self.name = "@" + path if abstract else path

    def next(self, timeout=20.0):
        """(pid, {KEY: value}) of the next datagram; fails after timeout."""
        r, _, _ = select.select([self.sock], [], [], timeout)
        expect(r, "no notification within %.0f s" % timeout)
        data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", payload[:12])[0]
        fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
        return pid, fields

    def close(self):
        self.sock.close()


def start(d, notify_name):
    conf = os.path.join(d, "bosh.conf")
    with open(conf, "w") as f:
        f.write("control_socket = sessiond.sock\nhandlers = 0\ndatabase = sessions.db\n"
                "log_file = sessiond.log\npid_file = sessiond.pid\n"
                "backend.localhost = 127.0.0.1:1\n")
    env = dict(os.environ, NOTIFY_SOCKET=notify_name)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0")
    return subprocess.Popen([sessiond_bin(), "-f", "-c", conf], env=env, stdin=subprocess.DEVNULL,
                            stdout=open(os.path.join(d, "stdout"), "wb"), stderr=subprocess.STDOUT)


def stop(p):
    if p.poll() is None:
        p.kill()
        p.wait()


def log(d):
    with open(os.path.join(d, "sessiond.log"), errors="replace") as f:
        return f.read()


def expect_state(n, pid, key, what):
    got_pid, fields = n.next()
    expect(key in fields, "%s: expected %s, got %r" % (what, key, fields))
    expect(got_pid == pid, "%s: %s came from PID %s, not sessiond's %d (NotifyAccess=main would "
           "ignore it)" % (what, key, got_pid, pid))
    return fields


@case
def notify_ready_reload_restart_stop():
    d = tempfile.mkdtemp(prefix="bosh-notify-")
    n = Notified(os.path.join(d, "notify"))
    p = start(d, n.name)
    try:
        expect_state(n, p.pid, "READY", "start")
        expect("sessiond ready" in log(d), "READY=1 before the ready line")
        p.send_signal(signal.SIGHUP)
        f = expect_state(n, p.pid, "RELOADING", "SIGHUP")
        now_us = time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6
        expect(abs(int(f.get("MONOTONIC_USEC", "0")) - now_us) < 30e6,
               "RELOADING=1 without a current MONOTONIC_USEC: %r" % f)
        expect_state(n, p.pid, "READY", "after SIGHUP")
        # the graceful restart execs the new binary in the same process: it
        # reports ready again, from the same PID
        p.send_signal(signal.SIGUSR2)
        expect_state(n, p.pid, "READY", "after SIGUSR2")
        expect("restarted in place" in log(d), "READY=1 after SIGUSR2 without a restart")
        p.send_signal(signal.SIGTERM)
        expect_state(n, p.pid, "STOPPING", "SIGTERM")
        expect(p.wait(20) == 0, "sessiond exited %s after SIGTERM" % p.returncode)
    finally:
        stop(p)
        n.close()
    shutil.rmtree(d, ignore_errors=True)


@case
def notify_abstract_socket():
    """systemd may name an abstract socket ('@...')."""
    d = tempfile.mkdtemp(prefix="bosh-notify-")
    n = Notified("bosh-notify-test-%d" % os.getpid(), abstract=True)
    p = start(d, n.name)
    try:
        expect_state(n, p.pid, "READY", "start")
        p.send_signal(signal.SIGTERM)
        expect_state(n, p.pid, "STOPPING", "SIGTERM")
        expect(p.wait(20) == 0, "sessiond exited %s after SIGTERM" % p.returncode)
    finally:
        stop(p)
        n.close()
    shutil.rmtree(d, ignore_errors=True)


@case
def notify_not_from_a_daemon():
    """Without -f sessiond becomes a daemon (a handler starting it on demand
    does this): a NOTIFY_SOCKET it inherited is some other service's, and it
    says nothing there."""
    d = tempfile.mkdtemp(prefix="bosh-notify-")
    n = Notified(os.path.join(d, "notify"))
    conf = os.path.join(d, "bosh.conf")
    with open(conf, "w") as f:
        f.write("control_socket = sessiond.sock\nhandlers = 0\ndatabase = sessions.db\n"
                "log_file = sessiond.log\npid_file = sessiond.pid\nbackend.localhost = 127.0.0.1:1\n")
    env = dict(os.environ, NOTIFY_SOCKET=n.name)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0")
    pid = None
    try:
        r = subprocess.run([sessiond_bin(), "-c", conf], env=env, stdin=subprocess.DEVNULL, timeout=20,
                           capture_output=True)
        expect(r.returncode == 0, "the daemon did not start: %r" % r.stderr)
        with open(os.path.join(d, "sessiond.pid")) as f:
            pid = int(f.read())
        r, _, _ = select.select([n.sock], [], [], 1.0)
        expect(not r, "a daemon sent %r to an inherited NOTIFY_SOCKET" % (n.sock.recv(4096) if r else b""))
    finally:
        if pid:
            os.kill(pid, signal.SIGTERM)
            deadline = time.time() + 10
            while time.time() < deadline and os.path.exists(os.path.join(d, "sessiond.pid")):
                time.sleep(0.05)
        n.close()
    shutil.rmtree(d, ignore_errors=True)
