/* Answers as the web server gets them: every one carries the headers that
 * keep a browser from running it as a document, whatever its Content-Type,
 * status or form (plain, JSONP, script, preflight), and a head of any
 * length is built whole. */
#define _GNU_SOURCE
#include "bosh.h"
#include "check.h"
#include "config.h"
#include "frame.h"
#include "loop.h"
#include "reply.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static struct config cfg;

/* Sends r through a CGI responder; returns the whole answer (caller frees). */
static char *answer_cgi(const struct reply *r, uint8_t cors, const char *wrap)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
		return NULL;
	struct responder resp = { .fd = sv[0], .kind = RESP_CGI, .cors = cors,
	                          .wrap = wrap ? strdup(wrap) : NULL };
	reply_send(&resp, r); /* closes sv[0] */
	size_t cap = 1 << 20, len = 0;
	char *out = calloc(1, cap + 1);
	uint8_t *frame = malloc(FRAME_MAX);
	ssize_t n;
	while (out && frame && (n = recv(sv[1], frame, FRAME_MAX, 0)) > 0) {
		const uint8_t *data;
		size_t dlen;
		char err[128];
		if (frame_decode_cgi_data(frame, (size_t)n, &data, &dlen, err, sizeof err) < 0 ||
		    len + dlen > cap)
			break;
		memcpy(out + len, data, dlen);
		len += dlen;
	}
	free(frame);
	close(sv[1]);
	return out;
}

/* The value of header name in a CGI answer's head, or NULL. */
static char *header(const char *answer, const char *name)
{
	static char value[65536];
	size_t nl = strlen(name);
	const char *end = strstr(answer, "\r\n\r\n");
	for (const char *p = answer; p && p < end; p = strstr(p, "\r\n"), p = p ? p + 2 : NULL) {
		if (strncmp(p, name, nl) == 0 && p[nl] == ':' && p[nl + 1] == ' ') {
			const char *v = p + nl + 2, *e = strstr(v, "\r\n");
			snprintf(value, sizeof value, "%.*s", (int)(e - v), v);
			return value;
		}
	}
	return NULL;
}

static void check_inert(const char *answer)
{
	CHECK(answer != NULL);
	if (!answer)
		return;
	CHECK_STR(header(answer, "Content-Security-Policy"), "sandbox; default-src 'none'");
	CHECK_STR(header(answer, "X-Content-Type-Options"), "nosniff");
}

static void test_every_kind_is_inert(void)
{
	static const char body[] = "<body xmlns='" BOSH_NS "'><message><script>x()</script></message></body>";
	struct reply html = { .status = 200, .content_type = "text/html; charset=utf-8", .body = body,
	                      .body_len = sizeof body - 1 };
	char *a = answer_cgi(&html, 0, NULL);
	check_inert(a);
	CHECK_STR(header(a, "Content-Type"), "text/html; charset=utf-8"); /* the client's choice stands */
	CHECK(a && strstr(a, "\r\n\r\n<body") != NULL);
	free(a);

	struct reply plain = { .status = 200, .body = body, .body_len = sizeof body - 1 };
	a = answer_cgi(&plain, 1, NULL);
	check_inert(a);
	CHECK_STR(header(a, "Content-Type"), "text/xml; charset=utf-8");
	CHECK_STR(header(a, "Access-Control-Allow-Origin"), "https://chat.example");
	CHECK_STR(header(a, "X-Extra"), "yes");
	free(a);

	struct reply legacy = { .status = 404, .content_type = "text/plain; charset=utf-8" };
	a = answer_cgi(&legacy, 0, NULL);
	check_inert(a);
	CHECK(a && strncmp(a, "Status: 404 Not Found\r\n", 23) == 0);
	free(a);

	a = answer_cgi(&plain, 0, "jsonp:cb");
	check_inert(a);
	CHECK_STR(header(a, "Content-Type"), "text/javascript; charset=utf-8"); /* nosniff lets it run */
	CHECK(a && strstr(a, "\r\n\r\ncb({\"reply\":\"") != NULL);
	free(a);

	a = answer_cgi(&legacy, 0, "script");
	check_inert(a);
	CHECK_STR(header(a, "Content-Type"), "text/javascript; charset=utf-8");
	free(a);

	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	struct responder resp = { .fd = sv[0], .kind = RESP_CGI, .cors = 1 };
	reply_preflight(&resp);
	uint8_t frame[4096];
	ssize_t n = recv(sv[1], frame, sizeof frame, 0);
	const uint8_t *data;
	size_t dlen;
	char err[128];
	CHECK(n > 0 && frame_decode_cgi_data(frame, (size_t)n, &data, &dlen, err, sizeof err) == 0);
	char *pre = n > 0 ? strndup((const char *)data, dlen) : NULL;
	check_inert(pre);
	free(pre);
	close(sv[1]);
}

/* A head longer than any fixed buffer would hold is built whole. */
static void test_long_head(void)
{
	size_t n = 20000;
	char *ctype = malloc(n + 1);
	memset(ctype, 'a', n);
	ctype[n] = 0;
	memcpy(ctype, "text/", 5);
	struct reply r = { .status = 200, .content_type = ctype, .body = "<body/>", .body_len = 7 };
	char *a = answer_cgi(&r, 1, NULL);
	check_inert(a);
	CHECK(a && header(a, "Content-Type") && strlen(header(a, "Content-Type")) == n);
	CHECK(a && strstr(a, "\r\n\r\n<body/>") != NULL);
	free(a);
	free(ctype);
}

int main(void)
{
	config_defaults(&cfg);
	snprintf(cfg.cors_origins, sizeof cfg.cors_origins, "https://chat.example");
	snprintf(cfg.extra_headers, sizeof cfg.extra_headers, "X-Extra: yes\r\n");
	struct loop *l = loop_new();
	CHECK(l != NULL);
	reply_init(l, &cfg);
	test_every_kind_is_inert();
	test_long_head();
	loop_free(l);
	return check_summary("reply");
}
