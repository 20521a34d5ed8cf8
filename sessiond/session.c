/* session.c - BOSH session state and the request rules of XEP-0124/0206.
 *
 * States and transitions (session_end() is the only way out of a live state):
 *
 *   CONNECTING --stream features--> ACTIVE --client terminate / server error /
 *       |                              |        inactivity / connect failure-->
 *       +------------------------------+------> ENDED --answered or lingered--> freed
 *
 * CONNECTING: the XMPP connection is being opened; the creation request is
 *   held (HELD(s, 0)->creation) until the server's first <stream:features/>.
 * ACTIVE: requests are processed strictly in rid order; at most 'hold' are
 *   held; a stream's queue is non-empty only while no request is held or
 *   its features are awaited after a restart.
 * ENDED: the XMPP connections are closed and the final row queued. A session
 *   with no held request is kept until the next request or 'inactivity'
 *   seconds, so the client learns why it ended.
 *
 * Streams (XEP-0124 §16): a session starts with one and may add more, each
 * with its own XMPP connection and queue (stream.c). An answer carries the
 * payloads of one stream, named once a second stream was opened. A stream
 * the server ends while others remain is announced to the client with a
 * terminate body naming it; the session ends with its last stream.
 *
 * One timer per session; session_schedule() sets it to the earliest of the
 * oldest held request's wait, the inactivity deadline, and the linger end.
 */
#define _GNU_SOURCE
#include "session.h"
#include "snapshot.h"
#include "bosh.h"
#include "budget.h"
#include "log.h"
#include "attrs.h"
#include "hex.h"
#include "jsonattrs.h"
#include "ridwin.h"
#include "route.h"
#include "splitter.h"
#include "utf8.h"
#include "xmlesc.h"
#include "store.h"
#include "stream.h"
#include "xmpp.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <strings.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define HELD_MAX RIDWIN_MAX
#define SID_HEX 32

enum state { S_CONNECTING, S_ACTIVE, S_ENDED };
static const char *const state_names[] = { "connecting", "active", "ended" };

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
	char sid[SID_HEX + 1];
	struct session *hnext;        /* hash chain */
	enum state state;
	struct streams streams;
	uint8_t multi;                /* a second stream was opened: answers name their stream */
	uint8_t one_stream;           /* multiple streams not offered (libpurple, pidgin_compatible) */
	uint8_t next_pick;            /* round robin over the streams' queues */
	struct timer timer;
	int64_t next_rid;
	int wait, hold, requests, inactivity;
	char *to, *route, *ver, *lang, *content, *client, *ua, *jid, *end_condition;
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
	uint8_t dirty;
	struct session *dirty_next;
};

/* The k-th oldest held request. Entries never move while held, except when
 * one leaves from the middle: their epoll registrations point at them. */
#define HELD(s, k) (&(s)->held[((s)->held_head + (k)) % HELD_MAX])

static struct loop *loop;
static const struct config *cfg;

static struct session **table;
static size_t table_size, nsessions;
static struct session *dirty_list;
static uint64_t next_flush_due;

/* Live sessions per client address, for max_sessions_per_client. */
struct client_count {
	struct client_count *next;
	long n;
	char addr[];
};
#define CLIENT_BUCKETS 4096
static struct client_count *clients[CLIENT_BUCKETS];

/* sids of sessions lost in an earlier run: answered remote-connection-failed */
static char (*lost)[SID_HEX + 1];
static size_t nlost, lost_cap;

static void session_schedule(struct session *s);
static void session_end(struct session *s, const char *condition);

/* ---- the sid table ---- */

static size_t sid_hash(const char *sid)
{
	/* sids are random hex: their first 16 digits are hash enough */
	size_t h = 0;
	for (int i = 0; i < 16; i++)
		h = h * 16 + (size_t)(sid[i] <= '9' ? sid[i] - '0' : sid[i] - 'a' + 10);
	return h;
}

static int table_grow(void)
{
	size_t size = table_size ? table_size * 2 : 1024;
	struct session **t = calloc(size, sizeof *t);
	if (!t)
		return -1;
	for (size_t i = 0; i < table_size; i++)
		for (struct session *s = table[i], *next; s; s = next) {
			next = s->hnext;
			size_t b = sid_hash(s->sid) & (size - 1);
			s->hnext = t[b];
			t[b] = s;
		}
	free(table);
	table = t;
	table_size = size;
	return 0;
}

static struct session *find(const char *sid)
{
	if (!table_size || strlen(sid) != SID_HEX)
		return NULL;
	for (struct session *s = table[sid_hash(sid) & (table_size - 1)]; s; s = s->hnext)
		if (memcmp(s->sid, sid, SID_HEX) == 0)
			return s;
	return NULL;
}

static void table_remove(struct session *s)
{
	struct session **p = &table[sid_hash(s->sid) & (table_size - 1)];
	while (*p && *p != s)
		p = &(*p)->hnext;
	if (*p) {
		*p = s->hnext;
		nsessions--;
	}
}

static int cmp_sid(const void *a, const void *b) { return strcmp(a, b); }

/* lost[] is sorted once at start (sessions_recover). */
static int is_lost(const char *sid)
{
	return nlost && bsearch(sid, lost, nlost, sizeof lost[0], cmp_sid) != NULL;
}

static struct client_count **client_slot(const char *addr)
{
	size_t h = 5381;
	for (const char *p = addr; *p; p++)
		h = h * 33 + (unsigned char)*p;
	struct client_count **c = &clients[h % CLIENT_BUCKETS];
	while (*c && strcmp((*c)->addr, addr) != 0)
		c = &(*c)->next;
	return c;
}

static long client_sessions(const char *addr)
{
	struct client_count *c = addr ? *client_slot(addr) : NULL;
	return c ? c->n : 0;
}

/* delta +1 when a session starts, -1 when it goes. -1 on OOM. */
static int client_add(const char *addr, int delta)
{
	if (!addr)
		return 0;
	struct client_count **slot = client_slot(addr), *c = *slot;
	if (!c) {
		size_t len = strlen(addr);
		if (delta < 0 || !(c = calloc(1, sizeof *c + len + 1)))
			return delta < 0 ? 0 : -1;
		memcpy(c->addr, addr, len + 1);
		*slot = c;
	}
	c->n += delta;
	if (c->n <= 0) {
		*slot = c->next;
		free(c);
	}
	return 0;
}

