#define _GNU_SOURCE
#include "fcgi_conn.h"
#include "config.h"
#include "fcgi_listen.h"
#include "fcgi_rec.h"
#include "frame.h"
#include "front.h"
#include "log.h"
#include "reply.h"
#include "request.h"
#include "snapshot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK (64 * 1024)
/* An oversized body is read to its end (the web server sends it all before
 * it reads our answer); past this much it is not worth the wait. */
#define DISCARD_MAX (16L * 1024 * 1024)
#define RECORD_MAX (FCGI_HEADER_LEN + 65535 + 255)
#define IDLE_MAX 1024 /* idle connections kept: nginx's upstream keepalive is 256 per worker */
#define MAX_CONNS (1 << 20) /* a bound for the snapshot; the descriptor limit comes first */

/* READING and INFLIGHT are in the loop; DETACHED (gone while in flight,
 * nobody watching) and WRITING (reply.c finishing a slow answer) are not. */
enum cstate { C_READING, C_INFLIGHT, C_DETACHED, C_WRITING };

/* A request read in part. */
struct partial {
	struct fcgi_scan scan;
	size_t len, cap;
	uint8_t data[];       /* cap bytes: the request from its first byte */
};

/* The rest of an oversized body, thrown away as it comes: record headers
 * are followed to the body's end. */
struct discard {
	long skipped;         /* bytes thrown away so far */
	uint32_t skip_left;   /* content and padding left of this record */
	uint8_t hdr[FCGI_HEADER_LEN];
	uint8_t hdr_have;
	uint8_t in_body;      /* the body's empty last record not seen yet */
};

struct fconn {
	struct io io;
	struct io *watch;     /* in flight: the held request watching, or NULL */
	struct partial *part; /* NULL between requests */
	struct discard *discard; /* NULL unless an oversized body is being thrown away */
	uint8_t state;        /* enum cstate */
	uint8_t keep;         /* the request in flight asked for FCGI_KEEP_CONN */
	uint8_t close_after;  /* close once answered (the drainer's, an oversized body's) */
	uint8_t dead;
};

static struct loop *loop;
static const struct config *cfg;
static struct fconn **table; /* by descriptor */
static int table_cap, nconns;
static int nidle; /* connections in C_READING: idle, or a request coming */
static uint64_t requests;
static uint8_t rbuf[READ_CHUNK];
static char *scratch, *qbuf; /* decoded parameters and body; a GET's decoded query */
static size_t scratch_cap, qbuf_cap;

/* Every change of state goes through here: the idle ones are counted. */
static void set_state(struct fconn *c, enum cstate st)
{
	nidle += (st == C_READING) - (c->state == C_READING);
	c->state = (uint8_t)st;
}

static struct fconn *lookup(int fd)
{
	return fd >= 0 && fd < table_cap ? table[fd] : NULL;
}

static void conn_free(void *p)
{
	struct fconn *c = p;
	free(c->part);
	free(c->discard);
	free(c);
}

/* Forgets c; close_fd 0 leaves the descriptor to whoever has it now. */
static void conn_forget(struct fconn *c, int close_fd)
{
	if (c->dead)
		return;
	c->dead = 1;
	table[c->io.fd] = NULL;
	if (c->state == C_READING || c->state == C_INFLIGHT)
		loop_del(loop, &c->io);
	if (close_fd)
		close(c->io.fd);
	nconns--;
	nidle -= c->state == C_READING;
	loop_defer_free(loop, c, conn_free);
	if (close_fd)
		fcgi_listen_room();
}

static int grow_table(int fd)
{
	if (fd < table_cap)
		return 0;
	int cap = table_cap ? table_cap : 1024;
	while (cap <= fd)
		cap *= 2;
	struct fconn **t = realloc(table, (size_t)cap * sizeof *t);
	if (!t)
		return -1;
	memset(t + table_cap, 0, (size_t)(cap - table_cap) * sizeof *t);
	table = t;
	table_cap = cap;
	return 0;
}

static void conn_io(void *ctx, uint32_t events);

static struct fconn *adopt(int fd, enum cstate state)
{
	struct fconn *c = grow_table(fd) == 0 && !table[fd] ? calloc(1, sizeof *c) : NULL;
	if (!c) {
		log_error("out of memory taking a FastCGI connection; closing it");
		return NULL;
	}
	c->io = (struct io){ .fd = fd, .cb = conn_io, .ctx = c };
	c->state = (uint8_t)state;
	nidle += state == C_READING;
	if ((state == C_READING || state == C_INFLIGHT) && loop_add(loop, &c->io, EPOLLIN) < 0) {
		nidle -= state == C_READING;
		free(c);
		return NULL;
	}
	table[fd] = c;
	nconns++;
	return c;
}

