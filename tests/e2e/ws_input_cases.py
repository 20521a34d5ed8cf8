"""End-to-end cases for what a WebSocket client may send wrong (RFC 6455
framing, RFC 7395 messages, the opening handshake): each gets the close code
or HTTP status the RFCs call for, a log line that says why, and harms no
other session. The client is ws_cases.py's; handshakes that nginx would
refuse itself go to sessiond's ws_socket directly."""
import os
import re
import select
import socket
import struct
import time
import xml.etree.ElementTree as ET

from cases import case, expect
from ws_cases import FRAMING, Closed, login, ping_iq, start, tag, ws_row

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def c_define(path, name):
    """A number #defined in one of sessiond's headers: the tests follow the code's bounds."""
    with open(os.path.join(REPO, path)) as f:
        m = re.search(r"^#define %s (\d+)" % name, f.read(), re.M)
    expect(m, "no #define %s in %s" % (name, path))
    return int(m.group(1))


def max_data_held(st):
    """The bound on one received message: the configuration's, else the default."""
    with open(st.conf) as f:
        for line in reversed(f.read().splitlines()):
            k, _, v = line.partition("=")
            if k.strip() == "max_data_held":
                return int(v)
    with open(os.path.join(REPO, "common", "config.c")) as f:
        return int(re.search(r"c->max_data_held = (\d+);", f.read()).group(1))


class Log:
    """What sessiond logs from now on (earlier cases wrote the same kinds of lines)."""

    def __init__(self, st):
        self.path = st.sessiond_log
        self.start = os.path.getsize(self.path)

    def text(self):
        with open(self.path, errors="replace") as f:
            f.seek(self.start)
            return f.read()

    def wait(self, text, timeout=3.0):
        deadline = time.time() + timeout
        while text not in self.text():
            if time.time() > deadline:
                raise AssertionError("no log line %r in:\n%s" % (text, self.text()[-2000:]))
            time.sleep(0.05)


def refusals(st, tries):
    """tries: (label, send(ws), close code, log text). Each on a new session
    (after <open/> and the features); a witness session works all along and
    sessiond is the same process at the end. Returns the messages each got."""
    pid = st.sessiond.pid
    witness = login(st, "carol", "input-witness")
    got = {}
    for label, send, want, text in tries:
        log = Log(st)
        ws = start(st)
        ws.element()  # the features
        send(ws)
        msgs, code = ws.until_closed()
        ws.close()
        got[label] = msgs
        expect(code == want, "%s: close code %r, not %r (messages %r)" % (label, code, want, msgs))
        log.wait(text)
        expect(ping_iq(witness, st, "w-" + label).get("type") == "result", "%s harmed the witness" % label)
    expect(st.sessiond.alive() and st.sessiond.pid == pid, "sessiond is not the same process")
    witness.send("<close xmlns='%s'/>" % FRAMING)
    witness.until_closed()
    witness.close()
    return got


RSV = "reserved bits set (no extension was agreed)"


def protocol_error(why):
    return "(client 127.0.0.1): %s (close code 1002)" % why


def ping_stanza(st, ident, pad=0):
    """A ping to the server; pad > 0: grown to exactly pad bytes inside the
    <ping/>, which the server ignores (an iq has one child)."""
    ping = "<ping xmlns='urn:xmpp:ping'/>"
    if pad:
        ping = "<ping xmlns='urn:xmpp:ping'><x xmlns='urn:example:pad'>%s</x></ping>"
    whole = "<iq xmlns='jabber:client' type='get' id='%s' to='%s'>%s</iq>" % (ident, st.domain, ping)
    if not pad:
        return whole
    n = pad - len(whole.replace("%s", ""))
    expect(n >= 0, "pad %d too small" % pad)
    return whole.replace("%s", "a" * n)