/* ---- small helpers ---- */

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static long clamp(long v, long lo, long hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ---- persistence ---- */

static void mark_dirty(struct session *s)
{
	if (s->dirty)
		return;
	s->dirty = 1;
	s->dirty_next = dirty_list;
	dirty_list = s;
}

static void put_row(struct session *s)
{
	struct store_row r = {
		.sid = s->sid, .state = state_names[s->state], .rid = s->next_rid - 1, .jid = s->jid,
		.to_domain = s->to, .route = s->route, .wait = s->wait, .hold = s->hold,
		.inactivity = s->inactivity, .requests = s->requests, .ver = s->ver, .lang = s->lang,
		.client_addr = s->client, .user_agent = s->ua, .held = s->nheld,
		.created_at = s->created_at, .last_seen = s->last_seen, .ended_at = s->ended_at,
		.end_condition = s->end_condition, .key = s->key[0] ? s->key : NULL,
	};
	store_put(&r);
}

static void unlink_dirty(struct session *s)
{
	if (!s->dirty)
		return;
	for (struct session **p = &dirty_list; *p; p = &(*p)->dirty_next)
		if (*p == s) {
			*p = s->dirty_next;
			break;
		}
	s->dirty = 0;
}

int sessions_idle(void *ctx)
{
	(void)ctx;
	uint64_t now = loop_now(loop);
	if (!dirty_list && !store_queued())
		return -1;
	if (now < next_flush_due)
		return (int)(next_flush_due - now);
	/* While the database refuses (full disk, an admin's lock), the queue
	 * keeps one batch; sessions stay dirty, so what is written at last is
	 * their newest state and memory stays bounded by the sessions. */
	if (store_queued() && store_flush() < 0) {
		next_flush_due = now + 1000;
		return 1000;
	}
	for (struct session *s = dirty_list; s; s = s->dirty_next) {
		put_row(s);
		s->dirty = 0;
	}
	dirty_list = NULL;
	uint64_t retry = store_flush() == 0 ? (uint64_t)cfg->db_flush_ms : 1000;
	next_flush_due = now + retry;
	return store_queued() ? (int)retry : -1;
}

/* ---- answers ---- */

static void answer_body(struct responder *resp, const char *content_type, const char *body,
                        size_t len)
{
	struct reply r = { .status = 200, .content_type = content_type, .body = body, .body_len = len };
	reply_send(resp, &r);
}

void answer_terminate(struct responder *resp, const char *condition)
{
	char body[256];
	int n = snprintf(body, sizeof body, "<body xmlns='" BOSH_NS "' type='terminate' condition='%s'/>",
	                 condition);
	answer_body(resp, NULL, body, (size_t)n);
}

static const char empty_body[] = "<body xmlns='" BOSH_NS "'/>";

static void held_io(void *ctx, uint32_t events);

/* Forgets the i-th oldest held request; its io must already be out of the loop. */
static void held_remove(struct session *s, int i)
{
	if (i == 0) {
		s->held_head = (s->held_head + 1) % HELD_MAX;
	} else {
		/* Rare (a dropped connection, a repeated rid): close the gap and
		 * re-register the moved entries at their new addresses. */
		for (int k = i; k < s->nheld - 1; k++) {
			struct held *dst = HELD(s, k), *src = HELD(s, k + 1);
			loop_del(loop, &src->io);
			*dst = *src;
			dst->io.ctx = dst;
			loop_add(loop, &dst->io, EPOLLIN | EPOLLRDHUP);
		}
	}
	s->nheld--;
	/* A stale event of this batch may still name the vacated slot (the web
	 * server closed the connection just as we answered on it): the loop
	 * calls its io's callback, which must be there and find nothing held. */
	struct held *gone = i == 0 ? HELD(s, -1 + HELD_MAX) : HELD(s, s->nheld);
	memset(gone, 0, sizeof *gone);
	gone->resp.kind = RESP_NONE;
	gone->resp.fd = -1;
	gone->s = s;
	gone->io = (struct io){ .fd = -1, .cb = held_io, .ctx = gone };
	mark_dirty(s);
}

/* The creation response's attributes (XEP-0124 §7.1, XEP-0206 §3). */
static int creation_attrs(struct session *s, struct buf *b)
{
	char num[32];
	int rc = buf_printf(b, " xmlns:xmpp='" XBOSH_NS "' xmlns:stream='" STREAM_NS "'");
	rc |= buf_attr(b, "sid", s->sid);
	snprintf(num, sizeof num, "%d", s->wait);
	rc |= buf_attr(b, "wait", num);
	snprintf(num, sizeof num, "%d", s->requests);
	rc |= buf_attr(b, "requests", num);
	snprintf(num, sizeof num, "%d", s->hold);
	rc |= buf_attr(b, "hold", num);
	snprintf(num, sizeof num, "%d", s->inactivity);
	rc |= buf_attr(b, "inactivity", num);
	snprintf(num, sizeof num, "%ld", cfg->polling);
	rc |= buf_attr(b, "polling", num);
	snprintf(num, sizeof num, "%ld", cfg->max_inactivity);
	rc |= buf_attr(b, "maxpause", num);
	rc |= buf_attr(b, "ver", s->ver);
	rc |= buf_attr(b, "from", s->to);
	rc |= buf_attr(b, "to", s->client_from); /* node-xmpp-bosh clients look for it */
	rc |= buf_attr(b, "secure", s->secure ? "true" : "false");
	struct stream *first = s->streams.n ? s->streams.s[0] : NULL;
	rc |= buf_attr(b, "authid", first ? stream_authid(first) : NULL);
	/* naming the first stream is how multi-stream support is announced (§16.2) */
	rc |= buf_attr(b, "stream", first && !s->one_stream ? first->name : NULL);
	rc |= buf_attr(b, "xmpp:version", "1.0");
	rc |= buf_attr(b, "xmpp:restartlogic", "true");
	return rc;
}

/* §9: with acks on, every answer says the highest rid received with all
 * before it (but not when that is the rid answered, after creation), and a
 * pending report goes out once. */
static int ack_attrs(struct session *s, const struct held *h, struct buf *b)
{
	char num[32];
	int rc = 0;
	if (s->acks && (h->creation || s->next_rid - 1 != h->rid)) {
		snprintf(num, sizeof num, "%lld", (long long)(h->creation ? h->rid : s->next_rid - 1));
		rc |= buf_attr(b, "ack", num);
	}
	if (s->report_rid) {
		snprintf(num, sizeof num, "%lld", (long long)s->report_rid);
		rc |= buf_attr(b, "report", num);
		snprintf(num, sizeof num, "%llu", (unsigned long long)s->report_ms);
		rc |= buf_attr(b, "time", num);
		s->report_rid = 0;
	}
	return rc;
}

/* What one answer carries: the payloads of st (NULL: none), or a new
 * stream's name (§16.3). */
struct answer {
	struct stream *st;
	const char *type, *condition;
	const struct stream *added;
};

/* A stream the server ended, while others go on: the client is told in an
 * answer of its own (§16.6). */
static int notice_due(const struct session *s, const struct stream *st)
{
	return st->end_condition && !st->closed && s->state != S_ENDED;
}

/* The next stream with something for the client, round robin. flush: only
 * what may go out now (not a queue awaiting features after a restart). */
static struct stream *pick_stream(struct session *s, int flush)
{
	for (int k = 0; k < s->streams.n; k++) {
		int j = (s->next_pick + k) % s->streams.n;
		struct stream *st = s->streams.s[j];
		int notice = notice_due(s, st);
		if ((!st->queue.len && !notice) || (flush && st->awaiting_features && !notice))
			continue;
		s->next_pick = (uint8_t)((j + 1) % s->streams.n);
		return st;
	}
	return NULL;
}

/* Builds the answer to the i-th held request. */
static int build_answer(struct session *s, int i, const struct answer *a, struct buf *b)
{
	const struct stream *st = a->st;
	const char *type = a->type, *condition = a->condition, *name = NULL;
	if (st && notice_due(s, st) && !type) {
		type = "terminate";
		condition = st->end_condition;
	}
	if (a->added)
		name = a->added->name;
	else if (s->multi && st && (st->queue.len || notice_due(s, st)) && s->state != S_ENDED)
		name = st->name; /* a session's last word names no stream: it ends them all */
	int rc = buf_printf(b, "<body xmlns='" BOSH_NS "'");
	if (HELD(s, i)->creation && !type)
		rc |= creation_attrs(s, b);
	rc |= buf_attr(b, "stream", name);
	if (a->added) { /* XEP-0206 §3: the version goes with a stream added too */
		rc |= buf_printf(b, " xmlns:xmpp='" XBOSH_NS "'");
		rc |= buf_attr(b, "from", a->added->to);
		rc |= buf_attr(b, "xmpp:version", "1.0");
	}
	rc |= buf_attr(b, "type", type);
	rc |= buf_attr(b, "condition", condition);
	rc |= ack_attrs(s, HELD(s, i), b);
	if (condition && strcmp(condition, "remote-stream-error") == 0)
		rc |= buf_printf(b, " xmlns:stream='" STREAM_NS "'");
	if (!st || !st->queue.len)
		return rc | buf_append(b, "/>", 2);
	rc |= buf_append(b, ">", 1);
	rc |= buf_append(b, st->queue.data, st->queue.len);
	return rc | buf_append(b, "</body>", 7);
}

/* Tells the memory budget what the kept answers hold now (more than it
 * knew only for answers taken over from a snapshot, never charged). */
static void sent_recharge(struct session *s)
{
	size_t n = 0;
	for (int i = 0; i < s->sent.n; i++)
		n += s->sent.e[(s->sent.head + i) % s->sent.cap].len;
	budget_try(&s->sent_charged, n, "answers kept for repeated rids", s->sid);
}

/* Keeps an answer for repeats of its rid (§14.3). One the memory budget
 * has no room for is not kept: the client got it, and only a repeat of that
 * rid would need it (then item-not-found ends the session, as for any
 * answer gone). */
static void keep_answer(struct session *s, int64_t rid, const char *body, size_t len)
{
	if (len && budget_try(&s->sent_charged, s->sent_charged + len, "an answer kept for a repeated rid",
	                      s->sid) < 0)
		return;
	if (ridwin_put(&s->sent, rid, body, len, loop_now(loop)) < 0)
		log_warn("session %s: out of memory caching the answer to rid %lld", s->sid, (long long)rid);
	sent_recharge(s);
}

static void answer_held_with(struct session *s, int i, const struct answer *a)
{
	struct held *h = HELD(s, i);
	struct buf b = { 0 };
	int plain_empty = !a->type && !h->creation && !a->added && !s->acks && !s->report_rid &&
	                  (!a->st || (!a->st->queue.len && !notice_due(s, a->st)));
	if (plain_empty ? buf_append(&b, empty_body, sizeof empty_body - 1) < 0
	                : build_answer(s, i, a, &b) < 0) {
		log_error("session %s: out of memory building an answer", s->sid);
		buf_free(&b);
		b = (struct buf){ .data = NULL };
	}
	if (b.data) {
		if (h->rid > s->last_answered)
			s->last_answered = h->rid;
		loop_del(loop, &h->io);
		answer_body(&h->resp, s->content, b.data, b.len);
	} else {
		loop_del(loop, &h->io);
		reply_drop(&h->resp);
	}
	if (a->st) {
		if (notice_due(s, a->st))
			a->st->closed = 1;
		/* Reading stopped when the queue passed max_client_buffer goes on
		 * now, whichever path sent this answer. */
		stream_took_queue(a->st);
	}
	/* Kept once the queue is given back: its bytes move to the kept answer. */
	if (b.data)
		keep_answer(s, h->rid, plain_empty ? NULL : b.data, plain_empty ? 0 : b.len);
	buf_free(&b);
	s->last_answer = loop_now(loop);
	held_remove(s, i);
}

/* Answers the i-th held request with what the next stream has. */
static void answer_held(struct session *s, int i, const char *type, const char *condition)
{
	struct answer a = { .st = pick_stream(s, 0), .type = type, .condition = condition };
	answer_held_with(s, i, &a);
}

/* Delivers a queue if a request can take it. */
static void try_flush(struct session *s)
{
	struct answer a = { 0 };
	if (s->state != S_ACTIVE || !s->nheld || !(a.st = pick_stream(s, 1)))
		return;
	answer_held_with(s, 0, &a);
}

/* ---- lifecycle ---- */

static void session_free(void *p)
{
	struct session *s = p;
	free(s->to);
	free(s->route);
	free(s->ver);
	free(s->lang);
	free(s->content);
	free(s->client);
	free(s->ua);
	free(s->jid);
	free(s->end_condition);
	free(s->client_from);
	streams_free(&s->streams);
	ridwin_clear(&s->sent);
	budget_try(&s->sent_charged, 0, NULL, s->sid);
	free(s->keys);
	free(s);
}

/* Closes the requests the session holds or keeps for later, unanswered. */
static void drop_requests(struct session *s)
{
	for (int i = 0; i < s->nheld; i++) {
		loop_del(loop, &HELD(s, i)->io);
		reply_drop(&HELD(s, i)->resp);
	}
	s->nheld = 0;
	for (int i = 0; i < s->nahead; i++) {
		reply_drop(&s->ahead[i]->resp);
		free((char *)s->ahead[i]->r.payload);
		free(s->ahead[i]);
	}
	s->nahead = 0;
}

/* Out of the table and the counts; freed after this loop turn. */
static void session_unlink(struct session *s)
{
	timer_cancel(loop, &s->timer);
	unlink_dirty(s);
	table_remove(s);
	client_add(s->client, -1);
	loop_defer_free(loop, s, session_free);
}

static void session_destroy(struct session *s)
{
	drop_requests(s);
	session_unlink(s);
}

static void log_end(struct session *s, const char *condition)
{
	log_info("session %s ended: jid=%s client=%s duration=%.1fs condition=%s", s->sid,
	         s->jid ? s->jid : "-", s->client ? s->client : "-", s->ended_at - s->created_at,
	         condition);
}

/* The one way a live session ends. What a stream still has queued (a
 * <stream:error/>, say) goes out with the terminate answer. */
static void session_end(struct session *s, const char *condition)
{
	if (s->state == S_ENDED)
		return;
	s->state = S_ENDED;
	s->ended_at = loop_wallclock();
	s->end_condition = strdup(condition);
	log_end(s, condition);
	streams_close(&s->streams);
	int client_asked = strcmp(condition, "terminate") == 0;
	const char *wire = client_asked ? NULL : condition;
	put_row(s); /* the final row, written even though s goes away */
	unlink_dirty(s);
	for (int i = 0; i < s->nahead; i++) {
		answer_body(&s->ahead[i]->resp, s->content, empty_body, sizeof empty_body - 1);
		free((char *)s->ahead[i]->r.payload);
		free(s->ahead[i]);
	}
	s->nahead = 0;
	if (s->nheld) {
		answer_held(s, 0, "terminate", wire);
		while (s->nheld)
			answer_held(s, 0, NULL, NULL);
		session_destroy(s);
	} else if (strcmp(condition, "inactivity") == 0 || client_asked) {
		session_destroy(s); /* XEP-0124 §10: as if the session never existed */
	} else {
		s->linger_until = loop_now(loop) + (uint64_t)s->inactivity * 1000;
		session_schedule(s);
	}
}

/* The inactivity period now: a pause (§10) lasts until the next request. */
static uint64_t inactivity_ms(const struct session *s)
{
	return (uint64_t)(s->pause_until_next ? s->pause_until_next : s->inactivity) * 1000;
}

/* A safety net only: xmpp.c gives up first, and says why (DNS, several
 * targets, TLS). Its limits add up to four connect timeouts. */
static uint64_t features_deadline_ms(void)
{
	return (uint64_t)cfg->connect_timeout * 4000 + 1000;
}

static void session_timer(void *ctx)
{
	struct session *s = ctx;
	uint64_t now = loop_now(loop);
	if (s->state == S_ENDED) {
		session_destroy(s);
		return;
	}
	if (s->nheld && HELD(s, 0)->creation) {
		log_warn("session %s: no stream features from the XMPP server within %llus", s->sid,
		         (unsigned long long)features_deadline_ms() / 1000);
		session_end(s, "remote-connection-failed");
		return;
	}
	/* Wait expired: answer held requests (oldest first) that have waited long enough. */
	while (s->nheld && !HELD(s, 0)->creation && HELD(s, 0)->since + (uint64_t)s->wait * 1000 <= now)
		answer_held(s, 0, NULL, NULL);
	if (!s->nheld && s->last_answer + inactivity_ms(s) <= now) {
		session_end(s, "inactivity");
		return;
	}
	session_schedule(s);
}

static void session_schedule(struct session *s)
{
	uint64_t due = UINT64_MAX;
	if (s->state == S_ENDED)
		due = s->linger_until;
	else if (s->nheld && HELD(s, 0)->creation)
		due = HELD(s, 0)->since + features_deadline_ms();
	else if (s->nheld)
		due = HELD(s, 0)->since + (uint64_t)s->wait * 1000;
	else if (!s->nheld)
		due = s->last_answer + inactivity_ms(s);
	if (due == UINT64_MAX)
		timer_cancel(loop, &s->timer);
	else
		timer_set(loop, &s->timer, due);
}

/* The web server closed a held request's connection (the client went away). */
static void held_io(void *ctx, uint32_t events)
{
	struct held *h = ctx;
	struct session *s = h->s;
	char tmp[512];
	if (h->resp.kind == RESP_NONE)
		return;
	ssize_t n = recv(h->resp.fd, tmp, sizeof tmp, MSG_DONTWAIT);
	(void)events; /* recv() says what happened */
	if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
		return; /* stray bytes (FastCGI keep-alive chatter) change nothing */
	int i = (int)((h - s->held) - s->held_head + HELD_MAX) % HELD_MAX;
	log_debug("session %s: web server dropped held rid %lld", s->sid, (long long)h->rid);
	s->dropped[h->rid % HELD_MAX] = h->rid; /* unanswered: the client may send it again */
	loop_del(loop, &h->io);
	reply_drop(&h->resp);
	held_remove(s, i);
	if (!s->nheld)
		s->last_answer = loop_now(loop);
	session_schedule(s);
}

static int hold_request(struct session *s, struct responder *resp, int64_t rid, int creation)
{
	if (s->nheld == HELD_MAX) {
		answer_held(s, 0, NULL, NULL);
	}
	struct held *h = HELD(s, s->nheld);
	*h = (struct held){ .resp = *resp, .s = s, .rid = rid, .since = loop_now(loop),
	                    .creation = (uint8_t)creation };
	h->io = (struct io){ .fd = resp->fd, .cb = held_io, .ctx = h };
	resp->kind = RESP_NONE;
	if (loop_add(loop, &h->io, EPOLLIN | EPOLLRDHUP) < 0) {
		reply_drop(&h->resp);
		return -1;
	}
	s->nheld++;
	mark_dirty(s);
	return 0;
}

/* ---- stream events ---- */

static void on_features(void *owner, struct stream *st)
{
	struct session *s = owner;
	if (st == s->streams.s[0] && st->xmpp)
		s->secure = (uint8_t)xmpp_secure(st->xmpp);
	if (s->state == S_CONNECTING) {
		s->state = S_ACTIVE;
		mark_dirty(s);
	}
	if (s->nheld && HELD(s, 0)->creation)
		answer_held(s, 0, NULL, NULL);
	try_flush(s);
	session_schedule(s);
}

static void on_stanza(void *owner, struct stream *st)
{
	struct session *s = owner;
	if (!s->jid && st->jid) {
		s->jid = strdup(st->jid); /* the first JID bound is the session's, in its row */
		mark_dirty(s);
	}
	try_flush(s);
	session_schedule(s);
}

static void on_stream_ended(void *owner, struct stream *st, const char *condition)
{
	struct session *s = owner;
	if (s->state == S_ACTIVE && streams_open(&s->streams) > 0) {
		log_info("session %s: stream %s to %s ended (%s); %d streams remain", s->sid, st->name,
		         st->to, condition, streams_open(&s->streams));
		st->end_condition = condition;
		try_flush(s);
		session_schedule(s);
		return;
	}
	session_end(s, condition);
}

static const struct stream_events stream_events = {
	.features = on_features, .stanza = on_stanza, .ended = on_stream_ended,
};

/* ---- requests ---- */

/* The answer to a request that ends its session with condition: a legacy
 * client (no 'ver' at creation) gets the deprecated HTTP status instead
 * (XEP-0124 §17.1), everyone else a terminate body. */
static void answer_fatal(struct session *s, struct responder *resp, const char *condition)
{
	int status = !s || !s->legacy ? 0
	           : strcmp(condition, "bad-request") == 0 ? 400
	           : strcmp(condition, "policy-violation") == 0 ? 403
	           : strcmp(condition, "item-not-found") == 0 ? 404 : 0;
	if (!status) {
		answer_terminate(resp, condition);
		return;
	}
	struct reply r = { .status = status, .content_type = "text/plain; charset=utf-8" };
	reply_send(resp, &r);
}

/* Ends the session because of this request, which gets the answer. */
static void fail_request(struct session *s, struct responder *resp, const char *condition)
{
	answer_fatal(s, resp, condition);
	session_end(s, condition);
}

static int hex_digit(int c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }

/* A key or newkey attribute: 40 hex digits, kept in lower case. -1 if malformed. */
static int copy_key(char *dst, const char *src)
{
	dst[0] = 0;
	if (!src)
		return 0;
	if (strlen(src) != KEY_HEX)
		return -1;
	for (int i = 0; i < KEY_HEX; i++) {
		if (!hex_digit(src[i]))
			return -1;
		dst[i] = (char)(src[i] | (src[i] >= 'A' ? 0x20 : 0));
	}
	dst[KEY_HEX] = 0;
	return 0;
}

static void sha1_hex(const char *key, char out[KEY_HEX + 1])
{
	unsigned char md[SHA_DIGEST_LENGTH];
	SHA1((const unsigned char *)key, KEY_HEX, md);
	hex_encode(md, sizeof md, out);
}

/* §15: the request's key must hash (SHA-1) to the session's current key. */
static int key_ok(struct session *s, const struct req *r)
{
	if (!s->key[0])
		return 1;
	if (!r->key[0])
		return 0;
	char hex[KEY_HEX + 1];
	sha1_hex(r->key, hex);
	/* Constant time: a timing difference must not reveal how much matched. */
	return CRYPTO_memcmp(hex, s->key, KEY_HEX) == 0;
}

/* Notes the key an accepted request carried, for its repeats. */
static void remember_key(struct session *s, const struct req *r)
{
	if (!s->keys && !(s->keys = calloc(1, sizeof *s->keys)))
		return; /* repeat_key_ok() falls back on the chain */
	int i = (int)(r->rid % KEYRING_N);
	s->keys->rid[i] = r->rid;
	memcpy(s->keys->key[i], r->key, KEY_HEX + 1);
}

/* §15 for a request sent again (§14.3): it carries the very key its
 * original carried, so it must be that key, not one that hashes to the
 * current key. A session taken over from a snapshot has no keys noted:
 * there the key d requests back is the current key hashed d times (exact
 * unless the client switched to a new chain since). */
static int repeat_key_ok(struct session *s, const struct req *r)
{
	if (!s->key[0])
		return 1;
	if (!r->key[0])
		return 0;
	int i = (int)(r->rid % KEYRING_N);
	if (s->keys && s->keys->rid[i] == r->rid)
		return CRYPTO_memcmp(s->keys->key[i], r->key, KEY_HEX) == 0;
	int64_t back = s->next_rid - 1 - r->rid;
	if (back < 0 || back > KEYRING_N)
		return 0;
	char k[KEY_HEX + 1];
	memcpy(k, s->key, sizeof k);
	for (int64_t d = 0; d < back; d++)
		sha1_hex(k, k);
	return CRYPTO_memcmp(k, r->key, KEY_HEX) == 0;
}

/* Answers everything held; the newest (this request) without payload, which
 * stays queued for the next request: a pause request must carry none (§10),
 * and a pre-bind tool's hand-over leaves it for the page. */
static void answer_all_keep_queue(struct session *s)
{
	while (s->nheld > 1)
		answer_held(s, 0, NULL, NULL);
	struct answer none = { 0 };
	answer_held_with(s, 0, &none);
}

static void pause_session(struct session *s, long seconds)
{
	answer_all_keep_queue(s);
	s->pause_until_next = seconds;
	log_debug("session %s paused for %lds", s->sid, seconds);
}

#define REPORT_AFTER_MS 1000 /* an answer older than this, not acknowledged, was lost */
/* A client keeps a request with us all the time; a session with none for
 * longer than this is being taken over by a page (pre-bind attach, reload
 * restore): answer that page's first request at once, not after 'wait'.
 * A request from another address or User-Agent than the last one (a page
 * attaching to what a server-side script set up) is a take-over too. */
#define ATTACH_GAP_MS 1000

/* The client's ack (§9): forget what it has, and notice an answer it never
 * got. Returns 1 if a report is due. */
static int client_ack(struct session *s, int64_t ack)
{
	ridwin_ack(&s->sent, ack);
	sent_recharge(s);
	if (ack >= s->last_answered)
		return 0;
	const struct ridwin_entry *e = ridwin_find(&s->sent, ack + 1);
	uint64_t now = loop_now(loop);
	if (!e || now - e->sent_at < REPORT_AFTER_MS)
		return 0; /* still on its way, most likely */
	s->report_rid = ack + 1;
	s->report_ms = now - e->sent_at;
	log_info("session %s: the client did not get the answer to rid %lld (sent %llu ms ago)",
	         s->sid, (long long)s->report_rid, (unsigned long long)s->report_ms);
	return 1;
}

/* §12 (polling sessions) and, with strict_polling, §11: an empty new request
 * sooner than 'polling' seconds after the previous one, when nothing came
 * back in between, is a client polling too fast. With hold 1 or more the
 * rule also needs every earlier request to be still unanswered; many
 * clients keep an empty poll outstanding while they send, which is why it
 * is a switch for held sessions. */
static int too_frequent(const struct session *s, const struct req *r)
{
	if (r->len || r->pause >= 0 || r->terminate || r->restart || r->handover || !s->last_request_at)
		return 0;
	int soon = loop_now(loop) - s->last_request_at < (uint64_t)cfg->polling * 1000;
	if (s->hold == 0)
		return soon && s->last_empty_answered_empty;
	return cfg->strict_polling && soon && s->nheld + 1 >= s->requests;
}

/* The checks a request in turn must pass: key (§15), pause (§10),
 * frequency (§11, §12). On failure the session ends; returns -1. */
static int admit(struct session *s, struct responder *resp, const struct req *r)
{
	if (!key_ok(s, r)) {
		log_info("session %s: rid %lld has a wrong or missing key", s->sid, (long long)r->rid);
		fail_request(s, resp, "item-not-found");
		return -1;
	}
	if (s->key[0]) {
		remember_key(s, r);
		memcpy(s->key, r->newkey[0] ? r->newkey : r->key, KEY_HEX + 1);
	}
	if (r->pause > cfg->max_inactivity) {
		log_info("session %s: pause %ld is longer than maxpause %ld", s->sid, r->pause,
		         cfg->max_inactivity);
		fail_request(s, resp, "policy-violation");
		return -1;
	}
	if (too_frequent(s, r)) {
		log_info("session %s: empty requests faster than polling (%lds)", s->sid, cfg->polling);
		fail_request(s, resp, "policy-violation");
		return -1;
	}
	return 0;
}

/* A terminate naming one of several open streams ends that stream only
 * (§16.5). Returns 1 if the session goes on. */
static int end_named_stream(struct session *s, struct stream *named)
{
	if (!named || (named->xmpp && streams_open(&s->streams) == 1))
		return 0;
	log_info("session %s: the client closed stream %s to %s", s->sid, named->name, named->to);
	stream_close(named);
	named->closed = 1;
	return 1;
}

static void add_stream(struct session *s, struct responder *resp, const struct req *r);

static void process(struct session *s, struct responder *resp, const struct req *r)
{
	if (admit(s, resp, r) < 0)
		return;
	struct stream *named = NULL;
	/* Without multiple streams offered, 'stream' is ignored (§16.3). */
	if (r->stream && !s->one_stream && !(named = streams_find(&s->streams, r->stream))) {
		log_info("session %s: rid %lld names a stream it does not have", s->sid, (long long)r->rid);
		fail_request(s, resp, "item-not-found");
		return;
	}
	s->last_request_at = loop_now(loop);
	int takeover = r->handover || s->handed_over ||
	               (s->nheld == 0 && s->state == S_ACTIVE &&
	                (loop_now(loop) - s->last_answer > ATTACH_GAP_MS || r->sender != s->sender));
	s->sender = r->sender;
	s->handed_over = (uint8_t)r->handover;
	s->next_rid = r->rid + 1;
	s->last_seen = loop_wallclock();
	s->pause_until_next = 0;
	mark_dirty(s);
	if (r->to && !s->one_stream) { /* else 'to' is ignored, as §16.3 asks */
		add_stream(s, resp, r);
		return;
	}
	if (r->len && streams_send(&s->streams, named, r->payload, r->len) < 0) {
		hold_request(s, resp, r->rid, 0);
		session_end(s, "remote-connection-failed");
		return;
	}
	if (hold_request(s, resp, r->rid, 0) < 0)
		return;
	if (r->terminate && !end_named_stream(s, named)) {
		session_end(s, "terminate");
		return;
	}
	if (r->ack >= 0 && client_ack(s, r->ack))
		answer_held(s, 0, NULL, NULL); /* tell the client about the lost answer at once */
	if (r->restart && streams_restart(&s->streams, named, r->stream_attrs) < 0) {
		session_end(s, "remote-connection-failed");
		return;
	}
	if (r->pause >= 0)
		pause_session(s, r->pause);
	else if (r->handover)
		answer_all_keep_queue(s);
	if (takeover && !streams_awaiting_features(&s->streams) && s->nheld) {
		log_debug("session %s: first request after %llu ms without one: answered at once",
		          s->sid, (unsigned long long)(loop_now(loop) - s->last_answer));
		answer_held(s, 0, NULL, NULL);
	}
	int had_payload = streams_queued(&s->streams);
	while (s->nheld > s->hold)
		answer_held(s, 0, NULL, NULL);
	try_flush(s);
	s->last_empty_answered_empty = r->len == 0 && !had_payload && !r->restart;
	session_schedule(s);
}

/* Requests that waited for a gap in the rids to fill. */
static void process_ahead(struct session *s)
{
	for (int found = 1; found && s->state != S_ENDED;) {
		found = 0;
		for (int i = 0; i < s->nahead; i++) {
			if (s->ahead[i]->r.rid != s->next_rid)
				continue;
			struct ahead a = *s->ahead[i];
			free(s->ahead[i]);
			s->ahead[i] = s->ahead[--s->nahead];
			process(s, &a.resp, &a.r);
			free((char *)a.r.payload);
			found = 1;
			break;
		}
	}
}

/* An ahead entry owning copies of everything r points at: the payload,
 * then the strings, in one block. NULL on OOM. */
static struct ahead *ahead_new(const struct req *r, const struct responder *resp)
{
	struct ahead *a = malloc(sizeof *a);
	if (!a)
		return NULL;
	a->r = *r;
	const char **strs[] = { &a->r.stream_attrs, &a->r.stream, &a->r.to, &a->r.lang, &a->r.route };
	size_t total = r->len + 1;
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
		total += *strs[i] ? strlen(*strs[i]) + 1 : 0;
	char *copy = malloc(total), *o = copy + r->len;
	if (!copy) {
		free(a);
		return NULL;
	}
	memcpy(copy, r->payload ? r->payload : "", r->len);
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
		if (!*strs[i])
			continue;
		size_t n = strlen(*strs[i]) + 1;
		memcpy(o, *strs[i], n);
		*strs[i] = o;
		o += n;
	}
	a->r.payload = copy;
	a->resp = *resp;
	return a;
}

