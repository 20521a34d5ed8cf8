#define _GNU_SOURCE
#include "dial.h"
#include "log.h"
#include "metrics.h"
#include "resolver.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_TARGETS (2 * RESOLVER_MAX_SRV + 1)


struct dialer {
	struct loop *loop;
	dial_cb cb;
	void *ctx;
	char domain[256];
	unsigned timeout_ms;
	struct resolver_query *srv_q[2], *addr_q;
	int srv_pending, service_refused;
	struct dial_target targets[MAX_TARGETS];
	size_t ntargets, cur;
	struct resolved_addr addrs[RESOLVER_MAX_ADDRS];
	size_t naddrs, acur;
	struct io io;
	struct timer timer;
	char last_error[300];
};

static void next_target(struct dialer *d);
static void try_addr(struct dialer *d);

static int is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr);
	return 0;
}

static void release(struct dialer *d)
{
	for (int i = 0; i < 2; i++)
		resolver_cancel(d->srv_q[i]);
	resolver_cancel(d->addr_q);
	timer_cancel(d->loop, &d->timer);
	if (d->io.fd >= 0) {
		loop_del(d->loop, &d->io);
		close(d->io.fd);
		d->io.fd = -1;
	}
	d->cb = NULL;
	loop_defer_free(d->loop, d, free);
}

static void fail(struct dialer *d, const char *why)
{
	dial_cb cb = d->cb;
	void *ctx = d->ctx;
	release(d);
	if (cb)
		cb(ctx, NULL, why);
}

