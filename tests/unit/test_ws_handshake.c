/* The WebSocket opening handshake: RFC 6455's example, every check, the
 * bounds, any split of the input, and the answers. */
#include "check.h"
#include "ws_handshake.h"

#include <stdlib.h>

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define GOOD_HEAD "GET /xmpp-websocket HTTP/1.1\r\n" \
	"Host: chat.example.org\r\n" \
	"Upgrade: websocket\r\n" \
	"Connection: keep-alive, Upgrade\r\n" \
	"Sec-WebSocket-Key: " KEY "\r\n" \
	"Sec-WebSocket-Version: 13\r\n" \
	"Sec-WebSocket-Protocol: xmpp\r\n"
#define GOOD GOOD_HEAD "\r\n"

static int allow_example(void *arg, const char *origin)
{
	(void)arg;
	return strcmp(origin, "https://chat.example.org") == 0;
}

static const struct ws_hs_policy policy = { allow_example, NULL };

/* Feeds text whole; returns the result, with status and the parser kept
 * in *out when wanted. */
static enum ws_hs_result run(const char *text, int *status, struct ws_hs **out)
{
	struct ws_hs *h = ws_hs_new(&policy);
	if (!h)
		abort();
	size_t used;
	enum ws_hs_result r = ws_hs_feed(h, text, strlen(text), &used);
	if (status)
		*status = ws_hs_status(h);
	if (out)
		*out = h;
	else
		ws_hs_free(h);
	return r;
}

static int status_of(const char *text)
{
	int st = -1;
	if (run(text, &st, NULL) != WS_HS_ERROR)
		return 0;
	return st;
}

