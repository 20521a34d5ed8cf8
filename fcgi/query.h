/* query.h - BOSH bodies carried in a GET query string.
 *
 * Two conventions, for clients that cannot POST across origins:
 *   ?data=<urlencoded body>[&callback=NAME]   node-xmpp-bosh; JSONP when callback is given
 *   ?<urlencoded body>                        Openfire's script form, answered as _BOSH_("...")
 */
#ifndef BOSH_QUERY_H
#define BOSH_QUERY_H

#include <stddef.h>

#define QUERY_CALLBACK_MAX 64

struct query_body {
	size_t len;                             /* decoded body bytes written to out */
	char callback[QUERY_CALLBACK_MAX + 1];  /* JSONP function name, "" if none */
	int script;                             /* Openfire form: answer with _BOSH_("...") */
};

/* Decodes the body from query string qs into out[0..cap). Returns 0, or -1
 * with a reason in why (malformed escape, body longer than cap, a callback
 * that is not a plain JavaScript name). */
int query_body(const char *qs, char *out, size_t cap, struct query_body *q, const char **why);

#endif
