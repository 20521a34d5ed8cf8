/* sesstable.c - the sid table, the counts per client, the rows, the lists
 * of sids elsewhere: what every session has, whatever its transport. */
#define _GNU_SOURCE
#include "sesstable.h"
#include "budget.h"
#include "hex.h"
#include "log.h"
#include "metrics.h"
#include "store.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct loop *loop;
static const struct config *cfg;

static struct sess **table;
static size_t table_size, nsessions;
static struct sess *dirty_list;
static uint64_t next_flush_due; /* db_flush_ms after the last flush: not sooner */
static uint64_t dirty_due;      /* when the dirty list must be written (0: empty) */

/* Live sessions per client address, for max_sessions_per_client. */
struct client_count {
	struct client_count *next;
	long n;
	char addr[];
};
#define CLIENT_BUCKETS 4096
static struct client_count *clients[CLIENT_BUCKETS];

/* A sorted list of sids (sorted once after adding, then searched). */
struct sidlist {
	char (*sid)[SID_MAX + 1];
	size_t n, cap;
};
static struct sidlist lost;     /* lost in an earlier run: answered remote-connection-failed */
static struct sidlist draining; /* another process drains them: their requests go there */

static int table_grow(void);

int sesstable_init(struct loop *l, const struct config *c)
{
	loop = l;
	cfg = c;
	/* While the database refuses writes: a row per live session, and as
	 * many again for sessions that end meanwhile. */
	store_set_max_queued((size_t)c->max_sessions * 2);
	budget_init((size_t)c->max_memory);
	return table_grow();
}

/* ---- the sid table ---- */

