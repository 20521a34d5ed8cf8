#define _GNU_SOURCE
#include "xmpp.h"
#include "log.h"
#include "splitter.h"
#include "xmlesc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define XMPP_LINGER_MS 2000
#define XMPP_PARK_MS 1000 /* quiet this long, the parser's memory is given back */

enum conn_state { C_CONNECTING, C_OPEN, C_DONE, C_CLOSING };

struct xmpp_conn {
	struct io io;
	struct timer timer;
	struct timer quiet;   /* parks the splitter of a connection gone quiet */
	struct loop *loop;
	struct splitter *split;
	xmpp_cb cb;
	void *ctx;
	enum conn_state state;
	int paused;
	char *out;
	size_t out_len, out_off, out_cap, max_output;
	char *domain, *lang;
};

static char read_buf[65536];

static void conn_free(void *p)
{
	struct xmpp_conn *c = p;
	splitter_free(c->split);
	free(c->out);
	free(c->domain);
	free(c->lang);
	free(c);
}

/* Reports a terminal event once; the owner then calls xmpp_close(). */
static void finish_stream(struct xmpp_conn *c, enum xmpp_event ev, const char *data, size_t len)
{
	if (c->state == C_DONE || c->state == C_CLOSING)
		return;
	c->state = C_DONE;
	timer_cancel(c->loop, &c->timer);
	timer_cancel(c->loop, &c->quiet);
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
	if (c->state == C_CONNECTING || c->out_len > c->out_off)
		ev |= EPOLLOUT;
	if (c->state == C_CLOSING || (c->state == C_OPEN && !c->paused))
		ev |= EPOLLIN | EPOLLRDHUP;
	loop_mod(c->loop, &c->io, ev);
}

static int append_out(struct xmpp_conn *c, const char *data, size_t len)
{
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len - c->out_off + len > c->max_output)
		return -1;
	if (c->out_len + len > c->out_cap) {
		if (c->out_off) { /* compact before growing */
			memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		size_t cap = c->out_cap ? c->out_cap : 1024;
		while (cap < c->out_len + len)
			cap *= 2;
		char *n = realloc(c->out, cap);
		if (!n)
			return -1;
		c->out = n;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	return 0;
}

static void release_idle_buffer(struct xmpp_conn *c)
{
	/* Idle sessions are the common case: hold no output memory for them. */
	if (c->out_off == c->out_len && c->out_cap > 0) {
		free(c->out);
		c->out = NULL;
		c->out_cap = c->out_len = c->out_off = 0;
	}
}

static int flush_out(struct xmpp_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->io.fd, c->out + c->out_off, c->out_len - c->out_off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		c->out_off += (size_t)n;
	}
	release_idle_buffer(c);
	return 0;
}

/* Attribute values here come from the client or config: escape them. */
static void append_escaped(char *dst, size_t cap, const char *s)
{
	size_t o = strlen(dst);
	for (; *s && o + 7 < cap; s++) {
		const char *rep = xml_attr_entity(*s);
		if (rep) {
			memcpy(dst + o, rep, strlen(rep));
			o += strlen(rep);
		} else {
			dst[o++] = *s;
		}
	}
	dst[o] = 0;
}

static int send_header(struct xmpp_conn *c, const char *extra_attrs)
{
	char h[2048 + 1024] = "<?xml version='1.0'?><stream:stream to='";
	append_escaped(h, sizeof h, c->domain);
	if (c->lang) {
		strcat(h, "' xml:lang='");
		append_escaped(h, sizeof h, c->lang);
	}
	strcat(h, "' version='1.0' xmlns='jabber:client' xmlns:stream='" STREAM_NS "'");
	if (extra_attrs && strlen(h) + strlen(extra_attrs) + 2 < sizeof h)
		strcat(h, extra_attrs);
	strcat(h, ">");
	return append_out(c, h, strlen(h));
}

static int on_split(void *ctx, enum splitter_event ev, const char *data, size_t len)
{
	struct xmpp_conn *c = ctx;
	static const enum xmpp_event map[] = {
		[SPLIT_STREAM_OPEN] = XMPP_STREAM_OPEN,
		[SPLIT_FEATURES] = XMPP_FEATURES,
		[SPLIT_STREAM_ERROR] = XMPP_STREAM_ERROR,
		[SPLIT_ELEMENT] = XMPP_STANZA,
		[SPLIT_STREAM_CLOSE] = XMPP_STREAM_CLOSED,
	};
	if (ev == SPLIT_STREAM_ERROR || ev == SPLIT_STREAM_CLOSE) {
		finish_stream(c, map[ev], data, len);
		return 1;
	}
	if (c->cb)
		c->cb(c->ctx, map[ev], data, len);
	return c->state != C_OPEN;
}

static void handle_input(struct xmpp_conn *c)
{
	for (int rounds = 0; rounds < 4 && c->state == C_OPEN && !c->paused; rounds++) {
		ssize_t n = recv(c->io.fd, read_buf, sizeof read_buf, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			fail(c, n == 0 ? XMPP_STREAM_CLOSED : XMPP_FAILED,
			     n == 0 ? NULL : strerror(errno));
			return;
		}
		enum splitter_result r = splitter_feed(c->split, read_buf, (size_t)n);
		if (r == SPLITTER_TOO_BIG)
			fail(c, XMPP_FAILED, "the server sent a stanza larger than max_xmpp_stanza_size");
		else if (r == SPLITTER_ERROR) {
			char why[256];
			snprintf(why, sizeof why, "the server sent malformed XML: %s", splitter_error(c->split));
			fail(c, XMPP_FAILED, why);
		}
		if ((size_t)n < sizeof read_buf)
			return;
	}
}

