/* Taking sessions over from a restart's snapshot: a session that cannot be
 * restored is lost alone (its descriptors closed, its next request told
 * remote-connection-failed); the restore itself never fails for it.
 *
 * The snapshot is written byte by byte here, as the predecessor lays it out
 * (snapshot.h, sessions_snapshot), not with the writer under test. */
#define _GNU_SOURCE
#include <limits.h>
#include "check.h"
#include "config.h"
#include "frame.h"
#include "log.h"
#include "loop.h"
#include "reply.h"
#include "session.h"
#include "snapshot.h"
#include "store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static const char SID_A[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"; /* a record the successor cannot read */
static const char SID_B[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"; /* left out by the writer: sid only */
static const char SID_L[] = "cccccccccccccccccccccccccccccccc"; /* lost in an earlier run */

struct out {
	char *data;
	size_t len;
};

static void put(struct out *o, const void *p, size_t n)
{
	o->data = realloc(o->data, o->len + n);
	if (!o->data)
		abort();
	memcpy(o->data + o->len, p, n);
	o->len += n;
}

static void u64(struct out *o, uint64_t v) { put(o, &v, sizeof v); }

static void str(struct out *o, const char *s)
{
	u64(o, strlen(s));
	put(o, s, strlen(s));
}

/* [length][sid][n fds][fds][body] */
static void record(struct out *o, const char *sid, int fd, const char *body)
{
	struct out r = { 0 };
	str(&r, sid);
	u64(&r, fd >= 0 ? 1 : 0);
	if (fd >= 0)
		u64(&r, (uint64_t)(int64_t)fd);
	if (body)
		put(&r, body, strlen(body));
	u64(o, r.len);
	put(o, r.data, r.len);
	free(r.data);
}

/* Whether the answer sessiond writes for a request on sid (framed for a
 * CGI handler: binary around the body) names condition. */
static int answered(const char *sid, const char *condition)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	struct frame_request fr = { .method = "POST", .client = "127.0.0.1", .nattrs = 2 };
	fr.attrs[0] = (struct frame_attr){ .name = "sid", .value = sid };
	fr.attrs[1] = (struct frame_attr){ .name = "rid", .value = "1000" };
	struct responder resp = { .fd = sv[0], .kind = 2 /* RESP_CGI */ };
	sessions_handle(&resp, &fr);
	char buf[8192], want[128];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof buf && (n = read(sv[1], buf + len, sizeof buf - len)) > 0)
		len += (size_t)n;
	close(sv[1]);
	snprintf(want, sizeof want, "condition='%s'", condition);
	return memmem(buf, len, want, strlen(want)) != NULL;
}

int main(void)
{
	char dir[] = "/tmp/test_restore.XXXXXX", db[64], err[256];
	if (!mkdtemp(dir))
		abort();
	snprintf(db, sizeof db, "%s/sessions.db", dir);
	static struct config cfg;
	config_defaults(&cfg);
	log_open("test_restore", "/dev/null", LOG_ERROR);
	struct loop *l = loop_new();
	CHECK(l && store_open(db, err, sizeof err) == 0);
	reply_init(l, &cfg);
	CHECK(sessions_init(l, &cfg) == 0);

	int held[2]; /* a held request's web server connection, named by A's record */
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, held) == 0);
	struct out o = { 0 };
	u64(&o, 1); /* lost in an earlier run */
	str(&o, SID_L);
	u64(&o, 0); /* draining elsewhere: none */
	u64(&o, 3); /* three records, the last one cut off */
	record(&o, SID_A, held[0], "garbage, not a session");
	record(&o, SID_B, -1, NULL);
	u64(&o, 1000);
	put(&o, "short", 5);

	struct snap_r r = { .data = o.data, .len = o.len };
	long n = sessions_restore(&r);
	CHECK(n == 0); /* nothing taken over, and no failure of the whole restore */
	char c;
	CHECK(recv(held[1], &c, 1, MSG_DONTWAIT) == 0); /* A's descriptor was closed */
	CHECK(answered(SID_A, "remote-connection-failed"));
	CHECK(answered(SID_B, "remote-connection-failed"));
	CHECK(answered(SID_L, "remote-connection-failed"));
	CHECK(answered("dddddddddddddddddddddddddddddddd", "item-not-found"));
	close(held[1]);
	free(o.data);
	store_close();
	unlink(db);
	char wal[80];
	snprintf(wal, sizeof wal, "%s-wal", db);
	unlink(wal);
	snprintf(wal, sizeof wal, "%s-shm", db);
	unlink(wal);
	rmdir(dir);
	return check_summary("restore");
}