static int keep_ahead(struct session *s, struct responder *resp, const struct req *r)
{
	struct ahead *a = s->nahead == HELD_MAX ? NULL : ahead_new(r, resp);
	if (!a)
		return -1;
	resp->kind = RESP_NONE;
	s->ahead[s->nahead++] = a;
	return 0;
}

/* A held request the web server gave up on (nginx restarted, a proxy
 * timed out) had no answer; the client sends it again (§14.3). It is
 * answered at once, in rid order: with what is queued, or empty if a later
 * rid has been answered already (its data must not come before that). */
static void resend_dropped(struct session *s, struct responder *resp, int64_t rid)
{
	s->dropped[rid % HELD_MAX] = 0;
	log_debug("session %s: rid %lld sent again after its connection dropped", s->sid, (long long)rid);
	if (s->last_answered > rid) {
		keep_answer(s, rid, NULL, 0);
		answer_body(resp, s->content, empty_body, sizeof empty_body - 1);
		return;
	}
	if (hold_request(s, resp, rid, 0) == 0)
		answer_held(s, s->nheld - 1, NULL, NULL);
	session_schedule(s);
}

/* The client sent a rid again (XEP-0124 §14.3, "Broken Connections").
 * Checked as any request is (§15): with the wrong key it ends the session,
 * or whoever learnt a sid and rid could take the answers over. */
