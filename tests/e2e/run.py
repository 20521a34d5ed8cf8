#!/usr/bin/env python3
"""End-to-end tests: real Prosody, real nginx and Apache, sessiond and its
handlers (the AddressSanitizer build), real SQLite. Prints 'N passed, N failed'.

usage: run.py [--build DIR] [-k SUBSTRING] [--keep]
"""
import argparse
import os
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the stack that `make run` starts (tools/stack.py) is the one the tests use
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import apache_cases  # noqa: E402
import cases  # noqa: E402
import backend_cases  # noqa: E402,F401  (registers its cases)
import client_cases  # noqa: E402,F401
import restart_cases  # noqa: E402,F401
import input_cases  # noqa: E402,F401
import hardening_cases  # noqa: E402,F401
import ws_cases  # noqa: E402,F401
import ws_input_cases  # noqa: E402,F401
import ops_cases  # noqa: E402,F401
import cluster_cases  # noqa: E402,F401
import webchat_cases  # noqa: E402,F401
import ws_client_cases  # noqa: E402,F401
import fcgi_cases  # noqa: E402,F401
from stack import Stack  # noqa: E402


def main():
    # Stopped from outside: still stop what we started (the finally below).
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("-k", default="")
    ap.add_argument("--keep", action="store_true", help="keep the data folder")
    ap.add_argument("--plain", action="store_true", help="use the build without sanitizers")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    san = "" if args.plain else "asan"
    st = Stack(build=build, sessiond_bin=os.path.join(build, san, "sessiond"),
               handler_bin=os.path.join(build, san, "bosh-handler"),
               extra_conf=cases.SESSIOND_CONF)
    passed = failed = skipped = 0
    started = time.time()
    try:
        st.start()
        cases.setup(st)
        for module in (cases, apache_cases):
            for name, fn in module.all_cases():
                if args.k not in name:
                    continue
                t0 = time.time()
                try:
                    fn(st)
                    passed += 1
                    print("ok    %-45s %5.1fs" % (name, time.time() - t0), flush=True)
                except cases.Skipped as why:
                    skipped += 1
                    print("skip  %-45s %s" % (name, why), flush=True)
                except Exception:
                    failed += 1
                    print("FAIL  %-45s %5.1fs" % (name, time.time() - t0), flush=True)
                    traceback.print_exc()
                    print("--- sessiond.log (tail) ---\n" + Stack.tail(st.sessiond_log, 25), flush=True)
                    if module is apache_cases:
                        print(apache_cases.logs(st), flush=True)
                    if st.sessiond is None or not st.sessiond.alive():
                        st.start_sessiond()
        if st.sessiond and not st.sessiond.alive():
            failed += 1
            print("FAIL  sessiond died during the tests", flush=True)
    finally:
        for cleanup in cases.CLEANUPS:
            cleanup()
        apache_cases.teardown()
        st.stop()
        asan = apache_cases.sanitizer_reports(st)  # every log under the run's folder
        if asan:
            failed += 1
            print("FAIL  sanitizer reports:\n" + "".join(asan[:20]))
        if not args.keep and failed == 0:
            import shutil
            shutil.rmtree(st.dir, ignore_errors=True)
        else:
            print("data folder kept: " + st.dir)
    print("end-to-end tests took %.0fs" % (time.time() - started))
    print("e2e: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
