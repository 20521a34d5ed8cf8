/* resolver.h - asynchronous DNS on sessiond's loop (c-ares).
 *
 * SRV lookups for XMPP service discovery (RFC 6120 §3.2, XEP-0368) and
 * A/AAAA lookups for the targets, answered through callbacks on the loop,
 * so a slow or dead name server never blocks another session. A query can
 * be cancelled; its callback then never runs.
 */
#ifndef BOSH_RESOLVER_H
#define BOSH_RESOLVER_H

#include "loop.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RESOLVER_MAX_SRV 16
#define RESOLVER_MAX_ADDRS 8

struct srv_record {
	char target[256];
	uint16_t port, priority, weight;
};

/* status 0: n records (n may be 0: the name exists but has no SRV);
 * 1: no such name or no records; -1: the lookup failed (why says how). */
typedef void (*resolver_srv_cb)(void *ctx, int status, const struct srv_record *r, size_t n,
                                const char *why);

struct resolved_addr {
	struct sockaddr_storage addr;
	socklen_t len;
};

/* status 0: n addresses, in the order to try them; -1: none (why). */
typedef void (*resolver_addr_cb)(void *ctx, int status, const struct resolved_addr *a, size_t n,
                                 const char *why);

struct resolver_query;

/* servers: "" for the system's resolv.conf, or c-ares' "HOST[:PORT],..." */
int resolver_init(struct loop *l, const char *servers, unsigned timeout_ms);
void resolver_shutdown(void);

struct resolver_query *resolver_srv(const char *name, resolver_srv_cb cb, void *ctx);
struct resolver_query *resolver_addrs(const char *host, uint16_t port, resolver_addr_cb cb, void *ctx);

/* The callback of q will not be called. */
void resolver_cancel(struct resolver_query *q);

#endif
