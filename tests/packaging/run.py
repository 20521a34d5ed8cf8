#!/usr/bin/env python3
"""Packaging and service tests: sessiond's systemd readiness protocol, the
unit file (systemd-analyze verify), bosh.conf(5) against the configuration
table, and the Debian package (extracted and run behind nginx with its own
configuration and snippet). Prints 'e2e: N passed, N failed, N skipped'.

usage: run.py [--build DIR] [--deb FILE] [-k SUBSTRING]
"""
import argparse
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
import common  # noqa: E402
import notify_cases  # noqa: E402,F401  (registers its cases)
import unit_cases  # noqa: E402,F401
import deb_cases  # noqa: E402,F401
import systemd_cases  # noqa: E402,F401


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--deb", default="", help="the package to test (default: the newest in BUILD)")
    ap.add_argument("-k", default="")
    args = ap.parse_args()
    common.ARGS.update(build=os.path.abspath(args.build), deb=args.deb)
    passed = failed = skipped = 0
    for name, fn in common.CASES:
        if args.k not in name:
            continue
        t0 = time.time()
        try:
            fn()
            passed += 1
            print("ok    %-45s %5.1fs" % (name, time.time() - t0), flush=True)
        except common.Skipped as why:
            skipped += 1
            print("skip  %-45s %s" % (name, why), flush=True)
        except Exception:
            failed += 1
            print("FAIL  %-45s %5.1fs" % (name, time.time() - t0), flush=True)
            traceback.print_exc()
    print("e2e: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