def until_id(ws, ident, timeout=10):
    """Frames until the element with this id: (element, pongs seen)."""
    pongs = []
    ws.sock.settimeout(timeout)
    while True:
        op, data = ws.recv_frame()
        if op == 10:
            pongs.append(data)
        elif op == 9:
            ws.frame(10, data)
        elif op == 8:
            raise Closed(struct.unpack(">H", data[:2])[0] if len(data) >= 2 else 1005)
        elif op == 1:
            e = ET.fromstring(data.decode())
            if e.get("id") == ident:
                return e, pongs


# ---- framing (RFC 6455 §5) ----

@case
def test_ws_input_fragmented_message_with_a_ping_between(st):
    """A text frame and two continuations, a ping between the fragments
    (RFC 6455 §5.4: control frames may come in the middle): one stanza."""
    ws = login(st, "alice", "fragments")
    whole = ping_stanza(st, "frag")
    a, b = len(whole) // 3, 2 * len(whole) // 3
    ws.frame(1, whole[:a].encode(), fin=False)
    ws.frame(9, b"between-1")
    ws.frame(0, whole[a:b].encode(), fin=False)
    ws.frame(9, b"between-2")
    ws.frame(0, whole[b:].encode(), fin=True)
    res, pongs = until_id(ws, "frag")
    expect(res.get("type") == "result", "the fragmented iq: %s" % ET.tostring(res))
    ws.sock.settimeout(2)
    while len(pongs) < 2:  # a pong may come after the answer
        op, data = ws.recv_frame()
        if op == 10:
            pongs.append(data)
    expect(pongs == [b"between-1", b"between-2"], "pongs %r" % pongs)
    # and the session goes on as before
    expect(ping_iq(ws, st, "after").get("type") == "result", "no answer after the fragments")
    ws.send("<close xmlns='%s'/>" % FRAMING)
    _, code = ws.until_closed()
    expect(code == 1000, "close code %r" % code)
    ws.close()


@case
def test_ws_input_unmasked_reserved_opcodes_and_bits(st):
    body = b"<presence xmlns='jabber:client'/>"
    refusals(st, [
        ("unmasked", lambda ws: ws.frame(1, body, mask=False), 1002, protocol_error("unmasked frame")),
        ("opcode-0x3", lambda ws: ws.frame(0x3, body), 1002, protocol_error("reserved opcode")),
        ("opcode-0xB", lambda ws: ws.frame(0xB, b""), 1002, protocol_error("reserved opcode")),
        # frame() ORs the opcode into the first byte: RSV1 0x40, RSV2 0x20, RSV3 0x10
        ("rsv1", lambda ws: ws.frame(0x40 | 1, body), 1002, protocol_error(RSV)),
        ("rsv2", lambda ws: ws.frame(0x20 | 1, body), 1002, protocol_error(RSV)),
        ("rsv3", lambda ws: ws.frame(0x10 | 1, body), 1002, protocol_error(RSV)),
        ("continuation-first", lambda ws: ws.frame(0, body), 1002,
         protocol_error("continuation frame with no message begun")),
        # RFC 6455 §5.4: a message's fragments are not interleaved with another message's
        ("text-inside-a-message", lambda ws: (ws.frame(1, b"<presence ", fin=False), ws.frame(1, body)), 1002,
         protocol_error("a new message inside a fragmented one")),
    ])


@case
def test_ws_input_bad_control_frames(st):
    refusals(st, [
        ("ping-126", lambda ws: ws.frame(9, b"x" * 126), 1002, protocol_error("control frame over 125 bytes")),
        ("close-126", lambda ws: ws.frame(8, struct.pack(">H", 1000) + b"x" * 124), 1002,
         protocol_error("control frame over 125 bytes")),
        ("ping-fin0", lambda ws: ws.frame(9, b"x", fin=False), 1002, protocol_error("fragmented control frame")),
    ])


@case
def test_ws_input_invalid_close_codes(st):
    """RFC 6455 §7.4: 0-999 unused, 1004-1006 and 1015 never on the wire,
    5000 and up undefined: answered with our own close, 1002."""
    refusals(st, [("close-%d" % c, lambda ws, c=c: ws.frame(8, struct.pack(">H", c) + b"bye"), 1002,
                   protocol_error("close frame with an invalid code"))
                  for c in (0, 999, 1004, 1005, 1006, 1015, 5000)])