/* ---- buffers shared by every request (the loop is single-threaded) ---- */

static int ensure(char **p, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	char *n = realloc(*p, need);
	if (!n)
		return -1;
	*p = n;
	*cap = need;
	return 0;
}

/* The parameters request_make() asks for, found in one pass over the
 * thirty or so nginx sends, instead of a walk over all of them for each. */
static const char *const wanted[] = { "REQUEST_METHOD", "REMOTE_ADDR", "HTTP_ORIGIN",
	                              "HTTP_USER_AGENT", "BOSH_PAGE", "QUERY_STRING" };
#define NWANTED (sizeof wanted / sizeof wanted[0])

struct picked {
	const char *value[NWANTED];
	const struct fcgi_request *fq;
};

static void pick_params(const struct fcgi_request *fq, struct picked *pk)
{
	memset(pk, 0, sizeof *pk);
	pk->fq = fq;
	const char *p = fq->params;
	for (size_t i = 0; i < fq->nparams; i++) {
		const char *v = p + strlen(p) + 1;
		for (size_t k = 0; k < NWANTED; k++) {
			if (!pk->value[k] && p[0] == wanted[k][0] && strcmp(p, wanted[k]) == 0) {
				pk->value[k] = v; /* the first of a name wins, as in fcgi_param() */
				break;
			}
		}
		p = v + strlen(v) + 1;
	}
}

static const char *param_of(void *ctx, const char *name)
{
	const struct picked *pk = ctx;
	for (size_t k = 0; k < NWANTED; k++)
		if (strcmp(name, wanted[k]) == 0)
			return pk->value[k];
	return fcgi_param(pk->fq, name);
}

/* ---- a whole request: checked, then the session layer's ---- */

static void discard_bytes_in(struct fconn *c, const uint8_t *p, size_t n);
static void fresh_bytes(struct fconn *c, const uint8_t *buf, size_t n);

/* Acts on the request in buf, which fcgi_scan() found whole (sc->end), or,
 * oversized, whose body is still coming (sc->off bytes of whole records). */
static void dispatch(struct fconn *c, const struct fcgi_scan *sc, const uint8_t *buf, int oversized)
{
	struct fcgi_scan whole = *sc;
	struct fcgi_request fq;
	const char *why = NULL;
	long max = cfg->max_data_held;
	if (oversized)
		whole.end = sc->off;
	if (ensure(&scratch, &scratch_cap, sc->params_len + sc->stdin_len + 1) < 0 ||
	    ensure(&qbuf, &qbuf_cap, (size_t)max + 1) < 0) {
		log_error("out of memory reading a FastCGI request; closing the connection");
		conn_forget(c, 1);
		return;
	}
	if (fcgi_decode(&whole, buf, scratch, scratch_cap, &fq, &why) < 0) {
		log_limited(LOG_WARN, "bad frames", "FastCGI from the web server: %s; closing the connection", why);
		conn_forget(c, 1);
		return;
	}
	struct frame_request fr = { .fcgi_id = fq.id, .flags = FRAME_F_FD_PASSED };
	struct request_scratch rs;
	struct picked pk;
	pick_params(&fq, &pk);
	request_make(&fr, param_of, &pk, fq.body, oversized ? -1 : (long)fq.body_len, qbuf, qbuf_cap, max,
	             &rs);
	requests++;
	set_state(c, C_INFLIGHT);
	c->keep = fq.keep_conn;
	c->watch = NULL;
	int fd = c->io.fd;
	int fw = front_forward(fd, &fr);
	if (fw != 0) {
		conn_forget(c, 1); /* the draining process has its own copy, or nobody does */
	} else {
		struct responder resp = { .fd = fd, .fcgi_id = fq.id, .kind = RESP_DIRECT };
		front_route(&resp, &fr);
	}
	request_done(&rs);
	fcgi_listen_served();
}

/* What fcgi_scan() said about buf[0..len), the bytes of c's request so far.
 * Returns 1 if buf must be kept for more, 0 if it was used up (and a
 * request read in part freed). */
