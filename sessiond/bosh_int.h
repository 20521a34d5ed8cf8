/* bosh_int.h - a BOSH session inside: private to bosh_rules.c (the rules
 * of XEP-0124/0206), bosh_new.c (creating sessions and streams) and
 * bosh_save.c (its row and its snapshot record).
 *
 * Shared by three files, not one, because the snapshot must read and write
 * every field of the session, and creation sets most of them: one file
 * would be two thousand lines. Nothing outside these three files sees
 * struct session; the shared modules see its struct sess only.
 */
#ifndef BOSH_BOSH_INT_H
#define BOSH_BOSH_INT_H

#include "bosh_rules.h"
#include "ridwin.h"
#include "sesssnap.h"
#include "sesstable.h"
#include "stream.h"

#include <stdint.h>

#define HELD_MAX RIDWIN_MAX

/* The states, their transitions and what holds in each: bosh_rules.c. */
enum state { S_CONNECTING, S_ACTIVE, S_ENDED };

struct session;

struct held {
	struct io io;            /* watches the web server connection for EOF */
	struct responder resp;
	struct session *s;
	int64_t rid;
	uint64_t since;
	uint8_t creation;
};

#define KEY_HEX 40 /* a SHA-1, hex (XEP-0124 §15) */

/* The keys the last requests carried, by rid (§15): a request sent again
 * (§14.3) carries its original's key, which must match. Allocated only for
 * a session that uses keys. */
#define KEYRING_N (2 * HELD_MAX) /* repeats reach back at most a window plus the held */
struct keyring {
	int64_t rid[KEYRING_N];
	char key[KEYRING_N][KEY_HEX + 1];
};

/* What the session layer needs of one request, in rid order. */
struct req {
	int64_t rid;
	const char *payload;
	size_t len;
	int restart, terminate;
	long pause;               /* seconds, -1: none */
	int64_t ack;              /* the client's ack (§9), -1: none */
	int handover;             /* FRAME_F_HANDOVER: a pre-bind tool's last request */
	const char *stream_attrs; /* node-xmpp-bosh stream_attrs as XML attributes, or NULL */
	const char *stream;       /* the stream named (§16), or NULL: all of them */
	const char *to, *lang;    /* 'to' on an existing session: add a stream (§16.3) */
	const char *route;        /* and where that stream goes, if allowed (route.h) */
	uint64_t sender;          /* hash of client address and User-Agent */
	char key[KEY_HEX + 1];    /* "" when absent */
	char newkey[KEY_HEX + 1];
	int bad_key_syntax;
};

/* A request that arrived ahead of its turn (rid gap); processed in order. */
struct ahead {
	struct req r;             /* r.payload (and the strings after it) is owned here */
	struct responder resp;
};

struct session {
	struct sess c;                /* sid, client address, table and row bookkeeping */
	enum state state;
	struct streams streams;
	uint8_t multi;                /* a second stream was opened: answers name their stream */
	uint8_t one_stream;           /* multiple streams not offered (libpurple, pidgin_compatible) */
	uint8_t next_pick;            /* round robin over the streams' queues */
	struct timer timer;
	int64_t next_rid;
	int wait, hold, requests, inactivity;
	char *to, *route, *ver, *lang, *content, *ua, *jid, *end_condition;
	char *client_from;            /* the creation request's 'from', echoed as 'to' */
	uint8_t secure;               /* the XMPP connection cannot be read by others (TLS, loopback) */
	struct held held[HELD_MAX];   /* a ring: HELD(s, 0) is the oldest */
	int held_head, nheld;
	struct ahead *ahead[HELD_MAX]; /* rare: allocated one by one, not kept in every session */
	int nahead;
	struct ridwin sent;           /* last answers, for repeated rids */
	size_t sent_charged;          /* their bytes, as the memory budget knows them */
	uint64_t last_answer;         /* loop ms of the last answer (inactivity) */
	uint64_t linger_until;
	double created_at, last_seen, ended_at;
	char key[KEY_HEX + 1];        /* the key the next request's key must hash to; "" off */
	struct keyring *keys;         /* keys of the last requests, for repeats; NULL: none kept */
	long pause_until_next;        /* inactivity while paused (§10), 0 when not paused */
	uint8_t legacy;               /* no 'ver' at creation: HTTP error codes (§17.1) */
	uint8_t acks;                 /* the client asked for acks at creation (§9) */
	uint8_t handed_over;          /* bosh-prebind is done: answer the page's first request at once */
	uint8_t last_empty_answered_empty; /* §12: the previous new request was empty, and so was its answer */
	uint64_t last_request_at;     /* loop ms of the previous new request */
	uint64_t sender;              /* who sent the previous request (struct req.sender) */
	int64_t last_answered;        /* highest rid answered */
	int64_t dropped[HELD_MAX];    /* held rids whose connection the web server closed, by rid % HELD_MAX */
	int64_t report_rid;           /* §9 report pending for the next answer, 0: none */
	uint64_t report_ms;
};

