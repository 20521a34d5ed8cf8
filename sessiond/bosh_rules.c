/* bosh_rules.c - the rules of a BOSH session (XEP-0124/0206): its states,
 * held requests, answers, rid window, keys, pause, acks and streams.
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
#include "bosh_int.h"
#include "attrs.h"
#include "bosh.h"
#include "budget.h"
#include "hex.h"
#include "jsonattrs.h"
#include "log.h"
#include "metrics.h"
#include "splitter.h"
#include "xmpp.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

struct loop *bosh_loop;
const struct config *bosh_cfg;

void bosh_init(struct loop *l, const struct config *c)
{
	bosh_loop = l;
	bosh_cfg = c;
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
			reply_unwatch(&src->resp, &src->io);
			*dst = *src;
			dst->io.ctx = dst;
			reply_watch(&dst->resp, &dst->io);
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
	mark_touched(s);
}

/* The creation response's attributes (XEP-0124 §7.1, XEP-0206 §3). */
static int creation_attrs(struct session *s, struct buf *b)
{
	int rc = buf_lit(b, " xmlns:xmpp='" XBOSH_NS "' xmlns:stream='" STREAM_NS "'");
	rc |= buf_attr(b, "sid", s->c.sid);
	rc |= buf_printf(b, " wait='%d' requests='%d' hold='%d' inactivity='%d' polling='%ld' maxpause='%ld'",
	                 s->wait, s->requests, s->hold, s->inactivity, bosh_cfg->polling,
	                 bosh_cfg->max_inactivity);
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
	int rc = 0;
	if (s->acks && (h->creation || s->next_rid - 1 != h->rid))
		rc |= buf_printf(b, " ack='%lld'", (long long)(h->creation ? h->rid : s->next_rid - 1));
	if (s->report_rid) {
		rc |= buf_printf(b, " report='%lld' time='%llu'", (long long)s->report_rid,
		                 (unsigned long long)s->report_ms);
		s->report_rid = 0;
	}
	return rc;
}
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
	int rc = buf_lit(b, "<body xmlns='" BOSH_NS "'");
	if (HELD(s, i)->creation && !type)
		rc |= creation_attrs(s, b);
	rc |= buf_attr(b, "stream", name);
	if (a->added) { /* XEP-0206 §3: the version goes with a stream added too */
		rc |= buf_lit(b, " xmlns:xmpp='" XBOSH_NS "'");
		rc |= buf_attr(b, "from", a->added->to);
		rc |= buf_attr(b, "xmpp:version", "1.0");
	}
	rc |= buf_attr(b, "type", type);
	rc |= buf_attr(b, "condition", condition);
	rc |= ack_attrs(s, HELD(s, i), b);
	if (condition && strcmp(condition, "remote-stream-error") == 0)
		rc |= buf_lit(b, " xmlns:stream='" STREAM_NS "'");
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
	budget_try(&s->sent_charged, n, "answers kept for repeated rids", s->c.sid);
}

/* Keeps an answer for repeats of its rid (§14.3). One the memory budget
 * has no room for is not kept: the client got it, and only a repeat of that
 * rid would need it (then item-not-found ends the session, as for any
 * answer gone). */
static void keep_answer(struct session *s, int64_t rid, const char *body, size_t len)
{
	if (len && budget_try(&s->sent_charged, s->sent_charged + len, "an answer kept for a repeated rid",
	                      s->c.sid) < 0)
		return;
	if (ridwin_put(&s->sent, rid, body, len, loop_now(bosh_loop)) < 0)
		log_warn("session %s: out of memory caching the answer to rid %lld", s->c.sid, (long long)rid);
	sent_recharge(s);
}