static void repeat(struct session *s, struct responder *resp, const struct req *r)
{
	int64_t rid = r->rid;
	if (!repeat_key_ok(s, r)) {
		log_info("session %s: rid %lld sent again with a wrong or missing key", s->sid,
		         (long long)rid);
		fail_request(s, resp, "item-not-found");
		return;
	}
	for (int i = 0; i < s->nheld; i++) {
		if (HELD(s, i)->rid != rid)
			continue;
		/* Still held: the old connection gets a recoverable error, the new one waits. */
		static const char err[] = "<body xmlns='" BOSH_NS "' type='error'/>";
		struct held *h = HELD(s, i);
		loop_del(loop, &h->io);
		answer_body(&h->resp, s->content, err, sizeof err - 1);
		h->resp = *resp;
		h->io.fd = resp->fd;
		resp->kind = RESP_NONE;
		loop_add(loop, &h->io, EPOLLIN | EPOLLRDHUP);
		return;
	}
	if (s->dropped[rid % HELD_MAX] == rid) {
		resend_dropped(s, resp, rid);
		return;
	}
	const char *body;
	size_t len;
	if (ridwin_get(&s->sent, rid, &body, &len)) {
		log_debug("session %s: rid %lld repeated; answer sent again", s->sid, (long long)rid);
		if (body)
			answer_body(resp, s->content, body, len);
		else
			answer_body(resp, s->content, empty_body, sizeof empty_body - 1);
		return;
	}
	log_info("session %s: rid %lld repeated but its answer is gone", s->sid, (long long)rid);
	fail_request(s, resp, "item-not-found");
}