/* The k-th oldest held request. Entries never move while held, except when
 * one leaves from the middle: their epoll registrations point at them. */
#define HELD(s, k) (&(s)->held[((s)->held_head + (k)) % HELD_MAX])

_Static_assert(2 * HELD_MAX + STREAMS_MAX <= SESS_FDS_MAX, "a session's descriptors fit its record");

static inline struct session *bosh_of(struct sess *c) { return (struct session *)c; }
static inline const struct session *bosh_of_const(const struct sess *c)
{
	return (const struct session *)c;
}

static inline void mark_dirty(struct session *s) { sesstable_dirty(&s->c); }
/* Only rid, held requests or last seen changed (sesstable_touch). */
static inline void mark_touched(struct session *s) { sesstable_touch(&s->c); }

/* What one answer carries: the payloads of st (NULL: none), or a new
 * stream's name (§16.3). */
struct answer {
	struct stream *st;
	const char *type, *condition;
	const struct stream *added;
};

extern struct loop *bosh_loop;
extern const struct config *bosh_cfg;
extern const struct stream_events bosh_stream_events;

/* bosh_rules.c */
void session_timer(void *ctx);
void session_schedule(struct session *s);
void session_end(struct session *s, const char *condition);
void session_destroy(struct session *s);
void session_free(void *p);
void drop_requests(struct session *s);
void held_io(void *ctx, uint32_t events);
int hold_request(struct session *s, struct responder *resp, int64_t rid, int creation);
void answer_held(struct session *s, int i, const char *type, const char *condition);
void answer_held_with(struct session *s, int i, const struct answer *a);
void fail_request(struct session *s, struct responder *resp, const char *condition);
/* A key or newkey attribute: 40 hex digits, kept in lower case. -1 if malformed. */
int copy_key(char *dst, const char *src);
/* Who is talking: a hash of client address and User-Agent. */
uint64_t sender_of(const struct frame_request *fr);
/* A request ahead of its turn, owning copies of what r points at. NULL on OOM. */
struct ahead *ahead_new(const struct req *r, const struct responder *resp);

/* bosh_new.c */
void create_session(struct responder *resp, const struct frame_request *fr);
void add_stream(struct session *s, struct responder *resp, const struct req *r);
void connect_first_stream(struct session *s, const struct config_backend *be, const char *host,
                          unsigned port);

/* bosh_save.c: the struct sess_ops a BOSH session is saved and restored by */
void bosh_describe(const struct sess *c, struct store_row *r);
int bosh_can_move(const struct sess *c);
int bosh_put(struct snap_w *w, const struct sess *c, sessions_fd_cb keep, void *ctx);
struct sess *bosh_get(struct snap_r *r);
void bosh_discard(struct sess *c);
void bosh_resume(struct sess *c);

#endif
