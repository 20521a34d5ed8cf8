/* bosh_save.c - what of a BOSH session outlives the process: its row in the
 * database (store.h) and its record in a graceful restart's snapshot
 * (sesssnap.h): the struct sess_ops entries for them (bosh_ops is in
 * bosh_rules.c). */
#define _GNU_SOURCE
#include "bosh_int.h"
#include "log.h"
#include "route.h"
#include "snapshot.h"
#include "store.h"

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

static const char *const state_names[] = { "connecting", "active", "ended" };

void bosh_describe(const struct sess *c, struct store_row *r)
{
	const struct session *s = bosh_of_const(c);
	*r = (struct store_row){
		.sid = s->c.sid, .state = state_names[s->state], .rid = s->next_rid - 1, .jid = s->jid,
		.to_domain = s->to, .route = s->route, .wait = s->wait, .hold = s->hold,
		.inactivity = s->inactivity, .requests = s->requests, .ver = s->ver, .lang = s->lang,
		.client_addr = s->c.client, .user_agent = s->ua, .held = s->nheld,
		.created_at = s->created_at, .last_seen = s->last_seen, .ended_at = s->ended_at,
		.end_condition = s->end_condition, .key = s->key[0] ? s->key : NULL, .transport = "bosh",
	};
}

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
	const char *strs[] = { s->to, s->route, s->ver, s->lang, s->content, s->c.client, s->ua,
	                       s->jid, s->end_condition, s->client_from, s->key };
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
		snap_put_str(w, strs[i]);
}

static void get_strings(struct snap_r *r, struct session *s)
{
	char **strs[] = { &s->to, &s->route, &s->ver, &s->lang, &s->content, &s->c.client, &s->ua,
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
	                   s->one_stream, s->next_pick, (int64_t)s->last_answer,
	                   (int64_t)s->linger_until };
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

int bosh_put(struct snap_w *w, const struct sess *c, sessions_fd_cb keep, void *ctx)
{
	const struct session *s = bosh_of_const(c);
	snap_put_str(w, s->c.sid);
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
int bosh_can_move(const struct sess *c)
{
	const struct session *s = bosh_of_const(c);
	return s->state != S_ACTIVE || streams_movable(&s->streams);
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
		if (reply_watch(&h->resp, &h->io) < 0) {
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
	const struct config_backend *be = config_backend(bosh_cfg, s->to);
	char host[256];
	unsigned port = 0;
	if (!be || route_choose(s->route, be, bosh_cfg->allowed_routes, host, sizeof host, &port)) {
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

void bosh_discard(struct sess *c)
{
	discard_restored(bosh_of(c));
}

struct sess *bosh_get(struct snap_r *r)
{
	struct session *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->c.ops = &bosh_ops;
	snap_get_into(r, s->c.sid, sizeof s->c.sid);
	get_numbers(r, s);
	get_strings(r, s);
	for (int i = 0; i < HELD_MAX; i++)
		s->dropped[i] = snap_get_i64(r);
	s->timer = (struct timer){ .cb = session_timer, .ctx = s };
	if (snap_failed(r) || !sid_valid(s->c.sid) || !s->to || get_sent_and_ahead(r, s) < 0) {
		discard_restored(s);
		return NULL;
	}
	struct stream_restore_params sp = {
		.loop = bosh_loop, .sid = s->c.sid, .max_queue = (size_t)bosh_cfg->max_client_buffer,
		.max_stanza = (size_t)bosh_cfg->max_xmpp_stanza_size, .ev = &bosh_stream_events, .owner = s,
	};
	if (streams_restore(&s->streams, r, &sp) < 0) {
		discard_restored(s);
		return NULL;
	}
	return &s->c;
}

void bosh_resume(struct sess *c)
{
	struct session *s = bosh_of(c);
	if (s->state == S_CONNECTING)
		reconnect(s);
	else if (s->state == S_ACTIVE && !streams_open(&s->streams))
		session_end(s, "remote-connection-failed");
	else
		session_schedule(s);
}

