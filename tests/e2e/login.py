#!/usr/bin/env python3
"""Logs in through a BOSH endpoint, says hello to itself, and logs out.

usage: login.py URL JID PASSWORD
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bosh  # noqa: E402


def main():
    if len(sys.argv) != 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    url, jid, password = sys.argv[1:]
    user, domain = jid.split("@", 1)
    s = bosh.Session(url, domain)
    full = s.login(user, password)
    print("logged in as %s (sid %s)" % (full, s.sid))
    s.request("<presence xmlns='jabber:client'/>")
    msg, _ = s.until(lambda c: c.tag == "{jabber:client}message",
                     "<message xmlns='jabber:client' to='%s' type='chat'><body>hello</body></message>" % full)
    print("message came back: %s" % msg.find("{jabber:client}body").text)
    r = s.terminate()
    print("logged out (%s)" % (r.type or "ok"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