/* FNV-1a over client address and User-Agent: who is talking. */
static uint64_t sender_of(const struct frame_request *fr)
{
	uint64_t h = 1469598103934665603ULL;
	const char *parts[] = { fr->client ? fr->client : "", "\n", fr->user_agent ? fr->user_agent : "" };
	for (int i = 0; i < 3; i++)
		for (const char *p = parts[i]; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h;
}

/* The request's own attributes; -1 if one of them is malformed. attrs_buf
 * holds the converted stream_attrs (node-xmpp-bosh) while r is in use. */
static int parse_req(const struct frame_request *fr, struct req *r, char *attrs_buf, size_t cap)
{
	const char *type = frame_attr(fr, "type"), *restart = frame_attr(fr, "xmpp:restart");
	const char *pause = frame_attr(fr, "pause");
	memset(r, 0, sizeof *r);
	r->rid = rid_parse(frame_attr(fr, "rid"));
	r->payload = (const char *)fr->payload;
	r->len = fr->payload_len;
	r->restart = restart && (strcmp(restart, "true") == 0 || strcmp(restart, "1") == 0);
	r->terminate = type && strcmp(type, "terminate") == 0;
	r->handover = (fr->flags & FRAME_F_HANDOVER) != 0;
	r->sender = sender_of(fr);
	r->pause = pause ? attr_number(pause) : -1;
	if (r->rid < 0 || (pause && r->pause < 0))
		return -1;
	const char *ack = frame_attr(fr, "ack");
	r->ack = ack ? rid_parse(ack) : -1;
	if (ack && r->ack < 0)
		return -1;
	const char *json = frame_attr(fr, "stream_attrs"), *why;
	if (json && r->restart) {
		if (json_attrs(json, attrs_buf, cap, &why) < 0) {
			log_info("request from %s: %s", fr->client ? fr->client : "-", why);
			return -1;
		}
		r->stream_attrs = attrs_buf;
	}
	r->stream = frame_attr(fr, "stream");
	/* Adding a stream is an empty request with 'to' (§16.3); restart
	 * requests carry 'to' too (Strophe.js sends it). */
	if (!r->restart && !r->terminate && !pause && !r->len) {
		r->to = frame_attr(fr, "to");
		r->lang = frame_attr(fr, "xml:lang");
		r->route = frame_attr(fr, "route");
	}
	return copy_key(r->key, frame_attr(fr, "key")) | copy_key(r->newkey, frame_attr(fr, "newkey"));
}

static void existing_session(struct session *s, struct responder *resp,
                             const struct frame_request *fr)
{
	if (s->state == S_ENDED) {
		/* It ended while no request was held: now the client hears why. */
		answer_terminate(resp, s->end_condition);
		session_destroy(s);
		return;
	}
	struct req r;
	char attrs_buf[1024], why[160];
	if (attrs_check_request(fr, why, sizeof why) < 0) {
		log_info("session %s: request from %s refused: %s", s->sid, fr->client ? fr->client : "-", why);
		fail_request(s, resp, "bad-request");
		return;
	}
	if (parse_req(fr, &r, attrs_buf, sizeof attrs_buf) < 0) {
		log_info("session %s: request with a malformed rid, key or pause from %s", s->sid,
		         fr->client ? fr->client : "-");
		fail_request(s, resp, "bad-request");
		return;
	}
	switch (rid_check(s->next_rid, r.rid, s->requests)) {
	case RID_NEXT:
		process(s, resp, &r);
		process_ahead(s);
		return;
	case RID_AHEAD:
		if (keep_ahead(s, resp, &r) == 0)
			return;
		/* no room means the window rules are broken */
		__attribute__((fallthrough));
	case RID_OUTSIDE:
		/* §11: one request more than 'requests' is allowed to pause or terminate */
		if (r.rid == s->next_rid + s->requests && (r.terminate || r.pause >= 0) &&
		    keep_ahead(s, resp, &r) == 0)
			return;
		if (r.rid < s->next_rid && ridwin_find(&s->sent, r.rid)) {
			repeat(s, resp, &r); /* older, but kept because not yet acknowledged (§9) */
			return;
		}
		log_info("session %s: rid %lld outside the window (next %lld)", s->sid,
		         (long long)r.rid, (long long)s->next_rid);
		fail_request(s, resp, "item-not-found");
		return;
	case RID_REPEAT:
		repeat(s, resp, &r);
		return;
	}
}

/* ---- creation ---- */


static void new_sid(char *out)
{
	unsigned char raw[16];
	if (RAND_bytes(raw, sizeof raw) != 1) {
		/* Without randomness sids would be guessable: refuse to go on. */
		log_error("RAND_bytes failed; cannot make a session id");
		abort();
	}
	hex_encode(raw, sizeof raw, out);
}

/* The client's ver, if it is lower than ours (XEP-0124 §7.1). */
static const char *choose_ver(const char *ver)
{
	unsigned major, minor;
	if (!ver || sscanf(ver, "%u.%u", &major, &minor) != 2)
		return BOSH_VERSION;
	return major < 1 || (major == 1 && minor < 11) ? ver : BOSH_VERSION;
}

/* At most max bytes of s, cut where a UTF-8 sequence begins. */
static char *dup_bounded(const char *s, size_t max)
{
	if (!s)
		return NULL;
	size_t n = strlen(s);
	if (n > max)
		for (n = max; n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80; n--)
			;
	return strndup(s, n);
}

static int fill_session(struct session *s, const struct frame_request *fr, int64_t rid)
{
	const char *wait = frame_attr(fr, "wait"), *hold = frame_attr(fr, "hold");
	const char *content = frame_attr(fr, "content");
	/* attrs_check_creation() has made sure these are small decimals */
	s->wait = (int)clamp(wait ? attr_number(wait) : cfg->default_wait, 1, cfg->max_wait);
	/* hold 0 is a polling session: every request is answered at once. */
	s->hold = (int)clamp(hold ? attr_number(hold) : 1, 0, cfg->max_hold);
	/* The rid window (§14.1) is the number of simultaneous requests, so a
	 * wider window_size is what 'requests' advertises. */
	s->requests = (int)(cfg->window_size > s->hold + 1 ? cfg->window_size : s->hold + 1);
	s->inactivity = (int)cfg->default_inactivity;
	s->next_rid = rid + 1;
	s->to = strdup(frame_attr(fr, "to"));
	s->route = dup_or_null(frame_attr(fr, "route"));
	s->ver = strdup(choose_ver(frame_attr(fr, "ver")));
	s->lang = dup_or_null(frame_attr(fr, "xml:lang"));
	s->content = dup_or_null(content);
	s->legacy = frame_attr(fr, "ver") == NULL;
	s->acks = frame_attr(fr, "ack") != NULL;
	copy_key(s->key, frame_attr(fr, "newkey")); /* checked by create_session() */
	s->client = dup_or_null(fr->client);
	s->client_from = dup_or_null(frame_attr(fr, "from"));
	s->sender = sender_of(fr);
	s->ua = dup_bounded(frame_attr(fr, "ua") ? frame_attr(fr, "ua") : fr->user_agent, ATTR_UA_MAX);
	/* libpurple (Pidgin, Finch) puts 'to' on every request, its empty polls
	 * included: offered multiple streams, each poll would add one. */
	s->one_stream = cfg->pidgin_compatible || (fr->user_agent && strstr(fr->user_agent, "libpurple"));
	s->created_at = s->last_seen = loop_wallclock();
	s->last_answer = loop_now(loop);
	s->timer = (struct timer){ .cb = session_timer, .ctx = s };
	/* With acks the client says what it got: keep answers until then (bounded). */
	ridwin_init(&s->sent, s->acks ? RIDWIN_MAX : s->requests);
	return s->to && s->ver ? 0 : -1;
}

static struct stream *open_stream(struct session *s, const struct config_backend *be,
                                  const char *host, unsigned port, const char *domain,
                                  const char *lang)
{
	struct xmpp_params p = {
		.domain = domain, .host = host[0] ? host : NULL, .port = (uint16_t)port,
		.tls = be->tls, .pin = be->pin, .lang = lang,
		.max_stanza = (size_t)cfg->max_xmpp_stanza_size,
		.max_output = (size_t)cfg->max_data_held * 4,
		.connect_timeout_ms = (unsigned)cfg->connect_timeout * 1000,
		.stanza_timeout_ms = (unsigned)cfg->stanza_timeout * 1000,
		.keepalive = { (unsigned)cfg->xmpp_keepalive_idle, (unsigned)cfg->xmpp_keepalive_interval,
		               (unsigned)cfg->xmpp_keepalive_count },
	};
	struct stream *st = stream_open(loop, &p, s->sid, (size_t)cfg->max_client_buffer,
	                                &stream_events, s);
	if (st && streams_add(&s->streams, st) < 0) {
		stream_free(st); /* callers check for room first */
		return NULL;
	}
	return st;
}

static void connect_first_stream(struct session *s, const struct config_backend *be,
                                 const char *host, unsigned port)
{
	mark_dirty(s);
	if (!open_stream(s, be, host, port, s->to, s->lang))
		session_end(s, "remote-connection-failed");
	else
		session_schedule(s);
}

static void create_session(struct responder *resp, const struct frame_request *fr)
{
	int64_t rid = rid_parse(frame_attr(fr, "rid"));
	const char *to = frame_attr(fr, "to");
	char newkey[KEY_HEX + 1], why[160];
	if (rid < 0 || copy_key(newkey, frame_attr(fr, "newkey")) < 0) {
		log_info("session request from %s with a malformed rid or newkey",
		         fr->client ? fr->client : "-");
		answer_terminate(resp, "bad-request");
		return;
	}
	if (attrs_check_creation(fr, why, sizeof why) < 0) {
		log_info("session request from %s refused: %s", fr->client ? fr->client : "-", why);
		answer_terminate(resp, "bad-request");
		return;
	}
	if (!to || !*to) {
		log_info("session request from %s without 'to'", fr->client);
		answer_terminate(resp, "improper-addressing");
		return;
	}
	const struct config_backend *be = route_valid_domain(to) ? config_backend(cfg, to) : NULL;
	if (!be) {
		log_info("session request from %s for unknown domain '%.100s'", fr->client, to);
		answer_terminate(resp, "host-unknown");
		return;
	}
	char host[256];
	unsigned port = 0;
	const char *route = frame_attr(fr, "route");
	const char *refused = route_choose(route, be, cfg->allowed_routes, host, sizeof host, &port);
	if (refused) {
		log_info("session request from %s: route '%.100s' refused (%s): not allowed by allowed_routes",
		         fr->client, route, refused);
		answer_terminate(resp, refused);
		return;
	}
	if (nsessions >= (size_t)cfg->max_sessions) {
		log_warn("session request from %s refused: max_sessions (%ld) reached", fr->client,
		         cfg->max_sessions);
		answer_terminate(resp, "policy-violation");
		return;
	}
	if (cfg->max_sessions_per_client && client_sessions(fr->client) >= cfg->max_sessions_per_client) {
		log_warn("session request from %s refused: it has max_sessions_per_client (%ld) sessions",
		         fr->client, cfg->max_sessions_per_client);
		answer_terminate(resp, "policy-violation");
		return;
	}
	struct session *s = calloc(1, sizeof *s);
	if (!s || (nsessions + 1 > table_size && table_grow() < 0) || fill_session(s, fr, rid) < 0) {
		log_error("out of memory creating a session");
		if (s)
			session_free(s);
		answer_terminate(resp, "internal-server-error");
		return;
	}
	do
		new_sid(s->sid);
	while (find(s->sid));
	if (client_add(s->client, +1) < 0) {
		log_error("out of memory counting sessions per client");
		session_free(s);
		answer_terminate(resp, "internal-server-error");
		return;
	}
	size_t b = sid_hash(s->sid) & (table_size - 1);
	s->hnext = table[b];
	table[b] = s;
	nsessions++;
	log_info("session %s created for %s (client %s, user agent '%.100s')", s->sid, s->to,
	         s->client ? s->client : "-", fr->user_agent ? fr->user_agent : "-");
	hold_request(s, resp, rid, 1);
	connect_first_stream(s, be, host, port);
}

/* §16.3: a request with 'to' on a live session opens another stream. Its
 * answer names the stream at once (and carries nothing else); the stream's
 * features come in a later answer that names it. */
static void add_stream(struct session *s, struct responder *resp, const struct req *r)
{
	const struct config_backend *be = route_valid_domain(r->to) ? config_backend(cfg, r->to) : NULL;
	char host[256];
	unsigned port = 0;
	if (!be) {
		log_info("session %s: a stream for unknown domain '%.100s'", s->sid, r->to);
		fail_request(s, resp, "host-unknown");
		return;
	}
	const char *refused = route_choose(r->route, be, cfg->allowed_routes, host, sizeof host, &port);
	if (refused) {
		log_info("session %s: a stream's route '%.100s' refused (%s): not allowed by allowed_routes",
		         s->sid, r->route, refused);
		fail_request(s, resp, refused);
		return;
	}
	if (s->streams.n == STREAMS_MAX) {
		log_info("session %s: no more than %d streams in a session", s->sid, STREAMS_MAX);
		fail_request(s, resp, "policy-violation");
		return;
	}
	struct stream *st = open_stream(s, be, host, port, r->to, r->lang ? r->lang : s->lang);
	if (!st) {
		fail_request(s, resp, "remote-connection-failed");
		return;
	}
	s->multi = 1;
	log_info("session %s: stream %s added for %s", s->sid, st->name, st->to);
	if (hold_request(s, resp, r->rid, 0) < 0)
		return;
	while (s->nheld > 1)
		answer_held(s, 0, NULL, NULL);
	struct answer a = { .added = st };
	answer_held_with(s, 0, &a);
	session_schedule(s);
}

void sessions_handle(struct responder *resp, const struct frame_request *fr)
{
	const char *sid = frame_attr(fr, "sid");
	if (fr->error) {
		log_limited(LOG_INFO, "bad request", "bad request from %s: %s", fr->client ? fr->client : "-",
		            fr->error);
		answer_terminate(resp, "bad-request");
		return;
	}
	if (!sid) {
		create_session(resp, fr);
		return;
	}
	struct session *s = find(sid);
	if (s) {
		existing_session(s, resp, fr);
	} else if (strlen(sid) == SID_HEX && is_lost(sid)) {
		log_info("request for session %s, lost when sessiond restarted", sid);
		answer_terminate(resp, "remote-connection-failed");
	} else {
		log_limited(LOG_INFO, "unknown sid", "request from %s for unknown session '%.40s'",
		            fr->client ? fr->client : "-", sid);
		answer_terminate(resp, "item-not-found");
	}
}

/* ---- start and stop ---- */

int sessions_init(struct loop *l, const struct config *c)
{
	loop = l;
	cfg = c;
	/* While the database refuses writes: a row per live session, and as
	 * many again for sessions that end meanwhile. */
	store_set_max_queued((size_t)c->max_sessions * 2);
	budget_init((size_t)c->max_memory);
	return table_grow();
}

static void remember_lost(void *ctx, const char *sid)
{
	(void)ctx;
	if (strlen(sid) != SID_HEX)
		return;
	if (nlost == lost_cap) {
		size_t cap = lost_cap ? lost_cap * 2 : 64;
		void *n = realloc(lost, cap * sizeof *lost);
		if (!n)
			return;
		lost = n;
		lost_cap = cap;
	}
	memcpy(lost[nlost++], sid, SID_HEX + 1);
}

int sessions_recover(void)
{
	double now = loop_wallclock();
	long n = store_recover(now, (double)cfg->ended_retention, remember_lost, NULL);
	if (n < 0)
		return -1;
	if (nlost)
		qsort(lost, nlost, sizeof lost[0], cmp_sid);
	if (n > 0)
		log_warn("%ld sessions of the previous run were lost (their XMPP connections did not "
		         "survive); they will be told remote-connection-failed", n);
	store_prune(now - (double)cfg->ended_retention);
	return 0;
}

void sessions_shutdown(void)
{
	for (size_t i = 0; i < table_size; i++)
		for (struct session *s = table[i]; s; s = s->hnext) {
			while (s->nheld)
				answer_held(s, 0, NULL, NULL);
			put_row(s);
			streams_close(&s->streams);
		}
	dirty_list = NULL;
	if (store_flush() < 0)
		log_error("could not write the session rows at shutdown");
}

size_t sessions_count(void) { return nsessions; }

/* ---- graceful restart (snapshot.h) ----
 *
 * Every session whose XMPP connection can move (plain TCP, set up) goes to
 * the successor with its held requests, requests waiting for a rid gap,
 * queued stanzas, answers kept for repeated rids, and timers (loop_now() is
 * CLOCK_MONOTONIC, the same in both processes). A session still connecting
 * is connected again by the successor: its client has seen nothing of the
 * stream yet. */

static void put_resp(struct snap_w *w, const struct responder *r, sessions_fd_cb keep, void *ctx)
{
	snap_put_i64(w, r->fd);
	snap_put_u64(w, r->fcgi_id);
	snap_put_u64(w, r->kind);
	snap_put_u64(w, r->cors);
	snap_put_str(w, r->wrap);
	if (r->fd >= 0)
		keep(ctx, r->fd);
}

static void get_resp(struct snap_r *r, struct responder *o)
{
	o->fd = (int)snap_get_i64(r);
	o->fcgi_id = (uint16_t)snap_get_u64(r);
	o->kind = (uint8_t)snap_get_u64(r);
	o->cors = (uint8_t)snap_get_u64(r);
	o->wrap = snap_get_str(r);
}

static void put_req(struct snap_w *w, const struct req *q)
{
	snap_put_i64(w, q->rid);
	snap_put_bytes(w, q->payload, q->len);
	snap_put_i64(w, q->restart);
	snap_put_i64(w, q->terminate);
	snap_put_i64(w, q->pause);
	snap_put_i64(w, q->ack);
	snap_put_i64(w, q->handover);
	snap_put_str(w, q->stream_attrs);
	snap_put_str(w, q->stream);
	snap_put_str(w, q->to);
	snap_put_str(w, q->lang);
	snap_put_str(w, q->route);
	snap_put_u64(w, q->sender);
	snap_put_str(w, q->key);
	snap_put_str(w, q->newkey);
	snap_put_i64(w, q->bad_key_syntax);
}

static struct ahead *get_ahead(struct snap_r *r)
{
	struct req q = { 0 };
	struct responder resp = { .fd = -1 };
	char *strs[6] = { NULL };
	size_t len;
	q.rid = snap_get_i64(r);
	strs[0] = snap_get_bytes(r, &len);
	q.payload = strs[0];
	q.len = len;
	q.restart = (int)snap_get_i64(r);
	q.terminate = (int)snap_get_i64(r);
	q.pause = (long)snap_get_i64(r);
	q.ack = snap_get_i64(r);
	q.handover = (int)snap_get_i64(r);
	q.stream_attrs = strs[1] = snap_get_str(r);
	q.stream = strs[2] = snap_get_str(r);
	q.to = strs[3] = snap_get_str(r);
	q.lang = strs[4] = snap_get_str(r);
	q.route = strs[5] = snap_get_str(r);
	q.sender = snap_get_u64(r);
	snap_get_into(r, q.key, sizeof q.key);
	snap_get_into(r, q.newkey, sizeof q.newkey);
	q.bad_key_syntax = (int)snap_get_i64(r);
	get_resp(r, &resp);
	struct ahead *a = snap_failed(r) ? NULL : ahead_new(&q, &resp);
	for (int i = 0; i < 6; i++)
		free(strs[i]);
	if (!a)
		reply_drop(&resp);
	return a;
}

static void put_strings(struct snap_w *w, const struct session *s)
{
	const char *strs[] = { s->to, s->route, s->ver, s->lang, s->content, s->client, s->ua,
	                       s->jid, s->end_condition, s->client_from, s->key };
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
		snap_put_str(w, strs[i]);
}

static void get_strings(struct snap_r *r, struct session *s)
{
	char **strs[] = { &s->to, &s->route, &s->ver, &s->lang, &s->content, &s->client, &s->ua,
	                  &s->jid, &s->end_condition, &s->client_from };
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
		*strs[i] = snap_get_str(r);
	snap_get_into(r, s->key, sizeof s->key);
}

static void put_numbers(struct snap_w *w, const struct session *s)
{
	int64_t nums[] = { s->state, s->next_rid, s->wait, s->hold, s->requests, s->inactivity,
	                   s->secure, s->pause_until_next, s->legacy, s->acks, s->handed_over,
	                   s->last_empty_answered_empty, (int64_t)s->last_request_at, (int64_t)s->sender,
	                   s->last_answered, s->report_rid, (int64_t)s->report_ms, s->multi,
	                   s->one_stream, s->next_pick, (int64_t)s->last_answer, (int64_t)s->linger_until };
	for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
		snap_put_i64(w, nums[i]);
	snap_put_double(w, s->created_at);
	snap_put_double(w, s->last_seen);
	snap_put_double(w, s->ended_at);
}

static void get_numbers(struct snap_r *r, struct session *s)
{
	s->state = (enum state)snap_get_i64(r);
	s->next_rid = snap_get_i64(r);
	s->wait = (int)snap_get_i64(r);
	s->hold = (int)snap_get_i64(r);
	s->requests = (int)snap_get_i64(r);
	s->inactivity = (int)snap_get_i64(r);
	s->secure = (uint8_t)snap_get_i64(r);
	s->pause_until_next = (long)snap_get_i64(r);
	s->legacy = (uint8_t)snap_get_i64(r);
	s->acks = (uint8_t)snap_get_i64(r);
	s->handed_over = (uint8_t)snap_get_i64(r);
	s->last_empty_answered_empty = (uint8_t)snap_get_i64(r);
	s->last_request_at = (uint64_t)snap_get_i64(r);
	s->sender = (uint64_t)snap_get_i64(r);
	s->last_answered = snap_get_i64(r);
	s->report_rid = snap_get_i64(r);
	s->report_ms = (uint64_t)snap_get_i64(r);
	s->multi = (uint8_t)snap_get_i64(r);
	s->one_stream = (uint8_t)snap_get_i64(r);
	s->next_pick = (uint8_t)snap_get_i64(r);
	s->last_answer = (uint64_t)snap_get_i64(r);
	s->linger_until = (uint64_t)snap_get_i64(r);
	s->created_at = snap_get_double(r);
	s->last_seen = snap_get_double(r);
	s->ended_at = snap_get_double(r);
}

static int put_session(struct snap_w *w, const struct session *s, sessions_fd_cb keep, void *ctx)
{
	snap_put_str(w, s->sid);
	put_numbers(w, s);
	put_strings(w, s);
	for (int i = 0; i < HELD_MAX; i++)
		snap_put_i64(w, s->dropped[i]);
	snap_put_u64(w, s->sent.cap);
	snap_put_count(w, (uint64_t)s->sent.n, RIDWIN_MAX);
	for (int i = 0; i < s->sent.n; i++) {
		const struct ridwin_entry *e = &s->sent.e[(s->sent.head + i) % s->sent.cap];
		snap_put_i64(w, e->rid);
		snap_put_bytes(w, e->body, e->len);
		snap_put_u64(w, e->sent_at);
	}
	snap_put_count(w, (uint64_t)s->nheld, HELD_MAX);
	for (int i = 0; i < s->nheld; i++) {
		const struct held *h = HELD((struct session *)s, i);
		snap_put_i64(w, h->rid);
		snap_put_u64(w, h->since);
		snap_put_u64(w, h->creation);
		put_resp(w, &h->resp, keep, ctx);
	}
	snap_put_count(w, (uint64_t)s->nahead, HELD_MAX);
	for (int i = 0; i < s->nahead; i++) {
		put_req(w, &s->ahead[i]->r);
		put_resp(w, &s->ahead[i]->resp, keep, ctx);
	}
	/* A session still connecting connects again in the successor. */
	struct streams none = { .n = 0 };
	return streams_snapshot(s->state == S_CONNECTING ? &none : &s->streams, w, keep, ctx);
}

/* A session whose TLS connection cannot move stays with the process that
 * has it, which drains it (restart.c). */
static int session_can_move(const struct session *s)
{
	return s->state != S_ACTIVE || streams_movable(&s->streams);
}

/* sids of sessions another process drains: their requests go there */
static char (*draining)[SID_HEX + 1];
static size_t ndraining;

long sessions_unmovable_count(void)
{
	long n = 0;
	for (size_t i = 0; i < table_size; i++)
		for (struct session *s = table[i]; s; s = s->hnext)
			n += !session_can_move(s);
	return n;
}

/* Drops a session without a word to anyone: the other process of a restart
 * has the same connections and carries on with it. */
static void session_forget(struct session *s)
{
	drop_requests(s);
	streams_forget(&s->streams);
	session_unlink(s);
}

int sessions_split(int keep_movable)
{
	size_t cap = ndraining;
	if (!keep_movable)
		ndraining = 0; /* the drainer forwards nothing */
	for (size_t i = 0; i < table_size; i++)
		for (struct session *s = table[i], *next; s; s = next) {
			next = s->hnext;
			if (session_can_move(s) == keep_movable)
				continue;
			if (keep_movable) { /* remember where its requests must go */
				if (ndraining == cap) {
					void *n = realloc(draining, (cap = cap ? cap * 2 : 16) * sizeof *draining);
					if (!n)
						return -1;
					draining = n;
				}
				memcpy(draining[ndraining++], s->sid, SID_HEX + 1);
			}
			session_forget(s);
		}
	if (ndraining)
		qsort(draining, ndraining, sizeof draining[0], cmp_sid);
	return 0;
}

int sessions_draining(const char *sid)
{
	return sid && ndraining && strlen(sid) == SID_HEX &&
	       bsearch(sid, draining, ndraining, sizeof draining[0], cmp_sid) != NULL;
}

void sessions_drainer_gone(void)
{
	ndraining = 0;
}

void sessions_end_all(const char *condition)
{
	for (size_t i = 0; i < table_size; i++)
		for (struct session *s = table[i], *next; s; s = next) {
			next = s->hnext;
			if (s->state != S_ENDED)
				session_end(s, condition);
		}
}

/* The descriptors of one session: a record lists them first, so that the
 * successor can close them if it cannot take the session over. */
#define SESSION_FDS_MAX (2 * HELD_MAX + STREAMS_MAX)
struct fd_list {
	int fd[SESSION_FDS_MAX];
	int n, over;
};

static void collect_fd(void *ctx, int fd)
{
	struct fd_list *l = ctx;
	if (l->n < SESSION_FDS_MAX)
		l->fd[l->n++] = fd;
	else
		l->over = 1;
}

/* One session as one record: [sid][its descriptors][the rest]. A session
 * that cannot be written whole (past a limit of snapshot.h) is written as
 * its sid alone, which the successor reads as lost. Returns 1 then, 0 if
 * written whole, -1 out of memory. body is scratch space, reused. */
static int put_record(struct snap_w *w, struct snap_w *body, const struct session *s,
                      sessions_fd_cb keep, void *ctx)
{
	struct fd_list fds = { .n = 0 };
	body->len = 0;
	body->over = 0;
	int whole = put_session(body, s, collect_fd, &fds) == 0 && !fds.over;
	if (body->failed)
		return -1;
	size_t mark = snap_record_begin(w);
	snap_put_str(w, s->sid);
	snap_put_count(w, whole ? (uint64_t)fds.n : 0, SESSION_FDS_MAX);
	for (int i = 0; whole && i < fds.n; i++)
		snap_put_i64(w, fds.fd[i]);
	if (whole)
		snap_put_raw(w, body->data, body->len);
	if (snap_record_end(w, mark) < 0)
		return -1;
	for (int i = 0; whole && i < fds.n; i++)
		keep(ctx, fds.fd[i]);
	return whole ? 0 : 1;
}

/* Sessions left out of the snapshot end here, as a lost connection: their
 * held requests are answered now, and the successor answers their next
 * request remote-connection-failed (they are lost there). */
static void end_left_out(char (*sids)[SID_HEX + 1], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct session *s = find(sids[i]);
		if (!s)
			continue;
		log_error("restart: session %s cannot be handed over (past the snapshot's limits); "
		          "ending it", s->sid);
		if (s->state == S_ENDED)
			session_destroy(s);
		else
			session_end(s, "remote-connection-failed");
	}
}

