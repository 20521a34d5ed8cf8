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
	size_t charged;                 /* the queue's memory, as the budget (budget.h) knows it */
	struct xmpp_conn *xmpp;         /* NULL once closed */
	uint8_t awaiting_features;      /* opened or restarted: nothing goes out before features */
	uint8_t paused;                 /* queue past max_client_buffer, or grown while the memory
	                                 * budget is tight: not reading until the client takes it */
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

/* The streams of one session, in the order opened: s[0] came with the
 * session. Closed ones stay until the session goes, so that a late payload
 * for one is known for what it is (§16.4), which also bounds how many a
 * session may open. */
#define STREAMS_MAX 8

struct streams {
	struct stream *s[STREAMS_MAX];
	uint8_t n;
};

/* Adds st; -1 if the set is full. */
int streams_add(struct streams *ss, struct stream *st);
struct stream *streams_find(const struct streams *ss, const char *name);
/* Streams whose XMPP connection is open. */
int streams_open(const struct streams *ss);
/* 1 if an open stream awaits its features (after opening or a restart). */
int streams_awaiting_features(const struct streams *ss);
/* 1 if any stream has stanzas queued for the client. */
int streams_queued(const struct streams *ss);
/* The payload to stream only, or to every open stream (§16.4); closed ones
 * get nothing. -1 if a stream cannot take it. */
int streams_send(struct streams *ss, struct stream *only, const char *data, size_t len);
/* XEP-0206 restart of stream only, or of every open stream. */
int streams_restart(struct streams *ss, struct stream *only, const char *extra_attrs);
void streams_close(struct streams *ss);
void streams_free(struct streams *ss);

/* Graceful restart (snapshot.h). Movable: every open stream's connection
 * can go to the successor (plain TCP, set up). Forget: free the streams,
 * closing only this process's copy of their sockets, sending nothing. */
struct snap_w;
struct snap_r;
int streams_movable(const struct streams *ss);
void streams_forget(struct streams *ss);
/* -1 (and w->over) if a stream cannot be written: leave the session out. */
int streams_snapshot(const struct streams *ss, struct snap_w *w, void (*keep)(void *ctx, int fd),
                     void *ctx);
struct stream_restore_params {
	struct loop *loop;
	const char *sid;
	size_t max_queue, max_stanza;
	const struct stream_events *ev;
	void *owner;
};
/* Appends the snapshot's streams; -1 if it is corrupt. */
int streams_restore(struct streams *ss, struct snap_r *r, const struct stream_restore_params *p);

#endif
