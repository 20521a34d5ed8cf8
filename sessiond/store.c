#define _POSIX_C_SOURCE 200809L
#include "store.h"
#include "log.h"
#include "sql_text.h" /* generated: schema_sql[], views_sql[] */

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCHEMA_VERSION 3

/* A queued row owns its strings. */
struct queued {
	struct store_row row;
	char *strings[11];
};

/* migrations[v] takes a database from version v to v + 1. */
static const char *const migrations[SCHEMA_VERSION] = {
	[1] = "ALTER TABLE sessions ADD COLUMN key TEXT;",
	[2] = "ALTER TABLE sessions ADD COLUMN transport TEXT NOT NULL DEFAULT 'bosh';",
};

static sqlite3 *db;
static sqlite3_stmt *upsert;
/* One queued row per sid: a newer row for the same sid replaces the older
 * one, so while the database refuses writes the queue holds at most one row
 * per session, however often each changes. slots[] finds a sid's row:
 * open addressing over queue indexes + 1 (0 is empty), at least twice as
 * many slots as rows. */
static struct queued *queue;
static size_t queue_len, queue_cap;
static size_t *slots;
static size_t nslots;
static size_t max_queued = (size_t)-1;
static size_t dropped; /* rows not queued because the queue was full, this incident */
static double first_queued_at; /* monotonic seconds: the oldest row not yet written */
static void (*on_flush)(double seconds, int failed);

void store_on_flush(void (*cb)(double seconds, int failed))
{
	on_flush = cb;
}

static double mono_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}
static int failing; /* an incident is under way: log its end, not every retry */
static int own_pid;

static const char upsert_sql[] =
	"INSERT INTO sessions (sid, state, rid, jid, to_domain, route, wait, hold, inactivity,"
	" requests, ver, lang, client_addr, user_agent, held, created_at, last_seen, ended_at,"
	" end_condition, pid, key, transport) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,"
	"?15,?16,?17,?18,?19,?20,?21,?22) ON CONFLICT(sid) DO UPDATE SET state=?2, rid=?3, jid=?4, held=?15,"
	" last_seen=?17, ended_at=?18, end_condition=?19, pid=?20, key=?21";