@case
def test_ws_input_valid_close_codes_are_echoed(st):
    for c, condition in ((1000, "client-closed"), (3000, "client-closed-3000"), (4000, "client-closed-4000")):
        log = Log(st)
        ws = login(st, "bob", "close-%d" % c)
        ws.frame(8, struct.pack(">H", c) + b"done")
        msgs, code = ws.until_closed()
        ws.close()
        expect(code == c, "client close %d answered with %r (messages %r)" % (c, code, msgs))
        r = ws_row(st, ws.jid, lambda r: r["state"] == "ended")
        expect(r["end_condition"] == condition, "close %d: row %r" % (c, r))
        log.wait("session %s ended: jid=%s client=127.0.0.1" % (r["sid"], ws.jid))
        log.wait("condition=%s transport=websocket\n" % condition)


# ---- sizes (max_data_held bounds one message) ----

@case
def test_ws_input_message_over_the_limit(st):
    limit = max_data_held(st)
    # at the limit: a message in two fragments that adds up to exactly it is fine
    ws = login(st, "alice", "at-limit")
    whole = ping_stanza(st, "full", pad=limit).encode()
    expect(len(whole) == limit, len(whole))
    ws.frame(1, whole[:limit // 2], fin=False)
    ws.frame(0, whole[limit // 2:], fin=True)
    res, _ = until_id(ws, "full", timeout=20)
    expect(res.get("type") == "result", "a message of max_data_held bytes: %s" % ET.tostring(res))
    ws.send("<close xmlns='%s'/>" % FRAMING)
    ws.until_closed()
    ws.close()

    def one_frame(ws):
        # the header says limit+1: refused on the first bytes, not after buffering them
        n = limit + 1
        key = os.urandom(4)
        ws.sock.sendall(bytes([0x81, 0x80 | 127]) + struct.pack(">Q", n) + key + b"<" * 1000)

    def fragments(ws):
        over = ping_stanza(st, "over", pad=limit + 1).encode()
        ws.frame(1, over[:limit // 2], fin=False)
        ws.frame(0, over[limit // 2:], fin=True)

    why = "(client 127.0.0.1): message over the size limit (close code 1009)"
    refusals(st, [("one-frame", one_frame, 1009, why), ("fragments", fragments, 1009, why)])


# ---- RFC 7395 messages ----

@case
def test_ws_input_stanza_split_over_two_messages(st):
    """RFC 7395 §3.3.3: a message is one complete element. Half a stanza is
    refused (a <stream:error> not-well-formed, <close/>, and 1008 from
    ws_session.c's refuse), and nothing of it reaches the server: the other
    half would complete it there."""
    witness = login(st, "carol", "split-witness")
    log = Log(st)
    ws = login(st, "alice", "split")
    ws.send("<message xmlns='jabber:client' to='%s' type='chat'><body>split" % witness.jid)
    ws.send(" in two</body></message>")
    msgs, code = ws.until_closed()
    ws.close()
    expect(code == 1008, "close code %r (messages %r)" % (code, msgs))
    expect(any("not-well-formed" in m for m in msgs) and any("<close" in m for m in msgs), msgs)
    log.wait("element not complete (a message holds one whole element); closing with not-well-formed")
    witness.send(ping_stanza(st, "split-w"))
    while True:
        e = witness.element()
        expect(tag(e) != "message", "half a stanza reached the server: %s" % ET.tostring(e))
        if e.get("id") == "split-w":
            break
    witness.close()


@case
def test_ws_input_text_that_is_not_xml(st):
    got = refusals(st, [
        ("words", lambda ws: ws.send("hello there"), 1008, "not XML (syntax error); closing with not-well-formed"),
        ("json", lambda ws: ws.send('{"presence": true}'), 1008,
         "not XML, or not valid UTF-8; closing with not-well-formed"),
        ("empty", lambda ws: ws.send(""), 1008, "no element (empty or text only); closing with not-well-formed"),
        # half a start tag, the rest in the next message
        ("half-tag", lambda ws: (ws.send("<presence xmlns='jabber:client' type='unavail"), ws.send("able'/>")),
         1008, "element not complete (a message holds one whole element); closing with not-well-formed"),
    ])
    for label, msgs in got.items():
        expect(any("not-well-formed" in m for m in msgs) and any("<close" in m for m in msgs), (label, msgs))


# ---- the opening handshake, at sessiond's own socket ----

def complete(answer):
    """A whole HTTP answer: the head of a 101, or the head and Content-Length bytes."""
    head, sep, body = answer.partition(b"\r\n\r\n")
    if not sep:
        return False
    if head.startswith(b"HTTP/1.1 101"):
        return True
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return m is not None and len(body) >= int(m.group(1))


def raw_handshake(st, request, port=None):
    """Sends request as it is to ws_socket (or nginx's port); returns
    (status, headers, body): the answer, or 0 when the connection was closed without one."""
    if port:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(st.ws_sock)
    data = b""
    try:
        s.sendall(request)
        while not complete(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass  # closed with (the rest of) our request unread: what came first stays
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split()
    status = int(parts[1]) if len(parts) > 1 else 0
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return status, headers, body


def request(extra="", version="13", upgrade=True, path="/xmpp-websocket"):
    req = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % path
    if upgrade:
        req += ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: %s\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: xmpp\r\n" % version)
    return (req + extra + "\r\n").encode()


BASE_HEADERS = 6  # request()'s header lines with upgrade=True


@case
def test_ws_input_handshake_bounds(st):
    size = c_define("sessiond/ws_handshake.h", "WS_HS_MAX_SIZE")
    count = c_define("sessiond/ws_handshake.h", "WS_HS_MAX_HEADERS")
    line = c_define("sessiond/ws_handshake.h", "WS_HS_MAX_LINE")
    pid = st.sessiond.pid
    witness = login(st, "carol", "hs-witness")

    def pads(n, width=1):
        return "".join("X-Pad-%d: %s\r\n" % (i, "a" * width) for i in range(n))

    def exactly(total):
        """Padding headers that make request(extra) exactly total bytes long,
        in as few lines as WS_HS_MAX_LINE allows."""
        room = total - len(request())
        k = -(-room // (line - 2))
        out = ""
        for i in range(k):
            n = room // k + (1 if i < room % k else 0)  # this line's bytes, CRLF included
            name = "X-Pad-%d: " % i
            out += name + "a" * (n - len(name) - 2) + "\r\n"
        expect(len(request(out)) == total, "padding is %d bytes, not %d" % (len(request(out)), total))
        return out

    tries = [
        # the bounds themselves are allowed
        ("at-size", request(exactly(size)), 101, None),
        ("at-count", request(pads(count - BASE_HEADERS)), 101, None),
        ("at-line", request("X-Long: %s\r\n" % ("a" * (line - len("X-Long: ") - 2))), 101, None),
        # one past them is not
        ("over-size", request(exactly(size + 1)), 431, "refused (431): handshake larger than its limit"),
        ("over-count", request(pads(count - BASE_HEADERS + 1)), 431, "refused (431): too many header lines"),
        ("over-line", request("X-Long: %s\r\n" % ("a" * (line - len("X-Long: ") - 1))), 431,
         "refused (431): header line too long"),
        ("long-target", request(path="/" + "a" * line), 414, "refused (414): request line too long"),
        ("no-upgrade", request(upgrade=False), 400,
         "refused (400): not a WebSocket upgrade (no Upgrade: websocket)"),
        ("version-8", request(version="8"), 426, "refused (426): Sec-WebSocket-Version is missing or not 13"),
    ]
    for label, req, want, text in tries:
        log = Log(st)
        status, headers, body = raw_handshake(st, req)
        expect(status == want, "%s (%d bytes): answered %d, not %d" % (label, len(req), status, want))
        if want == 101:
            expect(headers.get("sec-websocket-protocol") == "xmpp", (label, headers))
            continue
        expect(headers.get("connection", "").lower() == "close", (label, headers))
        expect(int(headers.get("content-length", -1)) == len(body), (label, headers, body))
        log.wait(text)
        if want == 426:  # RFC 6455 §4.4: the versions we speak
            expect(headers.get("sec-websocket-version") == "13", headers)
    # what a browser sees through nginx for a wrong version
    status, headers, _ = raw_handshake(st, request(version="8").replace(b"Host: 127.0.0.1",
                                       b"Host: 127.0.0.1:%d" % st.http_port), port=st.http_port)
    expect(status == 426 and headers.get("sec-websocket-version") == "13", (status, headers))
    expect(ping_iq(witness, st, "hs-w").get("type") == "result", "the witness was harmed")
    witness.close()
    expect(st.sessiond.alive() and st.sessiond.pid == pid, "sessiond is not the same process")


@case
def test_ws_input_many_handshakes_left_incomplete(st):
    """More than WS_HS_MAX_PENDING connections that send half a request line:
    past the bound new ones are refused (and logged); sessions already open
    go on; after WS_HS_DEADLINE_MS the half ones are closed and a new client
    gets in."""
    bound = c_define("sessiond/ws_session.h", "WS_HS_MAX_PENDING")
    deadline_s = c_define("sessiond/ws_session.h", "WS_HS_DEADLINE_MS") / 1000.0
    extra = 8
    witness = login(st, "carol", "flood-witness")
    log = Log(st)
    socks = []
    t0 = time.time()
    try:
        for _ in range(bound + extra):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(st.ws_sock)
            socks.append(s)
            try:
                s.sendall(b"GET /xmpp-webs")
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused past the bound before it wrote: counted with the closed ones below
        log.wait("%d websocket handshakes incomplete; refusing a connection" % bound)

        def closed_ones(timeout):
            """The sockets sessiond closed (readable, and EOF), after waiting up to timeout."""
            p = select.poll()
            for s in socks:
                p.register(s, select.POLLIN | select.POLLHUP)
            p.poll(int(timeout * 1000))
            gone = set()
            for fd, _ in p.poll(0):
                s = next(x for x in socks if x.fileno() == fd)
                s.setblocking(False)
                try:
                    if s.recv(1) == b"":
                        gone.add(fd)
                except ConnectionResetError:
                    gone.add(fd)
                except BlockingIOError:
                    pass
            return gone

        gone = set()
        while len(gone) < extra and time.time() < t0 + deadline_s / 2:
            gone = closed_ones(0.2)
        gone = closed_ones(0.5)  # and no more than those
        expect(len(gone) == extra, "%d of %d connections closed at once, not the %d past the bound"
               % (len(gone), len(socks), extra))
        # a complete handshake is refused too while the bound is reached
        status, _, _ = raw_handshake(st, request())
        expect(status == 0, "a handshake past the bound was answered %d" % status)
        # sessions already open are not affected
        expect(ping_iq(witness, st, "flood-w").get("type") == "result", "the witness was harmed")
        # the half ones are closed at their deadline
        while len(gone) < len(socks) and time.time() < t0 + deadline_s + 5:
            gone = closed_ones(0.5)
        expect(len(gone) == len(socks), "%d of %d still open %.0f s after they connected"
               % (len(socks) - len(gone), len(socks), time.time() - t0))
        expect(time.time() - t0 >= deadline_s - 1, "closed before their deadline")
        log.wait("not complete within %d s; closed" % deadline_s)
    finally:
        for s in socks:
            s.close()
    # room again: a handshake is answered, and a session starts through nginx
    status, _, _ = raw_handshake(st, request())
    expect(status == 101, "after the deadline a handshake was answered %d" % status)
    ws = login(st, "alice", "after-flood")
    expect(ping_iq(ws, st, "af").get("type") == "result", "no answer after the flood")
    ws.close()
    witness.close()