int sessions_snapshot(struct snap_w *w, sessions_fd_cb keep, void *ctx)
{
	struct snap_w body = { 0 };
	char (*left_out)[SID_HEX + 1] = NULL;
	size_t nleft = 0;
	int rc = 0;
	store_flush();
	snap_put_count(w, nlost, SNAP_MAX_SIDS);
	for (size_t i = 0; i < nlost; i++)
		snap_put_str(w, lost[i]);
	snap_put_count(w, ndraining, SNAP_MAX_SIDS);
	for (size_t i = 0; i < ndraining; i++)
		snap_put_str(w, draining[i]);
	snap_put_count(w, nsessions, SNAP_MAX_SIDS);
	for (size_t i = 0; i < table_size && rc == 0; i++)
		for (struct session *s = table[i]; s && rc == 0; s = s->hnext) {
			int r = put_record(w, &body, s, keep, ctx);
			if (r < 0) {
				rc = -1;
			} else if (r > 0) {
				void *n = realloc(left_out, (nleft + 1) * sizeof *left_out);
				if (!n) {
					rc = -1;
					break;
				}
				left_out = n;
				memcpy(left_out[nleft++], s->sid, SID_HEX + 1);
			}
		}
	free(body.data);
	if (rc == 0 && !w->failed && !w->over)
		end_left_out(left_out, nleft);
	free(left_out);
	for (struct session *s = dirty_list; s; s = s->dirty_next) {
		put_row(s);
		s->dirty = 0;
	}
	dirty_list = NULL;
	store_flush();
	return rc < 0 || w->failed || w->over ? -1 : 0;
}

