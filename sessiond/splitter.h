/* splitter.h - split an XMPP server's byte stream into stanzas.
 *
 * An incremental, namespace-aware expat parser over the server's
 * <stream:stream>. Each top-level child (a stanza, <stream:features/>,
 * <stream:error/>, SASL and TLS elements) is delivered as the exact bytes
 * the server sent, made self-contained: every namespace declaration in
 * scope from the stream header (the default jabber:client one and prefixed
 * ones such as xmlns:stream) that the element does not declare itself is
 * inserted into its start tag, right after the element name, so the bytes
 * can be placed inside a BOSH <body/> unchanged otherwise.
 *
 * Bounded: a top-level element larger than max_stanza bytes, nesting deeper
 * than SPLITTER_MAX_DEPTH, a DOCTYPE, entity declarations, processing
 * instructions, or malformed XML end the stream with an error. Memory held
 * between calls is the unfinished element's bytes only, charged to the
 * memory budget (budget.h).
 */
#ifndef BOSH_SPLITTER_H
#define BOSH_SPLITTER_H

#include <stddef.h>

#define SPLITTER_MAX_DEPTH 64
#define STREAM_NS "http://etherx.jabber.org/streams"

enum splitter_event {
	SPLIT_STREAM_OPEN,   /* the <stream:stream> header: see splitter_stream_attr() */
	SPLIT_FEATURES,      /* <stream:features/> */
	SPLIT_STREAM_ERROR,  /* <stream:error/> */
	SPLIT_ELEMENT,       /* any other top-level element (stanza, SASL, ...) */
	SPLIT_STREAM_CLOSE,  /* </stream:stream> */
};

/* Called for each event. data/len are the self-contained element bytes
 * (NULL/0 for STREAM_OPEN and STREAM_CLOSE). Returning non-zero stops the
 * parse: splitter_feed() then returns SPLITTER_STOPPED at once. The
 * callback must not call splitter_feed/reset/free on the same splitter. */
typedef int (*splitter_cb)(void *ctx, enum splitter_event ev, const char *data, size_t len);

struct splitter;

enum splitter_result {
	SPLITTER_OK = 0,
	SPLITTER_STOPPED = 1,  /* the callback asked to stop */
	SPLITTER_ERROR = -1,   /* see splitter_error() */
	SPLITTER_TOO_BIG = -2, /* a top-level element exceeded max_stanza */
	SPLITTER_NO_MEMORY = -3, /* the memory budget (budget.h) had no room for the held bytes */
};

struct splitter *splitter_new(size_t max_stanza, splitter_cb cb, void *ctx);

/* Feeds the next len bytes of the stream (any split works, one byte at a
 * time included). After an error every later call returns the same error. */
enum splitter_result splitter_feed(struct splitter *s, const char *data, size_t len);

/* For a stream restart (after SASL or STARTTLS): forget everything, expect
 * a new stream header. Keeps max_stanza, cb and ctx. Returns 0, -1 on OOM. */
int splitter_reset(struct splitter *s);

/* For an idle stream: frees the XML parser (most of a splitter's memory)
 * when no element is open and no bytes are held. The next feed builds a new
 * parser in the same state. Returns 1 if parked, 0 if it could not be now. */
int splitter_park(struct splitter *s);

/* 1 while parked (no parser). */
int splitter_parked(const struct splitter *s);

/* 1 while a top-level element (or the stream header) has begun and not
 * ended: a server that sends one must finish it in bounded time. */
int splitter_pending(const struct splitter *s);

/* Attribute of the last stream header ("id", "from", "version", "xml:lang"),
 * or NULL. Valid until the next reset. */
const char *splitter_stream_attr(const struct splitter *s, const char *name);

/* On by default: whole plain elements between top-level elements are
 * checked by xmlscan.h instead of expat (the same elements delivered, the
 * same refused). Off for the tests that compare the two. */
void splitter_fast_path(struct splitter *s, int on);

/* Human-readable reason for the last error, for the log. */
const char *splitter_error(const struct splitter *s);

void splitter_free(struct splitter *s);

/* Graceful restart: the stream's state and its unfinished tail, so a new
 * process's splitter resumes in the middle of the stream, even in the
 * middle of a stanza. -1 if the splitter has failed or the stream ended. */
struct snap_w;
struct snap_r;
/* 1 if splitter_snapshot() can write s now. */
int splitter_movable(const struct splitter *s);
int splitter_snapshot(const struct splitter *s, struct snap_w *w);
struct splitter *splitter_restore(struct snap_r *r, size_t max_stanza, splitter_cb cb, void *ctx);

#endif
