"""End-to-end cases: real web XMPP clients over our WebSocket endpoint
(RFC 7395), each a chat both ways and a logout, each session's row saying
transport 'websocket':

- converse.js (its own browser build) in headless Chromium, through nginx,
  chatting with bob on the raw client of ws_cases.py;
- StanzaJS in Node with WebSocket only, two clients, through nginx;
- the same StanzaJS chat through Apache's proxy (conf/apache/websocket.conf).

The Node packages are pinned in tests/e2e/strophe/package-lock.json.
Run them alone with: python3 tests/e2e/run.py -k ws_client
"""
import json
import os
import subprocess

from cases import case, expect
from strophe_case import STROPHE_DIR, USERS, _check_node
from ws_cases import ws_row

STANZA_CHAT = os.path.join(STROPHE_DIR, "stanza-chat.mjs")


def stanza_chat(st, url):
    """StanzaJS's two clients chat over url; returns their report after
    checking it and both sessions' rows."""
    node = _check_node()
    user1, user2 = "alice@" + st.domain, "bob@" + st.domain
    argv = [node, STANZA_CHAT, url, st.domain, user1, USERS["alice"], user2, USERS["bob"]]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                           cwd=STROPHE_DIR)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("StanzaJS did not finish in 60 s\n--- stdout ---\n%s\n--- stderr ---\n%s"
                             % (e.stdout, e.stderr))
    detail = "\n--- stdout ---\n%s\n--- stderr ---\n%s" % (p.stdout, p.stderr[-6000:])
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    try:
        out = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise AssertionError("StanzaJS printed no JSON result (exit %d)%s" % (p.returncode, detail))
    expect(p.returncode == 0 and out.get("ok"), "StanzaJS failed (exit %d)%s" % (p.returncode, detail))
    for who, bare in (("user1", user1), ("user2", user2)):
        jid = out[who].get("jid") or ""
        expect(jid.startswith(bare + "/"), "%s bound %r%s" % (who, jid, detail))
        r = ws_row(st, jid, lambda r: r["state"] == "ended")
        expect(r["transport"] == "websocket" and r["end_condition"] == "terminate",
               "row of %s: %r%s" % (jid, r, detail))
    return out


@case
def test_ws_client_stanza_chat(st):
    stanza_chat(st, st.ws_url)


@case
def test_ws_client_stanza_through_apache(st):
    from apache import Apache
    a = Apache(os.path.join(st.dir, "apache-ws-stanza"), ["proxy", "proxy_wstunnel"],
               "conf/apache/websocket.conf", {"/run/bosh/ws.sock": st.ws_sock})
    try:
        a.start()
        stanza_chat(st, "ws://127.0.0.1:%d/xmpp-websocket" % a.port)
        a.stop()  # a tunnel's line is logged when it ends
        # (mod_proxy_wstunnel logs the upgrade with status 200)
        with open(os.path.join(a.dir, "access.log")) as f:
            tunnels = [ln for ln in f if '"GET /xmpp-websocket HTTP/1.1"' in ln]
        expect(len(tunnels) == 2, "Apache's access log shows %d WebSocket requests, not 2" % len(tunnels))
    finally:
        a.stop()
