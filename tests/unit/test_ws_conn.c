/* WebSocket framing over a socketpair: the test writes raw client frames
 * (masked or not, whole or a byte at a time) and reads what the server
 * side wrote back. */
#define _DEFAULT_SOURCE
#include "buf.h"
#include "check.h"
#include "ws_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

struct seen {
	char text[70000];
	size_t text_len;
	int texts;
	int pongs;
	uint8_t pong[126];
	size_t pong_len;
	int closes, errors;
	uint16_t code;
	const char *why;
	struct ws_conn *conn;   /* for answers from inside a callback */
	int echo;               /* send each text back */
};

static void on_text(void *ctx, const char *msg, size_t len)
{
	struct seen *s = ctx;
	s->texts++;
	if (len < sizeof s->text) {
		if (len) /* an empty message may come as NULL */
			memcpy(s->text, msg, len);
		s->text_len = len;
	}
	if (s->echo)
		CHECK(ws_conn_send_text(s->conn, msg, len) == 0);
}

static void on_pong(void *ctx, const uint8_t *data, size_t len)
{
	struct seen *s = ctx;
	s->pongs++;
	if (len <= sizeof s->pong) {
		memcpy(s->pong, data, len);
		s->pong_len = len;
	}
}

static void on_close(void *ctx, uint16_t code)
{
	struct seen *s = ctx;
	s->closes++;
	s->code = code;
}

static void on_error(void *ctx, uint16_t code, const char *why)
{
	struct seen *s = ctx;
	s->errors++;
	s->code = code;
	s->why = why;
}

static const struct ws_conn_cbs cbs = { on_text, on_pong, on_close, on_error };

struct pair {
	int server, client;
	struct ws_conn *c;
	struct seen s;
};

