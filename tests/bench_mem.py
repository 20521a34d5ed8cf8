#!/usr/bin/env python3
"""sessiond's own memory per held session, and N held sessions without an error.

Starts Prosody (insecure auth, as in the shared bench), sessiond (plain build)
and nginx, opens N idle BOSH sessions with boshload, and reads sessiond's
VmRSS before and once all sessions are up (each holds one request).

usage: bench_mem.py BOSHLOAD [N]
"""
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "e2e"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from stack import Stack, REPO  # noqa: E402


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    boshload = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 9000
    st = Stack(build=os.path.join(REPO, "build"))
    try:
        # The shared bench's Prosody accepts any user and password; so does this one.
        st.start_for_load("log_level = warn\nmax_wait = 60\ndefault_wait = 60")
        time.sleep(1)
        pid = st.sessiond.pid
        before = rss_kib(pid)
        ready = os.path.join(st.dir, "ready")
        bl = subprocess.Popen([boshload, "--url", st.url, "--domain", st.domain, "--sessions", str(n),
                               "--rate", "300", "--duration", "20", "--wait", "60",
                               "--ready-file", ready], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
        after = None
        while bl.poll() is None:
            if after is None and os.path.exists(ready):
                time.sleep(2)
                after = rss_kib(pid)
            time.sleep(0.2)
        out, err = bl.communicate()
        result = [l for l in out.splitlines() if l.startswith("RESULT")]
        print("".join(l for l in err.splitlines(True) if "first error" in l), end="")
        res = dict(kv.split("=", 1) for kv in result[-1].split()[1:]) if result else {}
        ok = int(res.get("sessions_ok", 0))
        per = (after - before) * 1024 / ok if after and ok else float("nan")
        print("sessiond memory: %d sessions held, sessiond RSS %.1f MiB -> %.1f MiB, %.0f bytes per "
              "held session" % (ok, before / 1024, (after or 0) / 1024, per))
        print("errors: failed=%s lost=%s http=%s xml=%s terminated=%s timeouts=%s" % (
            res.get("sessions_failed"), res.get("sessions_lost"), res.get("http_errors"),
            res.get("xml_errors"), res.get("terminated_by_server"), res.get("timeouts")))
        print(result[-1] if result else "no RESULT line")
        return 0 if ok == n and bl.returncode == 0 else 1
    finally:
        st.stop()


if __name__ == "__main__":
    sys.exit(main())
