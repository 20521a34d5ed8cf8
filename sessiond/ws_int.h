/* ws_int.h - a WebSocket session inside: private to ws_session.c (the
 * rules of RFC 7395 and the session's life), ws_accept.c (the listener and
 * the opening handshake, which hands a connection over by wss_adopt) and
 * ws_save.c (its snapshot record for a graceful restart).
 *
 * Nothing outside these files sees struct wss; the shared modules see its
 * struct sess only.
 */
#ifndef BOSH_WS_INT_H
#define BOSH_WS_INT_H

#include "buf.h"
#include "config.h"
#include "loop.h"
#include "sesstable.h"
#include "stream.h"
#include "store.h"
#include "ws_conn.h"

#include <stdint.h>

enum wss_state {
	W_HELLO,   /* 101 sent, waiting for <open/> */
	W_ACTIVE,  /* a stream to the server */
	W_CLOSING, /* our close is out: waiting for the client's answer */
	W_DONE,    /* to be freed (from the timer) */
};

struct wss {
	struct sess c;            /* first: the shared table's part */
	struct io io;
	struct ws_conn *ws;       /* NULL only while a restart carries it (carry_*) */
	struct stream *st;
	struct timer timer;
	enum wss_state state;
	uint8_t in_table, ended, ping_out, paused, active_since_tick, jid_stored;
	uint8_t features_seen;    /* the server's first features went out: the stream is set up */
	char *to, *lang, *ua, *end_condition;
	double created_at, last_seen, ended_at;
	uint64_t next_ping;
	uint16_t close_code;      /* to send once the messages before it are written */
	size_t charged;           /* the messages queued for the client, as budget.h knows them */
	struct buf carry_in, carry_out; /* a restart's: ws_conn_detach() */
	struct wss *prev, *next;  /* every connection after its 101 */
};

extern struct loop *wl;
extern const struct config *wcfg;
extern struct wss *wss_all;
extern const struct sess_ops ws_ops;

static inline struct wss *wss_of(struct sess *c) { return (struct wss *)c; }
static inline const struct wss *wss_of_const(const struct sess *c) { return (const struct wss *)c; }

/* ws_session.c */
/* The 101 is written on fd: a WebSocket waiting for <open/>. Takes fd,
 * client and ua (owned, may be NULL) whatever happens. */
void wss_adopt(int fd, char *client, char *ua, const char *leftover, size_t nleftover);
/* Its ws_conn, on fd, reading `in` first and writing `out` first. -1 on OOM. */
int wss_make_conn(struct wss *w, const struct buf *in, const struct buf *out);
/* Into the list of connections and the loop, reading; -1 (logged) if epoll refuses. */
int wss_link(struct wss *w);
/* The stream to the server for w->to, by the domain's route: 0, or the
 * condition to end the session with. */
const char *wss_connect(struct wss *w);
void wss_io(void *ctx, uint32_t events);
void wss_timer(void *ctx);
void wss_watch(struct wss *w);
void wss_arm(struct wss *w, uint64_t at);
/* The next ping, from now. */
void wss_schedule_ping(struct wss *w);
/* Ends it: the close handshake (code) after a stream error if given. */
void wss_close(struct wss *w, const char *stream_error, uint16_t code, const char *condition);
/* Writes what can be written now: sessiond stops or execs next. */
void wss_flush_now(struct wss *w);
void wss_free(struct wss *w);
/* Frees what w owns and w itself, nothing else: its connection, stream
 * and place in the lists are the caller's to undo first. */
void wss_free_fields(struct wss *w);
void ws_describe(const struct sess *c, struct store_row *r);
extern const struct stream_events ws_stream_events;

/* ws_accept.c */
/* Drops every handshake not yet complete (closing its descriptor). */
void ws_accept_drop_pending(void);

/* ws_save.c */
int ws_can_move(const struct sess *c);
void ws_forget(struct sess *c);
int ws_put(struct snap_w *w, const struct sess *c, sessions_fd_cb keep, void *ctx);
struct sess *ws_get(struct snap_r *r);
void ws_discard(struct sess *c);
void ws_resume(struct sess *c);

#endif