static void succeed(struct dialer *d)
{
	const struct dial_target *t = &d->targets[d->cur];
	struct dial_result r = {
		.fd = d->io.fd, .direct_tls = t->direct_tls, .target = t->host,
		.loopback = is_loopback((const struct sockaddr *)&d->addrs[d->acur].addr),
	};
	timer_cancel(d->loop, &d->timer);
	loop_del(d->loop, &d->io);
	/* Stanzas are small and each is worth sending at once: no Nagle delay. */
	int one = 1;
	if (setsockopt(d->io.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
		log_debug("TCP_NODELAY: %s", strerror(errno));
	d->io.fd = -1; /* the caller's now */
	M.backend_connects[MR_OK]++;
	log_debug("connected to %s:%u for %s%s", t->host, (unsigned)t->port, d->domain,
	          t->direct_tls ? " (direct TLS)" : "");
	dial_cb cb = d->cb;
	void *ctx = d->ctx;
	d->cb = NULL;
	cb(ctx, &r, NULL); /* t stays valid: the dialer is freed after this turn */
	release(d);
}

static void attempt_failed(struct dialer *d, const char *why)
{
	const struct dial_target *t = &d->targets[d->cur];
	char addr[INET6_ADDRSTRLEN] = "?";
	if (d->acur < d->naddrs)
		getnameinfo((const struct sockaddr *)&d->addrs[d->acur].addr, d->addrs[d->acur].len, addr,
		            sizeof addr, NULL, 0, NI_NUMERICHOST);
	snprintf(d->last_error, sizeof d->last_error, "%s:%u (%s): %s", t->host, (unsigned)t->port,
	         addr, why);
	char reason[256];
	log_info("backend failed: domain=%s target=%s:%u address=%s reason=%s", d->domain, t->host,
	         (unsigned)t->port, addr, log_quoted(reason, sizeof reason, why));
	M.backend_connects[MR_FAILED]++;
	timer_cancel(d->loop, &d->timer);
	if (d->io.fd >= 0) {
		loop_del(d->loop, &d->io);
		close(d->io.fd);
		d->io.fd = -1;
	}
	d->acur++;
	try_addr(d);
}

static void on_connect(void *ctx, uint32_t events)
{
	(void)events;
	struct dialer *d = ctx;
	int err = 0;
	socklen_t len = sizeof err;
	if (d->io.fd < 0)
		return;
	if (getsockopt(d->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err)
		attempt_failed(d, strerror(err));
	else
		succeed(d);
}

static void on_timeout(void *ctx)
{
	attempt_failed(ctx, "connect timed out");
}

static void try_addr(struct dialer *d)
{
	for (; d->acur < d->naddrs; d->acur++) {
		const struct resolved_addr *a = &d->addrs[d->acur];
		int fd = socket(a->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			log_warn("socket: %s", strerror(errno));
			continue;
		}
		d->io = (struct io){ .fd = fd, .cb = on_connect, .ctx = d };
		if (connect(fd, (const struct sockaddr *)&a->addr, a->len) < 0 && errno != EINPROGRESS) {
			attempt_failed(d, strerror(errno)); /* moves on by itself */
			return;
		}
		if (loop_add(d->loop, &d->io, EPOLLOUT) < 0) {
			close(fd);
			d->io.fd = -1;
			continue;
		}
		timer_set(d->loop, &d->timer, loop_now(d->loop) + d->timeout_ms);
		return;
	}
	d->cur++;
	next_target(d);
}

static void on_addrs(void *ctx, int status, const struct resolved_addr *a, size_t n, const char *why)
{
	struct dialer *d = ctx;
	d->addr_q = NULL;
	if (status < 0) {
		const struct dial_target *t = &d->targets[d->cur];
		snprintf(d->last_error, sizeof d->last_error, "cannot resolve %s: %s", t->host, why);
		char reason[256];
		log_info("backend failed: domain=%s target=%s:%u address=- reason=%s", d->domain, t->host,
		         (unsigned)t->port, log_quoted(reason, sizeof reason, d->last_error));
		d->cur++;
		next_target(d);
		return;
	}
	memcpy(d->addrs, a, n * sizeof *a);
	d->naddrs = n;
	d->acur = 0;
	try_addr(d);
}

static void next_target(struct dialer *d)
{
	if (d->cur >= d->ntargets) {
		char why[sizeof d->domain + sizeof d->last_error + 64];
		snprintf(why, sizeof why, "no XMPP server for %s could be reached (last: %s)", d->domain,
		         d->last_error[0] ? d->last_error : "no targets");
		fail(d, why);
		return;
	}
	const struct dial_target *t = &d->targets[d->cur];
	d->addr_q = resolver_addrs(t->host, t->port, on_addrs, d);
	if (!d->addr_q)
		fail(d, "out of memory resolving a host");
}

static void add_target(struct dialer *d, const char *host, uint16_t port, uint16_t prio,
                       uint16_t weight, int direct_tls)
{
	if (d->ntargets == MAX_TARGETS || strlen(host) >= sizeof d->targets[0].host)
		return;
	struct dial_target *t = &d->targets[d->ntargets++];
	snprintf(t->host, sizeof t->host, "%s", host);
	t->port = port;
	t->priority = prio;
	t->weight = weight;
	t->direct_tls = (uint8_t)direct_tls;
}

/* RFC 2782: by priority, then within a priority a weighted random order. */
void dial_order_targets(struct dial_target *t, size_t n, long (*rnd)(void))
{
	for (size_t i = 1; i < n; i++) /* stable insertion sort by priority */
		for (size_t j = i; j > 0 && t[j - 1].priority > t[j].priority; j--) {
			struct dial_target tmp = t[j];
			t[j] = t[j - 1];
			t[j - 1] = tmp;
		}
	for (size_t start = 0; start < n;) {
		size_t end = start;
		while (end < n && t[end].priority == t[start].priority)
			end++;
		/* zero weights first, so they keep a small chance (RFC 2782) */
		for (size_t i = start + 1; i < end; i++)
			for (size_t j = i; j > start && t[j].weight == 0 && t[j - 1].weight != 0; j--) {
				struct dial_target tmp = t[j];
				t[j] = t[j - 1];
				t[j - 1] = tmp;
			}
		for (size_t i = start; i + 1 < end; i++) {
			/* the running sum of weights from i picks the next target */
			unsigned long total = 0;
			for (size_t j = i; j < end; j++)
				total += t[j].weight;
			unsigned long r = total ? (unsigned long)rnd() % (total + 1) : 0, run = 0;
			size_t pick = i;
			for (size_t j = i; j < end; j++) {
				run += t[j].weight;
				if (run >= r) {
					pick = j;
					break;
				}
			}
			struct dial_target tmp = t[i];
			t[i] = t[pick];
			t[pick] = tmp;
		}
		start = end;
	}
}

static void srv_done(struct dialer *d)
{
	if (--d->srv_pending > 0)
		return;
	if (d->ntargets == 0 && d->service_refused) {
		char why[400];
		snprintf(why, sizeof why, "%s says it offers no XMPP client service (SRV target '.')", d->domain);
		fail(d, why);
		return;
	}
	if (d->ntargets == 0) /* RFC 6120 §3.2.2: fall back to the domain itself */
		add_target(d, d->domain, 5222, 0, 0, 0);
	else
		dial_order_targets(d->targets, d->ntargets, random);
	next_target(d);
}

static void on_srv(struct dialer *d, int which, int status, const struct srv_record *r, size_t n,
                   const char *why)
{
	d->srv_q[which] = NULL;
	if (status < 0)
		log_info("SRV lookup for %s (%s): %s", d->domain, which ? "xmpp-client" : "xmpps-client", why);
	for (size_t i = 0; status == 0 && i < n; i++) {
		if (!r[i].target[0] || strcmp(r[i].target, ".") == 0)
			d->service_refused = 1;
		else
			add_target(d, r[i].target, r[i].port, r[i].priority, r[i].weight, which == 0);
	}
	srv_done(d);
}

static void on_srv_tls(void *ctx, int st, const struct srv_record *r, size_t n, const char *why)
{
	on_srv(ctx, 0, st, r, n, why);
}

static void on_srv_plain(void *ctx, int st, const struct srv_record *r, size_t n, const char *why)
{
	on_srv(ctx, 1, st, r, n, why);
}

struct dialer *dial_start(struct loop *l, const struct dial_request *req, dial_cb cb, void *ctx)
{
	struct dialer *d = calloc(1, sizeof *d);
	if (!d || strlen(req->domain) >= sizeof d->domain) {
		free(d);
		return NULL;
	}
	d->loop = l;
	d->cb = cb;
	d->ctx = ctx;
	d->timeout_ms = req->connect_timeout_ms;
	snprintf(d->domain, sizeof d->domain, "%s", req->domain);
	d->io = (struct io){ .fd = -1 };
	d->timer = (struct timer){ .cb = on_timeout, .ctx = d };
	if (req->host) {
		add_target(d, req->host, req->port, 0, 0, req->direct_tls);
		d->addr_q = resolver_addrs(req->host, req->port, on_addrs, d);
		if (!d->addr_q || d->ntargets == 0) {
			release(d);
			return NULL;
		}
		return d;
	}
	char name[300];
	d->srv_pending = 2;
	snprintf(name, sizeof name, "_xmpps-client._tcp.%s", d->domain);
	d->srv_q[0] = resolver_srv(name, on_srv_tls, d);
	snprintf(name, sizeof name, "_xmpp-client._tcp.%s", d->domain);
	d->srv_q[1] = resolver_srv(name, on_srv_plain, d);
	if (!d->srv_q[0] || !d->srv_q[1]) {
		release(d);
		return NULL;
	}
	return d;
}

void dial_cancel(struct dialer *d)
{
	if (d)
		release(d);
}
