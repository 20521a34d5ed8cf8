/* stream.c - one XMPP stream of a BOSH session: its connection, and what
 * it has queued for the client. */
#define _GNU_SOURCE
#include "stream.h"
#include "hex.h"
#include "budget.h"
#include "log.h"
#include "metrics.h"
#include "snapshot.h"
#include "utf8.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Text content as the server wrote it, entities decoded (the JID is logged
 * and stored as text). NULL on OOM or a malformed reference. */
static char *xml_text_decode(const char *src, size_t n)
{
	static const struct { const char *ref; char ch; } named[] = {
		{ "lt;", '<' }, { "gt;", '>' }, { "amp;", '&' }, { "apos;", '\'' }, { "quot;", '"' },
	};
	char *out = malloc(n + 1), *o = out;
	for (size_t i = 0; out && i < n; i++) {
		if (src[i] != '&') {
			*o++ = src[i];
			continue;
		}
		const char *semi = memchr(src + i, ';', n - i);
		size_t k = 0, rl = semi ? (size_t)(semi - (src + i)) : 0;
		for (; k < 5 && !(rl == strlen(named[k].ref) && strncmp(src + i + 1, named[k].ref, rl) == 0); k++)
			;
		unsigned long cp = 0;
		if (k < 5) {
			*o++ = named[k].ch;
		} else if (semi && src[i + 1] == '#' &&
		           (cp = strtoul(src + i + 2 + (src[i + 2] == 'x'), NULL, src[i + 2] == 'x' ? 16 : 10)) &&
		           cp < 0x110000) {
			o += utf8_put(o, cp);
		} else {
			free(out);
			return NULL;
		}
		i += rl;
	}
	if (out)
		*o = 0;
	return out;
}

static void note_jid(struct stream *st, const char *data, size_t len)
{
	if (st->jid || !memmem(data, len, "urn:ietf:params:xml:ns:xmpp-bind", 32))
		return;
	const char *start = memmem(data, len, "<jid>", 5);
	if (!start)
		return;
	start += 5;
	const char *end = memmem(start, len - (size_t)(start - data), "</jid>", 6);
	if (end && end - start < 3072) {
		st->jid = xml_text_decode(start, (size_t)(end - start));
		log_info("session %s bound %s (stream %s)", st->sid, st->jid ? st->jid : "?", st->name);
	}
}

static void end_stream(struct stream *st, const char *condition, const char *child, size_t clen)
{
	stream_close(st);
	if (child && clen && buf_append(&st->queue, child, clen) < 0)
		log_warn("session %s: out of memory keeping the stream error", st->sid);
	st->ev->ended(st->owner, st, condition);
}

/* Room for len more bytes. A queue grows by an eighth, not by doubling: its
 * capacity is what the memory budget is charged, and a doubling would take
 * a large share of it in one step. -1 on OOM. */
static int queue_reserve(struct buf *q, size_t len)
{
	if (q->len + len <= q->cap)
		return 0;
	size_t cap = q->cap + q->cap / 8;
	if (cap < q->len + len)
		cap = q->len + len;
	if (cap < 4096)
		cap = 4096;
	char *n = realloc(q->data, cap);
	if (!n)
		return -1;
	q->data = n;
	q->cap = cap;
	return 0;
}

/* -1 if the stream had to end (out of memory). */
static int queue_for_client(struct stream *st, const char *data, size_t len)
{
	if (queue_reserve(&st->queue, len) < 0 || buf_append(&st->queue, data, len) < 0) {
		log_error("session %s: out of memory queueing %zu bytes for the client", st->sid, len);
		end_stream(st, "internal-server-error", NULL, 0);
		return -1;
	}
	int tight = budget_charge(&st->charged, st->queue.cap, st->sid);
	if ((st->queue.len > st->max_queue || tight) && !st->paused && st->xmpp) {
		/* The client is not polling: stop reading rather than grow. Either
		 * way it reads again when the client takes the queue. */
		st->paused = 1;
		xmpp_pause(st->xmpp, 1);
		if (st->queue.len > st->max_queue)
			log_info("session %s: %zu bytes queued for the client; reading paused", st->sid,
			         st->queue.len);
		else /* budget.c logs the episode, once */
			log_debug("session %s: memory budget tight; reading paused with %zu bytes queued",
			          st->sid, st->queue.len);
	}
	return 0;
}

