/* The session rows' queue while the database refuses writes: one row per
 * session (the newest state wins), and bounded. */
#define _GNU_SOURCE
#include "check.h"
#include "log.h"
#include "store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void put(const char *sid, long long rid, const char *state)
{
	struct store_row r = {
		.sid = sid, .state = state, .rid = rid, .to_domain = "example.org", .wait = 60, .hold = 1,
		.inactivity = 70, .requests = 2, .created_at = 1.0, .last_seen = 2.0,
		.ended_at = state[0] == 'e' ? 3.0 : 0, .end_condition = state[0] == 'e' ? "terminate" : NULL,
	};
	CHECK(store_put(&r) == 0);
}

static long long db_rid(sqlite3 *db, const char *sid, char *state, size_t cap)
{
	sqlite3_stmt *st;
	long long rid = -1;
	if (sqlite3_prepare_v2(db, "SELECT rid, state FROM sessions WHERE sid=?1", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, sid, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		rid = sqlite3_column_int64(st, 0);
		snprintf(state, cap, "%s", (const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
	return rid;
}

int main(void)
{
	char dir[] = "/tmp/test_store.XXXXXX", path[64], err[256] = "", state[16] = "";
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof path, "%s/s.db", dir);
	log_open("test_store", "-", LOG_ERROR);
	CHECK(store_open(path, err, sizeof err) == 0);

	/* An admin's write lock: store_flush() cannot write. */
	sqlite3 *admin;
	CHECK(sqlite3_open(path, &admin) == SQLITE_OK);
	CHECK(sqlite3_exec(admin, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);

	for (int i = 1; i <= 1000; i++) {
		put("0123456789abcdef0123456789abcdef", i, "active");
		CHECK(store_flush() == -1);
	}
	CHECK(store_queued() == 1); /* one row per session, however often it changed */
	put("0123456789abcdef0123456789abcdef", 1001, "ended");
	char sid[33];
	for (int i = 0; i < 300; i++) { /* sessions that start and end during the outage */
		snprintf(sid, sizeof sid, "%032x", i);
		put(sid, 5, "active");
		put(sid, 6, "ended");
	}
	CHECK(store_queued() == 301);

	store_set_max_queued(310); /* bounded: rows of further sessions are dropped */
	for (int i = 300; i < 400; i++) {
		snprintf(sid, sizeof sid, "%032x", i);
		put(sid, 5, "active");
	}
	CHECK(store_queued() == 310);
	put("0123456789abcdef0123456789abcdef", 1002, "ended"); /* a queued one is still updated */
	CHECK(store_queued() == 310);

	CHECK(sqlite3_exec(admin, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
	CHECK(store_flush() == 0);
	CHECK(store_queued() == 0);
	CHECK(db_rid(admin, "0123456789abcdef0123456789abcdef", state, sizeof state) == 1002);
	CHECK_STR(state, "ended");
	snprintf(sid, sizeof sid, "%032x", 7);
	CHECK(db_rid(admin, sid, state, sizeof state) == 6);
	CHECK_STR(state, "ended");
	snprintf(sid, sizeof sid, "%032x", 399);
	CHECK(db_rid(admin, sid, state, sizeof state) == -1);

	/* After the incident, rows go out as before: new sids queue again. */
	put(sid, 9, "active");
	CHECK(store_queued() == 1);
	CHECK(store_flush() == 0);
	CHECK(db_rid(admin, sid, state, sizeof state) == 9);

	sqlite3_close(admin);
	store_close();
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return check_summary("store");
}
