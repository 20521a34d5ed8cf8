/* sesssnap.c - a graceful restart's snapshot of the sessions: the framing
 * of its records, and who is lost when one cannot be written or read. What
 * a record holds is the transport's (sess_ops put and get). */
#define _GNU_SOURCE
#include "sesssnap.h"
#include "log.h"
#include "snapshot.h"
#include "store.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct sess_ops *const *transports;
static size_t ntransports;

void sesssnap_init(const struct sess_ops *const *records, size_t n)
{
	transports = records;
	ntransports = n;
}

void sessions_restart_prepare(void)
{
	for (size_t i = 0; i < ntransports; i++)
		if (transports[i]->restart_prepare)
			transports[i]->restart_prepare();
}

void sessions_restart_abandoned(void)
{
	for (size_t i = 0; i < ntransports; i++)
		if (transports[i]->restart_abandoned)
			transports[i]->restart_abandoned();
}

/* A record's tag: its transport's place in the list. */
static uint64_t tag_of(const struct sess *c)
{
	for (size_t i = 0; i < ntransports; i++)
		if (transports[i] == c->ops)
			return i;
	return ntransports;
}

/* ---- writing ---- */

/* The descriptors of one session: a record lists them first, so that the
 * successor can close them if it cannot take the session over. */
struct fd_list {
	int fd[SESS_FDS_MAX];
	int n, over;
};

static void collect_fd(void *ctx, int fd)
{
	struct fd_list *l = ctx;
	if (l->n < SESS_FDS_MAX)
		l->fd[l->n++] = fd;
	else
		l->over = 1;
}

/* One session as one record: [sid][its descriptors][its transport][the
 * rest]. A session
 * that cannot be written whole (past a limit of snapshot.h) is written as
 * its sid alone, which the successor reads as lost. Returns 1 then, 0 if
 * written whole, -1 out of memory. body is scratch space, reused. */
static int put_record(struct snap_w *w, struct snap_w *body, const struct sess *c,
                      sessions_fd_cb keep, void *ctx)
{
	struct fd_list fds = { .n = 0 };
	body->len = 0;
	body->over = 0;
	int whole = tag_of(c) < ntransports && c->ops->put(body, c, collect_fd, &fds) == 0 && !fds.over;
	if (body->failed)
		return -1;
	size_t mark = snap_record_begin(w);
	snap_put_str(w, c->sid);
	snap_put_count(w, whole ? (uint64_t)fds.n : 0, SESS_FDS_MAX);
	for (int i = 0; whole && i < fds.n; i++)
		snap_put_i64(w, fds.fd[i]);
	if (whole) {
		snap_put_u64(w, tag_of(c));
		snap_put_raw(w, body->data, body->len);
	}
	if (snap_record_end(w, mark) < 0)
		return -1;
	for (int i = 0; whole && i < fds.n; i++)
		keep(ctx, fds.fd[i]);
	return whole ? 0 : 1;
}

/* Sessions left out of the snapshot end here, as a lost connection: their
 * held requests are answered now, and the successor answers their next
 * request remote-connection-failed (they are lost there). */
static void end_left_out(char (*sids)[SID_MAX + 1], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct sess *c = sesstable_find(sids[i]);
		if (!c)
			continue;
		log_error("restart: session %s cannot be handed over (past the snapshot's limits); "
		          "ending it", c->sid);
		if (c->ops->ended(c))
			c->ops->destroy(c);
		else
			c->ops->end(c, "remote-connection-failed");
	}
}

struct writing {
	struct snap_w *w, body;
	sessions_fd_cb keep;
	void *ctx;
	char (*left_out)[SID_MAX + 1];
	size_t nleft;
};

static int write_one(struct sess *c, void *ctx)
{
	struct writing *wr = ctx;
	int r = put_record(wr->w, &wr->body, c, wr->keep, wr->ctx);
	if (r <= 0)
		return r;
	void *n = realloc(wr->left_out, (wr->nleft + 1) * sizeof *wr->left_out);
	if (!n)
		return -1;
	wr->left_out = n;
	memcpy(wr->left_out[wr->nleft++], c->sid, SID_MAX + 1);
	return 0;
}

