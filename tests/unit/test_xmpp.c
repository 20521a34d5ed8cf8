/* The XMPP connection against a scripted server on loopback: an idle
 * connection gives its parser back within 400 ms of the server going
 * quiet, and a stanza after that still arrives whole. */
#define _GNU_SOURCE
#include "check.h"
#include "log.h"
#include "loop.h"
#include "resolver.h"
#include "xmpp.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char HEADER[] =
	"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
	"xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' version='1.0'>"
	"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
	"<mechanism>PLAIN</mechanism></mechanisms></stream:features>";

struct seen {
	int features, stanzas, failed;
	char last[256];
};

static void on_event(void *ctx, enum xmpp_event ev, const char *data, size_t len)
{
	struct seen *s = ctx;
	if (ev == XMPP_FEATURES)
		s->features++;
	else if (ev == XMPP_STANZA) {
		s->stanzas++;
		snprintf(s->last, sizeof s->last, "%.*s", (int)len, data);
	} else if (ev == XMPP_FAILED || ev == XMPP_STREAM_ERROR || ev == XMPP_STREAM_CLOSED)
		s->failed++;
}

/* Runs the loop until *flag is set or ms pass. */
static void run_until(struct loop *l, const int *flag, unsigned ms)
{
	uint64_t end = loop_now(l) + ms;
	while ((!flag || !*flag) && loop_now(l) < end)
		loop_run_once(l, 20);
}

static int listen_loopback(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 1) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) < 0)
		abort();
	*port = ntohs(a.sin_port);
	return fd;
}

static void test_idle_parser_parked(struct loop *l)
{
	uint16_t port;
	int lfd = listen_loopback(&port);
	struct seen s = { 0 };
	struct xmpp_params p = {
		.domain = "localhost", .host = "127.0.0.1", .port = port, .tls = TLS_NONE,
		.max_stanza = 65536, .max_output = 65536, .connect_timeout_ms = 5000,
		.stanza_timeout_ms = 5000,
	};
	struct xmpp_conn *c = xmpp_open(l, &p, on_event, &s);
	CHECK(c != NULL);
	if (!c)
		return;
	int srv = -1;
	for (int i = 0; i < 100 && srv < 0; i++) {
		loop_run_once(l, 20);
		srv = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
	}
	CHECK(srv >= 0);
	if (srv < 0)
		return;
	run_until(l, NULL, 100); /* our stream header goes out */
	CHECK(write(srv, HEADER, sizeof HEADER - 1) == (ssize_t)(sizeof HEADER - 1));
	run_until(l, &s.features, 2000);
	CHECK(s.features == 1 && !xmpp_parser_parked(c));
	/* quiet for 400 ms: parked (idle sessions' parsers must not linger: see XMPP_PARK_MS) */
	run_until(l, NULL, 400);
	CHECK(xmpp_parser_parked(c));
	/* the server speaks again: a plain stanza takes the fast path, the
	 * parser stays parked */
	static const char msg[] = "<message from='a@localhost'><body>hi</body></message>";
	CHECK(write(srv, msg, sizeof msg - 1) == (ssize_t)(sizeof msg - 1));
	run_until(l, &s.stanzas, 2000);
	CHECK(s.stanzas == 1 && strstr(s.last, "<body>hi</body>") != NULL);
	CHECK(strstr(s.last, "xmlns='jabber:client'") != NULL); /* the stream's namespace, inserted */
	CHECK(xmpp_parser_parked(c) && s.failed == 0);
	/* one the fast path leaves to expat (a character reference): a new
	 * parser takes it whole */
	static const char ref[] = "<message from='a@localhost'><body>&#104;i</body></message>";
	CHECK(write(srv, ref, sizeof ref - 1) == (ssize_t)(sizeof ref - 1));
	for (int i = 0; i < 100 && s.stanzas < 2; i++)
		loop_run_once(l, 20);
	CHECK(s.stanzas == 2 && strstr(s.last, "<body>&#104;i</body>") != NULL);
	CHECK(strstr(s.last, "xmlns='jabber:client'") != NULL);
	CHECK(!xmpp_parser_parked(c) && s.failed == 0);
	xmpp_close(c);
	run_until(l, NULL, 50);
	close(srv);
	close(lfd);
}

int main(void)
{
	log_open("test_xmpp", "/dev/null", LOG_ERROR);
	struct loop *l = loop_new();
	CHECK(l && resolver_init(l, "", 2000) == 0);
	if (l)
		test_idle_parser_parked(l);
	return check_summary("xmpp");
}
