/* control.c - boshctl's commands and the pages (see control.h). */
#define _GNU_SOURCE
#include "control.h"
#include "budget.h"
#include "config.h"
#include "front.h"
#include "log.h"
#include "metrics_report.h"
#include "restart.h"
#include "sesstable.h"
#include "snapshot.h"
#include "status_page.h"
#include "store.h"
#include "version.h"

#include <errno.h>
#include <fnmatch.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define OUTBOX_MAX 16           /* answers being written at once */
#define OUTBOX_TIMEOUT_MS 10000 /* a boshctl that does not read is dropped */

static struct loop *cl;
static const struct config *ccfg;
static struct control_actions actions;
static int draining;

void control_init(struct loop *l, const struct config *cfg, const struct control_actions *a)
{
	cl = l;
	ccfg = cfg;
	actions = *a;
}

int control_draining(void) { return draining; }

void control_snapshot(struct snap_w *w) { snap_put_u64(w, (uint64_t)draining); }

void control_restore(struct snap_r *r)
{
	draining = snap_get_u64(r) != 0;
	if (draining)
		log_info("drain: still in force after the restart; new sessions are refused (boshctl undrain)");
}

/* ---- writing an answer to boshctl ---- */

struct outbox {
	struct io io;
	struct timer deadline;
	struct buf b;
	size_t off;
};

static int noutboxes;

static void outbox_free(struct outbox *o)
{
	timer_cancel(cl, &o->deadline);
	loop_del(cl, &o->io);
	close(o->io.fd);
	buf_free(&o->b);
	free(o);
	noutboxes--;
}

static void outbox_write(struct outbox *o)
{
	while (o->off < o->b.len) {
		ssize_t n = send(o->io.fd, o->b.data + o->off, o->b.len - o->off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!o->io.events && loop_add(cl, &o->io, EPOLLOUT) < 0)
				break;
			return;
		}
		if (n <= 0)
			break;
		o->off += (size_t)n;
	}
	outbox_free(o);
}

static void outbox_io(void *ctx, uint32_t events)
{
	(void)events;
	outbox_write(ctx);
}

static void outbox_timeout(void *ctx)
{
	log_info("boshctl did not read its answer within %d s; dropped", OUTBOX_TIMEOUT_MS / 1000);
	outbox_free(ctx);
}

/* Sends status line and body on fd, then closes it; takes body. */
static void answer(int fd, int status, struct buf *body)
{
	struct outbox *o = noutboxes < OUTBOX_MAX ? calloc(1, sizeof *o) : NULL;
	if (!o || buf_printf(&o->b, "%d\n", status) < 0 || buf_append(&o->b, body->data, body->len) < 0) {
		log_warn("control: cannot answer a command (%s)", o ? "out of memory" : "too many at once");
		if (o)
			buf_free(&o->b);
		free(o);
		buf_free(body);
		close(fd);
		return;
	}
	buf_free(body);
	noutboxes++;
	o->io = (struct io){ .fd = fd, .cb = outbox_io, .ctx = o };
	o->deadline = (struct timer){ .cb = outbox_timeout, .ctx = o };
	timer_set(cl, &o->deadline, loop_now(cl) + OUTBOX_TIMEOUT_MS);
	outbox_write(o);
}

/* ---- JSON ---- */

