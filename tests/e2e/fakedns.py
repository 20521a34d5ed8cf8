"""A small DNS server on a loopback UDP port, for the SRV path of sessiond's
resolver without the network: it answers SRV and A queries from a table,
NODATA for other types of a known name, NXDOMAIN for the rest, and records
every question it is asked."""
import socket
import struct
import threading

T_A, T_AAAA, T_SRV = 1, 28, 33


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def decode_name(msg, off):
    labels = []
    while msg[off]:
        n = msg[off]
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    return ".".join(labels).lower(), off + 1


class FakeDns:
    def __init__(self, records):
        """records: {(name, 'SRV'): [(prio, weight, port, target)], (name, 'A'): ['127.0.0.1'],
        (name, 'AAAA'): ['::1']}"""
        self.records = {(n.lower(), t): v for (n, t), v in records.items()}
        self.names = {n for n, _ in self.records}
        self.questions = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.running = True
        threading.Thread(target=self.serve, daemon=True).start()

    def answer(self, qname, qtype):
        if qtype == T_SRV:
            return [struct.pack("!HHH", p, w, port) + encode_name(t)
                    for p, w, port, t in self.records.get((qname, "SRV"), [])]
        if qtype == T_A:
            return [socket.inet_aton(a) for a in self.records.get((qname, "A"), [])]
        if qtype == T_AAAA:
            return [socket.inet_pton(socket.AF_INET6, a) for a in self.records.get((qname, "AAAA"), [])]
        return []

    def reply(self, msg):
        qid, flags = struct.unpack("!HH", msg[:4])
        qname, off = decode_name(msg, 12)
        qtype, qclass = struct.unpack("!HH", msg[off:off + 4])
        question = msg[12:off + 4]
        self.questions.append((qname, qtype))
        rdatas = self.answer(qname, qtype)
        rcode = 0 if qname in self.names else 3
        header = struct.pack("!HHHHHH", qid, 0x8180 | (flags & 0x0100) | rcode, 1, len(rdatas), 0, 0)
        answers = b"".join(b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, 60, len(r)) + r for r in rdatas)
        return header + question + answers

    def serve(self):
        while self.running:
            try:
                msg, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                self.sock.sendto(self.reply(msg), peer)
            except (IndexError, struct.error, OSError):
                pass  # a malformed question gets no answer

    def close(self):
        self.running = False
        self.sock.close()
