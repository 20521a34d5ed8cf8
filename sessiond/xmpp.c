#define _GNU_SOURCE
#include "xmpp.h"
#include "buf.h"
#include "dial.h"
#include "log.h"
#include "metrics.h"
#include "snapshot.h"
#include "splitter.h"
#include "tls.h"
#include "xmlesc.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#define XMPP_LINGER_MS 2000
#define TLS_NS "urn:ietf:params:xml:ns:xmpp-tls"

enum conn_state { C_DIALING, C_HANDSHAKE, C_OPEN, C_DONE, C_CLOSING };

/* Where STARTTLS stands; direct TLS goes straight to TLS_UP. */
enum tls_phase { TLS_OFF, TLS_WANT_FEATURES, TLS_WANT_PROCEED, TLS_UP };

struct obuf {
	struct buf b;
	size_t off;           /* b.data[off..b.len) is still to go */
};

struct xmpp_conn {
	struct io io;
	struct timer timer;   /* opening deadline, then the closing linger */
	struct timer quiet;   /* parks the splitter of a connection gone quiet */
	struct timer stanza;  /* a started stanza must end by then */
	struct loop *loop;
	struct splitter *split;
	struct dialer *dialer;
	SSL *ssl;
	xmpp_cb cb;
	void *ctx;
	enum conn_state state;
	enum tls_phase tls;
	enum backend_tls policy;
	uint8_t paused, ready, loopback, ssl_write_wants_read, ssl_read_wants_write;
	struct obuf out;      /* bytes for the server */
	struct obuf early;    /* the owner's bytes before the stream is ready */
	size_t max_output;
	unsigned connect_timeout_ms, stanza_timeout_ms;
	unsigned keepalive[3]; /* idle s, interval s, probes; idle 0: off */
	char *domain, *lang, *pin;
};

static char read_buf[65536];

static void conn_free(void *p)
{
	struct xmpp_conn *c = p;
	dial_cancel(c->dialer);
	SSL_free(c->ssl);
	splitter_free(c->split);
	free(c->out.b.data);
	free(c->early.b.data);
	free(c->domain);
	free(c->lang);
	free(c->pin);
	free(c);
}

static void cancel_timers(struct xmpp_conn *c)
{
	timer_cancel(c->loop, &c->timer);
	timer_cancel(c->loop, &c->quiet);
	timer_cancel(c->loop, &c->stanza);
}

/* Reports a terminal event once; the owner then calls xmpp_close(). */
static void finish_stream(struct xmpp_conn *c, enum xmpp_event ev, const char *data, size_t len)
{
	if (c->state == C_DONE || c->state == C_CLOSING)
		return;
	c->state = C_DONE;
	cancel_timers(c);
	dial_cancel(c->dialer);
	c->dialer = NULL;
	if (c->io.fd >= 0)
		loop_mod(c->loop, &c->io, 0);
	if (c->cb)
		c->cb(c->ctx, ev, data, len);
}

static void fail(struct xmpp_conn *c, enum xmpp_event ev, const char *why)
{
	finish_stream(c, ev, why, why ? strlen(why) : 0);
}

static void update_interest(struct xmpp_conn *c)
{
	uint32_t ev = 0;
	if (c->io.fd < 0)
		return;
	if (c->out.b.len > c->out.off || c->ssl_read_wants_write)
		ev |= EPOLLOUT;
	if (c->state == C_CLOSING || c->ssl_write_wants_read || (c->state == C_OPEN && !c->paused))
		ev |= EPOLLIN | EPOLLRDHUP;
	loop_mod(c->loop, &c->io, ev);
}

/* ---- output buffers ---- */

static int obuf_append(struct obuf *o, const char *data, size_t len, size_t max)
{
	if (o->off == o->b.len)
		o->off = o->b.len = 0;
	if (o->b.len - o->off + len > max)
		return -1;
	if (o->off && o->b.len + len > o->b.cap) { /* compact before growing */
		memmove(o->b.data, o->b.data + o->off, o->b.len - o->off);
		o->b.len -= o->off;
		o->off = 0;
	}
	return buf_append(&o->b, data, len);
}