static void finish_close(struct xmpp_conn *c)
{
	timer_cancel(c->loop, &c->timer);
	timer_cancel(c->loop, &c->quiet);
	loop_del(c->loop, &c->io);
	close(c->io.fd);
	c->io.fd = -1;
	loop_defer_free(c->loop, c, conn_free);
}

static void closing_io(struct xmpp_conn *c, uint32_t events)
{
	if (events & (EPOLLERR | EPOLLHUP) || flush_out(c) < 0) {
		finish_close(c);
		return;
	}
	if (c->out_off == c->out_len)
		shutdown(c->io.fd, SHUT_WR);
	if (events & (EPOLLIN | EPOLLRDHUP)) {
		ssize_t n;
		while ((n = recv(c->io.fd, read_buf, sizeof read_buf, MSG_DONTWAIT)) > 0)
			;
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			finish_close(c);
			return;
		}
	}
	update_interest(c);
}

static void connected(struct xmpp_conn *c)
{
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		char why[256];
		snprintf(why, sizeof why, "connecting to the XMPP server failed: %s", strerror(err));
		fail(c, XMPP_FAILED, why);
		return;
	}
	c->state = C_OPEN;
}

static void conn_io(void *ctx, uint32_t events)
{
	struct xmpp_conn *c = ctx;
	if (c->io.fd < 0 || c->state == C_DONE)
		return;
	if (c->state == C_CLOSING) {
		closing_io(c, events);
		return;
	}
	if (c->state == C_CONNECTING) {
		connected(c);
		if (c->state != C_OPEN)
			return;
	}
	if (events & EPOLLIN) {
		handle_input(c);
		if (c->state == C_OPEN)
			timer_set(c->loop, &c->quiet, loop_now(c->loop) + XMPP_PARK_MS);
	}
	else if (events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))
		handle_input(c); /* recv reports the error or EOF */
	if (c->state == C_OPEN && (events & EPOLLOUT) && flush_out(c) < 0)
		fail(c, XMPP_FAILED, "writing to the XMPP server failed");
	if (c->state == C_OPEN) {
		update_interest(c);
		if (timer_armed(&c->timer) && xmpp_stream_attr(c, "id"))
			timer_cancel(c->loop, &c->timer);
	}
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
	fail(c, XMPP_FAILED, "the XMPP server did not open a stream in time");
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
	c->domain = strdup(p->domain);
	c->lang = p->lang ? strdup(p->lang) : NULL;
	c->split = splitter_new(p->max_stanza, on_split, c);
	c->io = (struct io){ .fd = -1, .cb = conn_io, .ctx = c };
	c->timer = (struct timer){ .cb = conn_timeout, .ctx = c };
	c->quiet = (struct timer){ .cb = conn_quiet, .ctx = c };
	if (!c->domain || (p->lang && !c->lang) || !c->split || send_header(c, NULL) < 0)
		goto fail;
	c->io.fd = socket(p->addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->io.fd < 0) {
		log_warn("socket: %s", strerror(errno));
		goto fail;
	}
	if (connect(c->io.fd, p->addr, p->addrlen) < 0 && errno != EINPROGRESS) {
		log_info("connect to the XMPP server failed at once: %s", strerror(errno));
		goto fail;
	}
	if (loop_add(l, &c->io, EPOLLOUT) < 0)
		goto fail;
	timer_set(l, &c->timer, loop_now(l) + p->connect_timeout_ms);
	return c;
fail:
	if (c->io.fd >= 0)
		close(c->io.fd);
	conn_free(c);
	return NULL;
}

int xmpp_send(struct xmpp_conn *c, const char *data, size_t len)
{
	if (c->state == C_DONE || c->state == C_CLOSING)
		return -1;
	if (len == 0)
		return 0;
	if (append_out(c, data, len) < 0)
		return -1;
	if (c->state == C_OPEN && flush_out(c) < 0)
		return -1;
	update_interest(c);
	return 0;
}

int xmpp_restart(struct xmpp_conn *c, const char *extra_attrs)
{
	if (c->state != C_OPEN && c->state != C_CONNECTING)
		return -1;
	/* The server answers the new header with a new stream: parse it afresh. */
	if (splitter_reset(c->split) < 0 || send_header(c, extra_attrs) < 0)
		return -1;
	if (c->state == C_OPEN && flush_out(c) < 0)
		return -1;
	update_interest(c);
	return 0;
}

void xmpp_pause(struct xmpp_conn *c, int paused)
{
	if (c->paused == paused)
		return;
	c->paused = paused;
	/* No reading from here: the owner may be inside one of our callbacks
	 * (a parse in progress). Level-triggered epoll reports waiting bytes. */
	if (c->state == C_OPEN)
		update_interest(c);
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
	timer_cancel(c->loop, &c->timer);
	timer_cancel(c->loop, &c->quiet);
	if (c->state != C_OPEN || c->io.fd < 0) {
		c->state = C_CLOSING;
		if (c->io.fd >= 0)
			finish_close(c);
		else
			loop_defer_free(c->loop, c, conn_free);
		return;
	}
	c->state = C_CLOSING;
	static const char end[] = "</stream:stream>";
	if (append_out(c, end, sizeof end - 1) < 0 || flush_out(c) < 0) {
		finish_close(c);
		return;
	}
	if (c->out_off == c->out_len)
		shutdown(c->io.fd, SHUT_WR);
	timer_set(c->loop, &c->timer, loop_now(c->loop) + XMPP_LINGER_MS);
	update_interest(c);
}