static void test_rfc_example(void)
{
	char acc[29];
	CHECK(ws_hs_accept_value(KEY, acc) == 0);
	CHECK_STR(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

	struct ws_hs *h;
	CHECK(run(GOOD_HEAD "Origin: https://chat.example.org\r\nX-Forwarded-For: 203.0.113.9, 198.51.100.7\r\n"
	          "User-Agent: test\r\n\r\n", NULL, &h) == WS_HS_DONE);
	const struct ws_hs_request *r = ws_hs_request(h);
	CHECK(r != NULL);
	if (r) {
		CHECK_STR(r->path, "/xmpp-websocket");
		CHECK_STR(r->host, "chat.example.org");
		CHECK_STR(r->key, KEY);
		CHECK_STR(r->origin, "https://chat.example.org");
		CHECK_STR(r->forwarded_for, "203.0.113.9, 198.51.100.7");
		CHECK_STR(r->user_agent, "test");
		CHECK(r->real_ip == NULL);
		char addr[64];
		CHECK_STR(ws_hs_client_addr(r, addr, sizeof addr), "198.51.100.7");
		struct buf b = { 0 };
		CHECK(ws_hs_accept(r, &b) == 0);
		CHECK_MEM(b.data, b.len, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		          "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
		          "Sec-WebSocket-Protocol: xmpp\r\n\r\n");
		buf_free(&b);
	}
	/* once done, it stays done and takes nothing */
	size_t used = 9;
	CHECK(ws_hs_feed(h, "x", 1, &used) == WS_HS_DONE && used == 0);
	ws_hs_free(h);
}

/* Any split gives the same answer: one byte at a time, and every cut in two. */
static void test_splits(void)
{
	const char *text = GOOD;
	size_t n = strlen(text);
	struct ws_hs *h = ws_hs_new(&policy);
	enum ws_hs_result r = WS_HS_MORE;
	size_t used;
	for (size_t i = 0; i < n; i++) {
		CHECK(r == WS_HS_MORE);
		r = ws_hs_feed(h, text + i, 1, &used);
	}
	CHECK(r == WS_HS_DONE);
	ws_hs_free(h);
	int all = 1;
	for (size_t cut = 0; cut <= n; cut++) {
		h = ws_hs_new(&policy);
		r = ws_hs_feed(h, text, cut, &used);
		if (cut < n && r != WS_HS_MORE)
			all = 0;
		r = ws_hs_feed(h, text + cut, n - cut, &used);
		if (r != WS_HS_DONE || strcmp(ws_hs_request(h)->path, "/xmpp-websocket") != 0)
			all = 0;
		ws_hs_free(h);
	}
	CHECK(all);
}

static void test_header_forms(void)
{
	/* names in any case, values trimmed, list headers over several lines */
	struct ws_hs *h;
	CHECK(run("GET /ws?x=1 HTTP/1.1\r\nHOST:h\r\nupgrade:  WebSocket \r\nCONNECTION: Upgrade\r\n"
	          "sec-websocket-key:\t" KEY " \r\nSEC-WEBSOCKET-VERSION: 13\r\n"
	          "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: foo, xmpp\r\n"
	          "X-Real-IP: 2001:db8::1\r\nX-Unknown: \xc3\xa9t\xc3\xa9\r\n\r\n", NULL, &h) == WS_HS_DONE);
	const struct ws_hs_request *r = ws_hs_request(h);
	if (r) {
		CHECK_STR(r->path, "/ws?x=1");
		CHECK_STR(r->key, KEY);
		char addr[64];
		CHECK_STR(ws_hs_client_addr(r, addr, sizeof addr), "2001:db8::1");
		CHECK(ws_hs_client_addr(r, addr, 4) == NULL); /* does not fit: nothing */
		CHECK(r->origin == NULL); /* not a browser: allowed */
	}
	ws_hs_free(h);
	/* a client address that is not an address is not one */
	CHECK(run(GOOD_HEAD "X-Forwarded-For: 1.2.3.4, evil\r\n\r\n", NULL, &h) == WS_HS_DONE);
	char addr[64];
	CHECK(ws_hs_client_addr(ws_hs_request(h), addr, sizeof addr) == NULL);
	ws_hs_free(h);
}

static void test_refusals(void)
{
	/* not a WebSocket or not XMPP */
	CHECK(status_of("POST / HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
	CHECK(status_of("GET / HTTP/1.0\r\nHost: h\r\n\r\n") == 400);
	CHECK(status_of("GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n") == 400);
	CHECK(status_of("GET /\x01 HTTP/1.1\r\n\r\n") == 400);
	CHECK(status_of("GET / HTTP/1.1\r\nHost: h\r\n\r\n") == 400); /* a non-upgrade request */
	CHECK(status_of("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	                "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n"
	                "Sec-WebSocket-Protocol: xmpp\r\n\r\n") == 400); /* no Host */
	CHECK(status_of("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
	                "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n"
	                "Sec-WebSocket-Protocol: xmpp\r\n\r\n") == 400);
	CHECK(status_of("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
	                "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n"
	                "Sec-WebSocket-Protocol: xmpp\r\n\r\n") == 400);
	/* no subprotocol, a wrong one, a near miss */
	CHECK(status_of("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	                "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n") == 400);
	CHECK(status_of("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	                "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n"
	                "Sec-WebSocket-Protocol: chat, xmppx\r\n\r\n") == 400);
	/* version: wrong or missing is 426 */
	CHECK(status_of("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	                "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 8\r\n"
	                "Sec-WebSocket-Protocol: xmpp\r\n\r\n") == 426);
	CHECK(status_of("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	                "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n") == 426);
	/* keys: wrong length, not base64, non-zero spare bits, missing, twice */
	const char *bad_keys[] = { "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ==x",
		"dGhlIHNhbXBsZSBub25j*Q==", "dGhlIHNhbXBsZSBub25jZR==", "dGhlIHNhbXBsZSBub25jZQ" };
	for (size_t i = 0; i < sizeof bad_keys / sizeof *bad_keys; i++) {
		char req[512];
		snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
		         "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
		         "Sec-WebSocket-Protocol: xmpp\r\n\r\n", bad_keys[i]);
		CHECK(status_of(req) == 400);
	}
	CHECK(status_of(GOOD_HEAD "Sec-WebSocket-Key: " KEY "\r\n\r\n") == 400);
	/* Origin: a browser's from elsewhere is 403; the allowed one passes */
	CHECK(status_of(GOOD_HEAD "Origin: https://evil.example\r\n\r\n") == 403);
	CHECK(status_of(GOOD_HEAD "Origin: https://chat.example.org\r\n\r\n") == 0);
	/* malformed lines */
	CHECK(status_of("GET / HTTP/1.1\nHost: h\r\n\r\n") == 400);
	CHECK(status_of(GOOD_HEAD "Bad Name: x\r\n\r\n") == 400);
	CHECK(status_of(GOOD_HEAD "NoColon\r\n\r\n") == 400);
	CHECK(status_of(GOOD_HEAD ": empty name\r\n\r\n") == 400);
	CHECK(status_of(GOOD_HEAD "X-A: b\r\n  folded\r\n\r\n") == 400);
	CHECK(status_of(GOOD_HEAD "X-A: b\rc\r\n\r\n") == 400);
	CHECK(status_of(GOOD_HEAD "X-A: b\x01\r\n\r\n") == 400);
	CHECK(status_of("\r\n" GOOD) == 400);
	/* a client that sends frames before our answer: they are left over,
	 * in whatever pieces they came */
	struct ws_hs *e;
	size_t used;
	e = ws_hs_new(&policy);
	CHECK(ws_hs_feed(e, GOOD "\x81\x85", strlen(GOOD) + 2, &used) == WS_HS_DONE && used == strlen(GOOD));
	ws_hs_free(e);
	e = ws_hs_new(&policy);
	CHECK(ws_hs_feed(e, GOOD, 20, &used) == WS_HS_MORE && used == 20);
	CHECK(ws_hs_feed(e, GOOD "\x81" + 20, strlen(GOOD) - 19, &used) == WS_HS_DONE && used == strlen(GOOD) - 20);
	ws_hs_free(e);
	/* a NUL inside a line */
	struct ws_hs *h = ws_hs_new(&policy);
	CHECK(ws_hs_feed(h, "GET /a\0b HTTP/1.1\r\n", 19, &used) == WS_HS_ERROR && ws_hs_status(h) == 400);
	ws_hs_free(h);
}

/* b's bytes as a C string (buf_puts adds no NUL). */
static const char *cstr(struct buf *b)
{
	if (buf_append(b, "", 1) < 0)
		abort();
	b->len--;
	return b->data;
}

static void test_bounds(void)
{
	struct buf b = { 0 };
	/* a request line of the limit's length is refused with 414 */
	buf_puts(&b, "GET /");
	while (b.len < WS_HS_MAX_LINE)
		buf_puts(&b, "a");
	buf_puts(&b, " HTTP/1.1\r\n");
	CHECK(status_of(cstr(&b)) == 414);
	/* ... even before its end arrives */
	b.len = WS_HS_MAX_LINE + 1;
	b.data[b.len] = 0;
	CHECK(status_of(cstr(&b)) == 414);
	/* a header line too long */
	b.len = 0;
	buf_puts(&b, GOOD_HEAD "X-Long: ");
	for (int i = 0; i < WS_HS_MAX_LINE; i++)
		buf_puts(&b, "v");
	CHECK(status_of(cstr(&b)) == 431);
	/* too many header lines, each short */
	b.len = 0;
	buf_puts(&b, GOOD_HEAD);
	for (int i = 0; i < WS_HS_MAX_HEADERS; i++)
		buf_printf(&b, "X-H%d: v\r\n", i);
	buf_puts(&b, "\r\n");
	CHECK(status_of(cstr(&b)) == 431);
	/* exactly WS_HS_MAX_HEADERS lines pass */
	b.len = 0;
	buf_puts(&b, GOOD_HEAD);
	for (int i = 7; i < WS_HS_MAX_HEADERS; i++)
		buf_printf(&b, "X-H%d: v\r\n", i);
	buf_puts(&b, "\r\n");
	CHECK(status_of(cstr(&b)) == 0);
	/* the whole request too large, in lines each within their bound, fed in
	 * pieces: refused once the limit is passed, never buffering more */
	b.len = 0;
	buf_puts(&b, GOOD_HEAD);
	for (int i = 0; i < 3; i++) {
		buf_printf(&b, "X-Big%d: ", i);
		for (int j = 0; j < WS_HS_MAX_LINE - 20; j++)
			buf_puts(&b, "v");
		buf_puts(&b, "\r\n");
	}
	struct ws_hs *h = ws_hs_new(&policy);
	enum ws_hs_result r = WS_HS_MORE;
	size_t fed = 0;
	while (r == WS_HS_MORE && fed < b.len) {
		size_t n = b.len - fed < 1000 ? b.len - fed : 1000;
		size_t used;
		r = ws_hs_feed(h, b.data + fed, n, &used);
		fed += n;
	}
	CHECK(r == WS_HS_ERROR && ws_hs_status(h) == 431);
	CHECK(fed <= WS_HS_MAX_SIZE + 1000);
	ws_hs_free(h);
	buf_free(&b);
}

static void test_rejects(void)
{
	struct buf b = { 0 };
	CHECK(ws_hs_reject(426, &b) == 0);
	CHECK(strstr(b.data, "HTTP/1.1 426 Upgrade Required\r\n") == b.data);
	CHECK(strstr(b.data, "\r\nSec-WebSocket-Version: 13\r\n") != NULL);
	CHECK(strstr(b.data, "\r\nConnection: close\r\n") != NULL);
	b.len = 0;
	CHECK(ws_hs_reject(403, &b) == 0);
	CHECK_MEM(b.data, b.len, "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n"
	          "Content-Length: 10\r\nConnection: close\r\n\r\nForbidden\n");
	CHECK(strstr(b.data, "Sec-WebSocket-Version") == NULL);
	b.len = 0;
	CHECK(ws_hs_reject(431, &b) == 0);
	CHECK(strstr(b.data, "HTTP/1.1 431 Request Header Fields Too Large\r\n") == b.data);
	buf_free(&b);
}

int main(void)
{
	test_rfc_example();
	test_splits();
	test_header_forms();
	test_refusals();
	test_bounds();
	test_rejects();
	return check_summary("ws_handshake");
}
