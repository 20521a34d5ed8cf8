#define _GNU_SOURCE
#include "resolver.h"
#include "log.h"
#include "metrics.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

/* One socket c-ares asked us to watch. */
struct dns_sock {
	struct io io;
	struct dns_sock *next;
};

/* c-ares may answer inside the call that asks (a literal address, the
 * hosts file): the answer is then kept here and delivered on the next loop
 * turn, so a caller never sees its callback before the query is returned. */
struct resolver_query {
	int cancelled, in_call, status;
	void *ctx;
	resolver_srv_cb srv_cb;
	resolver_addr_cb addr_cb;
	struct timer later;
	const char *why;
	size_t n;
	union {
		struct srv_record srv[RESOLVER_MAX_SRV];
		struct resolved_addr addr[RESOLVER_MAX_ADDRS];
	} u;
};

static struct loop *loop;
static ares_channel channel;
static int channel_ok;
static struct dns_sock *socks;
static struct timer tick;

static void rearm_tick(void)
{
	struct timeval max = { .tv_sec = 1 }, tv;
	struct timeval *t = ares_timeout(channel, &max, &tv);
	uint64_t ms = (uint64_t)t->tv_sec * 1000 + (uint64_t)t->tv_usec / 1000;
	timer_set(loop, &tick, loop_now(loop) + (ms ? ms : 1));
}

static void sock_io(void *ctx, uint32_t events)
{
	struct dns_sock *ds = ctx;
	int fd = ds->io.fd;
	if (fd < 0)
		return;
	ares_socket_t r = events & (EPOLLIN | EPOLLERR | EPOLLHUP) ? fd : ARES_SOCKET_BAD;
	ares_socket_t w = events & EPOLLOUT ? fd : ARES_SOCKET_BAD;
	ares_process_fd(channel, r, w);
	rearm_tick();
}

static void on_tick(void *ctx)
{
	(void)ctx;
	ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	if (socks)
		rearm_tick();
}

/* c-ares tells us which of its sockets to watch, and when to stop. */
static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	(void)data;
	struct dns_sock **pp = &socks, *ds;
	while ((ds = *pp) && ds->io.fd != fd)
		pp = &ds->next;
	uint32_t ev = (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0);
	if (!ev) {
		if (ds) {
			*pp = ds->next;
			loop_del(loop, &ds->io);
			ds->io.fd = -1;
			loop_defer_free(loop, ds, free);
		}
		return;
	}
	if (ds) {
		loop_mod(loop, &ds->io, ev);
		return;
	}
	ds = calloc(1, sizeof *ds);
	if (!ds) {
		log_error("out of memory watching a DNS socket");
		return; /* the query times out */
	}
	ds->io = (struct io){ .fd = fd, .cb = sock_io, .ctx = ds };
	if (loop_add(loop, &ds->io, ev) < 0) {
		log_error("cannot watch a DNS socket: %s", strerror(errno));
		free(ds);
		return;
	}
	ds->next = socks;
	socks = ds;
	rearm_tick();
}

int resolver_init(struct loop *l, const char *servers, unsigned timeout_ms)
{
	loop = l;
	tick = (struct timer){ .cb = on_tick };
	int rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		log_error("c-ares: %s", ares_strerror(rc));
		return -1;
	}
	struct ares_options o = {
		.sock_state_cb = sock_state,
		.timeout = (int)timeout_ms,
		.tries = 2,
	};
	rc = ares_init_options(&channel, &o, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		log_error("c-ares: cannot start the resolver: %s", ares_strerror(rc));
		return -1;
	}
	channel_ok = 1;
	if (servers && *servers && (rc = ares_set_servers_ports_csv(channel, servers)) != ARES_SUCCESS) {
		log_error("dns_servers '%s': %s", servers, ares_strerror(rc));
		return -1;
	}
	return 0;
}

void resolver_shutdown(void)
{
	if (!channel_ok)
		return;
	ares_destroy(channel); /* calls back every query with ARES_EDESTRUCTION */
	channel_ok = 0;
	timer_cancel(loop, &tick);
	ares_library_cleanup();
}

static struct resolver_query *query_new(void *ctx)
{
	struct resolver_query *q = calloc(1, sizeof *q);
	if (q)
		q->ctx = ctx;
	return q;
}

void resolver_cancel(struct resolver_query *q)
{
	if (q)
		q->cancelled = 1; /* freed when c-ares calls back, or by deliver() */
}