int sessions_snapshot(struct snap_w *w, sessions_fd_cb keep, void *ctx)
{
	struct writing wr = { .w = w, .keep = keep, .ctx = ctx };
	store_flush();
	snap_put_count(w, sesstable_nlost(), SNAP_MAX_SIDS);
	for (size_t i = 0; i < sesstable_nlost(); i++)
		snap_put_str(w, sesstable_lost_sid(i));
	snap_put_count(w, sesstable_ndraining(), SNAP_MAX_SIDS);
	for (size_t i = 0; i < sesstable_ndraining(); i++)
		snap_put_str(w, sesstable_draining_sid(i));
	snap_put_count(w, sessions_count(), SNAP_MAX_SIDS);
	int rc = sesstable_each(write_one, &wr);
	free(wr.body.data);
	if (rc == 0 && !w->failed && !w->over)
		end_left_out(wr.left_out, wr.nleft);
	free(wr.left_out);
	sesstable_write_dirty();
	store_flush();
	return rc < 0 || w->failed || w->over ? -1 : 0;
}

/* ---- reading ---- */

static void read_sids(struct snap_r *r, int (*add)(const char *sid))
{
	uint64_t n = snap_get_count(r, SNAP_MAX_SIDS);
	for (uint64_t i = 0; i < n && !snap_failed(r); i++) {
		char sid[SID_MAX + 1];
		snap_get_into(r, sid, sizeof sid);
		/* Out of memory: a lost sid's requests get item-not-found, a
		 * draining one's too (the drainer ends it in time). */
		if (!snap_failed(r))
			add(sid);
	}
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

/* The transport's part of a record, in the table: NULL if it is not what
 * was written, or there is no room. */
static struct sess *take_over(struct snap_r *rec, const char *sid)
{
	if (rec->off == rec->len)
		return NULL; /* its sid alone: lost */
	uint64_t tag = snap_get_u64(rec);
	if (snap_failed(rec) || tag >= ntransports)
		return NULL;
	const struct sess_ops *reader = transports[tag];
	struct sess *c = reader->get(rec);
	if (c && (rec->off != rec->len || strcmp(c->sid, sid) != 0)) {
		reader->discard(c); /* not what was written: trust none of it */
		return NULL;
	}
	if (c && sesstable_add(c, 0) < 0) {
		reader->discard(c);
		return NULL;
	}
	if (c) {
		sesstable_dirty(c);
		c->ops->resume(c);
	}
	return c;
}

/* One record: 1 if the session was taken over, 0 if it is lost (logged). */
static int restore_record(struct snap_r *rec)
{
	char sid[SID_MAX + 1];
	int fds[SESS_FDS_MAX];
	snap_get_into(rec, sid, sizeof sid);
	uint64_t nfds = snap_get_count(rec, SESS_FDS_MAX);
	for (uint64_t i = 0; i < nfds && !snap_failed(rec); i++)
		fds[i] = (int)snap_get_i64(rec);
	if (snap_failed(rec)) {
		log_error("restart: a session's record is unreadable; it is lost");
		return 0;
	}
	if (take_over(rec, sid))
		return 1;
	close_record_fds(fds, nfds);
	if (sid_valid(sid)) {
		sesstable_add_lost(sid);
		log_error("restart: session %s could not be taken over; it is told "
		          "remote-connection-failed at its next request", sid);
	}
	return 0;
}

long sessions_restore(struct snap_r *r)
{
	long restored = 0, failed = 0;
	read_sids(r, sesstable_add_lost);
	read_sids(r, sesstable_add_draining);
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
	sesstable_sort_lists();
	if (failed)
		log_error("restart: %ld sessions could not be taken over; %ld were", failed, restored);
	return restored;
}
