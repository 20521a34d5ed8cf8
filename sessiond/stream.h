/* stream.h - one XMPP stream of a BOSH session (XEP-0124 §16, "Multiple Streams").
 *
 * A stream owns its XMPP connection and the stanzas queued for the client
 * from it: a <body/> carries the payloads of one stream only. A session has
 * one stream from creation and may add more (each a connection of its own).
 * The session reads name, to, jid, queue and the flags; it changes the queue
 * only through stream_took_queue().
 */
#ifndef BOSH_STREAM_H
#define BOSH_STREAM_H

#include "buf.h"
#include "loop.h"
#include "xmpp.h"

#include <stdint.h>

#define STREAM_NAME_HEX 24

struct stream;

/* What a stream tells its session. */
struct stream_events {
	/* <stream:features/> arrived and is queued (first ones, or after a restart). */
	void (*features)(void *owner, struct stream *st);
	/* A stanza is queued. */
	void (*stanza)(void *owner, struct stream *st);
	/* The XMPP stream is over (condition: remote-stream-error,
	 * remote-connection-failed, internal-server-error): its connection is
	 * closed, and the <stream:error/>, if any, is queued after the stanzas. */
	void (*ended)(void *owner, struct stream *st, const char *condition);
};

struct stream {
	char name[STREAM_NAME_HEX + 1]; /* random: the 'stream' attribute */
	char *to;                       /* the domain this stream is for */
	char *jid;                      /* bound JID, once the server said it */
	struct buf queue;               /* stanzas for the client */
	struct xmpp_conn *xmpp;         /* NULL once closed */
	uint8_t awaiting_features;      /* opened or restarted: nothing goes out before features */
	uint8_t paused;                 /* queue past max_client_buffer: not reading */
	/* Set by the session: */
	const char *end_condition;      /* ended by the server, the client not yet told */
	uint8_t closed;                 /* over, and the client knows */
	const struct stream_events *ev;
	void *owner;
	const char *sid;                /* the owner's, for the log */
	size_t max_queue;
};

/* Opens the XMPP connection for p->domain; NULL on failure (logged). */
struct stream *stream_open(struct loop *l, const struct xmpp_params *p, const char *sid,
                           size_t max_queue, const struct stream_events *ev, void *owner);

/* Bytes for the server. -1 if the stream cannot take them (closed, over its bound). */
int stream_send(struct stream *st, const char *data, size_t len);

/* XEP-0206 restart; extra_attrs as for xmpp_restart(). */
int stream_restart(struct stream *st, const char *extra_attrs);

/* The client got the queue: forget it and read from the server again. */
void stream_took_queue(struct stream *st);

/* The server's stream id (authid), or NULL. */
const char *stream_authid(const struct stream *st);

/* Closes the XMPP stream politely; the queue stays until stream_free(). */
void stream_close(struct stream *st);

void stream_free(struct stream *st);

#endif