static void pair_open(struct pair *p, size_t max_msg)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	memset(&p->s, 0, sizeof p->s);
	p->server = sv[0];
	p->client = sv[1];
	/* a test that expects a frame which never comes fails instead of hanging */
	struct timeval tv = { .tv_sec = 2 };
	if (setsockopt(p->client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
		abort();
	if (fcntl(p->server, F_SETFL, O_NONBLOCK) < 0)
		abort();
	p->c = ws_conn_new(p->server, max_msg, &cbs, &p->s, NULL, 0);
	if (!p->c)
		abort();
	p->s.conn = p->c;
}

static void pair_close(struct pair *p)
{
	ws_conn_free(p->c);
	close(p->server);
	close(p->client);
}

/* A client frame: FIN/RSV/opcode byte as given, payload masked unless
 * unmasked; the shortest length form. Returns its size. */
static size_t frame(uint8_t *out, uint8_t b0, const void *payload, size_t len, int masked)
{
	size_t n = 0;
	out[n++] = b0;
	uint8_t m = masked ? 0x80 : 0;
	if (len < 126)
		out[n++] = m | (uint8_t)len;
	else if (len < 65536) {
		out[n++] = m | 126;
		out[n++] = (uint8_t)(len >> 8);
		out[n++] = (uint8_t)len;
	} else {
		out[n++] = m | 127;
		for (int i = 7; i >= 0; i--)
			out[n++] = (uint8_t)((uint64_t)len >> (8 * i));
	}
	static const uint8_t key[4] = { 0x37, 0xfa, 0x21, 0x3d };
	if (masked) {
		memcpy(out + n, key, 4);
		n += 4;
	}
	for (size_t i = 0; i < len; i++)
		out[n + i] = ((const uint8_t *)payload)[i] ^ (masked ? key[i % 4] : 0);
	return n + len;
}

static void put(struct pair *p, const void *data, size_t len)
{
	if (write(p->client, data, len) != (ssize_t)len)
		abort();
}

static void send_frame(struct pair *p, uint8_t b0, const void *payload, size_t len, int masked)
{
	static uint8_t f[70100];
	put(p, f, frame(f, b0, payload, len, masked));
}

/* Reads one server frame (unmasked) from the client end: opcode, payload. */
static int read_frame(struct pair *p, uint8_t *op, uint8_t *payload, size_t *len)
{
	uint8_t h[10];
	if (read(p->client, h, 2) != 2)
		return -1;
	if (h[1] & 0x80)
		return -2; /* a server never masks */
	*op = h[0] & 0x0f;
	size_t l = h[1] & 0x7f;
	if (l == 126) {
		if (read(p->client, h + 2, 2) != 2)
			return -1;
		l = (size_t)h[2] << 8 | h[3];
	} else if (l == 127) {
		if (read(p->client, h + 2, 8) != 8)
			return -1;
		l = 0;
		for (int i = 2; i < 10; i++)
			l = l << 8 | h[i];
	}
	size_t got = 0;
	while (got < l) {
		ssize_t n = read(p->client, payload + got, l - got);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	*len = l;
	return 0;
}

/* The close frame the server wrote: its code (1005 if it had none). */
static int read_close_code(struct pair *p)
{
	uint8_t op, pl[200];
	size_t len;
	if (read_frame(p, &op, pl, &len) < 0 || op != 0x8)
		return -1;
	return len >= 2 ? pl[0] << 8 | pl[1] : 1005;
}

static void test_text_and_park(void)
{
	struct pair p;
	pair_open(&p, 1000);
	CHECK(ws_conn_parked(p.c)); /* nothing yet: no wslay context */
	send_frame(&p, 0x81, "<presence/>", 11, 1);
	CHECK(ws_conn_on_readable(p.c) == WS_OPEN);
	CHECK(p.s.texts == 1);
	CHECK_MEM(p.s.text, p.s.text_len, "<presence/>");
	CHECK(!ws_conn_parked(p.c) && ws_conn_park(p.c) == 1 && ws_conn_parked(p.c));
	/* a message that begins but does not end keeps the context */
	uint8_t f[64];
	size_t n = frame(f, 0x81, "<message/>", 10, 1);
	put(&p, f, 5);
	CHECK(ws_conn_on_readable(p.c) == WS_OPEN);
	CHECK(ws_conn_park(p.c) == 0 && !ws_conn_parked(p.c) && p.s.texts == 1);
	/* the rest a byte at a time */
	for (size_t i = 5; i < n; i++) {
		put(&p, f + i, 1);
		CHECK(ws_conn_on_readable(p.c) == WS_OPEN);
	}
	CHECK(p.s.texts == 2);
	CHECK_MEM(p.s.text, p.s.text_len, "<message/>");
	CHECK(ws_conn_park(p.c) == 1);
	/* an empty text message is a message */
	send_frame(&p, 0x81, "", 0, 1);
	ws_conn_on_readable(p.c);
	CHECK(p.s.texts == 3 && p.s.text_len == 0);
	/* a message at the 16-bit length form */
	static char big[700];
	memset(big, 'a', sizeof big);
	send_frame(&p, 0x81, big, sizeof big, 1);
	CHECK(ws_conn_on_readable(p.c) == WS_OPEN);
	CHECK(p.s.texts == 4 && p.s.text_len == sizeof big);
	CHECK(ws_conn_park(p.c) == 1);
	/* parked and woken again, it goes on */
	send_frame(&p, 0x81, "<iq/>", 5, 1);
	CHECK(ws_conn_on_readable(p.c) == WS_OPEN);
	CHECK(p.s.texts == 5);
	CHECK_MEM(p.s.text, p.s.text_len, "<iq/>");
	pair_close(&p);
}

/* One message over continuation frames, a ping between them: legal. */
static void test_fragmented(void)
{
	struct pair p;
	pair_open(&p, 1000);
	send_frame(&p, 0x01, "<message><bo", 12, 1);
	CHECK(ws_conn_on_readable(p.c) == WS_OPEN);
	CHECK(ws_conn_park(p.c) == 0); /* half a message held */
	send_frame(&p, 0x89, "hi", 2, 1);   /* ping */
	send_frame(&p, 0x00, "dy>caf\xc3", 7, 1);
	send_frame(&p, 0x80, "\xa9</body></message>", 18, 1);
	CHECK(ws_conn_on_readable(p.c) == WS_OPEN);
	CHECK(p.s.texts == 1);
	CHECK_MEM(p.s.text, p.s.text_len, "<message><body>caf\xc3\xa9</body></message>");
	uint8_t op, pl[200];
	size_t len;
	CHECK(read_frame(&p, &op, pl, &len) == 0 && op == 0xA && len == 2 && memcmp(pl, "hi", 2) == 0);
	CHECK(ws_conn_park(p.c) == 1);
	pair_close(&p);
}

/* One hostile input: the close code the server sends and reports, and why
 * (for the log: the rule the client broke). */
static void expect_error(const char *what, const uint8_t *bytes, size_t n, size_t max_msg, int code,
                         const char *why)
{
	struct pair p;
	pair_open(&p, max_msg);
	put(&p, bytes, n);
	enum ws_conn_state st = ws_conn_on_readable(p.c);
	int got = read_close_code(&p);
	if (got != code || p.s.errors != 1 || p.s.code != code || st != WS_DONE || p.s.texts != 0 ||
	    !p.s.why || strcmp(p.s.why, why) != 0) {
		check_failed++;
		fprintf(stderr, "%s: close %d, reported %d (%s), errors %d, state %d; want %d (%s)\n", what, got,
		        p.s.code, p.s.why ? p.s.why : "", p.s.errors, st, code, why);
	} else
		check_passed++;
	CHECK(!ws_conn_want_read(p.c) && !ws_conn_want_write(p.c));
	pair_close(&p);
}

static void test_hostile(void)
{
	uint8_t f[70100];
	size_t n;
	n = frame(f, 0x81, "<presence/>", 11, 0);
	expect_error("unmasked frame", f, n, 1000, 1002,
	             "unmasked frame");
	n = frame(f, 0x82, "\x01\x02", 2, 1);
	expect_error("binary message", f, n, 1000, 1003,
	             "binary message (XMPP is text)");
	static char big[2000];
	memset(big, 'x', sizeof big);
	n = frame(f, 0x81, big, 1001, 1);
	expect_error("message over the limit", f, n, 1000, 1009,
	             "message over the size limit");
	n = frame(f, 0x01, big, 600, 1);
	n += frame(f + n, 0x80, big, 600, 1);
	expect_error("fragments over the limit", f, n, 1000, 1009,
	             "message over the size limit");
	n = frame(f, 0x81, "<a>\xff</a>", 8, 1);
	expect_error("invalid UTF-8", f, n, 1000, 1007,
	             "invalid UTF-8 in a text message");
	n = frame(f, 0x81, "<a>\xed\xa0\x80</a>", 10, 1);
	expect_error("UTF-8 surrogate", f, n, 1000, 1007,
	             "invalid UTF-8 in a text message");
	n = frame(f, 0x81, "<a>\xc3", 4, 1);
	expect_error("UTF-8 cut at the end", f, n, 1000, 1007,
	             "invalid UTF-8 in a text message");
	n = frame(f, 0x83, "x", 1, 1);
	expect_error("reserved data opcode", f, n, 1000, 1002,
	             "reserved opcode");
	n = frame(f, 0x8B, "x", 1, 1);
	expect_error("reserved control opcode", f, n, 1000, 1002,
	             "reserved opcode");
	n = frame(f, 0xC1, "x", 1, 1);
	expect_error("RSV1 without an extension", f, n, 1000, 1002,
	             "reserved bits set (no extension was agreed)");
	n = frame(f, 0x80, "x", 1, 1);
	expect_error("continuation with nothing to continue", f, n, 1000, 1002,
	             "continuation frame with no message begun");
	n = frame(f, 0x01, "a", 1, 1);
	n += frame(f + n, 0x81, "b", 1, 1);
	expect_error("new message inside a fragmented one", f, n, 1000, 1002,
	             "a new message inside a fragmented one");
	n = frame(f, 0x89, big, 126, 1);
	expect_error("ping over 125 bytes", f, n, 1000, 1002,
	             "control frame over 125 bytes");
	n = frame(f, 0x09, "x", 1, 1);
	expect_error("fragmented ping", f, n, 1000, 1002,
	             "fragmented control frame");
	const uint8_t not_shortest[] = { 0x81, 0x80 | 126, 0x00, 0x05, 1, 2, 3, 4, 'a', 'b', 'c', 'd', 'e' };
	expect_error("length not in its shortest form", not_shortest, sizeof not_shortest, 1000, 1002,
	             "frame length not in its shortest form");
	/* judged as soon as wslay judges, before the rest of the header came */
	const uint8_t control_cut[] = { 0x89, 0xff };
	expect_error("ping header cut short", control_cut, sizeof control_cut, 1000, 1002,
	             "control frame over 125 bytes");
	const uint8_t length_cut[] = { 0x81, 0x80 | 126, 0x00, 0x05 };
	expect_error("long length cut before the key", length_cut, sizeof length_cut, 1000, 1002,
	             "frame length not in its shortest form");
	const uint8_t codes[][2] = { { 0x03, 0xED } /* 1005 */, { 0x03, 0xE7 } /* 999 */,
	                             { 0x03, 0xEE } /* 1006 */, { 0x13, 0x88 } /* 5000 */ };
	for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
		n = frame(f, 0x88, codes[i], 2, 1);
		expect_error("invalid close code", f, n, 1000, 1002,
	             "close frame with an invalid code");
	}
	n = frame(f, 0x88, "\x03\xe8\xff", 3, 1);
	expect_error("close reason not UTF-8", f, n, 1000, 1007,
	             "invalid UTF-8 in a text message");
}

/* The rule named for a 1002 is the one the offending frame broke, however
 * the bytes were cut, after frames of every length form, a ping inside a
 * message, and a close code split over two reads. */
static void test_why_in_pieces(void)
{
	static uint8_t f[70100 * 3];
	static char big[70000];
	memset(big, 'x', sizeof big);
	size_t n = frame(f, 0x81, "<a/>", 4, 1);
	n += frame(f + n, 0x01, big, 200, 1);          /* 16-bit length */
	n += frame(f + n, 0x89, "p", 1, 1);             /* a ping inside the message */
	n += frame(f + n, 0x80, big, 66000, 1);         /* 64-bit length, ends it */
	size_t valid = n;
	n += frame(f + n, 0x88, "\x03\xec" "bye", 5, 1); /* 1004 */
	struct pair p;
	pair_open(&p, 70000);
	for (size_t i = 0; i < n; i++) {
		put(&p, f + i, 1);
		ws_conn_on_readable(p.c);
		uint8_t op;
		static uint8_t pl[200];
		size_t len;
		if (i == valid - 1) /* everything before the close is fine: the pong */
			CHECK(p.s.errors == 0 && read_frame(&p, &op, pl, &len) == 0 && op == 0xA);
	}
	CHECK(p.s.texts == 2 && p.s.errors == 1 && p.s.code == 1002);
	CHECK_STR(p.s.why, "close frame with an invalid code");
	CHECK(read_close_code(&p) == 1002);
	pair_close(&p);
	/* a valid code in pieces is the client's close, no error */
	pair_open(&p, 1000);
	n = frame(f, 0x88, "\x0f\xa0", 2, 1); /* 4000 */
	for (size_t i = 0; i < n; i++) {
		put(&p, f + i, 1);
		ws_conn_on_readable(p.c);
	}
	CHECK(p.s.closes == 1 && p.s.errors == 0 && p.s.code == 4000);
	pair_close(&p);
	/* after a parked stretch, the next header is followed from its start */
	pair_open(&p, 1000);
	send_frame(&p, 0x01, "<a", 2, 1);
	send_frame(&p, 0x80, "/>", 2, 1);
	CHECK(ws_conn_on_readable(p.c) == WS_OPEN && ws_conn_park(p.c) == 1);
	send_frame(&p, 0x80, "x", 1, 1);
	CHECK(ws_conn_on_readable(p.c) == WS_DONE);
	CHECK_STR(p.s.why, "continuation frame with no message begun");
	pair_close(&p);
}

static void test_client_close(void)
{
	struct pair p;
	pair_open(&p, 1000);
	send_frame(&p, 0x81, "<a/>", 4, 1);
	send_frame(&p, 0x88, "\x03\xe8" "bye", 5, 1);
	CHECK(ws_conn_on_readable(p.c) == WS_DONE);
	CHECK(p.s.texts == 1 && p.s.closes == 1 && p.s.errors == 0 && p.s.code == 1000);
	CHECK(read_close_code(&p) == 1000);
	CHECK(ws_conn_send_text(p.c, "x", 1) < 0);
	pair_close(&p);
	/* a close with no code */
	pair_open(&p, 1000);
	send_frame(&p, 0x88, "", 0, 1);
	CHECK(ws_conn_on_readable(p.c) == WS_DONE);
	CHECK(p.s.closes == 1 && p.s.code == 1005);
	pair_close(&p);
	/* the connection ends with no close frame */
	pair_open(&p, 1000);
	shutdown(p.client, SHUT_WR);
	CHECK(ws_conn_on_readable(p.c) == WS_DONE);
	CHECK(p.s.errors == 1 && p.s.code == 1006);
	pair_close(&p);
}

static void test_server_side(void)
{
	struct pair p;
	pair_open(&p, 1000);
	/* sending, and the queued bytes as back-pressure */
	CHECK(ws_conn_send_text(p.c, "<message>hi</message>", 21) == 0);
	CHECK(ws_conn_queued_bytes(p.c) == 21 && ws_conn_want_write(p.c));
	CHECK(ws_conn_on_writable(p.c) == WS_OPEN);
	CHECK(ws_conn_queued_bytes(p.c) == 0 && !ws_conn_want_write(p.c) && ws_conn_park(p.c) == 1);
	uint8_t op, pl[70000];
	size_t len;
	CHECK(read_frame(&p, &op, pl, &len) == 0 && op == 0x1);
	CHECK_MEM(pl, len, "<message>hi</message>");
	/* a client that never reads: the queue grows, nothing is lost */
	static char chunk[16384];
	memset(chunk, 'm', sizeof chunk);
	int i;
	for (i = 0; i < 64; i++) {
		CHECK(ws_conn_send_text(p.c, chunk, sizeof chunk) == 0);
		ws_conn_on_writable(p.c);
	}
	CHECK(ws_conn_queued_bytes(p.c) > 0 && ws_conn_want_write(p.c) && ws_conn_park(p.c) == 0);
	size_t total = 0;
	while (ws_conn_want_write(p.c) || total < 64 * sizeof chunk) {
		if (read_frame(&p, &op, pl, &len) < 0 || op != 1 || len != sizeof chunk)
			break;
		total += len;
		ws_conn_on_writable(p.c);
	}
	CHECK(total == 64 * sizeof chunk && ws_conn_queued_bytes(p.c) == 0);
	/* ping and pong */
	CHECK(ws_conn_ping(p.c, (const uint8_t *)"42", 2) == 0);
	ws_conn_on_writable(p.c);
	CHECK(read_frame(&p, &op, pl, &len) == 0 && op == 0x9 && len == 2);
	send_frame(&p, 0x8A, "42", 2, 1);
	CHECK(ws_conn_on_readable(p.c) == WS_OPEN);
	CHECK(p.s.pongs == 1 && p.s.pong_len == 2 && memcmp(p.s.pong, "42", 2) == 0);
	/* an answer queued from inside on_text goes out in the same turn */
	p.s.echo = 1;
	send_frame(&p, 0x81, "<iq/>", 5, 1);
	ws_conn_on_readable(p.c);
	CHECK(read_frame(&p, &op, pl, &len) == 0 && op == 0x1);
	CHECK_MEM(pl, len, "<iq/>");
	/* we close: the client answers */
	CHECK(ws_conn_close(p.c, 1000, NULL) == 0);
	CHECK(ws_conn_close(p.c, 1000, NULL) < 0);
	CHECK(ws_conn_on_writable(p.c) == WS_CLOSING);
	CHECK(read_close_code(&p) == 1000);
	CHECK(ws_conn_want_read(p.c));
	send_frame(&p, 0x88, "\x03\xe8", 2, 1);
	CHECK(ws_conn_on_readable(p.c) == WS_DONE);
	CHECK(p.s.closes == 1 && p.s.errors == 0);
	pair_close(&p);
}

/* An idle (parked) connection pinged holds wslay's context only until the
 * pong is in; one the client spoke on in between, or one that was not
 * parked, is left to the caller's quiet second. */
static void test_ping_reparks(void)
{
	struct pair p;
	uint8_t op, pl[200];
	size_t len;
	pair_open(&p, 1000);
	CHECK(ws_conn_parked(p.c));
	CHECK(ws_conn_ping(p.c, (const uint8_t *)"p1", 2) == 0);
	CHECK(!ws_conn_parked(p.c));
	ws_conn_on_writable(p.c);
	CHECK(read_frame(&p, &op, pl, &len) == 0 && op == 0x9 && len == 2);
	send_frame(&p, 0x8A, "p1", 2, 1);
	CHECK(ws_conn_on_readable(p.c) == WS_OPEN);
	CHECK(p.s.pongs == 1 && ws_conn_parked(p.c));

	/* the client speaks before its pong: not parked by the pong */
	CHECK(ws_conn_ping(p.c, (const uint8_t *)"p2", 2) == 0);
	ws_conn_on_writable(p.c);
	CHECK(read_frame(&p, &op, pl, &len) == 0 && op == 0x9);
	send_frame(&p, 0x81, "<presence/>", 11, 1);
	CHECK(ws_conn_on_readable(p.c) == WS_OPEN);
	send_frame(&p, 0x8A, "p2", 2, 1);
	CHECK(ws_conn_on_readable(p.c) == WS_OPEN);
	CHECK(p.s.pongs == 2 && p.s.texts == 1 && !ws_conn_parked(p.c));

	/* not parked when pinged: still not parked after the pong */
	CHECK(ws_conn_ping(p.c, (const uint8_t *)"p3", 2) == 0);
	ws_conn_on_writable(p.c);
	CHECK(read_frame(&p, &op, pl, &len) == 0 && op == 0x9);
	send_frame(&p, 0x8A, "p3", 2, 1);
	CHECK(ws_conn_on_readable(p.c) == WS_OPEN);
	CHECK(p.s.pongs == 3 && !ws_conn_parked(p.c));
	CHECK(ws_conn_park(p.c) == 1);

	/* a pong and the start of a message in one read: the message is held */
	CHECK(ws_conn_ping(p.c, (const uint8_t *)"p4", 2) == 0);
	ws_conn_on_writable(p.c);
	CHECK(read_frame(&p, &op, pl, &len) == 0 && op == 0x9);
	uint8_t f[64];
	size_t n = frame(f, 0x8A, "p4", 2, 1);
	n += frame(f + n, 0x81, "<message/>", 10, 1) - 4; /* all but its last 4 bytes */
	put(&p, f, n);
	CHECK(ws_conn_on_readable(p.c) == WS_OPEN);
	CHECK(p.s.pongs == 4 && !ws_conn_parked(p.c));
	put(&p, "\0\0\0\0", 4); /* the rest (its content does not matter here) */
	ws_conn_on_readable(p.c);
	pair_close(&p);
}

/* A client that sends more than one call reads: the rest waits for the
 * next call, nothing is lost. */
static void test_read_budget(void)
{
	struct pair p;
	pair_open(&p, 70000);
	static char big[60000];
	memset(big, 'b', sizeof big);
	send_frame(&p, 0x81, big, sizeof big, 1);
	send_frame(&p, 0x81, big, sizeof big, 1);
	CHECK(ws_conn_on_readable(p.c) == WS_OPEN);
	CHECK(p.s.texts == 1);
	CHECK(ws_conn_on_readable(p.c) == WS_OPEN);
	CHECK(p.s.texts == 2 && p.s.text_len == sizeof big);
	CHECK(ws_conn_park(p.c) == 1);
	pair_close(&p);
}

/* A protocol error while the client does not read: the close waits in the
 * queue, the error is reported at once without a code, and the close goes
 * out (1002) once the client reads. */
static void test_error_not_reading(void)
{
	struct pair p;
	pair_open(&p, 1000);
	static char chunk[60000];
	memset(chunk, 'q', sizeof chunk);
	for (int i = 0; i < 16 && !ws_conn_queued_bytes(p.c); i++) {
		CHECK(ws_conn_send_text(p.c, chunk, sizeof chunk) == 0);
		ws_conn_on_writable(p.c);
	}
	CHECK(ws_conn_queued_bytes(p.c) > 0);
	send_frame(&p, 0x81, "x", 1, 0); /* unmasked */
	CHECK(ws_conn_on_readable(p.c) == WS_CLOSING);
	CHECK(p.s.errors == 1 && p.s.code == 0);
	CHECK(ws_conn_send_text(p.c, "more", 4) < 0);
	static uint8_t pl[70000];
	uint8_t op;
	size_t len;
	int code = -1;
	for (int guard = 0; guard < 1000 && ws_conn_state(p.c) != WS_DONE; guard++) {
		if (read_frame(&p, &op, pl, &len) < 0)
			break;
		if (op == 0x8)
			code = len >= 2 ? pl[0] << 8 | pl[1] : 1005;
		ws_conn_on_writable(p.c);
	}
	while (code < 0 && read_frame(&p, &op, pl, &len) == 0)
		if (op == 0x8)
			code = len >= 2 ? pl[0] << 8 | pl[1] : 1005;
	CHECK(code == 1002);
	CHECK(ws_conn_state(p.c) == WS_DONE && p.s.errors == 1);
	pair_close(&p);
}

/* Bytes read with the handshake come first. */
static void test_initial(void)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0)
		abort();
	uint8_t f[64];
	size_t n = frame(f, 0x81, "<open/>", 7, 1);
	struct seen s = { 0 };
	struct ws_conn *c = ws_conn_new(sv[0], 100, &cbs, &s, f, 4);
	if (write(sv[1], f + 4, n - 4) != (ssize_t)(n - 4))
		abort();
	CHECK(ws_conn_on_readable(c) == WS_OPEN);
	CHECK(s.texts == 1);
	CHECK_MEM(s.text, s.text_len, "<open/>");
	ws_conn_free(c);
	close(sv[0]);
	close(sv[1]);
}

