/* store.h - session rows in SQLite (sql/schema.sql, sql/views.sql).
 *
 * Writes never block the loop for long and never fsync per request: rows
 * are queued with store_put() and written together by store_flush() in
 * one transaction (WAL, synchronous=NORMAL). If the database is locked (an
 * admin's write transaction) or the disk is full, the rows stay queued,
 * the problem is logged once, and a later flush catches up.
 */
#ifndef BOSH_STORE_H
#define BOSH_STORE_H

#include <stddef.h>

struct store_row {
	const char *sid;
	const char *state;       /* connecting, active, ended, lost */
	long long rid;
	const char *jid;
	const char *to_domain;
	const char *route;
	int wait, hold, inactivity, requests;
	const char *ver, *lang, *client_addr, *user_agent;
	int held;
	double created_at, last_seen, ended_at; /* ended_at 0: NULL */
	const char *end_condition;
	const char *key;         /* key sequence (XEP-0124 §15), or NULL */
	const char *transport;   /* "bosh" (NULL) or "websocket": a static string, not copied */
};

/* Opens (creating) the database, applies the schema and views. */
int store_open(const char *path, char *err, size_t errlen);
void store_close(void);
/* In a child after fork(): a connection of its own to the same file. */
int store_after_fork(char *err, size_t errlen);
/* Whether store_open(path) would succeed, changing nothing (sessiond -t). */
int store_check(const char *path, char *err, size_t errlen);
/* Opens the file store_open() opened last (after a failed restart). */
int store_reopen(char *err, size_t errlen);

/* Marks sessions a previous run left open as lost. Calls cb for every lost
 * session whose row is younger than retention seconds. Returns the number
 * newly marked, or -1. */
long store_recover(double now, double retention, void (*cb)(void *ctx, const char *sid), void *ctx);

/* Queues a copy of row, replacing any row queued for the same sid (the
 * newest state wins), so the queue holds one row per session. -1 on out of
 * memory (logged). */
int store_put(const struct store_row *row);

/* Bounds the queue (while the database refuses writes): past n rows, a row
 * for a sid not queued yet is dropped, and the drop logged once. */
void store_set_max_queued(size_t n);

/* Writes the queue in one transaction. 0 when written (or nothing to do),
 * -1 when it must be retried later (kept queued). */
int store_flush(void);

size_t store_queued(void);
/* Called after each flush with its time, and whether it failed (metrics). */
void store_on_flush(void (*cb)(double seconds, int failed));
/* Seconds the oldest queued row has waited (0: nothing queued): the database's lag. */
double store_lag_seconds(void);

/* Deletes ended and lost rows older than before (Unix seconds). */
void store_prune(double before);

#endif
