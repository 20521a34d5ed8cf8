/* attrs.h - the checks every <body/> attribute passes before sessiond uses it.
 *
 * The handler has already parsed the body (well-formed, bounded, UTF-8);
 * these say whether each value means what the XEPs allow. A request that
 * fails is answered bad-request (§17.1 of XEP-0124) with a log line naming
 * the attribute, and nothing of it reaches a session, the XMPP server or
 * the database.
 */
#ifndef BOSH_ATTRS_H
#define BOSH_ATTRS_H

#include "frame.h"

#include <stddef.h>

#define ATTR_LANG_MAX 64     /* RFC 5646 §4.4.1 asks for 35 at least; private-use tags run longer */
#define ATTR_CONTENT_MAX 128 /* a media type and its parameters */
#define ATTR_FROM_MAX 3071   /* a full JID (RFC 7622: three parts of at most 1023 bytes) */
#define ATTR_UA_MAX 256      /* what the database keeps of 'ua' or User-Agent */
#define ATTR_NUMBER_MAX 9    /* digits of wait, hold, pause, ...: far above any limit, far below overflow */

/* A language tag (RFC 5646 syntax, loosely): subtags of 1 to 8 letters or
 * digits joined by '-', the first letters only, ATTR_LANG_MAX in all. */
int attr_lang_ok(const char *s);

/* 'ver': MAJOR.MINOR, each 1 to 4 digits. */
int attr_ver_ok(const char *s);

/* A non-negative decimal of at most ATTR_NUMBER_MAX digits, nothing else.
 * Returns the value, or -1. */
long attr_number(const char *s);

/* A value we can put into an HTTP header as it is: printable ASCII, at
 * most max bytes. */
int attr_header_safe(const char *s, size_t max);

/* Checks the attributes of a session creation request; 0 if they are all
 * acceptable, else -1 with the reason in why (naming the attribute). */
int attrs_check_creation(const struct frame_request *fr, char *why, size_t whylen);

/* The same for a request on an existing session (which may add a stream). */
int attrs_check_request(const struct frame_request *fr, char *why, size_t whylen);

#endif