/* A restart's successor: a new ws_conn on the same descriptor from what
 * the old one detached. */
static void successor(struct pair *p, const struct buf *unread, const struct buf *unsent)
{
	ws_conn_free(p->c);
	memset(&p->s, 0, sizeof p->s);
	p->c = ws_conn_new(p->server, 1000, &cbs, &p->s, unread->data, unread->len);
	CHECK(p->c != NULL);
	CHECK(ws_conn_set_unsent(p->c, unsent->data, unsent->len) == 0);
	p->s.conn = p->c;
}

/* Half a frame and half a fragmented message go over; a message already
 * delivered is not delivered again. */
static void test_detach_half_read(void)
{
	struct pair p;
	pair_open(&p, 1000);
	uint8_t f[256];
	send_frame(&p, 0x81, "<done/>", 7, 1);              /* complete: delivered now */
	send_frame(&p, 0x01, "<iq>", 4, 1);                 /* first fragment */
	send_frame(&p, 0x89, "ping", 4, 1);                 /* a ping between fragments */
	size_t n = frame(f, 0x80, "<x/></iq>", 9, 1);       /* the last fragment, half of it */
	put(&p, f, 5);
	CHECK(ws_conn_on_readable(p.c) == WS_OPEN);
	CHECK(p.s.texts == 1);
	CHECK(ws_conn_park(p.c) == 0); /* in flight: it cannot simply park */
	struct buf unread = { 0 }, unsent = { 0 };
	CHECK(ws_conn_detach(p.c, &unread, &unsent) == 0);
	CHECK(unread.len > 0);
	successor(&p, &unread, &unsent);
	put(&p, f + 5, n - 5);
	CHECK(ws_conn_on_readable(p.c) == WS_OPEN);
	CHECK(p.s.texts == 1);
	CHECK_MEM(p.s.text, p.s.text_len, "<iq><x/></iq>");
	/* the pong from before the restart (or one from after: either) reached the client */
	uint8_t op, pl[200];
	size_t len;
	int pong = 0;
	while (!pong && read_frame(&p, &op, pl, &len) == 0)
		pong = op == 0xA && len == 4 && memcmp(pl, "ping", 4) == 0;
	CHECK(pong);
	buf_free(&unread);
	buf_free(&unsent);
	pair_close(&p);
}

