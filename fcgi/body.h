/* body.h - parse and validate one BOSH <body/> wrapper (XEP-0124 §6, §7).
 *
 * The input is the raw HTTP request body. The parser is expat, hardened:
 * a DOCTYPE, any entity or notation declaration, a processing instruction,
 * a comment, invalid UTF-8, nesting deeper than BODY_MAX_DEPTH, more than
 * BODY_MAX_ATTRS attributes on one element, or an attribute value longer
 * than BODY_MAX_ATTR_LEN bytes stops the parse. Nothing is expanded or
 * fetched. The payload is passed on as the exact bytes the client sent,
 * once expat has checked them well-formed.
 */
#ifndef BOSH_BODY_H
#define BOSH_BODY_H

#include <stddef.h>

#define BODY_NS           "http://jabber.org/protocol/httpbind"
#define BODY_MAX_DEPTH    32   /* <body/> is depth 1 */
#define BODY_MAX_ATTRS    32   /* per element */
#define BODY_MAX_ATTR_LEN 4096 /* bytes of one attribute value */

/* One attribute of the <body/> element. Names of attributes in a namespace
 * are given with the conventional prefix, whatever prefix the client used:
 * "xml:lang", "xmpp:version", "xmpp:restart", "xmpp:restartlogic"; an
 * attribute in any other namespace is given as "{URI}local". Values are
 * NUL-terminated, entity-decoded UTF-8. */
struct body_attr {
	char *name;
	char *value;
};

struct body {
	struct body_attr *attrs;
	size_t nattrs;
	const char *payload;  /* points into the caller's input buffer */
	size_t payload_len;   /* bytes between <body ...> and </body>; 0 for <body/> */
};

/* Parses buf[0..len). On success fills *out and returns 0; the payload
 * pointer aims into buf, so buf must outlive *out. On failure returns -1
 * and writes a one-line reason (for the log) into err[0..errlen).
 * Rejected besides the hardening above: a root that is not <body/> in
 * BODY_NS, non-whitespace text directly inside <body/>, anything after
 * the root element. */
int body_parse(const char *buf, size_t len, struct body *out, char *err, size_t errlen);

/* On by default: a plain <body/> (see body.c) is checked without expat,
 * with the same result. Off for the tests that compare the two. The count
 * is of requests the fast path took. */
void body_fast_path(int on);
unsigned long body_fast_parses(void);

/* The value of attribute name, or NULL. */
const char *body_attr(const struct body *b, const char *name);

void body_free(struct body *b);

#endif