/* Idle sessions are the common case: hold no output memory for them. */
static void obuf_release_if_empty(struct obuf *o)
{
	if (o->off == o->b.len && o->b.cap > 0) {
		buf_free(&o->b);
		o->off = 0;
	}
}

static int append_out(struct xmpp_conn *c, const char *data, size_t len)
{
	return obuf_append(&c->out, data, len, c->max_output);
}

/* ---- the socket, plain or through TLS ---- */

static void ssl_failure(struct xmpp_conn *c, int err, char *why, size_t whylen)
{
	char buf[256];
	snprintf(why, whylen, "TLS with the XMPP server for %s failed: %s", c->domain,
	         err == SSL_ERROR_SYSCALL ? strerror(errno ? errno : EPIPE) : tls_error(buf, sizeof buf));
}

/* recv(): >0 bytes, 0 EOF, -1 with errno (EAGAIN: try later). */
static ssize_t conn_recv(struct xmpp_conn *c, char *buf, size_t len)
{
	if (!c->ssl)
		return recv(c->io.fd, buf, len, MSG_DONTWAIT);
	c->ssl_read_wants_write = 0;
	ERR_clear_error();
	int n = SSL_read(c->ssl, buf, (int)(len > 16384 * 4 ? 16384 * 4 : len));
	if (n > 0)
		return n;
	int err = SSL_get_error(c->ssl, n);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		c->ssl_read_wants_write = err == SSL_ERROR_WANT_WRITE;
		errno = EAGAIN;
		return -1;
	}
	if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && errno == 0))
		return 0; /* close_notify, or EOF without it: the stream has ended either way */
	errno = EPROTO;
	return -1;
}

static ssize_t conn_send(struct xmpp_conn *c, const char *buf, size_t len)
{
	if (!c->ssl)
		return send(c->io.fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	c->ssl_write_wants_read = 0;
	ERR_clear_error();
	int n = SSL_write(c->ssl, buf, (int)(len > 65536 ? 65536 : len));
	if (n > 0)
		return n;
	int err = SSL_get_error(c->ssl, n);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		c->ssl_write_wants_read = err == SSL_ERROR_WANT_READ;
		errno = EAGAIN;
		return -1;
	}
	errno = EPIPE;
	return -1;
}