static int exec(const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int user_version(void)
{
	sqlite3_stmt *st;
	int v = -1;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int apply_schema(char *err, size_t errlen)
{
	int v = user_version();
	if (v > SCHEMA_VERSION) {
		snprintf(err, errlen, "database schema version %d is newer than this sessiond (%d)", v,
		         SCHEMA_VERSION);
		return -1;
	}
	if (exec("BEGIN IMMEDIATE", err, errlen) < 0)
		return -1;
	for (int from = v; from > 0 && from < SCHEMA_VERSION; from++)
		if (exec(migrations[from], err, errlen) < 0) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
	if (exec(schema_sql, err, errlen) < 0 || exec(views_sql, err, errlen) < 0) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return exec("COMMIT", err, errlen);
}

static char *db_path;

int store_reopen(char *err, size_t errlen)
{
	return db_path ? store_open(db_path, err, errlen) : -1;
}

/* The rows hold JIDs and client addresses: not for everyone to read. A
 * new file gets 0640 from sessiond's umask (027), and SQLite gives the -wal
 * and -shm files the database's mode; files left 0644 by an older version
 * are brought down to it here. */
static void restrict_mode(const char *path)
{
	char name[4096];
	static const char *const suffixes[] = { "", "-wal", "-shm" };
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		if (snprintf(name, sizeof name, "%s%s", path, suffixes[i]) >= (int)sizeof name)
			return;
		int fd = open(name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		if (fd < 0)
			continue;
		if (fstat(fd, &st) == 0 && (st.st_mode & 0027) && fchmod(fd, st.st_mode & 0750) < 0)
			log_warn("cannot make %s 0640: %s", name, strerror(errno));
		close(fd);
	}
}

int store_open(const char *path, char *err, size_t errlen)
{
	own_pid = (int)getpid();
	if (path != db_path) {
		free(db_path);
		db_path = strdup(path);
	}
	restrict_mode(path);
	/* NOFOLLOW: a symbolic link at the path is refused, not written through. */
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
	                    SQLITE_OPEN_NOFOLLOW, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
		store_close();
		return -1;
	}
	/* A short busy wait at start only; the loop itself never waits (see store_flush). */
	sqlite3_busy_timeout(db, 5000);
	if (exec("PRAGMA journal_mode=WAL", err, errlen) < 0 ||
	    exec("PRAGMA synchronous=NORMAL", err, errlen) < 0 || apply_schema(err, errlen) < 0 ||
	    sqlite3_prepare_v2(db, upsert_sql, -1, &upsert, NULL) != SQLITE_OK) {
		if (!err[0])
			snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		store_close();
		return -1;
	}
	return 0;
}

static size_t sid_hash(const char *sid)
{
	size_t h = 5381;
	for (const char *p = sid; *p; p++)
		h = h * 33 + (unsigned char)*p;
	return h;
}

/* The slot holding sid's row, or the empty slot where it would go. */
static size_t *slot_of(const char *sid)
{
	size_t i = sid_hash(sid) & (nslots - 1);
	while (slots[i] && strcmp(queue[slots[i] - 1].row.sid, sid) != 0)
		i = (i + 1) & (nslots - 1);
	return &slots[i];
}

static void slots_clear(void)
{
	if (slots)
		memset(slots, 0, nslots * sizeof *slots);
}

/* Room for rows rows: at least twice as many slots. -1 on OOM. */
static int slots_fit(size_t rows)
{
	if (nslots >= 2 * rows && nslots)
		return 0;
	size_t n = nslots ? nslots : 512;
	while (n < 2 * rows)
		n *= 2;
	size_t *t = calloc(n, sizeof *t);
	if (!t)
		return -1;
	free(slots);
	slots = t;
	nslots = n;
	for (size_t i = 0; i < queue_len; i++)
		*slot_of(queue[i].row.sid) = i + 1;
	return 0;
}

static void queued_free(struct queued *q)
{
	for (size_t i = 0; i < sizeof q->strings / sizeof q->strings[0]; i++)
		free(q->strings[i]);
}

int store_after_fork(char *err, size_t errlen)
{
	/* SQLite connections must not cross fork(): leave the parent's alone
	 * (closing it here could checkpoint or unlock under the parent). */
	db = NULL;
	upsert = NULL;
	for (size_t i = 0; i < queue_len; i++)
		queued_free(&queue[i]);
	queue_len = 0;
	slots_clear();
	return store_reopen(err, errlen);
}

void store_close(void)
{
	for (size_t i = 0; i < queue_len; i++)
		queued_free(&queue[i]);
	free(queue);
	queue = NULL;
	queue_len = queue_cap = 0;
	free(slots);
	slots = NULL;
	nslots = 0;
	sqlite3_finalize(upsert);
	upsert = NULL;
	sqlite3_close(db);
	db = NULL;
}

long store_recover(double now, double retention, void (*cb)(void *, const char *), void *ctx)
{
	sqlite3_stmt *st = NULL;
	long marked = -1;
	if (sqlite3_prepare_v2(db,
	                       "UPDATE sessions SET state='lost', end_condition='remote-connection-failed',"
	                       " ended_at=?1, held=0 WHERE state IN ('connecting','active')",
	                       -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_double(st, 1, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out;
	marked = sqlite3_changes(db);
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(db, "SELECT sid FROM sessions WHERE state='lost' AND ended_at >= ?1", -1,
	                       &st, NULL) != SQLITE_OK) {
		marked = -1;
		goto out;
	}
	sqlite3_bind_double(st, 1, now - retention);
	while (sqlite3_step(st) == SQLITE_ROW)
		cb(ctx, (const char *)sqlite3_column_text(st, 0));
out:
	if (marked < 0)
		log_error("recovering sessions from the database: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return marked;
}

static int copy(struct queued *q, int i, const char **field)
{
	if (!*field)
		return 0;
	q->strings[i] = strdup(*field);
	*field = q->strings[i];
	return *field ? 0 : -1;
}

/* Copies row (and its strings) into q. -1 on OOM, q then empty. */
static int queued_set(struct queued *q, const struct store_row *row)
{
	memset(q, 0, sizeof *q);
	q->row = *row;
	const char **fields[] = { &q->row.sid, &q->row.state, &q->row.jid, &q->row.to_domain,
	                          &q->row.route, &q->row.ver, &q->row.lang, &q->row.client_addr,
	                          &q->row.user_agent, &q->row.end_condition, &q->row.key };
	for (int i = 0; i < 11; i++)
		if (copy(q, i, fields[i]) < 0) {
			queued_free(q);
			memset(q, 0, sizeof *q);
			return -1;
		}
	return 0;
}

void store_set_max_queued(size_t n)
{
	max_queued = n ? n : 1;
}

int store_put(const struct store_row *row)
{
	if (slots_fit(queue_len + 1) < 0) {
		log_error("out of memory queueing a session row");
		return -1;
	}
	size_t *slot = slot_of(row->sid);
	if (*slot) { /* the newest state of this session wins */
		struct queued *q = &queue[*slot - 1], fresh;
		if (queued_set(&fresh, row) < 0) {
			log_error("out of memory queueing a session row");
			return -1;
		}
		queued_free(q);
		*q = fresh;
		return 0;
	}
	if (queue_len >= max_queued) {
		/* Sessions come and go during a long outage: past the bound, the
		 * rows of sessions not queued yet are lost (counted, logged when
		 * the database takes writes again) rather than memory. */
		if (!dropped++)
			log_warn("session rows: %zu queued and the database still refuses them; rows of "
			         "further sessions are dropped until it takes writes again", queue_len);
		return 0;
	}
	if (queue_len == queue_cap) {
		size_t cap = queue_cap ? queue_cap * 2 : 256;
		struct queued *n = realloc(queue, cap * sizeof *n);
		if (!n) {
			log_error("out of memory queueing a session row");
			return -1;
		}
		queue = n;
		queue_cap = cap;
	}
	if (queued_set(&queue[queue_len], row) < 0) {
		log_error("out of memory queueing a session row");
		return -1;
	}
	if (queue_len == 0)
		first_queued_at = mono_seconds();
	*slot = ++queue_len;
	return 0;
}

size_t store_queued(void) { return queue_len; }

static void bind_text(int i, const char *s)
{
	if (s)
		sqlite3_bind_text(upsert, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(upsert, i);
}

static int write_row(const struct store_row *r)
{
	sqlite3_reset(upsert);
	bind_text(1, r->sid);
	bind_text(2, r->state);
	sqlite3_bind_int64(upsert, 3, r->rid);
	bind_text(4, r->jid);
	bind_text(5, r->to_domain);
	bind_text(6, r->route);
	sqlite3_bind_int(upsert, 7, r->wait);
	sqlite3_bind_int(upsert, 8, r->hold);
	sqlite3_bind_int(upsert, 9, r->inactivity);
	sqlite3_bind_int(upsert, 10, r->requests);
	bind_text(11, r->ver);
	bind_text(12, r->lang);
	bind_text(13, r->client_addr);
	bind_text(14, r->user_agent);
	sqlite3_bind_int(upsert, 15, r->held);
	sqlite3_bind_double(upsert, 16, r->created_at);
	sqlite3_bind_double(upsert, 17, r->last_seen);
	if (r->ended_at > 0)
		sqlite3_bind_double(upsert, 18, r->ended_at);
	else
		sqlite3_bind_null(upsert, 18);
	bind_text(19, r->end_condition);
	sqlite3_bind_int(upsert, 20, own_pid);
	bind_text(21, r->key);
	bind_text(22, r->transport ? r->transport : "bosh");
	int rc = sqlite3_step(upsert);
	sqlite3_reset(upsert);
	return rc == SQLITE_DONE ? 0 : rc;
}

static void incident(int rc)
{
	if (!failing)
		log_warn("cannot write session rows (%s); %zu kept in memory, retrying",
		         sqlite3_errstr(rc), queue_len);
	failing = 1;
}

static int flush_queue(void);

int store_flush(void)
{
	if (!queue_len || !db)
		return 0;
	double t0 = mono_seconds();
	int rc = flush_queue();
	if (on_flush)
		on_flush(mono_seconds() - t0, rc < 0);
	if (rc == 0)
		first_queued_at = 0;
	return rc;
}

double store_lag_seconds(void)
{
	return queue_len && first_queued_at ? mono_seconds() - first_queued_at : 0;
}

static int flush_queue(void)
{
	/* Never wait for a lock here: the loop must go on; the next flush retries. */
	sqlite3_busy_timeout(db, 0);
	int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		incident(rc);
		return -1;
	}
	for (size_t i = 0; i < queue_len; i++) {
		if ((rc = write_row(&queue[i].row)) != 0) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			incident(rc);
			return -1;
		}
	}
	if ((rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		incident(rc);
		return -1;
	}
	if (failing)
		log_info("session rows written again (%zu caught up, %zu dropped)", queue_len, dropped);
	failing = 0;
	dropped = 0;
	for (size_t i = 0; i < queue_len; i++)
		queued_free(&queue[i]);
	queue_len = 0;
	slots_clear();
	if (queue_cap > 4096) { /* give back a burst's memory */
		free(queue);
		queue = NULL;
		queue_cap = 0;
		free(slots);
		slots = NULL;
		nslots = 0;
	}
	return 0;
}

void store_prune(double before)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "DELETE FROM sessions WHERE state IN ('ended','lost') AND ended_at < ?1",
	                       -1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_double(st, 1, before);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE && rc != SQLITE_BUSY)
		log_warn("pruning ended sessions: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
}

/* What store_open() needs, changing nothing: the file opens for writing
 * (or its folder takes a new one), it is a database, and its schema is one
 * this binary can migrate from. For `sessiond -t` and a restart's check. */
int store_check(const char *path, char *err, size_t errlen)
{
	sqlite3 *c = NULL;
	if (access(path, F_OK) < 0) {
		char dir[4096];
		const char *slash = strrchr(path, '/');
		snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + 1 : 1, slash ? path : ".");
		if (access(dir, W_OK | X_OK) < 0) {
			snprintf(err, errlen, "%s: cannot create the database in %s", path, dir);
			return -1;
		}
		return 0;
	}
	int rc = sqlite3_open_v2(path, &c, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	sqlite3_stmt *st = NULL;
	int v = -1;
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(c, 1000);
		rc = sqlite3_prepare_v2(c, "PRAGMA user_version", -1, &st, NULL);
	}
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		v = sqlite3_column_int(st, 0);
		rc = SQLITE_OK;
	}
	if (rc == SQLITE_OK && access(path, W_OK) < 0)
		snprintf(err, errlen, "%s: not writable", path);
	else if (rc != SQLITE_OK)
		snprintf(err, errlen, "%s: %s", path, c ? sqlite3_errmsg(c) : "out of memory");
	else if (v > SCHEMA_VERSION)
		snprintf(err, errlen, "%s: database schema version %d is newer than this sessiond (%d)",
		         path, v, SCHEMA_VERSION);
	else
		err[0] = 0;
	sqlite3_finalize(st);
	sqlite3_close(c);
	return err[0] ? -1 : 0;
}
