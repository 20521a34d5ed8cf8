/* route.h - where a session's XMPP connection may go.
 *
 * The domain must be served (a backend line); a client's 'route'
 * (XEP-0124 §7.1, "xmpp:HOST:PORT") is honoured only when it names the
 * domain's own backend or a target listed in allowed_routes, so nobody can
 * make sessiond connect to an address of their choosing (no SSRF). A route
 * that names the 'to' domain itself (any port) means the domain's backend.
 */
#ifndef BOSH_ROUTE_H
#define BOSH_ROUTE_H

#include "config.h"

#include <stddef.h>

/* 1 if d can be an XMPP domain as we take them (letters, digits, '.', '-', UTF-8). */
int route_valid_domain(const char *d);

/* Fills host/port with the target (host "" for SRV lookups of the domain):
 * the backend's, or the route's when allowed_routes lists it.
 * Returns NULL, or the terminal condition: improper-addressing for a
 * malformed route, host-unknown for one not allowed. */
const char *route_choose(const char *route, const struct config_backend *be,
                         const char *allowed_routes, char *host, size_t hostlen, unsigned *port);

#endif
