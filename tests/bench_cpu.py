#!/usr/bin/env python3
"""Where the CPU goes per echo message: this stack (plain build) in front of a
local Prosody, boshload in echo mode, and each process's CPU time from /proc
over the middle of the run, in cores and microseconds per message. With
--ws the same over XMPP over WebSocket (boshload --ws; the handlers idle).

usage: bench_cpu.py BOSHLOAD [SECONDS] [SESSIONS] [--ws]
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "e2e"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from stack import REPO, Stack, child_pids  # noqa: E402


def ticks(pid):
    """(user, system) clock ticks of the process so far."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]), int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0, 0


def total(pids):
    t = [ticks(p) for p in pids]
    return sum(u for u, _ in t), sum(k for _, k in t)


def main():
    args = [a for a in sys.argv[1:] if a != "--ws"]
    ws = len(args) < len(sys.argv) - 1
    boshload = args[0]
    seconds = int(args[1]) if len(args) > 1 else 15
    sessions = args[2] if len(args) > 2 else "50"
    st = Stack(build=os.path.join(REPO, "build"))
    try:
        st.start_for_load("log_level = warn\nmax_wait = 60\ndefault_wait = 60")
        time.sleep(1)
        target = ["--ws", st.ws_url] if ws else ["--url", st.url]
        bl = subprocess.Popen([boshload] + target + ["--domain", st.domain, "--echo", sessions,
                               "--duration", str(seconds), "--wait", "30"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(min(4, seconds / 3))
        procs = {"sessiond": [st.sessiond.pid], "handlers": child_pids(st.sessiond.pid),
                 "nginx": child_pids(st.nginx.pid), "prosody": [st.prosody.pid], "boshload": [bl.pid]}
        t0 = {k: total(v) for k, v in procs.items()}
        w0 = time.time()
        time.sleep(seconds / 2)
        t1 = {k: total(v) for k, v in procs.items()}
        w1 = time.time()
        out, _ = bl.communicate()
        result = [l for l in out.splitlines() if l.startswith("RESULT")]
        r = dict(kv.split("=", 1) for kv in result[-1].split()[1:]) if result else {}
        rate = float(r.get("msgs_per_s", 0)) or float("nan")
        print("%s echo-%s: %s msgs/s, rtt p50/p99 %s/%s ms" % ("websocket" if ws else "BOSH", sessions,
                                                           r.get("msgs_per_s"),
                                                           r.get("rtt_p50_ms"), r.get("rtt_p99_ms")))
        hz = os.sysconf("SC_CLK_TCK")
        # user and kernel apart: the kernel's part (the socket calls, the
        # wake-ups) is the same work for nginx and for us, message for message
        us = lambda ticks: ticks / hz / (w1 - w0) / rate * 1e6
        all_cores = 0.0
        for k in procs:
            user, kern = t1[k][0] - t0[k][0], t1[k][1] - t0[k][1]
            cores = (user + kern) / hz / (w1 - w0)
            all_cores += cores
            print("  %-9s %.2f cores  %5.1f us/msg  (user %4.1f, kernel %4.1f)" % (
                k, cores, cores / rate * 1e6, us(user), us(kern)))
        print("  %-9s %.2f cores" % ("all", all_cores))
        ours = [sum(t1[k][i] - t0[k][i] for k in ("sessiond", "handlers")) for i in (0, 1)]
        web = [t1["nginx"][i] - t0["nginx"][i] for i in (0, 1)]
        if sum(web):
            print("ours (sessiond + handlers) / nginx per message: %.2f (target: at most 0.6); "
                  "our kernel time alone: %.2f" % (sum(ours) / sum(web), ours[1] / sum(web)))
        return 0 if bl.returncode == 0 else 1
    finally:
        st.stop()


if __name__ == "__main__":
    sys.exit(main())
