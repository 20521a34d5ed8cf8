/* jsonattrs.h - a flat JSON object of strings, as XML attributes.
 *
 * node-xmpp-bosh clients send `stream_attrs='{"name":"value",...}'` on a
 * restart request: extra attributes for the new <stream:stream> header.
 * Only a flat object with string values is accepted, and only attribute
 * names that cannot change the stream's meaning (not to, version, xml:*,
 * xmlns*). The result is " name='value'..." with values escaped. */
#ifndef BOSH_JSONATTRS_H
#define BOSH_JSONATTRS_H

#include <stddef.h>

/* Writes the attributes to out[0..cap) (NUL-terminated). Returns 0, or -1
 * with a reason in why for malformed JSON, a name not allowed, a value
 * that is not a string, or output longer than cap. */
int json_attrs(const char *json, char *out, size_t cap, const char **why);

#endif