static int get_held(struct snap_r *r, struct session *s)
{
	uint64_t n = snap_get_count(r, HELD_MAX);
	if (snap_failed(r))
		return -1;
	for (uint64_t i = 0; i < n; i++) {
		struct held *h = HELD(s, s->nheld);
		*h = (struct held){ .s = s };
		h->rid = snap_get_i64(r);
		h->since = snap_get_u64(r);
		h->creation = (uint8_t)snap_get_u64(r);
		get_resp(r, &h->resp);
		if (snap_failed(r))
			return -1;
		h->io = (struct io){ .fd = h->resp.fd, .cb = held_io, .ctx = h };
		if (loop_add(loop, &h->io, EPOLLIN | EPOLLRDHUP) < 0) {
			reply_drop(&h->resp);
			continue;
		}
		s->nheld++;
	}
	return 0;
}

static int get_sent_and_ahead(struct snap_r *r, struct session *s)
{
	ridwin_init(&s->sent, (int)snap_get_u64(r));
	uint64_t n = snap_get_count(r, RIDWIN_MAX);
	for (uint64_t i = 0; i < n && !snap_failed(r); i++) {
		size_t len;
		int64_t rid = snap_get_i64(r);
		char *body = snap_get_bytes(r, &len);
		uint64_t at = snap_get_u64(r);
		ridwin_put(&s->sent, rid, body, len, at);
		free(body);
	}
	if (get_held(r, s) < 0)
		return -1;
	uint64_t na = snap_get_count(r, HELD_MAX);
	if (snap_failed(r))
		return -1;
	for (uint64_t i = 0; i < na; i++) {
		struct ahead *a = get_ahead(r);
		if (!a)
			return -1;
		s->ahead[s->nahead++] = a;
	}
	return snap_failed(r) ? -1 : 0;
}

