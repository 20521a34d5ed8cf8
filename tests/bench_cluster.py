#!/usr/bin/env python3
"""The cost of the load balancer's hop: the same echo load through HAProxy in
front of three nodes (tools/cluster.py, what `make cluster` starts) and
straight at one of those nodes, in one run, in front of one Prosody.

On one machine this measures the extra hop (and three nodes sharing its
cores), not scaling. Prints one row each and the ratio.

usage: bench_cluster.py BOSHLOAD [ECHO_SESSIONS] [SECONDS]
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from cluster import Cluster  # noqa: E402
from stack import REPO, Stack  # noqa: E402


def echo(boshload, url, domain, sessions, seconds):
    p = subprocess.run([boshload, "--url", url, "--domain", domain, "--echo", str(sessions),
                        "--sessions", str(sessions), "--rate", "200", "--duration", str(seconds),
                        "--wait", "30"], capture_output=True, text=True, timeout=seconds + 180)
    lines = [l for l in p.stdout.splitlines() if l.startswith("RESULT")]
    return dict(kv.split("=", 1) for kv in lines[-1].split()[1:]) if lines else {}


def main():
    boshload = sys.argv[1]
    sessions = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    build = os.path.join(REPO, "build")
    xmpp = Stack(build=build)
    c = None
    try:
        xmpp.start_prosody(any_password=True)  # boshload logs in as users no one registered
        c = Cluster(build=build, nodes=3, xmpp_server="127.0.0.1:%d" % xmpp.c2s_port,
                    extra_conf="log_level = warn\n").start()
        rows = [("through HAProxy, 3 nodes", echo(boshload, c.url, xmpp.domain, sessions, seconds)),
                ("one node directly", echo(boshload, c.nodes["n1"].url, xmpp.domain, sessions, seconds))]
        print("\n%-26s %10s %10s %10s %8s" % ("cluster (echo %d)" % sessions, "msgs/s", "p50 ms", "p99 ms",
                                              "errors"))
        for name, r in rows:
            errors = sum(int(r.get(k, 0) or 0) for k in ("sessions_failed", "sessions_lost", "http_errors",
                                                         "timeouts"))
            print("%-26s %10s %10s %10s %8d" % (name, r.get("msgs_per_s", "?"), r.get("rtt_p50_ms", "?"),
                                                r.get("rtt_p99_ms", "?"), errors))
        try:
            ratio = float(rows[0][1]["msgs_per_s"]) / float(rows[1][1]["msgs_per_s"])
            print("HAProxy hop: %.2fx the messages/s of one node directly" % ratio)
        except (KeyError, ValueError, ZeroDivisionError):
            print("HAProxy hop: no ratio (a run gave no figure)")
    finally:
        if c:
            c.stop()
        xmpp.stop()


if __name__ == "__main__":
    main()