static void on_xmpp(void *ctx, enum xmpp_event ev, const char *data, size_t len)
{
	struct stream *st = ctx;
	switch (ev) {
	case XMPP_STREAM_OPEN:
		return;
	case XMPP_FEATURES:
		if (queue_for_client(st, data, len) == 0) {
			st->awaiting_features = 0;
			st->ev->features(st->owner, st);
		}
		return;
	case XMPP_STANZA:
		M.stanzas[MD_TO_CLIENT]++;
		M.bytes[MD_TO_CLIENT] += len;
		note_jid(st, data, len);
		if (queue_for_client(st, data, len) == 0)
			st->ev->stanza(st->owner, st);
		return;
	case XMPP_STREAM_ERROR:
		log_info("session %s: stream error from the XMPP server: %.*s", st->sid,
		         (int)(len > 300 ? 300 : len), data);
		end_stream(st, "remote-stream-error", data, len);
		return;
	case XMPP_STREAM_CLOSED:
		log_info("session %s: the XMPP server closed the stream", st->sid);
		end_stream(st, "remote-stream-error", NULL, 0);
		return;
	case XMPP_FAILED:
		log_warn("session %s: %.*s", st->sid, (int)len, data);
		end_stream(st, "remote-connection-failed", NULL, 0);
		return;
	}
}

struct stream *stream_open(struct loop *l, const struct xmpp_params *p, const char *sid,
                           size_t max_queue, const struct stream_events *ev, void *owner)
{
	unsigned char raw[STREAM_NAME_HEX / 2];
	struct stream *st = calloc(1, sizeof *st);
	if (!st || !(st->to = strdup(p->domain))) {
		log_error("session %s: out of memory opening a stream", sid);
		free(st);
		return NULL;
	}
	if (RAND_bytes(raw, sizeof raw) != 1) {
		/* Names must be unpredictable (§16.2): refuse rather than guess. */
		log_error("RAND_bytes failed; cannot name a stream");
		abort();
	}
	hex_encode(raw, sizeof raw, st->name);
	st->sid = sid;
	st->ev = ev;
	st->owner = owner;
	st->max_queue = max_queue;
	st->awaiting_features = 1;
	st->xmpp = xmpp_open(l, p, on_xmpp, st);
	if (!st->xmpp) {
		stream_free(st);
		return NULL;
	}
	return st;
}

int stream_send(struct stream *st, const char *data, size_t len)
{
	if (!st->xmpp || xmpp_send(st->xmpp, data, len) < 0)
		return -1;
	M.stanzas[MD_TO_SERVER] += metrics_count_elements(data, len);
	M.bytes[MD_TO_SERVER] += len;
	return 0;
}

int stream_restart(struct stream *st, const char *extra_attrs)
{
	if (!st->xmpp || xmpp_restart(st->xmpp, extra_attrs) < 0)
		return -1;
	st->awaiting_features = 1;
	return 0;
}

void stream_took_queue(struct stream *st)
{
	buf_free(&st->queue); /* idle sessions are the many: they hold no buffer */
	budget_charge(&st->charged, 0, st->sid);
	if (st->paused && st->xmpp) {
		/* Not from inside a parse: xmpp_pause() only changes what epoll watches. */
		st->paused = 0;
		xmpp_pause(st->xmpp, 0);
		log_debug("session %s: the client took its queue; reading again", st->sid);
	}
}

const char *stream_authid(const struct stream *st)
{
	return st->xmpp ? xmpp_stream_attr(st->xmpp, "id") : NULL;
}

void stream_close(struct stream *st)
{
	xmpp_close(st->xmpp);
	st->xmpp = NULL;
}

void stream_free(struct stream *st)
{
	if (!st)
		return;
	stream_close(st);
	free(st->to);
	free(st->jid);
	buf_free(&st->queue);
	budget_charge(&st->charged, 0, st->sid);
	free(st);
}

/* ---- the streams of a session ---- */

int streams_add(struct streams *ss, struct stream *st)
{
	if (ss->n == STREAMS_MAX)
		return -1;
	ss->s[ss->n++] = st;
	return 0;
}

struct stream *streams_find(const struct streams *ss, const char *name)
{
	for (int i = 0; i < ss->n; i++)
		if (strcmp(ss->s[i]->name, name) == 0)
			return ss->s[i];
	return NULL;
}

int streams_open(const struct streams *ss)
{
	int n = 0;
	for (int i = 0; i < ss->n; i++)
		n += ss->s[i]->xmpp != NULL;
	return n;
}

int streams_awaiting_features(const struct streams *ss)
{
	for (int i = 0; i < ss->n; i++)
		if (ss->s[i]->xmpp && ss->s[i]->awaiting_features)
			return 1;
	return 0;
}

int streams_queued(const struct streams *ss)
{
	for (int i = 0; i < ss->n; i++)
		if (ss->s[i]->queue.len)
			return 1;
	return 0;
}