static int scanned(struct fconn *c, struct fcgi_scan *sc, const uint8_t *buf, size_t len, int rc,
                   const char *why)
{
	int oversized = sc->stdin_len > (size_t)cfg->max_data_held;
	if (rc == FCGI_SCAN_ERROR || rc == FCGI_SCAN_ABORT) {
		if (rc == FCGI_SCAN_ERROR)
			log_limited(LOG_WARN, "bad frames", "FastCGI from the web server: %s; closing the connection",
			            why);
		conn_forget(c, 1);
		return 0;
	}
	if (rc == FCGI_SCAN_DONE && sc->end != len) {
		log_limited(LOG_WARN, "bad frames",
		            "FastCGI from the web server: a second request before the first one's answer; "
		            "closing the connection");
		conn_forget(c, 1);
		return 0;
	}
	if (rc == FCGI_SCAN_MORE && !oversized)
		return 1;
	struct partial *read = c->part; /* buf may point into it: freed last */
	c->part = NULL;
	/* The rest of an oversized body is still coming: it is thrown away as
	 * it comes, and the answer (written at once) waits for its end to
	 * close a connection that is not kept. */
	if (rc == FCGI_SCAN_MORE && !(c->discard = calloc(1, sizeof *c->discard))) {
		log_error("out of memory reading a FastCGI request; closing the connection");
		conn_forget(c, 1);
		free(read);
		return 0;
	}
	if (c->discard)
		c->discard->in_body = 1;
	dispatch(c, sc, buf, oversized);
	if (rc == FCGI_SCAN_MORE && !c->dead)
		discard_bytes_in(c, buf + sc->off, len - sc->off);
	free(read);
	return 0;
}

/* ---- an oversized body: its records are read and thrown away ---- */

/* Follows record headers in p[0..n); returns the bytes that were the
 * body's (all of n, or up to its end), -1 on a protocol error. */
static long discard_bytes(struct discard *d, const uint8_t *p, size_t n)
{
	size_t n0 = n;
	while (n > 0 && (d->in_body || d->skip_left)) {
		if (d->skip_left) {
			size_t k = n < d->skip_left ? n : d->skip_left;
			d->skip_left -= (uint32_t)k;
			p += k;
			n -= k;
			continue;
		}
		d->hdr[d->hdr_have++] = *p++;
		n--;
		if (d->hdr_have < FCGI_HEADER_LEN)
			continue;
		d->hdr_have = 0;
		size_t clen = (size_t)d->hdr[4] << 8 | d->hdr[5];
		if (d->hdr[0] != 1 || d->hdr[1] != FCGI_STDIN)
			return -1;
		d->skip_left = (uint32_t)(clen + d->hdr[6]);
		if (clen == 0)
			d->in_body = 0; /* the body's end; its padding is skipped still */
	}
	return (long)(n0 - n);
}

/* Bytes of an oversized body (or of what comes after it). */
static void discard_bytes_in(struct fconn *c, const uint8_t *p, size_t n)
{
	struct discard *d = c->discard;
	long used = discard_bytes(d, p, n);
	d->skipped += used;
	/* After the body's end only the next request may come, once answered. */
	if (d->skipped > DISCARD_MAX || used < 0 || ((size_t)used < n && c->state != C_READING)) {
		log_limited(LOG_WARN, "bad frames",
		            "FastCGI: an oversized body that does not end as it should; closing the connection");
		if (c->state == C_READING) {
			conn_forget(c, 1);
		} else { /* in flight: the answer, when it comes, closes it */
			free(c->discard);
			c->discard = NULL;
			loop_del(loop, &c->io);
			set_state(c, C_DETACHED);
		}
		return;
	}
	if (d->in_body || d->skip_left)
		return;
	free(c->discard);
	c->discard = NULL;
	if (c->state == C_READING && c->close_after)
		conn_forget(c, 1);
	else if ((size_t)used < n)
		fresh_bytes(c, p + used, n - (size_t)used);
}

static void discard_some(struct fconn *c)
{
	ssize_t n = recv(c->io.fd, rbuf, sizeof rbuf, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (c->state == C_READING) {
			conn_forget(c, 1);
		} else {
			free(c->discard);
			c->discard = NULL;
			loop_del(loop, &c->io);
			set_state(c, C_DETACHED);
		}
		return;
	}
	discard_bytes_in(c, rbuf, (size_t)n);
}

/* ---- reading ---- */

/* The first bytes of a request come into rbuf: when the whole request is
 * there (nearly always), it is used in place, with no allocation. */
static void read_fresh(struct fconn *c)
{
	ssize_t n = recv(c->io.fd, rbuf, sizeof rbuf, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) { /* the web server closed an idle connection: its keep-alive ended */
		conn_forget(c, 1);
		return;
	}
	fresh_bytes(c, rbuf, (size_t)n);
}

