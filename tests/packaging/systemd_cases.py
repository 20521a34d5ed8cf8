"""The packaged unit under a real systemd: systemd booted as PID 1 of fresh
PID, mount and cgroup namespaces (boot_systemd.sh) with only the package's
unit, which starts sessiond with all its sandboxing; the manager sees it
ready (Type=notify), `systemctl reload`, `systemctl kill --kill-whom=main -s
USR2` and `sessiond -r` keep a BOSH chat going behind nginx, and `systemctl
stop` stops it cleanly. Only a drop-in differs from the package: ExecStart's
path (the package is at /opt/bosh inside) and User=nobody for bosh, an
account the test does not create."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from common import Skipped, build_file, case, expect
from deb_cases import PASSWORDS, extract, log_in, message, start_nginx, the_deb
from stack import Proc, Stack, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
# the targets the unit names or systemd wants at boot: empty here
STUBS = ["sysinit.target", "basic.target", "network.target", "network-online.target", "nss-lookup.target",
         "shutdown.target", "multi-user.target", "sockets.target", "paths.target", "timers.target",
         "local-fs.target", "umount.target"]
DROP_IN = """[Service]
ExecStart=
ExecStart=/opt/bosh/usr/sbin/sessiond -f -c /opt/bosh/etc/bosh/bosh.conf
User=nobody
"""


class Booted:
    """systemd in its namespaces; every command runs inside with nsenter."""

    def __init__(self, d, root, units):
        self.d = d
        self.cgroups = self.own_cgroups()
        log = open(os.path.join(d, "boot.log"), "wb")
        # Into cgroups of our own first: the cgroup namespace is rooted there.
        self.p = subprocess.Popen(
            ["sh", "-c", 'for c; do echo $$ > "$c/cgroup.procs"; done; exec unshare --pid --fork --mount '
             '--cgroup --mount-proc "%s" "%s" "%s"' % (os.path.join(HERE, "boot_systemd.sh"), root, units),
             "sh"] + self.cgroups, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        self.pid = None
        deadline = time.time() + 30
        while time.time() < deadline and self.p.poll() is None:
            kids = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.p.pid)], capture_output=True,
                                  text=True).stdout.split()
            if kids and self.run("systemctl", "is-system-running", pid=int(kids[0])).stdout.strip() in (
                    "running", "degraded", "starting"):
                self.pid = int(kids[0])
                return
            time.sleep(0.2)
        with open(os.path.join(d, "boot.log"), errors="replace") as f:
            raise Skipped("systemd could not be booted in namespaces here: " + f.read()[-300:])

    @staticmethod
    def own_cgroups():
        """A fresh cgroup in the hierarchies that only track processes
        (name=systemd, the empty cgroup v2): removed again by stop()."""
        made = []
        for h in ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"):
            path = os.path.join(h, "bosh-test-%d" % os.getpid())
            if os.path.exists(os.path.join(h, "cgroup.procs")):
                try:
                    os.mkdir(path)
                    made.append(path)
                except OSError:
                    pass
        return made

    def run(self, *argv, pid=None, check=False):
        return subprocess.run(["nsenter", "-t", str(pid or self.pid), "-m", "-p", "--"] + list(argv),
                              capture_output=True, text=True, timeout=60, check=check)

    def wrap(self):
        return ["nsenter", "-t", str(self.pid), "-m", "-p", "--"]

    def file(self, path):
        try:
            with open("/proc/%d/root%s" % (self.pid, path), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def show(self, prop, unit="bosh-sessiond"):
        return self.run("systemctl", "show", "-p", prop, "--value", unit).stdout.strip()

    def status(self):
        return (self.run("systemctl", "status", "--no-pager", "bosh-sessiond").stdout +
                "--- sessiond.log ---\n" + self.file("/var/log/bosh/sessiond.log")[-3000:])

    def stop(self):
        """Kills the namespace's PID 1 (and so everything in it), then
        removes the cgroups systemd and we made."""
        if self.p.poll() is None:
            if self.pid:
                os.kill(self.pid, signal.SIGKILL)
            self.p.wait(20)
        mine = [c for line in open("/proc/self/cgroup") for c in [line.strip().split(":", 2)]]
        roots = list(self.cgroups)
        for line in open("/proc/self/mountinfo"):
            f = line.split()
            if f[-3] in ("cgroup", "cgroup2") and f[4] not in ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"):
                for hid, ctrl, path in mine:
                    if (f[-3] == "cgroup" and ctrl and ctrl in f[-1].split(",")):
                        roots += [os.path.join(f[4] + path, n) for n in ("init.scope", "system.slice")]
        for r in roots:
            for dirpath, _, _ in sorted(os.walk(r), key=lambda t: -t[0].count("/")):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass


def wait_until(pred, what, booted, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for %s:\n%s" % (what, booted.status()))


@case
def systemd_runs_the_packaged_unit():
    if os.geteuid() != 0:
        raise Skipped("needs root: systemd is booted in namespaces of its own")
    if os.path.exists("/run/systemd/system"):
        raise Skipped("systemd is this machine's init: the test does not boot a second one beside it")
    for tool in ("/lib/systemd/systemd", "/usr/bin/unshare", "/usr/bin/nsenter", "/usr/sbin/nginx",
                 "/usr/bin/prosody"):
        if not os.path.exists(tool):
            raise Skipped("%s is missing" % tool)
    d = tempfile.mkdtemp(prefix="bosh-systemd-", dir=build_file())  # not /tmp: PrivateTmp hides it
    os.chmod(d, 0o711)
    root, units = os.path.join(d, "root"), os.path.join(d, "units")
    st = Stack(workdir=os.path.join(d, "stack"))
    booted = nginx = None
    ok = False
    try:
        extract(the_deb(), root)
        shutil.rmtree(os.path.join(root, "DEBIAN"))
        st.start_prosody()
        for user, password in PASSWORDS.items():
            st.add_user(user, password)
        conf = os.path.join(root, "etc/bosh/bosh.conf")
        with open(conf) as f:
            text = f.read()
        expect("backend.localhost = 127.0.0.1:5222" in text, "the package's backend line changed")
        with open(conf, "w") as f:
            f.write(text.replace("backend.localhost = 127.0.0.1:5222",
                                 "backend.localhost = 127.0.0.1:%d" % st.c2s_port))
        os.makedirs(os.path.join(units, "bosh-sessiond.service.d"))
        shutil.copy(os.path.join(root, "lib/systemd/system/bosh-sessiond.service"), units)
        with open(os.path.join(units, "bosh-sessiond.service.d", "test.conf"), "w") as f:
            f.write(DROP_IN)
        for stub in STUBS:
            with open(os.path.join(units, stub), "w") as f:
                f.write("[Unit]\nDescription=%s (empty)\n" % stub)
        # a stand-in for the web server, with the drop-in the package offers for it
        with open(os.path.join(units, "web-stand-in.service"), "w") as f:
            f.write("[Unit]\nDescription=the web server's place\n[Service]\nExecStart=/bin/sleep 600\n")
        os.makedirs(os.path.join(units, "web-stand-in.service.d"))
        shutil.copy(os.path.join(root, "usr/share/doc/bosh-cm/examples/systemd/web-server-batch.conf"),
                    os.path.join(units, "web-stand-in.service.d"))
        with open(os.path.join(units, "bosh-test.target"), "w") as f:
            f.write("[Unit]\nDescription=the test\nWants=bosh-sessiond.service web-stand-in.service\n")
        booted = Booted(d, root, units)

        # Type=notify: active only once sessiond said READY=1
        wait_until(lambda: booted.show("ActiveState") in ("active", "failed"), "bosh-sessiond to start", booted)
        expect(booted.show("ActiveState") == "active", "bosh-sessiond did not start:\n" + booted.status())
        expect(booted.show("StatusText") == "serving", "status %r" % booted.show("StatusText"))
        main = booted.show("MainPID")
        # batch_scheduling under the unit's sandbox (its system call filter included)
        policy = booted.run("chrt", "-p", main).stdout
        expect("SCHED_BATCH" in policy, "sessiond under the unit: %r" % policy)
        web = booted.show("MainPID", "web-stand-in")
        policy = booted.run("chrt", "-p", web).stdout
        expect(web not in ("", "0") and "SCHED_BATCH" in policy,
               "a service with web-server-batch.conf (pid %r): %r" % (web, policy))
        sockets = booted.run("stat", "-c", "%n %a %G", "/run/bosh/handler.sock", "/run/bosh/ws.sock",
                             "/run/bosh/sessiond.sock").stdout.split("\n")
        expect(all(line.endswith(" 660 www-data") for line in sockets if line),
               "sockets are not 0660 www-data: %r" % sockets)
        port = free_port()
        nginx = start_nginx(root, os.path.join(d, "nginx"), port, sockets="/run/bosh", wrap=booted.wrap())
        alice, bob = log_in("http://127.0.0.1:%d/http-bind" % port)
        message(alice, bob, "under systemd")

        r = booted.run("systemctl", "reload", "bosh-sessiond")
        expect(r.returncode == 0, "systemctl reload: %s" % r.stderr)
        wait_until(lambda: "SIGHUP: log files reopened" in booted.file("/var/log/bosh/sessiond.log"), "SIGHUP",
                   booted)

        r = booted.run("systemctl", "kill", "--kill-whom=main", "-s", "USR2", "bosh-sessiond")
        expect(r.returncode == 0, "systemctl kill: %s" % r.stderr)
        wait_until(lambda: booted.file("/var/log/bosh/sessiond.log").count("restarted in place:") == 1,
                   "the restart on USR2", booted)
        message(alice, bob, "after systemctl kill -s USR2")

        r = booted.run("/opt/bosh/usr/sbin/sessiond", "-r", "-c", "/opt/bosh/etc/bosh/bosh.conf")
        expect(r.returncode == 0 and "restarted in place" in r.stdout, "sessiond -r: %s%s" % (r.stdout, r.stderr))
        message(alice, bob, "after sessiond -r")
        expect(booted.show("MainPID") == main and booted.show("ActiveState") == "active",
               "the restarts changed the service: %s" % booted.status())
        expect(booted.show("NRestarts") == "0", "systemd restarted the service: " + booted.status())

        r = booted.run("systemctl", "stop", "bosh-sessiond")
        expect(r.returncode == 0 and booted.show("ActiveState") == "inactive",
               "systemctl stop: %s\n%s" % (r.stderr, booted.status()))
        log = booted.file("/var/log/bosh/sessiond.log")
        expect("sessiond stopped" in log, "no clean stop in the log:\n" + log[-2000:])
        expect(not re.search(r"\b(error|AddressSanitizer)\b", log), "errors in the log:\n" + log[-2000:])
        ok = True
    finally:
        if nginx:
            nginx.stop()
        if booted:
            booted.stop()
        st.stop()
        if ok:
            shutil.rmtree(d, ignore_errors=True)
        else:
            print("data folder kept: " + d)