int streams_send(struct streams *ss, struct stream *only, const char *data, size_t len)
{
	for (int i = 0; i < ss->n; i++) {
		struct stream *st = ss->s[i];
		if ((only && st != only) || !st->xmpp)
			continue;
		if (stream_send(st, data, len) < 0) {
			log_warn("session %s: cannot queue %zu bytes for the XMPP server", st->sid, len);
			return -1;
		}
	}
	return 0;
}

int streams_restart(struct streams *ss, struct stream *only, const char *extra_attrs)
{
	for (int i = 0; i < ss->n; i++) {
		struct stream *st = ss->s[i];
		if ((!only || st == only) && st->xmpp && stream_restart(st, extra_attrs) < 0)
			return -1;
	}
	return 0;
}

void streams_close(struct streams *ss)
{
	for (int i = 0; i < ss->n; i++)
		stream_close(ss->s[i]);
}

void streams_free(struct streams *ss)
{
	for (int i = 0; i < ss->n; i++)
		stream_free(ss->s[i]);
	ss->n = 0;
}

/* ---- graceful restart (snapshot.h) ---- */

int streams_movable(const struct streams *ss)
{
	for (int i = 0; i < ss->n; i++)
		if (ss->s[i]->xmpp && !xmpp_movable(ss->s[i]->xmpp))
			return 0;
	return 1;
}

void streams_forget(struct streams *ss)
{
	for (int i = 0; i < ss->n; i++) {
		xmpp_forget(ss->s[i]->xmpp);
		ss->s[i]->xmpp = NULL;
	}
	streams_free(ss);
}

/* end_condition points at a literal: the snapshot names it, this finds it again */
static const char *known_condition(const char *c)
{
	static const char *const known[] = { "remote-stream-error", "remote-connection-failed",
	                                     "internal-server-error" };
	for (size_t i = 0; c && i < sizeof known / sizeof known[0]; i++)
		if (strcmp(c, known[i]) == 0)
			return known[i];
	return c ? "remote-connection-failed" : NULL;
}

int streams_snapshot(const struct streams *ss, struct snap_w *w, void (*keep)(void *ctx, int fd),
                     void *ctx)
{
	snap_put_count(w, ss->n, STREAMS_MAX);
	for (int i = 0; i < ss->n; i++) {
		const struct stream *st = ss->s[i];
		snap_put_str(w, st->name);
		snap_put_str(w, st->to);
		snap_put_str(w, st->jid);
		snap_put_bytes(w, st->queue.data, st->queue.len);
		snap_put_u64(w, st->awaiting_features);
		snap_put_u64(w, st->paused);
		snap_put_u64(w, st->closed);
		snap_put_str(w, st->end_condition);
		snap_put_u64(w, st->xmpp != NULL);
		if (st->xmpp) {
			/* A connection that cannot be written leaves the record short:
			 * the whole session is then left out, never half of it. */
			if (xmpp_snapshot(st->xmpp, w) < 0) {
				w->over = 1;
				return -1;
			}
			keep(ctx, xmpp_fd(st->xmpp));
		}
	}
	return w->failed || w->over ? -1 : 0;
}

static struct stream *stream_restore(struct snap_r *r, const struct stream_restore_params *p)
{
	struct stream *st = calloc(1, sizeof *st);
	if (!st)
		return NULL;
	snap_get_into(r, st->name, sizeof st->name);
	st->to = snap_get_str(r);
	st->jid = snap_get_str(r);
	size_t qlen;
	st->queue.data = snap_get_bytes(r, &qlen);
	st->queue.len = st->queue.cap = qlen;
	st->awaiting_features = (uint8_t)snap_get_u64(r);
	st->paused = (uint8_t)snap_get_u64(r);
	st->closed = (uint8_t)snap_get_u64(r);
	char *cond = snap_get_str(r);
	st->end_condition = known_condition(cond);
	free(cond);
	st->sid = p->sid;
	st->ev = p->ev;
	st->owner = p->owner;
	st->max_queue = p->max_queue;
	if (snap_get_u64(r) && !snap_failed(r))
		st->xmpp = xmpp_restore(p->loop, r, p->max_stanza, on_xmpp, st);
	if (snap_failed(r) || !st->to) {
		stream_free(st);
		return NULL;
	}
	return st;
}

int streams_restore(struct streams *ss, struct snap_r *r, const struct stream_restore_params *p)
{
	uint64_t n = snap_get_count(r, STREAMS_MAX);
	if (snap_failed(r))
		return -1;
	for (uint64_t i = 0; i < n; i++) {
		struct stream *st = stream_restore(r, p);
		if (!st)
			return -1;
		ss->s[ss->n++] = st;
	}
	return 0;
}