static int json_str(struct buf *b, const char *s)
{
	if (!s)
		return buf_puts(b, "null");
	int rc = buf_puts(b, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p && rc == 0; p++) {
		if (*p == '"' || *p == '\\')
			rc = buf_printf(b, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			rc = buf_printf(b, "\\u%04x", *p);
		else
			rc = buf_append(b, (const char *)p, 1);
	}
	return rc ? rc : buf_puts(b, "\"");
}

/* ---- status ---- */

int control_status(struct buf *b, int json)
{
	struct metrics_census k;
	struct metrics_process p;
	double rps, sps;
	const char *outcome;
	uint64_t seq = restart_outcome(&outcome);
	metrics_census(&k);
	metrics_process(&p);
	metrics_rates(&rps, &sps);
	if (json)
		return buf_printf(b,
		        "{\"version\":\"%s\",\"pid\":%ld,\"uptime_s\":%.0f,\"sessions\":{"
		        "\"bosh\":{\"connecting\":%u,\"active\":%u,\"ended\":%u},"
		        "\"websocket\":{\"connecting\":%u,\"active\":%u,\"ended\":%u}},"
		        "\"held_requests\":%lu,\"requests_per_s\":%.2f,\"stanzas_per_s\":%.2f,"
		        "\"rss_bytes\":%ld,\"queued_bytes\":%zu,\"max_memory\":%ld,\"open_fds\":%ld,"
		        "\"max_fds\":%ld,\"db_rows_waiting\":%zu,\"db_lag_s\":%.3f,\"draining\":%s,"
		        "\"drainer\":%s,\"drainer_sessions\":%zu,\"restart_seq\":%llu,\"restart_outcome\":",
		        BOSH_CM_VERSION, (long)getpid(), p.uptime, k.by[0][0], k.by[0][1], k.by[0][2], k.by[1][0],
		        k.by[1][1], k.by[1][2], k.held, rps, sps, p.rss_bytes, budget_in_use(), ccfg->max_memory,
		        p.open_fds, p.max_fds, store_queued(), store_lag_seconds(), draining ? "true" : "false",
		        front_has_drainer() ? "true" : "false", sesstable_ndraining(), (unsigned long long)seq) ||
		       json_str(b, seq ? outcome : NULL) || buf_puts(b, "}\n");
	return buf_printf(b,
	        "sessiond %s, pid %ld, up %.0f s\n"
	        "sessions:     bosh %u active, %u connecting; websocket %u active, %u connecting "
	        "(%u ended, telling their clients)\n"
	        "held requests: %lu\n"
	        "last minute:  %.1f requests/s, %.1f stanzas/s\n"
	        "memory:       RSS %.1f MiB; %zu bytes held for clients and streams (max_memory %ld)\n"
	        "descriptors:  %ld of %ld\n"
	        "database:     %zu rows waiting, lag %.1f s\n"
	        "drain:        %s\n"
	        "drainer:      %s (%zu sessions over TLS of the last restart)\n"
	        "last restart: %s\n",
	        BOSH_CM_VERSION, (long)getpid(), p.uptime, k.by[0][1], k.by[0][0], k.by[1][1], k.by[1][0],
	        k.by[0][2] + k.by[1][2], k.held, rps, sps, (double)p.rss_bytes / 1048576.0, budget_in_use(),
	        ccfg->max_memory, p.open_fds, p.max_fds, store_queued(), store_lag_seconds(),
	        draining ? "in force: new sessions refused (503)" : "no: new sessions accepted",
	        front_has_drainer() ? "running" : "none", sesstable_ndraining(),
	        seq ? outcome : "none since this sessiond started");
}

/* ---- sessions ---- */

struct listing {
	const char *jid, *domain, *client;
	int json;
	struct buf *b;
	size_t n;
	int rc;
};

static int matches(const struct listing *l, const struct sess *c, const struct store_row *r)
{
	if (l->jid && (!r->jid || fnmatch(l->jid, r->jid, FNM_CASEFOLD) != 0))
		return 0;
	if (l->domain && (!r->to_domain || strcasecmp(l->domain, r->to_domain) != 0))
		return 0;
	return !l->client || (c->client && strcmp(l->client, c->client) == 0);
}

static int list_one(struct sess *c, void *ctx)
{
	struct listing *l = ctx;
	struct store_row r;
	c->ops->describe(c, &r);
	if (!matches(l, c, &r))
		return 0;
	double now = loop_wallclock();
	struct buf *b = l->b;
	if (l->json) {
		l->rc |= buf_puts(b, l->n ? ",\n{\"sid\":" : "{\"sid\":") || json_str(b, r.sid) ||
		         buf_puts(b, ",\"jid\":") || json_str(b, r.jid) || buf_puts(b, ",\"domain\":") ||
		         json_str(b, r.to_domain) || buf_puts(b, ",\"transport\":") || json_str(b, c->ops->transport) ||
		         buf_puts(b, ",\"client_addr\":") || json_str(b, r.client_addr) ||
		         buf_puts(b, ",\"state\":") || json_str(b, r.state) ||
		         buf_printf(b, ",\"held_requests\":%d,\"age_s\":%.0f,\"idle_s\":%.0f,\"rid\":%lld,"
		                       "\"wait\":%d,\"hold\":%d,\"inactivity\":%d,\"user_agent\":",
		                    r.held, now - r.created_at, now - r.last_seen, r.rid, r.wait, r.hold,
		                    r.inactivity) ||
		         json_str(b, r.user_agent) || buf_puts(b, "}");
	} else {
		l->rc |= buf_printf(b, "%-32s %-40.200s %-9s %-15.64s %-10s %4d %7.0f %6.0f\n", r.sid,
		                    r.jid ? r.jid : "-", c->ops->transport, r.client_addr ? r.client_addr : "-",
		                    r.state, r.held, now - r.created_at, now - r.last_seen);
	}
	l->n++;
	return 0;
}

static int list_sessions(const struct frame_request *fr, struct buf *b, int json)
{
	struct listing l = { .jid = frame_attr(fr, "jid"), .domain = frame_attr(fr, "domain"),
	                     .client = frame_attr(fr, "client"), .json = json, .b = b };
	l.rc = json ? buf_puts(b, "[") : buf_printf(b, "%-32s %-40s %-9s %-15s %-10s %4s %7s %6s\n", "sid",
	                                            "jid", "transport", "client", "state", "held", "age_s",
	                                            "idle_s");
	sesstable_each(list_one, &l);
	if (json)
		l.rc |= buf_puts(b, "]\n");
	else
		l.rc |= buf_printf(b, "%zu sessions\n", l.n);
	return l.rc ? -1 : 0;
}

/* ---- kick ---- */

/* XEP-0124's terminate conditions an admin may end a session with. */
static int kick_condition_ok(const char *c)
{
	static const char *const ok[] = { "policy-violation", "system-shutdown", "remote-connection-failed",
	                                  "host-gone", "other-request", "undefined-condition",
	                                  "internal-server-error", "see-other-uri", "remote-stream-error" };
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		if (strcmp(c, ok[i]) == 0)
			return 1;
	return 0;
}

struct kicking {
	const char *target, *condition, *who;
	size_t n;
};

/* A sid, a full JID, or a bare JID (every resource). */
static int is_target(const char *target, const struct sess *c, const struct store_row *r)
{
	if (strcmp(target, c->sid) == 0)
		return 1;
	if (!r->jid)
		return 0;
	size_t tl = strlen(target);
	return strcasecmp(target, r->jid) == 0 ||
	       (!strchr(target, '/') && strncasecmp(target, r->jid, tl) == 0 && r->jid[tl] == '/');
}

static int kick_one(struct sess *c, void *ctx)
{
	struct kicking *k = ctx;
	struct store_row r;
	c->ops->describe(c, &r);
	if (c->ops->ended(c) || !is_target(k->target, c, &r))
		return 0;
	char who[160];
	log_info("session %s kicked: by=%s jid=%s condition=%s", c->sid, log_quoted(who, sizeof who, k->who),
	         r.jid ? r.jid : "-", k->condition);
	M.kicks++;
	k->n++;
	c->ops->end(c, k->condition);
	return 0;
}

static int kick(const struct frame_request *fr, struct buf *b, const char *who)
{
	struct kicking k = { .target = frame_attr(fr, "target"), .who = who,
	                     .condition = frame_attr(fr, "condition") ? frame_attr(fr, "condition")
	                                                             : "policy-violation" };
	if (!k.target || !*k.target) {
		buf_puts(b, "kick: name a session (its sid) or a JID\n");
		return 1;
	}
	if (!kick_condition_ok(k.condition)) {
		buf_printf(b, "kick: '%.64s' is not a condition to end a session with (policy-violation, "
		              "system-shutdown, remote-connection-failed, host-gone, other-request, ...)\n",
		           k.condition);
		return 1;
	}
	sesstable_each(kick_one, &k);
	buf_printf(b, "%zu sessions ended (%s)\n", k.n, k.condition);
	return k.n ? 0 : 1;
}

/* ---- the commands ---- */

static void who_is(uid_t uid, char *out, size_t len)
{
	struct passwd pw, *res = NULL;
	char scratch[1024];
	if (getpwuid_r(uid, &pw, scratch, sizeof scratch, &res) == 0 && res)
		snprintf(out, len, "boshctl user %.64s", pw.pw_name);
	else
		snprintf(out, len, "boshctl uid %u", (unsigned)uid);
}

static int set_drain(int on, struct buf *b, const char *who)
{
	char by[160];
	if (draining != on)
		log_info("drain %s: by=%s (%s)", on ? "started" : "ended", log_quoted(by, sizeof by, who),
		         on ? "new sessions are refused with 503, the existing ones go on"
		            : "new sessions are accepted again");
	draining = on;
	return buf_puts(b, on ? "draining: new sessions are refused (503); the health page says 503\n"
	                      : "not draining: new sessions are accepted\n") ? -1 : 0;
}

static int restart_result(const struct frame_request *fr, struct buf *b)
{
	const char *seqarg = frame_attr(fr, "seq"), *text;
	uint64_t seq = restart_outcome(&text);
	if (!seqarg || seq <= strtoull(seqarg, NULL, 10))
		return 2;
	buf_printf(b, "%s\n", text);
	return strncmp(text, "restarted in place", 18) == 0 ? 0 : 1;
}

void control_command(const struct frame_request *fr, int reply_fd, uid_t uid)
{
	char who[128];
	const char *cmd = fr->command;
	int json = frame_attr(fr, "json") != NULL, status = 0;
	struct buf b = { 0 };
	const char *text;
	who_is(uid, who, sizeof who);
	if (strcmp(cmd, "status") == 0) {
		status = control_status(&b, json) ? 1 : 0;
	} else if (strcmp(cmd, "sessions") == 0) {
		status = list_sessions(fr, &b, json) ? 1 : 0;
	} else if (strcmp(cmd, "kick") == 0) {
		status = kick(fr, &b, who);
	} else if (strcmp(cmd, "drain") == 0 || strcmp(cmd, "undrain") == 0) {
		status = set_drain(cmd[0] == 'd', &b, who) ? 1 : 0;
	} else if (strcmp(cmd, "reload") == 0) {
		log_info("reload asked by %s", who);
		status = actions.reload(&b) ? 1 : 0;
	} else if (strcmp(cmd, "restart") == 0) {
		log_info("restart asked by %s", who);
		buf_printf(&b, "%llu\n", (unsigned long long)restart_outcome(&text));
		actions.restart();
	} else if (strcmp(cmd, "restart-result") == 0) {
		status = restart_result(fr, &b);
	} else {
		buf_printf(&b, "unknown command '%.64s'\n", cmd);
		status = 1;
	}
	answer(reply_fd, status, &b);
}

/* ---- pages ---- */

static void page_answer(struct responder *resp, int status, const char *type, struct buf *b)
{
	struct reply r = { .status = status, .content_type = type, .body = b->data, .body_len = b->len,
	                   .headers = "Cache-Control: no-store\r\n" };
	reply_send(resp, &r);
	buf_free(b);
}

void control_page(struct responder *resp, const char *page)
{
	struct buf b = { 0 };
	if (strcmp(page, "metrics") == 0) {
		if (metrics_prometheus(&b) == 0) {
			page_answer(resp, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
			return;
		}
	} else if (strcmp(page, "status") == 0) {
		if (status_page_html(&b) == 0) {
			page_answer(resp, 200, "text/html; charset=utf-8", &b);
			return;
		}
	} else if (strcmp(page, "health") == 0) {
		buf_puts(&b, draining ? "draining\n" : "ok\n");
		page_answer(resp, draining ? 503 : 200, "text/plain; charset=utf-8", &b);
		return;
	} else {
		log_limited(LOG_WARN, "unknown page", "a handler asked for page '%.32s', which sessiond does "
		            "not serve (BOSH_PAGE is metrics, status or health)", page);
		buf_puts(&b, "no such page\n");
		page_answer(resp, 404, "text/plain; charset=utf-8", &b);
		return;
	}
	log_error("out of memory building the %s page", page);
	buf_free(&b);
	struct reply r = { .status = 500, .content_type = "text/plain; charset=utf-8" };
	reply_send(resp, &r);
}
