#!/usr/bin/env python3
"""sessiond's own memory per held session, and N held sessions without an error.

Starts Prosody (insecure auth, as in the shared bench), sessiond (plain build)
and nginx, opens N idle sessions with boshload (BOSH, or XMPP over WebSocket
with --ws), and reads sessiond's RSS and PSS (sessiond alone: not nginx, not
the handlers) before, 2 s after all sessions are up (each BOSH session holds
one request), and once more after sessiond's housekeeping has given freed
heap back (--settle seconds after they are up).

usage: bench_mem.py BOSHLOAD [N] [--ws] [--settle S]
"""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "e2e"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from stack import Stack, REPO  # noqa: E402

# sessiond's housekeeping (malloc_trim) runs every 30 s: a sample this long
# after the sessions are up comes after one.
SETTLE_S = 35


def mem_kib(pid):
    """(RSS, PSS) of one process in KiB; PSS from smaps_rollup (0 if unreadable)."""
    rss = pss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def per_session(before, after, ok):
    """Bytes of RSS and PSS growth per session."""
    if not after or not ok:
        return float("nan"), float("nan")
    return ((after[0] - before[0]) * 1024 / ok, (after[1] - before[1]) * 1024 / ok)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("boshload")
    ap.add_argument("sessions", nargs="?", type=int, default=9000)
    ap.add_argument("--ws", action="store_true", help="XMPP over WebSocket (boshload --ws)")
    ap.add_argument("--settle", type=int, default=SETTLE_S,
                    help="seconds after setup for the second sample (0: none)")
    args = ap.parse_args()
    n = args.sessions
    kind = "websocket" if args.ws else "BOSH"
    st = Stack(build=os.path.join(REPO, "build"))
    try:
        # The shared bench's Prosody accepts any user and password; so does this one.
        st.start_for_load("log_level = warn\nmax_wait = 60\ndefault_wait = 60")
        time.sleep(1)
        pid = st.sessiond.pid
        before = mem_kib(pid)
        ready = os.path.join(st.dir, "ready")
        target = ["--ws", st.ws_url] if args.ws else ["--url", st.url]
        hold = max(20, args.settle + 5)
        bl = subprocess.Popen([args.boshload] + target +
                              ["--domain", st.domain, "--sessions", str(n), "--rate", "300",
                               "--duration", str(hold), "--wait", "60", "--ready-file", ready],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        up = after = settled = None
        while bl.poll() is None:
            if up is None and os.path.exists(ready):
                up = time.time()
            if up is not None and after is None and time.time() >= up + 2:
                after = mem_kib(pid)
            if (up is not None and settled is None and args.settle
                    and time.time() >= up + args.settle):
                settled = mem_kib(pid)
            time.sleep(0.2)
        out, err = bl.communicate()
        result = [l for l in out.splitlines() if l.startswith("RESULT")]
        print("".join(l for l in err.splitlines(True) if "first error" in l), end="")
        res = dict(kv.split("=", 1) for kv in result[-1].split()[1:]) if result else {}
        ok = int(res.get("sessions_ok", 0))
        rss, pss = per_session(before, after, ok)
        print("sessiond memory, %s: %d sessions held, sessiond RSS %.1f MiB -> %.1f MiB, "
              "%.0f bytes per held session (PSS %.0f)"
              % (kind, ok, before[0] / 1024, (after or (0, 0))[0] / 1024, rss, pss))
        if args.settle:
            rss, pss = per_session(before, settled, ok)
            print("  %d s after setup (heap trimmed): RSS %.1f MiB, %.0f bytes per held session "
                  "(PSS %.0f)" % (args.settle, (settled or (0, 0))[0] / 1024, rss, pss))
        print("errors: failed=%s lost=%s http=%s xml=%s terminated=%s timeouts=%s" % (
            res.get("sessions_failed"), res.get("sessions_lost"), res.get("http_errors"),
            res.get("xml_errors"), res.get("terminated_by_server"), res.get("timeouts")))
        print(result[-1] if result else "no RESULT line")
        return 0 if ok == n and bl.returncode == 0 else 1
    finally:
        st.stop()


if __name__ == "__main__":
    sys.exit(main())
