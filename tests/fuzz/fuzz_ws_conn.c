/* Raw bytes from a WebSocket client, through a socketpair, in pieces the
 * first byte picks: ws_conn delivers only whole, valid UTF-8 text messages
 * within the limit, reports at most one ending, and never faults. Texts
 * are echoed back, so the write side runs too; the same input with the
 * connection parked after every piece gives the same messages. A close
 * with 1002 always names the rule broken. */
#define _DEFAULT_SOURCE
#include "utf8.h"
#include "ws_conn.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_MSG 1024

struct st {
	struct ws_conn *c;
	int endings;
	uint16_t code;
	uint64_t digest;      /* of every text delivered, in order */
};

static void mix(struct st *s, const void *data, size_t len)
{
	const uint8_t *p = data;
	for (size_t i = 0; i < len; i++)
		s->digest = (s->digest ^ p[i]) * 0x100000001b3ull;
	s->digest = (s->digest ^ 0xff) * 0x100000001b3ull ^ len;
}

/* Well-formed UTF-8 (NULs included). wslay also lets U+FFFE/U+FFFF
 * through: UTF-8 but not XML characters, which the XML layer refuses. */
static int utf8_ok(const char *msg, size_t len)
{
	char tmp[MAX_MSG + 4] = { 0 };
	memcpy(tmp, msg, len);
	for (size_t i = 0; i < len;) {
		int n = tmp[i] ? utf8_valid_len(tmp + i) : 1;
		if (!n && (memcmp(tmp + i, "\xef\xbf\xbe", 3) == 0 || memcmp(tmp + i, "\xef\xbf\xbf", 3) == 0))
			n = 3;
		if (!n || i + (size_t)n > len)
			return 0;
		i += (size_t)n;
	}
	return 1;
}

static void on_text(void *ctx, const char *msg, size_t len)
{
	struct st *s = ctx;
	if (len > MAX_MSG || !utf8_ok(msg, len))
		abort();
	mix(s, msg, len);
	(void)ws_conn_send_text(s->c, msg, len);
}

static void on_pong(void *ctx, const uint8_t *data, size_t len)
{
	struct st *s = ctx;
	if (len > 125)
		abort();
	mix(s, "pong", 4);
}

static void on_close(void *ctx, uint16_t code)
{
	struct st *s = ctx;
	s->endings++;
	s->code = code;
}

static void on_error(void *ctx, uint16_t code, const char *why)
{
	struct st *s = ctx;
	if (!why || !*why)
		abort();
	/* every protocol error wslay finds is one ws_conn names */
	if (code == 1002 && (strcmp(why, "WebSocket protocol error") == 0 || strcmp(why, "malformed frame header") == 0))
		abort();
	s->endings++;
	s->code = code;
}

static void drain(int fd)
{
	char junk[65536];
	while (read(fd, junk, sizeof junk) > 0)
		;
}

/* One connection fed the input in pieces; parks after every piece if asked. */
static struct st run(const uint8_t *data, size_t size, size_t piece, int parking)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0 ||
	    fcntl(sv[1], F_SETFL, O_NONBLOCK) < 0)
		abort();
	static const struct ws_conn_cbs cbs = { on_text, on_pong, on_close, on_error };
	struct st s = { 0 };
	/* the first piece as bytes read with the handshake */
	size_t first = piece < size ? piece : size;
	s.c = ws_conn_new(sv[0], MAX_MSG, &cbs, &s, data, first);
	if (!s.c)
		abort();
	enum ws_conn_state st = ws_conn_on_readable(s.c);
	for (size_t off = first; off < size && st != WS_DONE; off += piece) {
		size_t n = size - off < piece ? size - off : piece;
		if (write(sv[1], data + off, n) != (ssize_t)n)
			abort();
		st = ws_conn_on_readable(s.c);
		drain(sv[1]);
		if (st != WS_DONE)
			st = ws_conn_on_writable(s.c);
		if (parking)
			(void)ws_conn_park(s.c);
	}
	if (st == WS_OPEN && (ws_conn_ping(s.c, (const uint8_t *)"p", 1) < 0 || ws_conn_close(s.c, 1000, "end") < 0))
		abort();
	drain(sv[1]);
	(void)ws_conn_on_writable(s.c);
	if (s.endings > 1)
		abort();
	ws_conn_free(s.c);
	close(sv[0]);
	close(sv[1]);
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t piece = (size_t)data[0] + 1;
	data++, size--;
	struct st plain = run(data, size, piece, 0), parked = run(data, size, piece, 1);
	/* parking frees wslay's state only when none is in flight: the same
	 * messages, the same ending */
	if (plain.digest != parked.digest || plain.endings != parked.endings || plain.code != parked.code)
		abort();
	return 0;
}