static int flush_out(struct xmpp_conn *c)
{
	while (c->out.off < c->out.b.len) {
		ssize_t n = conn_send(c, c->out.b.data + c->out.off, c->out.b.len - c->out.off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		c->out.off += (size_t)n;
	}
	obuf_release_if_empty(&c->out);
	return 0;
}

/* The stream header. Its values come from the client (xml:lang, the
 * stream_attrs it asked for) or the configuration: escaped, and built in a
 * buffer that fits them whatever their length. */
static int send_header(struct xmpp_conn *c, const char *extra_attrs)
{
	struct buf h = { 0 };
	int rc = buf_puts(&h, "<?xml version='1.0'?><stream:stream") | buf_attr(&h, "to", c->domain) |
	         buf_attr(&h, "xml:lang", c->lang) |
	         buf_puts(&h, " version='1.0' xmlns='jabber:client' xmlns:stream='" STREAM_NS "'") |
	         buf_puts(&h, extra_attrs ? extra_attrs : "") | buf_puts(&h, ">");
	if (rc == 0)
		rc = append_out(c, h.data, h.len);
	buf_free(&h);
	return rc;
}

/* ---- STARTTLS and the features the owner sees ---- */

static int offers_starttls(const char *data, size_t len)
{
	return memmem(data, len, TLS_NS, strlen(TLS_NS)) != NULL;
}

/* Features without <starttls/>: over BOSH the client cannot use it. */
static size_t strip_starttls(const char *data, size_t len, char *out)
{
	const char *start = memmem(data, len, "<starttls", 9);
	if (!start) {
		memcpy(out, data, len);
		return len;
	}
	const char *rest = data + len;
	const char *selfclose = memmem(start, (size_t)(rest - start), "/>", 2);
	const char *gt = memchr(start, '>', (size_t)(rest - start));
	const char *end = NULL;
	if (selfclose && selfclose + 1 == gt)
		end = selfclose + 2;
	else if ((end = memmem(start, (size_t)(rest - start), "</starttls>", 11)))
		end += 11;
	if (!end) {
		memcpy(out, data, len);
		return len;
	}
	size_t head = (size_t)(start - data);
	memcpy(out, data, head);
	memcpy(out + head, end, (size_t)(rest - end));
	return head + (size_t)(rest - end);
}

/* The stream is ready for the owner: its bytes so far go out now. */
static void become_ready(struct xmpp_conn *c)
{
	c->ready = 1;
	timer_cancel(c->loop, &c->timer);
	if (c->early.b.len > c->early.off &&
	    append_out(c, c->early.b.data + c->early.off, c->early.b.len - c->early.off) < 0) {
		fail(c, XMPP_FAILED, "too much queued for the XMPP server");
		return;
	}
	free(c->early.b.data);
	c->early = (struct obuf){ 0 };
}

static void deliver_features(struct xmpp_conn *c, const char *data, size_t len)
{
	char *copy = NULL;
	if (!c->ready && c->tls != TLS_UP && offers_starttls(data, len) && (copy = malloc(len))) {
		len = strip_starttls(data, len, copy);
		data = copy;
		log_debug("features for %s: STARTTLS offered, not used (policy)", c->domain);
	}
	if (!c->ready)
		become_ready(c);
	if (c->state == C_OPEN && c->cb)
		c->cb(c->ctx, XMPP_FEATURES, data, len);
	free(copy);
}

static void on_first_features(struct xmpp_conn *c, const char *data, size_t len)
{
	if (offers_starttls(data, len)) {
		static const char req[] = "<starttls xmlns='" TLS_NS "'/>";
		c->tls = TLS_WANT_PROCEED;
		if (append_out(c, req, sizeof req - 1) < 0 || flush_out(c) < 0)
			fail(c, XMPP_FAILED, "writing to the XMPP server failed");
		return;
	}
	char why[400];
	snprintf(why, sizeof why, "the XMPP server for %s does not offer STARTTLS, and TLS is "
	         "required (list the domain in no_tls_domains to allow a plain connection)", c->domain);
	fail(c, XMPP_FAILED, why);
}

static void start_tls(struct xmpp_conn *c)
{
	c->ssl = tls_new(c->io.fd, c->domain);
	if (!c->ssl) {
		fail(c, XMPP_FAILED, "cannot start TLS (see the log)");
		return;
	}
	c->state = C_HANDSHAKE;
}

static void on_tls_answer(struct xmpp_conn *c, const char *data, size_t len)
{
	if (len > 8 && memcmp(data, "<proceed", 8) == 0 && memmem(data, len, TLS_NS, strlen(TLS_NS)))
		start_tls(c);
	else
		fail(c, XMPP_FAILED, "the XMPP server refused STARTTLS");
}

static int on_split(void *ctx, enum splitter_event ev, const char *data, size_t len)
{
	struct xmpp_conn *c = ctx;
	switch (ev) {
	case SPLIT_STREAM_ERROR:
		finish_stream(c, XMPP_STREAM_ERROR, data, len);
		return 1;
	case SPLIT_STREAM_CLOSE:
		finish_stream(c, XMPP_STREAM_CLOSED, data, len);
		return 1;
	case SPLIT_STREAM_OPEN:
		if (c->ready && c->cb)
			c->cb(c->ctx, XMPP_STREAM_OPEN, data, len);
		break;
	case SPLIT_FEATURES:
		if (c->tls == TLS_WANT_FEATURES)
			on_first_features(c, data, len);
		else if (c->tls != TLS_WANT_PROCEED)
			deliver_features(c, data, len);
		break;
	case SPLIT_ELEMENT:
		if (c->tls == TLS_WANT_PROCEED)
			on_tls_answer(c, data, len);
		else if (!c->ready)
			fail(c, XMPP_FAILED, "the XMPP server sent a stanza before its stream features");
		else if (c->cb)
			c->cb(c->ctx, XMPP_STANZA, data, len);
		break;
	}
	return c->state != C_OPEN;
}

/* ---- reading ---- */

static void watch_stanza_time(struct xmpp_conn *c)
{
	if (c->state != C_OPEN || c->paused || !splitter_pending(c->split))
		timer_cancel(c->loop, &c->stanza);
	else if (!timer_armed(&c->stanza))
		timer_set(c->loop, &c->stanza, loop_now(c->loop) + c->stanza_timeout_ms);
}

static void handle_input(struct xmpp_conn *c)
{
	for (int rounds = 0; rounds < 4 && c->state == C_OPEN && !c->paused; rounds++) {
		ssize_t n = conn_recv(c, read_buf, sizeof read_buf);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n == 0) {
			/* A close without </stream:stream> is a lost connection. */
			fail(c, XMPP_FAILED, splitter_pending(c->split)
			     ? "the XMPP server closed the connection in the middle of a stanza"
			     : "the XMPP server closed the connection without ending the stream");
			return;
		}
		if (n < 0) {
			char why[600];
			if (c->ssl)
				ssl_failure(c, SSL_ERROR_SSL, why, sizeof why);
			else
				snprintf(why, sizeof why, "reading from the XMPP server failed: %s", strerror(errno));
			fail(c, XMPP_FAILED, why);
			return;
		}
		enum splitter_result r = splitter_feed(c->split, read_buf, (size_t)n);
		if (r == SPLITTER_TOO_BIG)
			fail(c, XMPP_FAILED, "the server sent a stanza larger than max_xmpp_stanza_size");
		else if (r == SPLITTER_NO_MEMORY)
			fail(c, XMPP_FAILED, splitter_error(c->split));
		else if (r == SPLITTER_ERROR) {
			char why[256];
			snprintf(why, sizeof why, "the server sent malformed XML: %s", splitter_error(c->split));
			fail(c, XMPP_FAILED, why);
		}
		if ((size_t)n < sizeof read_buf && !c->ssl)
			break;
	}
	watch_stanza_time(c);
}