static int is_hex32(const char *s)
{
	for (int i = 0; i < SID_HEX; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[SID_HEX] == 0;
}

const char *sid_node(const char *sid, size_t *len)
{
	const char *dash = strchr(sid, '-');
	*len = dash ? (size_t)(dash - sid) : 0;
	return sid;
}

int sid_valid(const char *sid)
{
	if (!sid)
		return 0;
	size_t n;
	sid_node(sid, &n);
	if (n > NODE_ID_MAX || (n == 0 && sid[0] == '-'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((sid[i] >= 'a' && sid[i] <= 'z') || (sid[i] >= '0' && sid[i] <= '9')))
			return 0;
	return is_hex32(n ? sid + n + 1 : sid);
}

static size_t sid_hash(const char *sid)
{
	/* the random part is hex: its first 16 digits are hash enough */
	size_t skip;
	sid_node(sid, &skip);
	sid += skip ? skip + 1 : 0;
	size_t h = 0;
	for (int i = 0; i < 16; i++)
		h = h * 16 + (size_t)(sid[i] <= '9' ? sid[i] - '0' : sid[i] - 'a' + 10);
	return h;
}

static int table_grow(void)
{
	size_t size = table_size ? table_size * 2 : 1024;
	struct sess **t = calloc(size, sizeof *t);
	if (!t)
		return -1;
	for (size_t i = 0; i < table_size; i++)
		for (struct sess *s = table[i], *next; s; s = next) {
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

struct sess *sesstable_find(const char *sid)
{
	if (!table_size || !sid_valid(sid))
		return NULL;
	for (struct sess *s = table[sid_hash(sid) & (table_size - 1)]; s; s = s->hnext)
		if (strcmp(s->sid, sid) == 0)
			return s;
	return NULL;
}

static void table_remove(struct sess *s)
{
	struct sess **p = &table[sid_hash(s->sid) & (table_size - 1)];
	while (*p && *p != s)
		p = &(*p)->hnext;
	if (*p) {
		*p = s->hnext;
		nsessions--;
	}
}

int sesstable_each(int (*cb)(struct sess *c, void *ctx), void *ctx)
{
	for (size_t i = 0; i < table_size; i++)
		for (struct sess *s = table[i], *next; s; s = next) {
			next = s->hnext;
			int rc = cb(s, ctx);
			if (rc)
				return rc;
		}
	return 0;
}

static void new_sid(char *out)
{
	unsigned char raw[16];
	if (RAND_bytes(raw, sizeof raw) != 1) {
		/* Without randomness sids would be guessable: refuse to go on. */
		log_error("RAND_bytes failed; cannot make a session id");
		abort();
	}
	size_t n = cfg && cfg->node_id[0] ? (size_t)snprintf(out, NODE_ID_MAX + 2, "%s-", cfg->node_id) : 0;
	hex_encode(raw, sizeof raw, out + n);
}

/* ---- live sessions per client ---- */

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

/* ---- the limits ---- */

const char *sesstable_refuse(const char *client)
{
	if (nsessions >= (size_t)cfg->max_sessions) {
		log_warn("session request from %s refused: max_sessions (%ld) reached", client,
		         cfg->max_sessions);
		return "policy-violation";
	}
	if (cfg->max_sessions_per_client && client_sessions(client) >= cfg->max_sessions_per_client) {
		log_warn("session request from %s refused: it has max_sessions_per_client (%ld) sessions",
		         client, cfg->max_sessions_per_client);
		return "policy-violation";
	}
	return NULL;
}

int sesstable_add(struct sess *c, int fresh)
{
	if (nsessions + 1 > table_size && table_grow() < 0) {
		log_error("out of memory growing the session table");
		return -1;
	}
	if (fresh)
		do
			new_sid(c->sid);
		while (sesstable_find(c->sid));
	if (client_add(c->client, +1) < 0) {
		log_error("out of memory counting sessions per client");
		return -1;
	}
	size_t b = sid_hash(c->sid) & (table_size - 1);
	c->hnext = table[b];
	table[b] = c;
	nsessions++;
	return 0;
}

void sesstable_remove(struct sess *c)
{
	sesstable_clean(c);
	table_remove(c);
	client_add(c->client, -1);
}

size_t sessions_count(void) { return nsessions; }

void sesstable_put_row(const struct sess *c)
{
	struct store_row r;
	c->ops->describe(c, &r);
	store_put(&r);
}

void sesstable_log_end(const struct sess *c, const char *jid, double duration, const char *condition)
{
	metrics_session_ended(metrics_transport(c->ops->transport), condition);
	log_info("session %s ended: jid=%s client=%s duration=%.1fs condition=%s transport=%s", c->sid,
	         jid ? jid : "-", c->client ? c->client : "-", duration, condition, c->ops->transport);
}

/* ---- persistence ---- */

static void mark(struct sess *c, long within_ms)
{
	uint64_t due = loop_now(loop) + (uint64_t)within_ms;
	if (!dirty_due || due < dirty_due)
		dirty_due = due;
	if (c->dirty_pprev)
		return;
	c->dirty_next = dirty_list;
	if (dirty_list)
		dirty_list->dirty_pprev = &c->dirty_next;
	c->dirty_pprev = &dirty_list;
	dirty_list = c;
}

/* At the next flush: at once, unless one ran in the last db_flush_ms. */
void sesstable_dirty(struct sess *c) { mark(c, 0); }

/* A request's rid, held count and time change the row at the request rate
 * of every session: written that often, the rows cost sessiond more than
 * anything else it does per request. Who looks at them (active_sessions'
 * idle_s and held_requests) is served by a second's delay. */
void sesstable_touch(struct sess *c) { mark(c, cfg->db_activity_ms); }

/* Unlinked in place: a burst of ends (thousands of sessions, each touched
 * by its terminate within db_activity_ms) must not walk the list for each. */
void sesstable_clean(struct sess *c)
{
	if (!c->dirty_pprev)
		return;
	*c->dirty_pprev = c->dirty_next;
	if (c->dirty_next)
		c->dirty_next->dirty_pprev = c->dirty_pprev;
	c->dirty_pprev = NULL;
	if (!dirty_list)
		dirty_due = 0;
}

void sesstable_write_dirty(void)
{
	for (struct sess *c = dirty_list; c; c = c->dirty_next) {
		sesstable_put_row(c);
		c->dirty_pprev = NULL;
	}
	dirty_list = NULL;
	dirty_due = 0;
}

int sessions_idle(void *ctx)
{
	(void)ctx;
	uint64_t now = loop_now(loop);
	if (!dirty_list && !store_queued())
		return -1;
	/* rows queued already (a session's last) go at the next chance */
	uint64_t due = next_flush_due;
	if (!store_queued() && dirty_due > due)
		due = dirty_due;
	if (now < due)
		return (int)(due - now);
	/* While the database refuses (full disk, an admin's lock), the queue
	 * keeps one batch; sessions stay dirty, so what is written at last is
	 * their newest state and memory stays bounded by the sessions. */
	if (store_queued() && store_flush() < 0) {
		next_flush_due = now + 1000;
		return 1000;
	}
	sesstable_write_dirty();
	uint64_t retry = store_flush() == 0 ? (uint64_t)cfg->db_flush_ms : 1000;
	next_flush_due = now + retry;
	return store_queued() ? (int)retry : -1;
}

/* ---- sids elsewhere ---- */

static int cmp_sid(const void *a, const void *b) { return strcmp(a, b); }

static int sidlist_add(struct sidlist *l, const char *sid)
{
	if (!sid_valid(sid))
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		void *n = realloc(l->sid, cap * sizeof *l->sid);
		if (!n)
			return -1;
		l->sid = n;
		l->cap = cap;
	}
	snprintf(l->sid[l->n++], SID_MAX + 1, "%s", sid);
	return 0;
}

static int sidlist_has(const struct sidlist *l, const char *sid)
{
	return sid && l->n && sid_valid(sid) &&
	       bsearch(sid, l->sid, l->n, sizeof l->sid[0], cmp_sid) != NULL;
}

static void sidlist_sort(struct sidlist *l)
{
	if (l->n)
		qsort(l->sid, l->n, sizeof l->sid[0], cmp_sid);
}

int sessions_lost(const char *sid) { return sidlist_has(&lost, sid); }
int sessions_draining(const char *sid) { return sidlist_has(&draining, sid); }
int sesstable_add_lost(const char *sid) { return sidlist_add(&lost, sid); }
int sesstable_add_draining(const char *sid) { return sidlist_add(&draining, sid); }
size_t sesstable_nlost(void) { return lost.n; }
const char *sesstable_lost_sid(size_t i) { return lost.sid[i]; }
size_t sesstable_ndraining(void) { return draining.n; }
const char *sesstable_draining_sid(size_t i) { return draining.sid[i]; }

void sesstable_sort_lists(void)
{
	sidlist_sort(&lost);
	sidlist_sort(&draining);
}

void sessions_drainer_gone(void)
{
	draining.n = 0;
}

/* ---- start and stop ---- */

static void remember_lost(void *ctx, const char *sid)
{
	(void)ctx;
	sidlist_add(&lost, sid); /* out of memory: the sid is unknown, item-not-found */
}

int sessions_recover(void)
{
	double now = loop_wallclock();
	long n = store_recover(now, (double)cfg->ended_retention, remember_lost, NULL);
	if (n < 0)
		return -1;
	sidlist_sort(&lost);
	if (n > 0)
		log_warn("%ld sessions of the previous run were lost (their XMPP connections did not "
		         "survive); they will be told remote-connection-failed", n);
	store_prune(now - (double)cfg->ended_retention);
	return 0;
}

static int stop_one(struct sess *c, void *ctx)
{
	(void)ctx;
	c->ops->stop(c);
	return 0;
}

void sessions_shutdown(void)
{
	sesstable_each(stop_one, NULL);
	dirty_list = NULL;
	if (store_flush() < 0)
		log_error("could not write the session rows at shutdown");
}

/* ---- graceful restart: who keeps which session ---- */

static int count_unmovable(struct sess *c, void *ctx)
{
	*(long *)ctx += !c->ops->can_move(c);
	return 0;
}

long sessions_unmovable_count(void)
{
	long n = 0;
	sesstable_each(count_unmovable, &n);
	return n;
}

static int split_one(struct sess *c, void *ctx)
{
	int keep_movable = *(int *)ctx;
	if (c->ops->can_move(c) == keep_movable)
		return 0;
	/* the successor remembers where its requests must go */
	if (keep_movable && sidlist_add(&draining, c->sid) < 0)
		return -1;
	c->ops->forget(c);
	return 0;
}

int sessions_split(int keep_movable)
{
	if (!keep_movable)
		draining.n = 0; /* the drainer forwards nothing */
	if (sesstable_each(split_one, &keep_movable) < 0)
		return -1;
	sidlist_sort(&draining);
	return 0;
}

static int end_one(struct sess *c, void *ctx)
{
	if (!c->ops->ended(c))
		c->ops->end(c, ctx);
	return 0;
}

void sessions_end_all(const char *condition)
{
	sesstable_each(end_one, (void *)condition);
}