/* buf[0..n): the first bytes of a request. */
static void fresh_bytes(struct fconn *c, const uint8_t *buf, size_t n)
{
	struct fcgi_scan sc = { 0 };
	const char *why = NULL;
	int rc = fcgi_scan(&sc, buf, n, FCGI_CONN_MAX_PARAMS, DISCARD_MAX, &why);
	if (rc != FCGI_SCAN_MORE || sc.stdin_len > (size_t)cfg->max_data_held) {
		scanned(c, &sc, buf, n, rc, why);
		return;
	}
	size_t cap = n * 2 > 4096 ? n * 2 : 4096;
	struct partial *p = calloc(1, sizeof *p + cap);
	if (!p) {
		log_error("out of memory reading a FastCGI request; closing the connection");
		conn_forget(c, 1);
		return;
	}
	memcpy(p->data, buf, n);
	p->len = n;
	p->cap = cap;
	p->scan = sc;
	c->part = p;
}

/* More of a request read in part. */
static void read_more(struct fconn *c)
{
	struct partial *p = c->part;
	size_t bound = FCGI_CONN_MAX_PARAMS + (size_t)cfg->max_data_held + 4 * RECORD_MAX;
	if (p->len == p->cap) {
		size_t cap = p->cap * 2 < bound ? p->cap * 2 : bound;
		struct partial *np = cap > p->cap ? realloc(p, sizeof *p + cap) : NULL;
		if (!np) {
			log_warn("a FastCGI request over %zu bytes, or out of memory; closing the connection", bound);
			conn_forget(c, 1);
			return;
		}
		c->part = p = np;
		p->cap = cap;
	}
	ssize_t n = recv(c->io.fd, p->data + p->len, p->cap - p->len, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_forget(c, 1);
		return;
	}
	p->len += (size_t)n;
	const char *why = NULL;
	int rc = fcgi_scan(&p->scan, p->data, p->len, FCGI_CONN_MAX_PARAMS, DISCARD_MAX, &why);
	struct fcgi_scan sc = p->scan;
	scanned(c, &sc, p->data, p->len, rc, why);
}

static void conn_io(void *ctx, uint32_t events)
{
	struct fconn *c = ctx;
	if (c->dead)
		return;
	if (c->discard) {
		discard_some(c);
	} else if (c->state == C_INFLIGHT && c->watch) {
		c->watch->cb(c->watch->ctx, events); /* the held request's business */
	} else if (c->state == C_INFLIGHT) {
		/* Gone (or talking out of turn) while its request waits with
		 * nobody watching: out of the loop until the answer closes it. */
		loop_del(loop, &c->io);
		set_state(c, C_DETACHED);
	} else if (c->part) {
		read_more(c);
	} else {
		read_fresh(c);
	}
}

/* ---- reply.c's side ---- */

static void answered(int fd, int whole)
{
	struct fconn *c = lookup(fd);
	if (!c) {
		log_error("an answer for FastCGI connection %d, which is not ours; closing it", fd);
		close(fd);
		return;
	}
	c->watch = NULL;
	int alive = whole && c->state != C_DETACHED;
	int discarding = c->discard != NULL;
	/* Not kept: closed now, or, while the web server still sends an
	 * oversized body, once that has ended (it reads our answer after). */
	/* Past IDLE_MAX idle ones (a burst of answers: nginx keeps a few
	 * hundred and closes the rest when it gets to them), or with
	 * descriptors short, closed at once, right behind the answer: a burst
	 * must not run us out of descriptors. */
	if (!alive || (!discarding && (!c->keep || c->close_after || nidle >= IDLE_MAX || fcgi_listen_short()))) {
		conn_forget(c, 1);
		return;
	}
	if (!c->keep)
		c->close_after = 1;
	if (c->state == C_WRITING && loop_add(loop, &c->io, EPOLLIN) < 0) {
		set_state(c, C_DETACHED);
		conn_forget(c, 1);
		return;
	}
	set_state(c, C_READING);
}

/* reply.c writes the rest of a slow answer: the connection leaves the loop
 * meanwhile, and comes back by answered(). */
static void release(int fd)
{
	struct fconn *c = lookup(fd);
	if (!c)
		return;
	if (c->state == C_READING || c->state == C_INFLIGHT)
		loop_del(loop, &c->io);
	set_state(c, C_WRITING);
}

static int watch(int fd, struct io *io)
{
	struct fconn *c = lookup(fd);
	if (!c || (io && c->state != C_INFLIGHT))
		return -1;
	c->watch = io;
	return 0;
}

static int adopt_passed(int fd)
{
	struct fconn *c = adopt(fd, C_INFLIGHT);
	if (!c)
		return -1;
	c->keep = 1;
	return 0;
}