static void finish_close(struct xmpp_conn *c)
{
	cancel_timers(c);
	if (c->io.fd >= 0) {
		loop_del(c->loop, &c->io);
		close(c->io.fd);
		c->io.fd = -1;
	}
	loop_defer_free(c->loop, c, conn_free);
}

static void end_writing(struct xmpp_conn *c)
{
	if (c->ssl)
		SSL_shutdown(c->ssl); /* close_notify; the answer is not waited for */
	shutdown(c->io.fd, SHUT_WR);
}

static void closing_io(struct xmpp_conn *c, uint32_t events)
{
	if (events & (EPOLLERR | EPOLLHUP) || flush_out(c) < 0) {
		finish_close(c);
		return;
	}
	if (c->out.off == c->out.b.len)
		end_writing(c);
	if (events & (EPOLLIN | EPOLLRDHUP)) {
		ssize_t n;
		while ((n = conn_recv(c, read_buf, sizeof read_buf)) > 0)
			;
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			finish_close(c);
			return;
		}
	}
	update_interest(c);
}

/* ---- TLS handshake ---- */

static void handshake_done(struct xmpp_conn *c)
{
	char why[512];
	if (tls_check_peer(c->ssl, c->domain, c->pin, why, sizeof why) < 0) {
		char msg[700];
		M.tls_handshakes[strstr(why, "pin") ? MTLS_PIN : strstr(why, "not valid for") ? MTLS_NAME
		                                                                         : MTLS_UNTRUSTED]++;
		snprintf(msg, sizeof msg, "TLS with the XMPP server for %s refused: %s", c->domain, why);
		fail(c, XMPP_FAILED, msg);
		return;
	}
	M.tls_handshakes[MTLS_OK]++;
	log_info("TLS to the XMPP server for %s: %s, %s%s", c->domain, SSL_get_version(c->ssl),
	         SSL_get_cipher_name(c->ssl), SSL_session_reused(c->ssl) ? ", session resumed" : "");
	int was_starttls = c->tls == TLS_WANT_PROCEED;
	c->tls = TLS_UP;
	c->state = C_OPEN;
	/* After STARTTLS the stream starts again (RFC 6120 §5.4.3.3). */
	if (was_starttls && (splitter_reset(c->split) < 0 || send_header(c, NULL) < 0)) {
		fail(c, XMPP_FAILED, "out of memory restarting the stream");
		return;
	}
	if (flush_out(c) < 0)
		fail(c, XMPP_FAILED, "writing to the XMPP server failed");
}

