"""End-to-end cases: Strophe.js (run by Node) takes over BOSH sessions it did
not create, the two ways web pages do it.

- pre-bind then attach: a server-side program (here tests/e2e/bosh.py) creates
  and authenticates the session and binds a resource; the page attaches to it
  with connection.attach(jid, sid, rid) (tests/e2e/strophe/attach.mjs). The
  connection manager must answer the page's first request at once, not after
  `wait` seconds.
- page reload: Strophe's `keepalive` option keeps jid/sid/rid in
  sessionStorage; the page is reloaded without disconnecting and the new page
  calls connection.restore() (tests/e2e/strophe/restore.mjs) and goes on with
  the same session.

The Node packages are pinned in tests/e2e/strophe/package-lock.json and
installed with `npm ci --prefix tests/e2e/strophe`.
"""
import json
import os
import subprocess

import bosh
from strophe_case import STROPHE_DIR, _check_node, _ended_row

ATTACH = os.path.join(STROPHE_DIR, "attach.mjs")
RESTORE = os.path.join(STROPHE_DIR, "restore.mjs")

USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
WAIT = 10  # the pre-bound session's wait: a held first request shows as ~10000 ms
AT_ONCE_MS = 2000


def _run(argv, what):
    """Runs a Strophe script; returns (its JSON result, detail for messages)."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("%s did not finish in 60 s\n--- stdout ---\n%s\n--- stderr ---\n%s"
                             % (what, e.stdout, e.stderr))
    detail = "\n--- stdout ---\n%s\n--- stderr ---\n%s" % (p.stdout, p.stderr)
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    try:
        out = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise AssertionError("%s printed no JSON result (exit %d)%s" % (what, p.returncode, detail))
    if p.returncode != 0:
        raise AssertionError("%s failed (exit %d): %s%s" % (what, p.returncode, out.get("error"), detail))
    if not out.get("ok"):
        raise AssertionError("%s reported failure%s" % (what, detail))
    return out, detail


def _check_ended(st, sid, jid, detail):
    r = _ended_row(st, sid, jid)
    if r is None:
        raise AssertionError("no sessions row for %s (sid %s)%s" % (jid, sid, detail))
    if r["jid"] != jid or r["state"] != "ended" or r["end_condition"] != "terminate":
        raise AssertionError("sessions row for %s: %r, want jid %s, state 'ended', "
                             "end_condition 'terminate'%s" % (sid, r, jid, detail))


def test_strophe_attach_prebound(st):
    node = _check_node()
    s = bosh.Session(st.url, st.domain, wait=WAIT)
    jid = s.login("alice", USERS["alice"], "prebound")
    # s.rid is the last rid the pre-binder used; the page goes on with the
    # next one, which is what Strophe's attach() takes (its first request
    # carries exactly that rid).
    next_rid = s.rid + 1
    argv = [node, ATTACH, st.url, jid, s.sid, str(next_rid), str(WAIT)]
    out, detail = _run(argv, "Strophe attach client")

    if out.get("jid") != jid or out.get("sid") != s.sid:
        raise AssertionError("attached as %r sid %r, want %r sid %r%s"
                             % (out.get("jid"), out.get("sid"), jid, s.sid, detail))
    if out.get("first_rid") != next_rid:
        raise AssertionError("first request after attach had rid %r, want %d%s"
                             % (out.get("first_rid"), next_rid, detail))
    first = out.get("first_response_ms")
    if not isinstance(first, (int, float)) or first >= AT_ONCE_MS:
        raise AssertionError("the first request after attach was answered after %r ms (wait %d s): "
                             "the connection manager must answer it at once (< %d ms), not hold it%s"
                             % (first, WAIT, AT_ONCE_MS, detail))
    _check_ended(st, s.sid, jid, detail)


def test_strophe_restore_after_reload(st):
    node = _check_node()
    bare = "carol@" + st.domain
    out, detail = _run([node, RESTORE, st.url, bare, USERS["carol"]], "Strophe restore client")

    before, after = out.get("sid_before"), out.get("sid_after")
    if not before or before != after:
        raise AssertionError("sid before the reload %r, after restore() %r: must be the same session%s"
                             % (before, after, detail))
    jid = out.get("jid") or ""
    if not jid.startswith(bare + "/") or out["page2"].get("jid") != jid:
        raise AssertionError("bound JID %r, restored JID %r%s" % (jid, out["page2"].get("jid"), detail))
    r1, r2 = out["page1"]["rids"], out["page2"]["rids"]
    if not r1 or not r2 or r2[0] != max(r1) + 1:
        raise AssertionError("rids before the reload %r, after %r: the restored page must go on "
                             "with the next rid%s" % (r1, r2, detail))
    _check_ended(st, before, jid, detail)