static const struct reply_direct_ops direct_ops = { .answered = answered, .release = release,
	                                                .watch = watch, .adopt = adopt_passed };

/* A connection the listener took. */
static void take_accepted(int fd)
{
	if (!adopt(fd, C_READING))
		close(fd);
}

int fcgi_conn_start(struct loop *l, int listen_fd, const struct config *c)
{
	loop = l;
	cfg = c;
	reply_set_direct(&direct_ops);
	return fcgi_listen_start(l, listen_fd, take_accepted);
}

void fcgi_conn_stats(struct fcgi_conn_stats *out)
{
	*out = (struct fcgi_conn_stats){ .open = (uint64_t)nconns, .waiting = fcgi_listen_waiting(),
		                         .accepted = fcgi_listen_accepted(), .requests = requests };
}

void fcgi_conn_stop(void)
{
	if (!loop)
		return;
	fcgi_listen_stop();
	for (int fd = 0; fd < table_cap; fd++)
		if (table[fd])
			conn_forget(table[fd], 1);
	free(scratch);
	free(qbuf);
	scratch = qbuf = NULL;
	scratch_cap = qbuf_cap = 0;
}

/* ---- restarts ---- */

/* A connection reply.c still writes to (C_WRITING) is left out: a restart
 * waits for those, and one past drain_time is given up. */
void fcgi_conn_snapshot(struct snap_w *w, void (*keep)(void *ctx, int fd), void *ctx)
{
	int n = 0;
	for (int fd = 0; fd < table_cap; fd++)
		n += table[fd] && table[fd]->state != C_WRITING;
	snap_put_u64(w, fcgi_listen_accepted());
	snap_put_u64(w, requests);
	snap_put_count(w, (uint64_t)n, MAX_CONNS);
	for (int fd = 0; fd < table_cap; fd++) {
		struct fconn *c = table[fd];
		if (!c || c->state == C_WRITING)
			continue;
		/* The rest of an oversized body cannot be followed from here:
		 * the successor sees it as bad records and closes. */
		int partial = c->part != NULL;
		snap_put_i64(w, fd);
		snap_put_u64(w, c->state);
		snap_put_u64(w, c->keep);
		snap_put_bytes(w, partial ? c->part->data : NULL, partial ? c->part->len : 0);
		keep(ctx, fd);
	}
	fcgi_listen_snapshot(w, keep, ctx);
}

static int restore_one(struct snap_r *r)
{
	int fd = (int)snap_get_i64(r);
	uint64_t state = snap_get_u64(r);
	uint8_t keep_conn = (uint8_t)snap_get_u64(r);
	size_t len = 0;
	char *bytes = snap_get_bytes(r, &len);
	struct fconn *c = NULL;
	if (!snap_failed(r) && fd >= 0 && state <= C_DETACHED && (c = adopt(fd, (enum cstate)state)))
		c->keep = keep_conn;
	if (c && bytes && len) {
		struct partial *p = calloc(1, sizeof *p + len);
		if (p) {
			memcpy(p->data, bytes, len);
			p->len = p->cap = len;
			const char *why;
			fcgi_scan(&p->scan, p->data, p->len, FCGI_CONN_MAX_PARAMS, DISCARD_MAX, &why);
			c->part = p; /* what the scan found is acted on when more comes */
		} else {
			conn_forget(c, 1);
		}
	} else if (!c && fd >= 0 && !snap_failed(r)) {
		close(fd);
	}
	free(bytes);
	return snap_failed(r) ? -1 : 0;
}

int fcgi_conn_restore(struct loop *l, struct snap_r *r, int listen_fd, const struct config *c, int version)
{
	if (fcgi_conn_start(l, listen_fd, c) < 0)
		return -1;
	fcgi_listen_set_accepted(snap_get_u64(r));
	requests = snap_get_u64(r);
	uint64_t n = snap_get_count(r, MAX_CONNS);
	for (uint64_t i = 0; i < n && !snap_failed(r); i++)
		if (restore_one(r) < 0)
			return -1;
	if (version >= 5)
		fcgi_listen_restore(r);
	return snap_failed(r) ? -1 : 0;
}

void fcgi_conn_become_drainer(void)
{
	if (!loop)
		return;
	fcgi_listen_stop();
	/* In flight: a TLS session's request this process answers, or another's
	 * that it will not touch (left out of the loop until the end). */
	for (int fd = 0; fd < table_cap; fd++) {
		struct fconn *c = table[fd];
		if (!c)
			continue;
		if (c->state == C_READING)
			conn_forget(c, 1);
		else
			c->close_after = 1;
	}
}