static void tls_step(struct xmpp_conn *c)
{
	ERR_clear_error();
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		handshake_done(c);
		if (c->state == C_OPEN)
			handle_input(c); /* the server may have written already */
		if (c->state == C_OPEN)
			update_interest(c);
		return;
	}
	int err = SSL_get_error(c->ssl, r);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		loop_mod(c->loop, &c->io, err == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
		return;
	}
	char why[600];
	M.tls_handshakes[MTLS_HANDSHAKE]++;
	ssl_failure(c, err, why, sizeof why);
	fail(c, XMPP_FAILED, why);
}

/* ---- events ---- */

static void conn_io(void *ctx, uint32_t events)
{
	struct xmpp_conn *c = ctx;
	if (c->io.fd < 0 || c->state == C_DONE)
		return;
	if (c->state == C_CLOSING) {
		closing_io(c, events);
		return;
	}
	if (c->state == C_HANDSHAKE) {
		tls_step(c);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP) || (c->ssl_read_wants_write && events & EPOLLOUT)) {
		handle_input(c);
		if (c->state == C_OPEN)
			timer_set(c->loop, &c->quiet, loop_now(c->loop) + XMPP_PARK_MS);
	}
	if (c->state == C_OPEN && (events & (EPOLLOUT | EPOLLIN)) && flush_out(c) < 0)
		fail(c, XMPP_FAILED, "writing to the XMPP server failed");
	if (c->state == C_HANDSHAKE)
		tls_step(c); /* <proceed/> just arrived */
	else if (c->state == C_OPEN)
		update_interest(c);
}

int xmpp_parser_parked(const struct xmpp_conn *c)
{
	return c->split && splitter_parked(c->split);
}

/* Most connections are idle most of the time: an idle one needs no parser. */
static void conn_quiet(void *ctx)
{
	struct xmpp_conn *c = ctx;
	if (c->state == C_OPEN)
		splitter_park(c->split);
}

static void conn_timeout(void *ctx)
{
	struct xmpp_conn *c = ctx;
	if (c->state == C_CLOSING) {
		finish_close(c);
		return;
	}
	char why[400];
	snprintf(why, sizeof why, "the XMPP server for %s %s in time", c->domain,
	         c->state == C_DIALING ? "could not be looked up and reached"
	         : c->state == C_HANDSHAKE ? "did not finish the TLS handshake"
	         : "did not open a stream and send its features");
	fail(c, XMPP_FAILED, why);
}

static void stanza_timeout(void *ctx)
{
	struct xmpp_conn *c = ctx;
	char why[300];
	snprintf(why, sizeof why, "the XMPP server for %s did not finish a stanza within %u s",
	         c->domain, c->stanza_timeout_ms / 1000);
	fail(c, XMPP_FAILED, why);
}

/* A server that vanished (power cut, a NAT or firewall that forgot the
 * connection) sends no FIN: without probes a quiet session would wait for
 * it forever. The user timeout bounds the same wait when our bytes are the
 * ones left unacknowledged, where keepalive does not probe. */
static void set_keepalive(int fd, const unsigned ka[3])
{
	int on = ka[0] > 0, idle = (int)ka[0], intvl = (int)ka[1], cnt = (int)ka[2];
	unsigned user_ms = (ka[0] + ka[1] * ka[2]) * 1000;
	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) < 0 ||
	    (on && (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle) < 0 ||
	            setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl) < 0 ||
	            setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt) < 0 ||
	            setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_ms, sizeof user_ms) < 0)))
		log_warn("TCP keepalive on the connection to the XMPP server: %s", strerror(errno));
}

static void dialed(void *ctx, const struct dial_result *r, const char *why)
{
	struct xmpp_conn *c = ctx;
	c->dialer = NULL;
	if (!r) {
		fail(c, XMPP_FAILED, why);
		return;
	}
	c->io.fd = r->fd;
	c->loopback = (uint8_t)r->loopback;
	set_keepalive(c->io.fd, c->keepalive);
	if (loop_add(c->loop, &c->io, EPOLLIN | EPOLLOUT) < 0) {
		fail(c, XMPP_FAILED, "cannot watch the connection to the XMPP server");
		return;
	}
	/* From here the server has connect_timeout to be ready. */
	timer_set(c->loop, &c->timer, loop_now(c->loop) + c->connect_timeout_ms);
	int direct = r->direct_tls || c->policy == TLS_DIRECT;
	int starttls = !direct && (c->policy == TLS_STARTTLS || (c->policy == TLS_DEFAULT && !r->loopback));
	c->tls = starttls ? TLS_WANT_FEATURES : TLS_OFF;
	if (direct)
		start_tls(c);
	else
		c->state = C_OPEN;
}

