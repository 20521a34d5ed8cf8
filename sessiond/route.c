#define _GNU_SOURCE
#include "route.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int route_valid_domain(const char *d)
{
	size_t n = d ? strlen(d) : 0;
	if (n == 0 || n > 255)
		return 0;
	for (; *d; d++)
		if (!(*d == '.' || *d == '-' || (*d >= '0' && *d <= '9') || ((*d | 0x20) >= 'a' && (*d | 0x20) <= 'z') || (unsigned char)*d >= 0x80))
			return 0;
	return 1;
}

/* "xmpp:HOST:PORT" (XEP-0124 §7.1) into host and port; -1 if malformed. */
static int parse_route(const char *route, char *host, size_t hostlen, unsigned *port)
{
	if (strncmp(route, "xmpp:", 5) != 0)
		return -1;
	route += 5;
	const char *colon = strrchr(route, ':');
	char *end;
	if (!colon || colon == route || (size_t)(colon - route) >= hostlen)
		return -1;
	unsigned long p = strtoul(colon + 1, &end, 10);
	if (*end || colon[1] == 0 || p < 1 || p > 65535)
		return -1;
	size_t n = (size_t)(colon - route);
	if (route[0] == '[' && colon[-1] == ']') { /* xmpp:[::1]:5222 */
		route++;
		n -= 2;
	}
	memcpy(host, route, n);
	host[n] = 0;
	*port = (unsigned)p;
	struct in6_addr v6;
	return route_valid_domain(host) || inet_pton(AF_INET6, host, &v6) == 1 ? 0 : -1;
}

static int route_allowed(const char *list, const char *host, unsigned port)
{
	char want[300];
	snprintf(want, sizeof want, "%s:%u", host, port);
	for (const char *p = list; *p;) {
		p += strspn(p, " \t,");
		size_t len = strcspn(p, " \t,");
		if (len && ((len == strlen(want) && strncasecmp(p, want, len) == 0) ||
		            (len == strlen(want) + 5 && strncasecmp(p, "xmpp:", 5) == 0 &&
		             strncasecmp(p + 5, want, len - 5) == 0)))
			return 1;
		p += len;
	}
	return 0;
}

/* Where the XMPP connection goes. The client's 'route' is honoured only for
 * a target the configuration names (the domain's own backend, or one in
 * allowed_routes), so nobody can make us connect to an arbitrary address.
 * A route naming the 'to' domain itself, at any port (gloox sends
 * xmpp:DOMAIN:5222), asks for nothing the configuration does not already
 * say: we serve a defined list of domains, and XEP-0124 §7.1 lets such a
 * manager ignore 'route', so the domain's backend is used.
 * Returns NULL (target = backend), or the condition to terminate with. */
const char *route_choose(const char *route, const struct config_backend *be,
                         const char *allowed_routes, char *host, size_t hostlen, unsigned *port)
{
	host[0] = 0;
	if (be->host[0]) {
		snprintf(host, hostlen, "%s", be->host);
		*port = (unsigned)atoi(be->port);
	}
	if (!route || !*route)
		return NULL;
	char rhost[256];
	unsigned rport;
	if (parse_route(route, rhost, sizeof rhost, &rport) < 0)
		return "improper-addressing";
	if (be->host[0] && strcasecmp(rhost, be->host) == 0 && rport == *port)
		return NULL;
	if (!route_allowed(allowed_routes, rhost, rport))
		return strcasecmp(rhost, be->domain) == 0 ? NULL : "host-unknown";
	snprintf(host, hostlen, "%s", rhost);
	*port = rport;
	return NULL;
}