static int srv_fill(const unsigned char *abuf, int alen, struct srv_record *out, size_t *n)
{
	struct ares_srv_reply *reply = NULL;
	int rc = ares_parse_srv_reply(abuf, alen, &reply);
	if (rc != ARES_SUCCESS)
		return rc;
	*n = 0;
	for (struct ares_srv_reply *r = reply; r && *n < RESOLVER_MAX_SRV; r = r->next) {
		size_t len = strlen(r->host);
		if (len >= sizeof out->target)
			continue; /* no DNS name is this long: a broken answer */
		struct srv_record *o = &out[(*n)++];
		memcpy(o->target, r->host, len + 1);
		o->port = r->port;
		o->priority = r->priority;
		o->weight = r->weight;
	}
	ares_free_data(reply);
	return ARES_SUCCESS;
}

static void deliver(void *arg)
{
	struct resolver_query *q = arg;
	if (!q->cancelled) {
		if (q->srv_cb)
			q->srv_cb(q->ctx, q->status, q->u.srv, q->n, q->why);
		else
			q->addr_cb(q->ctx, q->status, q->u.addr, q->n, q->why);
	}
	free(q);
}

/* Called by c-ares once per query, also when the channel is destroyed. */
static void answered(struct resolver_query *q, int ares_status)
{
	if (ares_status == ARES_EDESTRUCTION) {
		if (q->in_call)
			q->cancelled = 1;
		else
			free(q);
		return;
	}
	M.dns_lookups[q->status < 0 ? MR_FAILED : MR_OK]++;
	if (q->in_call) {
		q->later = (struct timer){ .cb = deliver, .ctx = q };
		timer_set(loop, &q->later, loop_now(loop));
		return;
	}
	deliver(q);
}

static void on_srv(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	(void)timeouts;
	struct resolver_query *q = arg;
	if (status == ARES_SUCCESS)
		status = srv_fill(abuf, alen, q->u.srv, &q->n);
	if (status == ARES_SUCCESS)
		q->status = q->n ? 0 : 1;
	else if (status == ARES_ENOTFOUND || status == ARES_ENODATA)
		q->status = 1;
	else
		q->status = -1, q->why = ares_strerror(status);
	answered(q, status);
}

struct resolver_query *resolver_srv(const char *name, resolver_srv_cb cb, void *ctx)
{
	struct resolver_query *q = query_new(ctx);
	if (!q)
		return NULL;
	q->srv_cb = cb;
	q->in_call = 1;
	ares_query(channel, name, ns_c_in, ns_t_srv, on_srv, q);
	q->in_call = 0;
	rearm_tick();
	return q;
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	(void)timeouts;
	struct resolver_query *q = arg;
	if (status == ARES_SUCCESS) {
		for (struct ares_addrinfo_node *a = res->nodes; a && q->n < RESOLVER_MAX_ADDRS; a = a->ai_next) {
			if ((size_t)a->ai_addrlen > sizeof q->u.addr[0].addr)
				continue;
			memcpy(&q->u.addr[q->n].addr, a->ai_addr, (size_t)a->ai_addrlen);
			q->u.addr[q->n++].len = (socklen_t)a->ai_addrlen;
		}
	}
	if (res)
		ares_freeaddrinfo(res);
	q->status = q->n ? 0 : -1;
	if (!q->n)
		q->why = status == ARES_SUCCESS ? "no usable address" : ares_strerror(status);
	answered(q, status);
}

/* An address written as one needs no name server (and c-ares would ask one). */
static int literal_address(const char *host, uint16_t port, struct resolved_addr *out)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)&out->addr;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->addr;
	memset(out, 0, sizeof *out);
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(port);
		out->len = sizeof *v4;
		return 1;
	}
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(port);
		out->len = sizeof *v6;
		return 1;
	}
	return 0;
}

struct resolver_query *resolver_addrs(const char *host, uint16_t port, resolver_addr_cb cb, void *ctx)
{
	struct resolver_query *q = query_new(ctx);
	if (!q)
		return NULL;
	q->addr_cb = cb;
	if (literal_address(host, port, &q->u.addr[0])) {
		q->n = 1;
		q->later = (struct timer){ .cb = deliver, .ctx = q };
		timer_set(loop, &q->later, loop_now(loop));
		return q;
	}
	char service[8];
	snprintf(service, sizeof service, "%u", (unsigned)port);
	struct ares_addrinfo_hints hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	q->in_call = 1;
	ares_getaddrinfo(channel, host, service, &hints, on_addrinfo, q);
	q->in_call = 0;
	rearm_tick();
	return q;
}