struct xmpp_conn *xmpp_open(struct loop *l, const struct xmpp_params *p, xmpp_cb cb, void *ctx)
{
	struct xmpp_conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->loop = l;
	c->cb = cb;
	c->ctx = ctx;
	c->max_output = p->max_output;
	c->policy = p->tls;
	c->connect_timeout_ms = p->connect_timeout_ms;
	c->stanza_timeout_ms = p->stanza_timeout_ms ? p->stanza_timeout_ms : 60000;
	memcpy(c->keepalive, p->keepalive, sizeof c->keepalive);
	c->domain = strdup(p->domain);
	c->lang = p->lang ? strdup(p->lang) : NULL;
	c->pin = p->pin && *p->pin ? strdup(p->pin) : NULL;
	c->split = splitter_new(p->max_stanza, on_split, c);
	c->io = (struct io){ .fd = -1, .cb = conn_io, .ctx = c };
	c->timer = (struct timer){ .cb = conn_timeout, .ctx = c };
	c->quiet = (struct timer){ .cb = conn_quiet, .ctx = c };
	c->stanza = (struct timer){ .cb = stanza_timeout, .ctx = c };
	if (!c->domain || (p->lang && !c->lang) || (p->pin && *p->pin && !c->pin) || !c->split ||
	    send_header(c, NULL) < 0)
		goto fail;
	struct dial_request req = {
		.domain = p->domain, .host = p->host, .port = p->port,
		.direct_tls = p->tls == TLS_DIRECT, .connect_timeout_ms = p->connect_timeout_ms,
	};
	c->dialer = dial_start(l, &req, dialed, c);
	if (!c->dialer)
		goto fail;
	/* Trying several SRV targets may take a few connect timeouts, not more. */
	timer_set(l, &c->timer, loop_now(l) + 3 * (uint64_t)p->connect_timeout_ms);
	return c;
fail:
	log_error("cannot start a connection to the XMPP server for %s", p->domain);
	conn_free(c);
	return NULL;
}

int xmpp_send(struct xmpp_conn *c, const char *data, size_t len)
{
	if (c->state == C_DONE || c->state == C_CLOSING)
		return -1;
	if (len == 0)
		return 0;
	if (!c->ready) /* nothing of the client's may precede TLS */
		return obuf_append(&c->early, data, len, c->max_output);
	if (append_out(c, data, len) < 0)
		return -1;
	if (c->state == C_OPEN && flush_out(c) < 0)
		return -1;
	update_interest(c);
	return 0;
}

int xmpp_restart(struct xmpp_conn *c, const char *extra_attrs)
{
	if (c->state != C_OPEN || !c->ready)
		return -1;
	/* The server answers the new header with a new stream: parse it afresh. */
	if (splitter_reset(c->split) < 0 || send_header(c, extra_attrs) < 0)
		return -1;
	if (flush_out(c) < 0)
		return -1;
	update_interest(c);
	return 0;
}

void xmpp_pause(struct xmpp_conn *c, int paused)
{
	if (c->paused == paused)
		return;
	c->paused = (uint8_t)paused;
	/* No reading from here: the owner may be inside one of our callbacks
	 * (a parse in progress). Level-triggered epoll reports waiting bytes. */
	if (c->state == C_OPEN) {
		update_interest(c);
		watch_stanza_time(c);
	}
}

int xmpp_secure(const struct xmpp_conn *c)
{
	return c->tls == TLS_UP || c->loopback;
}

const char *xmpp_stream_attr(const struct xmpp_conn *c, const char *name)
{
	return splitter_stream_attr(c->split, name);
}

