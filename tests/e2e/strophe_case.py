"""End-to-end case: a real web XMPP client library, Strophe.js (run by Node),
logs in, chats and logs out through our BOSH endpoint
(nginx -> bosh-handler -> sessiond -> Prosody).

The client side is tests/e2e/strophe/chat.mjs; its Node packages are pinned in
tests/e2e/strophe/package-lock.json and installed with
`npm ci --prefix tests/e2e/strophe`.

Run it alone with: python3 tests/e2e/run.py -k strophe
"""
import json
import os
import shutil
import sqlite3
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
STROPHE_DIR = os.path.join(HERE, "strophe")
CHAT = os.path.join(STROPHE_DIR, "chat.mjs")

# The accounts the e2e setup creates (cases.USERS).
USERS = {"alice": "alice-pw", "bob": "bob-pw"}


def _check_node():
    node = shutil.which("node")
    if not node:
        raise AssertionError("node is not installed: the Strophe.js case needs Node.js (>= 20)")
    with open(os.path.join(STROPHE_DIR, "package.json")) as f:
        deps = json.load(f).get("dependencies", {})
    missing = [d for d in deps
               if not os.path.exists(os.path.join(STROPHE_DIR, "node_modules", d, "package.json"))]
    if missing:
        raise AssertionError("Node packages missing (%s): run `npm ci --prefix tests/e2e/strophe`"
                             % ", ".join(missing))
    return node


def _ended_row(st, sid, jid, wait=3.0):
    """The session's row once it is ended (polled: sessiond batches its writes)."""
    deadline = time.time() + wait
    r = None
    while True:
        db = sqlite3.connect(st.db, timeout=5)
        db.row_factory = sqlite3.Row
        try:
            if sid:
                r = db.execute("select sid, state, jid, end_condition from sessions where sid=?",
                               (sid,)).fetchone()
            else:  # no sid reported: find it by the bound JID
                r = db.execute("select sid, state, jid, end_condition from sessions where jid=? "
                               "order by created_at desc limit 1", (jid,)).fetchone()
        finally:
            db.close()
        r = dict(r) if r is not None else None
        if r is not None and r["state"] == "ended":
            return r
        if time.time() > deadline:
            return r
        time.sleep(0.05)


def test_strophe_login_chat_logout(st):
    node = _check_node()
    user1, user2 = "alice@" + st.domain, "bob@" + st.domain
    argv = [node, CHAT, st.url, st.domain, user1, USERS["alice"], user2, USERS["bob"]]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("Strophe client did not finish in 60 s\n--- stdout ---\n%s\n--- stderr ---\n%s"
                             % (e.stdout, e.stderr))
    detail = "\n--- stdout ---\n%s\n--- stderr ---\n%s" % (p.stdout, p.stderr)
    if p.returncode != 0:
        raise AssertionError("Strophe client failed (exit %d)%s" % (p.returncode, detail))
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    try:
        out = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise AssertionError("Strophe client printed no JSON result" + detail)
    if not out.get("ok"):
        raise AssertionError("Strophe client reported failure" + detail)

    for who, bare in (("user1", user1), ("user2", user2)):
        c = out[who]
        jid = c.get("jid") or ""
        if not jid.startswith(bare + "/"):
            raise AssertionError("%s bound %r, not a full JID of %s%s" % (who, jid, bare, detail))
        r = _ended_row(st, c.get("sid"), jid)
        if r is None:
            raise AssertionError("no sessions row for %s (sid %s)%s" % (jid, c.get("sid"), detail))
        if r["jid"] != jid or r["state"] != "ended" or r["end_condition"] != "terminate":
            raise AssertionError("sessions row for %s: %r, want state 'ended', "
                                 "end_condition 'terminate'%s" % (jid, r, detail))
