/* sesstable.h - what every session has, whatever its transport.
 *
 * The sid table and the live sessions per client address (max_sessions,
 * max_sessions_per_client), the rows in the database (a dirty list written
 * when the loop is idle), the sids of sessions lost in an earlier run or
 * drained by another process, and the end of sessiond. A transport embeds
 * struct sess at the start of its own session and says through struct
 * sess_ops what the shared code may ask of it; nothing here knows what a
 * transport's session holds.
 */
#ifndef BOSH_SESSTABLE_H
#define BOSH_SESSTABLE_H

#include "config.h"
#include "loop.h"

#include <stddef.h>
#include <stdint.h>

/* A session id: 128 random bits in hex, after the node's name and a '-'
 * when node_id is set ("n1-9f0c...e1"): a load balancer in front of several
 * nodes finds the node of a request in its sid (conf/haproxy). */
#define SID_HEX 32
#define NODE_ID_MAX 8
#define SID_MAX (NODE_ID_MAX + 1 + SID_HEX)

/* 1 if sid has the form of one: 32 lowercase hex digits, or a node name
 * ([a-z0-9]{1,8}), '-' and 32 hex digits. */
int sid_valid(const char *sid);
/* The node name a valid sid carries (len 0: none). */
const char *sid_node(const char *sid, size_t *len);

struct sess;
struct store_row;
struct snap_w;
struct snap_r;

/* Called for every descriptor a snapshot names, which must survive into
 * the successor of a restart (sesssnap.h). */
typedef void (*sessions_fd_cb)(void *ctx, int fd);

/* What the shared modules ask of a transport's session. */
struct sess_ops {
	/* "bosh", "websocket": the transport column, the metrics' label. */
	const char *transport;
	/* The session's row as it is now (store.h; pointers into the session). */
	void (*describe)(const struct sess *c, struct store_row *r);
	/* 1 once the session ended (it may linger to tell its client why). */
	int (*ended)(const struct sess *c);
	/* Ends a live session for condition; nothing if it ended already. */
	void (*end)(struct sess *c, const char *condition);
	/* Out of the table and freed, whatever its state. */
	void (*destroy)(struct sess *c);
	/* sessiond stops: answer what the session holds, queue its row, close
	 * its XMPP streams. It stays in the table. */
	void (*stop)(struct sess *c);
	/* 1 if a graceful restart can hand it over (its connections can move). */
	int (*can_move)(const struct sess *c);
	/* Out of the table without a word to anyone: the other process of a
	 * restart carries on with the same connections. */
	void (*forget)(struct sess *c);
	/* A restart's snapshot record; keep() for each descriptor it names. */
	int (*put)(struct snap_w *w, const struct sess *c, sessions_fd_cb keep, void *ctx);
	/* Reads what put() wrote: a session not in the table yet, or NULL. */
	struct sess *(*get)(struct snap_r *r);
	/* Frees what get() returned and was not taken after all. */
	void (*discard)(struct sess *c);
	/* get()'s session is in the table now: reconnect it, set its timers. */
	void (*resume)(struct sess *c);
	/* For the whole transport, or NULL: before a restart's snapshot (make
	 * every session's state fit a record), and when the restart was
	 * abandoned after that (serve on as before). */
	void (*restart_prepare)(void);
	void (*restart_abandoned)(void);
};

/* The first member of every transport's session. */
struct sess {
	char sid[SID_MAX + 1];
	const struct sess_ops *ops;
	char *client;                 /* the client's address, or NULL; owned */
	struct sess *hnext;           /* hash chain */
	struct sess *dirty_next;      /* rows to write */
	struct sess **dirty_pprev;    /* what points at this one in that list; NULL: not in it */
};

/* Start: an empty table; store and memory budget bounded by cfg. */
int sesstable_init(struct loop *l, const struct config *cfg);

/* NULL if a new session from client may start, else the condition to
 * refuse it with (max_sessions, max_sessions_per_client; logged). */
const char *sesstable_refuse(const char *client);
/* Into the table, counted for its client. fresh: give it a new random sid
 * first (else c->sid is kept, as from a snapshot). -1 on out of memory. */
int sesstable_add(struct sess *c, int fresh);
/* Out of the table, the counts and the dirty list (the caller frees it). */
void sesstable_remove(struct sess *c);
struct sess *sesstable_find(const char *sid);
/* Calls cb for every session until it returns non-zero (which is returned).
 * cb may remove the session it is given. */
int sesstable_each(int (*cb)(struct sess *c, void *ctx), void *ctx);

/* Queues the session's row (describe, then store_put). */
void sesstable_put_row(const struct sess *c);
/* The session's row changed: written at the next flush (db_flush_ms apart). */
void sesstable_dirty(struct sess *c);
/* Only its request bookkeeping changed (rid, held, last seen): written
 * within db_activity_ms, or with the next flush that comes sooner. */
void sesstable_touch(struct sess *c);
/* Its row was queued already (its final one): no flush needed for it. */
void sesstable_clean(struct sess *c);
/* Queues the rows of every dirty session. */
void sesstable_write_dirty(void);

/* The log line of a session's end, the same for every transport. */
void sesstable_log_end(const struct sess *c, const char *jid, double duration, const char *condition);

/* sids of sessions lost in an earlier run (told remote-connection-failed),
 * and of those another process drains (their requests go there). Adding
 * ignores what is not a sid; -1 on out of memory. */
int sessions_lost(const char *sid);
int sesstable_add_lost(const char *sid);
int sesstable_add_draining(const char *sid);
/* The lists, for a snapshot: count and i-th sid. */
size_t sesstable_nlost(void);
const char *sesstable_lost_sid(size_t i);
size_t sesstable_ndraining(void);
const char *sesstable_draining_sid(size_t i);
/* After adding, before the next lookup. */
void sesstable_sort_lists(void);

/* ---- for the rest of sessiond (main.c, front.c, restart.c) ---- */

/* Loads what the database says about sessions of an earlier run. */
int sessions_recover(void);

/* Writes queued rows; the loop's idle hook. Returns ms until the next flush
 * is due, or -1. */
int sessions_idle(void *ctx);

/* Stop: every session answers what it holds (sess_ops stop), every row written. */
void sessions_shutdown(void);

size_t sessions_count(void);

/* Sessions whose XMPP connection cannot move (TLS). */
long sessions_unmovable_count(void);
/* After the fork of a restart: the successor's side keeps the movable
 * sessions (and notes the others' sids as draining elsewhere), the drainer
 * the others. The sessions dropped are forgotten, not ended. */
int sessions_split(int keep_movable);
/* 1 if requests for sid go to the process draining it. */
int sessions_draining(const char *sid);
void sessions_drainer_gone(void);
void sessions_end_all(const char *condition);

#endif
