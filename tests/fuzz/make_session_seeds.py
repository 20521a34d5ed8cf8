#!/usr/bin/env python3
"""Writes the seed inputs of fuzz_session into seeds/session/. Each seed
is a list of operations: op byte, 2-byte length, data (fuzz_session.c)."""
import os
import struct

NS = "xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh'"


def op(kind, data):
    data = data.encode() if isinstance(data, str) else data
    return bytes([kind]) + struct.pack(">H", len(data)) + data


def create(extra=""):
    return op(0, "<body %s to='fuzz.test' rid='1000' wait='1' hold='1' ver='1.6' xml:lang='en' "
                 "xmpp:version='1.0'%s/>" % (NS, extra))


def req(attrs="", payload=""):
    if payload:
        return op(0, "<body %s sid='$S' rid='$R'%s>%s</body>" % (NS, attrs, payload))
    return op(0, "<body %s sid='$S' rid='$R'%s/>" % (NS, attrs))


MSG = "<message xmlns='jabber:client' to='b@fuzz.test'><body>hi &amp; bye</body></message>"
SEEDS = {
    "create": create(),
    "create-odd": create(" content='text/html; charset=utf-8' route='xmpp:fuzz.test:5222' "
                         "from='a@fuzz.test' newkey='%s'" % ("a" * 40)),
    "chat": create() + req(payload=MSG) + op(1, "<message from='b@fuzz.test'><body>yo</body></message>")
            + req(),
    "restart": create() + op(1, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
               + req(" xmpp:restart='true'") + op(1, "<?xml version='1.0'?><stream:stream "
               "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='2' "
               "from='fuzz.test' version='1.0'><stream:features/>") + req(),
    "terminate": create() + req(" type='terminate'", "<presence xmlns='jabber:client' type='unavailable'/>"),
    "stream-error": create() + op(1, "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                                  "</stream:error></stream:stream>") + req(),
    "add-stream": create() + req(" to='fuzz.test' xml:lang='de'") + req(" stream='x'", MSG),
    "pause-ack": create(" ack='1'") + req(" pause='5'") + req(" ack='1001'"),
    "get": op(2, "<body %s to='fuzz.test' rid='5' ver='1.6'/>" % NS) + op(3, "x"),
    "repeat": create() + req() + op(0, "<body %s sid='$S' rid='1001'/>" % NS),
}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "session")
os.makedirs(out, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