void xmpp_close(struct xmpp_conn *c)
{
	if (!c || c->state == C_CLOSING)
		return;
	c->cb = NULL;
	cancel_timers(c);
	dial_cancel(c->dialer);
	c->dialer = NULL;
	if (c->state != C_OPEN || c->io.fd < 0) {
		c->state = C_CLOSING;
		finish_close(c);
		return;
	}
	c->state = C_CLOSING;
	static const char end[] = "</stream:stream>";
	if (append_out(c, end, sizeof end - 1) < 0 || flush_out(c) < 0) {
		finish_close(c);
		return;
	}
	if (c->out.off == c->out.b.len)
		end_writing(c);
	timer_set(c->loop, &c->timer, loop_now(c->loop) + XMPP_LINGER_MS);
	update_interest(c);
}

/* ---- graceful restart ---- */

int xmpp_movable(const struct xmpp_conn *c)
{
	/* An OpenSSL connection cannot move to another process; a connection
	 * still being set up is simply made again by the successor. */
	return c->state == C_OPEN && c->ready && !c->ssl && !c->dialer && c->io.fd >= 0 &&
	       c->early.b.len == c->early.off && (!c->split || splitter_movable(c->split));
}

int xmpp_snapshot(const struct xmpp_conn *c, struct snap_w *w)
{
	if (!xmpp_movable(c))
		return -1;
	snap_put_i64(w, c->io.fd);
	snap_put_str(w, c->domain);
	snap_put_str(w, c->lang);
	snap_put_str(w, c->pin);
	snap_put_u64(w, (uint64_t)c->policy);
	snap_put_u64(w, c->max_output);
	snap_put_u64(w, c->connect_timeout_ms);
	snap_put_u64(w, c->stanza_timeout_ms);
	snap_put_u64(w, c->paused);
	snap_put_u64(w, c->loopback);
	snap_put_bytes(w, c->out.b.data ? c->out.b.data + c->out.off : NULL, c->out.b.len - c->out.off);
	return splitter_snapshot(c->split, w);
}

struct xmpp_conn *xmpp_restore(struct loop *l, struct snap_r *r, size_t max_stanza, xmpp_cb cb,
                               void *ctx)
{
	struct xmpp_conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->loop = l;
	c->io = (struct io){ .fd = (int)snap_get_i64(r), .cb = conn_io, .ctx = c };
	c->domain = snap_get_str(r);
	c->lang = snap_get_str(r);
	c->pin = snap_get_str(r);
	c->policy = (enum backend_tls)snap_get_u64(r);
	c->max_output = snap_get_u64(r);
	c->connect_timeout_ms = (unsigned)snap_get_u64(r);
	c->stanza_timeout_ms = (unsigned)snap_get_u64(r);
	c->paused = (uint8_t)snap_get_u64(r);
	c->loopback = (uint8_t)snap_get_u64(r);
	size_t outlen;
	char *out = snap_get_bytes(r, &outlen);
	c->out = (struct obuf){ .b = { .data = out, .len = outlen, .cap = outlen } };
	c->split = snap_failed(r) ? NULL : splitter_restore(r, max_stanza, on_split, c);
	c->timer = (struct timer){ .cb = conn_timeout, .ctx = c };
	c->quiet = (struct timer){ .cb = conn_quiet, .ctx = c };
	c->stanza = (struct timer){ .cb = stanza_timeout, .ctx = c };
	c->state = C_OPEN;
	c->ready = 1;
	c->tls = TLS_OFF;
	if (!c->split || !c->domain || c->io.fd < 0 || loop_add(l, &c->io, 0) < 0) {
		if (c->io.fd >= 0)
			close(c->io.fd);
		conn_free(c);
		return NULL;
	}
	c->cb = cb;
	c->ctx = ctx;
	update_interest(c);
	watch_stanza_time(c);
	return c;
}

int xmpp_fd(const struct xmpp_conn *c)
{
	return c->io.fd;
}

void xmpp_forget(struct xmpp_conn *c)
{
	/* The other process of a restart owns the connection: send nothing,
	 * not even a TLS close_notify; closing our copy leaves it open. */
	if (!c)
		return;
	c->cb = NULL;
	cancel_timers(c);
	dial_cancel(c->dialer);
	c->dialer = NULL;
	c->state = C_CLOSING;
	finish_close(c);
}
