/* xmlscan.h - the splitter's fast path: one whole, plain XML element
 * checked and measured without expat.
 *
 * Nearly everything an XMPP server sends is a plain stanza: unprefixed
 * ASCII names, quoted attributes, text with the five predefined entities,
 * UTF-8. expat's namespace-aware parse of such a stanza, and rebuilding a
 * parked parser for it, cost more than the rest of its way to the client.
 * xmlscan_element() checks the well-formedness of such an element itself,
 * refusing what expat refuses (character by character: XML characters,
 * UTF-8, names, attribute syntax and duplicates, matching end tags, "]]>"
 * in text, reserved namespace names).
 *
 * Anything else it declines: prefixed names (bar xml:lang), comments,
 * CDATA, processing instructions, character references and other
 * entities, non-ASCII names, more than XMLSCAN_MAX_ATTRS attributes on a
 * tag, nesting past max_depth, an element not yet whole. The caller then
 * gives the bytes to expat as before. Declining is always safe; accepting
 * what expat would refuse is the one thing this module must never do
 * (tests/fuzz/fuzz_splitter.c compares the two paths).
 */
#ifndef BOSH_XMLSCAN_H
#define BOSH_XMLSCAN_H

#include <stddef.h>

#define XMLSCAN_MAX_ATTRS 16

struct xmlscan_elem {
	size_t len;          /* bytes of the element, from its '<' */
	size_t name_len;     /* the name starts at p + 1 */
	const char *xmlns;   /* the value of its own xmlns='...' (no entities in it), or NULL */
	size_t xmlns_len;
	size_t max_value_len; /* the longest attribute value in it, as written */
};

/* One attribute of a start tag, by offsets from the tag's '<': the name as
 * written ("xml:lang" the one with a prefix), the value between its quotes
 * as written (has_ref: with entities to decode). */
struct xmlscan_attr {
	size_t name_off, name_len, value_off, value_len;
	int has_ref;
};

struct xmlscan_tag {
	size_t len;          /* bytes of the tag, '<' to '>' */
	size_t name_len;
	int empty;           /* <a/> */
	int nattrs;
	struct xmlscan_attr attr[XMLSCAN_MAX_ATTRS];
};

/* 1: p[0..n) begins with a whole, well-formed, plain element (out is
 * filled); 0: declined. max_depth: how deep elements may nest, the
 * element itself counting as one. */
int xmlscan_element(const char *p, size_t n, int max_depth, struct xmlscan_elem *out);

/* At '&' in p[0..n): the length of one of the five predefined entities
 * (the one kind of reference the scanner lets through), and in *c (unless
 * NULL) the character it stands for; 0 if none. */
size_t xmlscan_entity(const char *p, size_t n, char *c);

/* The index of the first byte at or after at in p[0..n) that is not XML
 * whitespace (space, tab, CR, LF); n if none. */
size_t xmlscan_skip_space(const char *p, size_t at, size_t n);

/* The same checks for a start tag alone (for an element whose content is
 * not one plain element: BOSH's <body/>): its length, 0 if declined. */
size_t xmlscan_start_tag(const char *p, size_t n, struct xmlscan_tag *t);

#endif
