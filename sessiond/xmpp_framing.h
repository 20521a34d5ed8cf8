/* xmpp_framing.h - XMPP over WebSocket (RFC 7395), the part without I/O.
 *
 * Client to server: every WebSocket text message is one complete XML
 * document holding one element (§3.3.3): <open/> (a stream header),
 * <close/> (</stream:stream>), or a stanza or other top-level element that
 * goes to the XMPP server as it is. xf_classify() says which, and refuses
 * two elements in one message, text outside the element, a DOCTYPE, entity
 * declarations, processing instructions, comments, malformed XML or UTF-8,
 * elements nested deeper than XF_MAX_DEPTH, an unknown framing element and
 * a <stream:stream> element. The answer to a refused message is a
 * <stream:error/> (xf_build_stream_error) and a <close/>.
 *
 * Server to client: the stream header becomes <open/> (xf_build_open, from
 * splitter_stream_attr()); </stream:stream> becomes <close/>. Every other
 * top-level element the splitter delivers (SPLIT_ELEMENT, SPLIT_FEATURES,
 * SPLIT_STREAM_ERROR) is already self-contained: the splitter inserts the
 * stream header's namespace declarations into its start tag, so a stanza
 * carries xmlns='jabber:client' and <stream:features/> or <stream:error/>
 * carries xmlns:stream (§3.3.3, §3.4). Send those bytes unchanged, one
 * element per message; after a <stream:error/> send <close/> (§3.6).
 */
#ifndef BOSH_XMPP_FRAMING_H
#define BOSH_XMPP_FRAMING_H

#include "buf.h"

#include <stddef.h>

#define XF_NS "urn:ietf:params:xml:ns:xmpp-framing"
#define XF_MAX_DEPTH 64 /* the message's element is depth 1 */

enum xf_kind {
	XF_INVALID, /* see xf_msg.why */
	XF_OPEN,    /* <open/>: to, from, version, lang, id as sent */
	XF_CLOSE,   /* <close/> */
	XF_STANZA,  /* any other single element: ns and name say which */
};

/* What a message is. Strings point into the classifier and stay valid
 * until its next xf_classify() call; absent attributes are NULL. */
struct xf_msg {
	enum xf_kind kind;
	const char *to, *from, *version, *lang, *id; /* XF_OPEN */
	const char *ns, *name;   /* XF_STANZA: namespace ("" for none) and local name */
	const char *why;         /* XF_INVALID: for the log */
};

/* One classifier serves every connection (sessiond has one thread): it
 * keeps one expat parser and resets it for each message. */
struct xf_classifier;

struct xf_classifier *xf_classifier_new(void);
void xf_classifier_free(struct xf_classifier *x);

/* Classifies one complete text message (as ws_conn's on_text gives it).
 * Returns out->kind (out of memory is XF_INVALID too, with its why). */
enum xf_kind xf_classify(struct xf_classifier *x, const char *msg, size_t len, struct xf_msg *out);

/* <open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from= id= version=
 * xml:lang=/> with each attribute escaped (whitespace as references, so it
 * reads back exactly), absent ones left out.
 * -1 on OOM. */
int xf_build_open(struct buf *b, const char *from, const char *id, const char *version, const char *lang);

/* <close xmlns="urn:ietf:params:xml:ns:xmpp-framing" />, spelled as
 * Strophe.js expects it. -1 on OOM. */
int xf_build_close(struct buf *b);

/* Our own stream error for the client, e.g. "invalid-xml", "not-well-formed",
 * "policy-violation", "host-unknown": a <stream:error/> that declares the
 * stream prefix itself. condition must be a lower-case name (RFC 6120
 * §4.9.3); text (may be NULL) is escaped. -1 on OOM or a bad condition. */
int xf_build_stream_error(struct buf *b, const char *condition, const char *text);

#endif