static void reconnect(struct session *s)
{
	const struct config_backend *be = config_backend(cfg, s->to);
	char host[256];
	unsigned port = 0;
	if (!be || route_choose(s->route, be, cfg->allowed_routes, host, sizeof host, &port)) {
		session_end(s, "host-unknown");
		return;
	}
	connect_first_stream(s, be, host, port);
}

/* A session half read from a snapshot: not in the table, not counted. Its
 * XMPP connections are closed at once, not lingering: close_record_fds()
 * must find every descriptor either still open or closed for good. */
static void discard_restored(struct session *s)
{
	drop_requests(s);
	streams_forget(&s->streams);
	session_free(s);
}

static struct session *get_session(struct snap_r *r)
{
	struct session *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	snap_get_into(r, s->sid, sizeof s->sid);
	get_numbers(r, s);
	get_strings(r, s);
	for (int i = 0; i < HELD_MAX; i++)
		s->dropped[i] = snap_get_i64(r);
	s->timer = (struct timer){ .cb = session_timer, .ctx = s };
	if (snap_failed(r) || strlen(s->sid) != SID_HEX || !s->to || get_sent_and_ahead(r, s) < 0) {
		discard_restored(s);
		return NULL;
	}
	struct stream_restore_params sp = {
		.loop = loop, .sid = s->sid, .max_queue = (size_t)cfg->max_client_buffer,
		.max_stanza = (size_t)cfg->max_xmpp_stanza_size, .ev = &stream_events, .owner = s,
	};
	if (streams_restore(&s->streams, r, &sp) < 0) {
		discard_restored(s);
		return NULL;
	}
	return s;
}

static void read_sids(struct snap_r *r, void (*cb)(const char *sid))
{
	uint64_t n = snap_get_count(r, SNAP_MAX_SIDS);
	for (uint64_t i = 0; i < n && !snap_failed(r); i++) {
		char sid[SID_HEX + 1];
		snap_get_into(r, sid, sizeof sid);
		if (!snap_failed(r))
			cb(sid);
	}
}

static void restore_lost(const char *sid) { remember_lost(NULL, sid); }

static void restore_draining(const char *sid)
{
	static size_t cap;
	if (strlen(sid) != SID_HEX)
		return;
	if (ndraining == cap) {
		void *n = realloc(draining, (cap ? cap * 2 : 16) * sizeof *draining);
		if (!n)
			return; /* its requests get item-not-found: the drainer ends it in time */
		draining = n;
		cap = cap ? cap * 2 : 16;
	}
	memcpy(draining[ndraining++], sid, SID_HEX + 1);
}

static int add_restored(struct session *s)
{
	if ((nsessions + 1 > table_size && table_grow() < 0) || client_add(s->client, +1) < 0)
		return -1;
	size_t b = sid_hash(s->sid) & (table_size - 1);
	s->hnext = table[b];
	table[b] = s;
	nsessions++;
	mark_dirty(s);
	if (s->state == S_CONNECTING)
		reconnect(s);
	else if (s->state == S_ACTIVE && !streams_open(&s->streams))
		session_end(s, "remote-connection-failed");
	else
		session_schedule(s);
	return 0;
}

/* Closes what a record names that the failed restore did not take (and
 * close). Nothing opens a descriptor while a record is read, so an fd still
 * open here is the predecessor's, not a new one that got its number. */
static void close_record_fds(const int *fds, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (fds[i] > 2 && fcntl(fds[i], F_GETFD) >= 0)
			close(fds[i]);
}

/* One record: 1 if the session was taken over, 0 if it is lost (logged). */
static int restore_record(struct snap_r *rec)
{
	char sid[SID_HEX + 1];
	int fds[SESSION_FDS_MAX];
	snap_get_into(rec, sid, sizeof sid);
	uint64_t nfds = snap_get_count(rec, SESSION_FDS_MAX);
	for (uint64_t i = 0; i < nfds && !snap_failed(rec); i++)
		fds[i] = (int)snap_get_i64(rec);
	if (snap_failed(rec)) {
		log_error("restart: a session's record is unreadable; it is lost");
		return 0;
	}
	struct session *s = rec->off < rec->len ? get_session(rec) : NULL;
	if (s && (rec->off != rec->len || strcmp(s->sid, sid) != 0)) {
		discard_restored(s); /* not what was written: trust none of it */
		s = NULL;
	}
	if (s && add_restored(s) < 0) {
		discard_restored(s);
		s = NULL;
	}
	if (s)
		return 1;
	close_record_fds(fds, nfds);
	if (strlen(sid) == SID_HEX) {
		remember_lost(NULL, sid);
		log_error("restart: session %s could not be taken over; it is told "
		          "remote-connection-failed at its next request", sid);
	}
	return 0;
}

long sessions_restore(struct snap_r *r)
{
	long restored = 0, failed = 0;
	read_sids(r, restore_lost);
	read_sids(r, restore_draining);
	uint64_t n = snap_get_count(r, SNAP_MAX_SIDS);
	if (snap_failed(r))
		return -1;
	for (uint64_t i = 0; i < n; i++) {
		struct snap_r rec;
		if (snap_get_record(r, &rec) < 0) {
			log_error("restart: the snapshot ends after %llu of %llu sessions; the rest are lost",
			          (unsigned long long)i, (unsigned long long)n);
			break;
		}
		if (restore_record(&rec))
			restored++;
		else
			failed++;
	}
	if (nlost)
		qsort(lost, nlost, sizeof lost[0], cmp_sid);
	if (ndraining)
		qsort(draining, ndraining, sizeof draining[0], cmp_sid);
	if (failed)
		log_error("restart: %ld sessions could not be taken over; %ld were", failed, restored);
	return restored;
}