void answer_held_with(struct session *s, int i, const struct answer *a)
{
	struct held *h = HELD(s, i);
	struct buf b = { 0 };
	int plain_empty = !a->type && !h->creation && !a->added && !s->acks && !s->report_rid &&
	                  (!a->st || (!a->st->queue.len && !notice_due(s, a->st)));
	if (plain_empty ? buf_append(&b, empty_body, sizeof empty_body - 1) < 0
	                : build_answer(s, i, a, &b) < 0) {
		log_error("session %s: out of memory building an answer", s->c.sid);
		buf_free(&b);
		b = (struct buf){ .data = NULL };
	}
	if (b.data) {
		if (h->rid > s->last_answered)
			s->last_answered = h->rid;
		reply_unwatch(&h->resp, &h->io);
		answer_body(&h->resp, s->content, b.data, b.len);
	} else {
		reply_unwatch(&h->resp, &h->io);
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
	s->last_answer = loop_now(bosh_loop);
	metrics_held((double)(s->last_answer - h->since) / 1000.0);
	held_remove(s, i);
}

/* Answers the i-th held request with what the next stream has. */
void answer_held(struct session *s, int i, const char *type, const char *condition)
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

void session_free(void *p)
{
	struct session *s = p;
	free(s->to);
	free(s->route);
	free(s->ver);
	free(s->lang);
	free(s->content);
	free(s->c.client);
	free(s->ua);
	free(s->jid);
	free(s->end_condition);
	free(s->client_from);
	streams_free(&s->streams);
	ridwin_clear(&s->sent);
	budget_try(&s->sent_charged, 0, NULL, s->c.sid);
	free(s->keys);
	free(s);
}

/* Closes the requests the session holds or keeps for later, unanswered. */
void drop_requests(struct session *s)
{
	for (int i = 0; i < s->nheld; i++) {
		reply_unwatch(&HELD(s, i)->resp, &HELD(s, i)->io);
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
	timer_cancel(bosh_loop, &s->timer);
	sesstable_remove(&s->c);
	loop_defer_free(bosh_loop, s, session_free);
}

void session_destroy(struct session *s)
{
	drop_requests(s);
	session_unlink(s);
}

/* The one way a live session ends. What a stream still has queued (a
 * <stream:error/>, say) goes out with the terminate answer. */
void session_end(struct session *s, const char *condition)
{
	if (s->state == S_ENDED)
		return;
	s->state = S_ENDED;
	s->ended_at = loop_wallclock();
	s->end_condition = strdup(condition);
	sesstable_log_end(&s->c, s->jid, s->ended_at - s->created_at, condition);
	streams_close(&s->streams);
	int client_asked = strcmp(condition, "terminate") == 0;
	const char *wire = client_asked ? NULL : condition;
	sesstable_put_row(&s->c); /* the final row, written even though s goes away */
	sesstable_clean(&s->c);
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
		s->linger_until = loop_now(bosh_loop) + (uint64_t)s->inactivity * 1000;
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
	return (uint64_t)bosh_cfg->connect_timeout * 4000 + 1000;
}

void session_timer(void *ctx)
{
	struct session *s = ctx;
	uint64_t now = loop_now(bosh_loop);
	if (s->state == S_ENDED) {
		session_destroy(s);
		return;
	}
	if (s->nheld && HELD(s, 0)->creation) {
		log_warn("session %s: no stream features from the XMPP server within %llus", s->c.sid,
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

void session_schedule(struct session *s)
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
		timer_cancel(bosh_loop, &s->timer);
	else
		timer_set(bosh_loop, &s->timer, due);
}

/* The web server closed a held request's connection (the client went away). */
void held_io(void *ctx, uint32_t events)
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
	log_debug("session %s: web server dropped held rid %lld", s->c.sid, (long long)h->rid);
	s->dropped[h->rid % HELD_MAX] = h->rid; /* unanswered: the client may send it again */
	reply_unwatch(&h->resp, &h->io);
	reply_drop(&h->resp);
	held_remove(s, i);
	if (!s->nheld)
		s->last_answer = loop_now(bosh_loop);
	session_schedule(s);
}

int hold_request(struct session *s, struct responder *resp, int64_t rid, int creation)
{
	if (s->nheld == HELD_MAX) {
		answer_held(s, 0, NULL, NULL);
	}
	struct held *h = HELD(s, s->nheld);
	*h = (struct held){ .resp = *resp, .s = s, .rid = rid, .since = loop_now(bosh_loop),
	                    .creation = (uint8_t)creation };
	h->io = (struct io){ .fd = resp->fd, .cb = held_io, .ctx = h };
	resp->kind = RESP_NONE;
	if (reply_watch(&h->resp, &h->io) < 0) {
		reply_drop(&h->resp);
		return -1;
	}
	s->nheld++;
	mark_touched(s);
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
		log_info("session %s: stream %s to %s ended (%s); %d streams remain", s->c.sid, st->name,
		         st->to, condition, streams_open(&s->streams));
		st->end_condition = condition;
		try_flush(s);
		session_schedule(s);
		return;
	}
	session_end(s, condition);
}

const struct stream_events bosh_stream_events = {
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
void fail_request(struct session *s, struct responder *resp, const char *condition)
{
	answer_fatal(s, resp, condition);
	session_end(s, condition);
}

static int hex_digit(int c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }

/* A key or newkey attribute: 40 hex digits, kept in lower case. -1 if malformed. */
int copy_key(char *dst, const char *src)
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
	log_debug("session %s paused for %lds", s->c.sid, seconds);
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
	uint64_t now = loop_now(bosh_loop);
	if (!e || now - e->sent_at < REPORT_AFTER_MS)
		return 0; /* still on its way, most likely */
	s->report_rid = ack + 1;
	s->report_ms = now - e->sent_at;
	log_info("session %s: the client did not get the answer to rid %lld (sent %llu ms ago)",
	         s->c.sid, (long long)s->report_rid, (unsigned long long)s->report_ms);
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
	int soon = loop_now(bosh_loop) - s->last_request_at < (uint64_t)bosh_cfg->polling * 1000;
	if (s->hold == 0)
		return soon && s->last_empty_answered_empty;
	return bosh_cfg->strict_polling && soon && s->nheld + 1 >= s->requests;
}

/* The checks a request in turn must pass: key (§15), pause (§10),
 * frequency (§11, §12). On failure the session ends; returns -1. */
static int admit(struct session *s, struct responder *resp, const struct req *r)
{
	if (!key_ok(s, r)) {
		log_info("session %s: rid %lld has a wrong or missing key", s->c.sid, (long long)r->rid);
		fail_request(s, resp, "item-not-found");
		return -1;
	}
	if (s->key[0]) {
		remember_key(s, r);
		memcpy(s->key, r->newkey[0] ? r->newkey : r->key, KEY_HEX + 1);
	}
	if (r->pause > bosh_cfg->max_inactivity) {
		log_info("session %s: pause %ld is longer than maxpause %ld", s->c.sid, r->pause,
		         bosh_cfg->max_inactivity);
		fail_request(s, resp, "policy-violation");
		return -1;
	}
	if (too_frequent(s, r)) {
		log_info("session %s: empty requests faster than polling (%lds)", s->c.sid, bosh_cfg->polling);
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
	log_info("session %s: the client closed stream %s to %s", s->c.sid, named->name, named->to);
	stream_close(named);
	named->closed = 1;
	return 1;
}


static void process(struct session *s, struct responder *resp, const struct req *r)
{
	if (admit(s, resp, r) < 0)
		return;
	struct stream *named = NULL;
	/* Without multiple streams offered, 'stream' is ignored (§16.3). */
	if (r->stream && !s->one_stream && !(named = streams_find(&s->streams, r->stream))) {
		log_info("session %s: rid %lld names a stream it does not have", s->c.sid, (long long)r->rid);
		fail_request(s, resp, "item-not-found");
		return;
	}
	s->last_request_at = loop_now(bosh_loop);
	int takeover = r->handover || s->handed_over ||
	               (s->nheld == 0 && s->state == S_ACTIVE &&
	                (loop_now(bosh_loop) - s->last_answer > ATTACH_GAP_MS || r->sender != s->sender));
	s->sender = r->sender;
	s->handed_over = (uint8_t)r->handover;
	s->next_rid = r->rid + 1;
	s->last_seen = loop_wallclock();
	s->pause_until_next = 0;
	mark_touched(s);
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
		          s->c.sid, (unsigned long long)(loop_now(bosh_loop) - s->last_answer));
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
struct ahead *ahead_new(const struct req *r, const struct responder *resp)
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
	log_debug("session %s: rid %lld sent again after its connection dropped", s->c.sid,
	          (long long)rid);
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
		log_info("session %s: rid %lld sent again with a wrong or missing key", s->c.sid,
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
		reply_unwatch(&h->resp, &h->io);
		answer_body(&h->resp, s->content, err, sizeof err - 1);
		h->resp = *resp;
		h->io.fd = resp->fd;
		resp->kind = RESP_NONE;
		reply_watch(&h->resp, &h->io);
		return;
	}
	if (s->dropped[rid % HELD_MAX] == rid) {
		resend_dropped(s, resp, rid);
		return;
	}
	const char *body;
	size_t len;
	if (ridwin_get(&s->sent, rid, &body, &len)) {
		log_debug("session %s: rid %lld repeated; answer sent again", s->c.sid, (long long)rid);
		if (body)
			answer_body(resp, s->content, body, len);
		else
			answer_body(resp, s->content, empty_body, sizeof empty_body - 1);
		return;
	}
	log_info("session %s: rid %lld repeated but its answer is gone", s->c.sid, (long long)rid);
	fail_request(s, resp, "item-not-found");
}

/* FNV-1a over client address and User-Agent: who is talking. */
uint64_t sender_of(const struct frame_request *fr)
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
		log_info("session %s: request from %s refused: %s", s->c.sid,
		         fr->client ? fr->client : "-", why);
		fail_request(s, resp, "bad-request");
		return;
	}
	if (parse_req(fr, &r, attrs_buf, sizeof attrs_buf) < 0) {
		log_info("session %s: request with a malformed rid, key or pause from %s", s->c.sid,
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
		log_info("session %s: rid %lld outside the window (next %lld)", s->c.sid,
		         (long long)r.rid, (long long)s->next_rid);
		fail_request(s, resp, "item-not-found");
		return;
	case RID_REPEAT:
		repeat(s, resp, &r);
		return;
	}
}
/* A sid another node issued (its node name is not ours): never ours, and
 * never to be taken for a new session. */
static int misrouted(const char *sid)
{
	size_t n;
	const char *node = sid_node(sid, &n);
	return sid_valid(sid) && n && (strlen(bosh_cfg->node_id) != n || memcmp(node, bosh_cfg->node_id, n) != 0);
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
	/* The table is every transport's: a sid of another one is unknown here. */
	struct sess *c = sesstable_find(sid);
	struct session *s = c && c->ops == &bosh_ops ? bosh_of(c) : NULL;
	if (s) {
		existing_session(s, resp, fr);
	} else if (misrouted(sid)) {
		size_t n;
		const char *node = sid_node(sid, &n);
		log_limited(LOG_WARN, "misrouted", "request from %s for session %s of node '%.*s' reached node "
		            "'%s' (the load balancer routed it wrong); answered item-not-found",
		            fr->client ? fr->client : "-", sid, (int)n, node,
		            bosh_cfg->node_id[0] ? bosh_cfg->node_id : "(none)");
		answer_terminate(resp, "item-not-found");
	} else if (sid_valid(sid) && sessions_lost(sid)) {
		log_info("request for session %s, lost when sessiond restarted", sid);
		answer_terminate(resp, "remote-connection-failed");
	} else {
		log_limited(LOG_INFO, "unknown sid", "request from %s for unknown session '%.40s'",
		            fr->client ? fr->client : "-", sid);
		answer_terminate(resp, "item-not-found");
	}
}

/* ---- what the shared modules ask (sesstable.h) ---- */

static int bosh_ended(const struct sess *c) { return bosh_of_const(c)->state == S_ENDED; }
static void bosh_end(struct sess *c, const char *condition) { session_end(bosh_of(c), condition); }
static void bosh_destroy(struct sess *c) { session_destroy(bosh_of(c)); }

/* Drops a session without a word to anyone: the other process of a restart
 * has the same connections and carries on with it. */
static void bosh_forget(struct sess *c)
{
	struct session *s = bosh_of(c);
	drop_requests(s);
	streams_forget(&s->streams);
	session_unlink(s);
}

static void bosh_stop(struct sess *c)
{
	struct session *s = bosh_of(c);
	while (s->nheld)
		answer_held(s, 0, NULL, NULL);
	sesstable_put_row(c);
	streams_close(&s->streams);
}

const struct sess_ops bosh_ops = {
	.transport = "bosh", .describe = bosh_describe, .ended = bosh_ended, .end = bosh_end, .destroy = bosh_destroy,
	.stop = bosh_stop, .can_move = bosh_can_move, .forget = bosh_forget, .put = bosh_put,
	.get = bosh_get, .discard = bosh_discard, .resume = bosh_resume,
};
