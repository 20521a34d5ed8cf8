/* xmpp.h - one client-to-server XMPP connection, non-blocking, on the loop.
 *
 * Finds and connects to the server (dial.c), protects the stream with TLS
 * as the domain's policy says (direct TLS, or STARTTLS negotiated here, so
 * the owner never sees it), and turns the server's bytes into events
 * (splitter.c does the splitting). The owner gets every event through one
 * callback; its first XMPP_FEATURES are those of the protected stream.
 * After XMPP_FAILED, XMPP_STREAM_ERROR or XMPP_STREAM_CLOSED no more events
 * come and the owner must call xmpp_close().
 */
#ifndef BOSH_XMPP_H
#define BOSH_XMPP_H

#include "config.h"
#include "loop.h"

#include <stddef.h>
#include <stdint.h>

enum xmpp_event {
	XMPP_STREAM_OPEN,   /* the server's stream header arrived */
	XMPP_FEATURES,      /* data: <stream:features/>, self-contained */
	XMPP_STANZA,        /* data: any other top-level element, self-contained */
	XMPP_STREAM_ERROR,  /* data: the <stream:error/> element; the stream is over */
	XMPP_STREAM_CLOSED, /* </stream:stream> or EOF from the server */
	XMPP_FAILED,        /* data: why (connect, I/O, malformed, oversized, timeout) */
};

typedef void (*xmpp_cb)(void *ctx, enum xmpp_event ev, const char *data, size_t len);

struct xmpp_conn;

struct xmpp_params {
	const char *domain;      /* 'to' of the stream header, and the name TLS checks */
	const char *host;        /* explicit server, or NULL to look up SRV records */
	uint16_t port;
	enum backend_tls tls;
	const char *pin;         /* SPKI pin (tls.h), or NULL */
	const char *lang;        /* xml:lang, or NULL */
	size_t max_stanza;
	size_t max_output;       /* bytes queued towards the server before failing */
	unsigned connect_timeout_ms;
	unsigned stanza_timeout_ms; /* longest time to finish a started stanza */
	unsigned keepalive[3];   /* TCP keepalive: idle s, interval s, probes; idle 0: off */
};

/* Starts connecting. NULL on immediate failure (logged). */
struct xmpp_conn *xmpp_open(struct loop *l, const struct xmpp_params *p, xmpp_cb cb, void *ctx);

/* Queues bytes for the server. -1 if the output bound is exceeded. */
int xmpp_send(struct xmpp_conn *c, const char *data, size_t len);

/* XEP-0206 restart: a new stream header, a fresh parser. extra_attrs (or
 * NULL) goes into the new header as it is: " name='escaped value'...". */
int xmpp_restart(struct xmpp_conn *c, const char *extra_attrs);

/* Stop or resume reading (back-pressure when the client is not polling). */
void xmpp_pause(struct xmpp_conn *c, int paused);

/* 1 if nobody else can read the stream: TLS, or a loopback connection. */
int xmpp_secure(const struct xmpp_conn *c);

/* Attribute of the server's stream header ("id", "from", "version"). */
const char *xmpp_stream_attr(const struct xmpp_conn *c, const char *name);

/* A connection the server has been quiet on this long gives its XML
 * parser's memory back (about 11 KiB; rebuilt in a few microseconds when
 * the server speaks again). Short, because every session holds one from
 * its login until then: at hundreds of logins a second those parsers set
 * the heap's high-water mark, which idle sessions' small blocks later
 * fragment. */
#define XMPP_PARK_MS 250

/* 1 while the connection's parser is parked. */
int xmpp_parser_parked(const struct xmpp_conn *c);

/* Ends the stream politely (</stream:stream> unless it already failed),
 * flushes what is queued, and frees itself; no more callbacks. */
void xmpp_close(struct xmpp_conn *c);

/* Graceful restart. A movable connection is open, plain TCP and idle in its
 * setup: its socket, queued output and parser state go to the successor. */
struct snap_w;
struct snap_r;
int xmpp_movable(const struct xmpp_conn *c);
int xmpp_snapshot(const struct xmpp_conn *c, struct snap_w *w);
struct xmpp_conn *xmpp_restore(struct loop *l, struct snap_r *r, size_t max_stanza, xmpp_cb cb,
                               void *ctx);
int xmpp_fd(const struct xmpp_conn *c);
/* Frees c and closes this process's copy of its socket, sending nothing. */
void xmpp_forget(struct xmpp_conn *c);

#endif
