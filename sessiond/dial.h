/* dial.h - find and connect to the XMPP server of a domain, on the loop.
 *
 * With an explicit host and port, resolves that host; without, looks up
 * _xmpps-client._tcp and _xmpp-client._tcp SRV records (RFC 6120 §3.2,
 * XEP-0368), orders them by priority and weight (RFC 2782) and falls back
 * to the domain itself on 5222. Each target's addresses (IPv6 and IPv4)
 * are tried in order, each with its own connect timeout. The callback runs
 * once, with a connected non-blocking socket or the reason there is none;
 * the dialer is gone after it.
 */
#ifndef BOSH_DIAL_H
#define BOSH_DIAL_H

#include "loop.h"

#include <stddef.h>
#include <stdint.h>

struct dial_request {
	const char *domain;     /* the XMPP domain */
	const char *host;       /* explicit target, or NULL to use SRV */
	uint16_t port;
	int direct_tls;         /* the explicit target speaks TLS from the start */
	unsigned connect_timeout_ms;
};

struct dial_result {
	int fd;
	int direct_tls;         /* TLS from the first byte (config or _xmpps-client) */
	int loopback;           /* connected to this machine */
	const char *target;     /* host name connected to, for logs */
};

/* r is NULL on failure, with why. */
typedef void (*dial_cb)(void *ctx, const struct dial_result *r, const char *why);

struct dialer;

struct dial_target {
	char host[256];
	uint16_t port, priority, weight;
	uint8_t direct_tls;
};

/* Orders SRV targets (RFC 2782): ascending priority; within a priority, a
 * random order weighted by weight (rnd: random() in sessiond). */
void dial_order_targets(struct dial_target *t, size_t n, long (*rnd)(void));

struct dialer *dial_start(struct loop *l, const struct dial_request *req, dial_cb cb, void *ctx);

/* Stops a dial in progress; its callback will not run. */
void dial_cancel(struct dialer *d);

#endif