/* Frames the client has not read yet, one half written, go over as bytes
 * and reach it whole, before what the successor sends. */
static void test_detach_unsent(void)
{
	struct pair p;
	pair_open(&p, 1000);
	int small = 4096;
	CHECK(setsockopt(p.server, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
	static char msg[3000];
	memset(msg, 'a', sizeof msg);
	int queued = 0;
	while (ws_conn_queued_bytes(p.c) == 0 || queued < 20) {
		msg[0] = (char)('A' + queued % 26);
		CHECK(ws_conn_send_text(p.c, msg, sizeof msg) == 0);
		ws_conn_on_writable(p.c);
		queued++;
	}
	CHECK(ws_conn_queued_bytes(p.c) > 0);
	struct buf unread = { 0 }, unsent = { 0 };
	CHECK(ws_conn_detach(p.c, &unread, &unsent) == 0);
	CHECK(unsent.len > 0 && unread.len == 0);
	successor(&p, &unread, &unsent);
	CHECK(ws_conn_queued_bytes(p.c) == unsent.len);
	CHECK(ws_conn_want_write(p.c));
	CHECK(ws_conn_send_text(p.c, "<last/>", 7) == 0);
	static uint8_t pl[4000];
	size_t len;
	uint8_t op;
	int got = 0, bad = 0;
	for (;;) {
		ws_conn_on_writable(p.c);
		if (read_frame(&p, &op, pl, &len) < 0)
			break;
		if (len == 7 && memcmp(pl, "<last/>", 7) == 0)
			break;
		bad += op != 0x1 || len != sizeof msg || pl[0] != 'A' + got % 26;
		got++;
	}
	CHECK(got == queued && bad == 0);
	CHECK(ws_conn_queued_bytes(p.c) == 0);
	buf_free(&unread);
	buf_free(&unsent);
	pair_close(&p);
}

/* A connection that is closing does not detach. */
static void test_detach_refused_when_closing(void)
{
	struct pair p;
	pair_open(&p, 1000);
	CHECK(ws_conn_close(p.c, 1000, NULL) == 0);
	struct buf unread = { 0 }, unsent = { 0 };
	CHECK(ws_conn_detach(p.c, &unread, &unsent) == -1);
	buf_free(&unread);
	buf_free(&unsent);
	pair_close(&p);
}

int main(void)
{
	test_detach_half_read();
	test_detach_unsent();
	test_detach_refused_when_closing();
	test_text_and_park();
	test_ping_reparks();
	test_fragmented();
	test_hostile();
	test_why_in_pieces();
	test_client_close();
	test_server_side();
	test_initial();
	test_read_budget();
	test_error_not_reading();
	return check_summary("ws_conn");
}
