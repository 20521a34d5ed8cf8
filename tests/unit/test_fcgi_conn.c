/* sessiond's FastCGI connections: requests one after another on a kept
 * connection, read in part, held and given up by the web server, answers
 * too big to write at once, oversized bodies, protocol errors. The session
 * layer is the stand-in of tests/fcgi_conn_harness.h. */
#define _GNU_SOURCE
#include "check.h"
#include "../fcgi_conn_harness.h"
#include "fcgi_listen.h"
#include "fcgi_rec.h"
#include "fdpark.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

/* Descriptors sent over a socket are refused with this errno while it is
 * not 0, as the kernel refuses them past the user's in-flight limit: the
 * park (fdpark.c) then cannot take a batch. */
static int refuse_rights;

ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
	if (refuse_rights && m->msg_controllen) {
		errno = refuse_rights;
		return -1;
	}
	return syscall(SYS_sendmsg, fd, m, flags);
}

/* Taking descriptors back fails with this errno while it is not 0. */
static int refuse_take;

ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
	if (refuse_take && m->msg_controllen) {
		errno = refuse_take;
		return -1;
	}
	return syscall(SYS_recvmsg, fd, m, flags);
}

static struct loop *l;
static struct config cfg;
static char sock_path[108];

static void pump(void)
{
	for (int i = 0; i < 5; i++)
		loop_run_once(l, 5);
}

static int client(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		return -1;
	pump();
	return fd;
}

/* One request: BEGIN (keep or not), a few parameters, the body, the ends. */
static size_t request(uint8_t *out, uint16_t id, int keep, const char *body, size_t blen)
{
	size_t o = 0;
	fcgi_header(out, FCGI_BEGIN_REQUEST, id, 8);
	o += 8;
	memset(out + o, 0, 8);
	out[o + 1] = FCGI_RESPONDER;
	out[o + 2] = keep ? FCGI_KEEP_CONN : 0;
	o += 8;
	static const char params[] = "\x0e\x04REQUEST_METHODPOST\x0b\x09REMOTE_ADDR127.0.0.1";
	fcgi_header(out + o, FCGI_PARAMS, id, sizeof params - 1);
	memcpy(out + o + 8, params, sizeof params - 1);
	o += 8 + sizeof params - 1;
	fcgi_header(out + o, FCGI_PARAMS, id, 0);
	o += 8;
	for (size_t done = 0; done < blen;) { /* records of 2000 bytes, as a web server might */
		size_t n = blen - done > 2000 ? 2000 : blen - done;
		fcgi_header(out + o, FCGI_STDIN, id, n);
		memcpy(out + o + 8, body + done, n);
		o += 8 + n;
		done += n;
	}
	fcgi_header(out + o, FCGI_STDIN, id, 0);
	return o + 8;
}

static size_t body_req(uint8_t *out, uint16_t id, int keep, char what)
{
	char body[128];
	int n = snprintf(body, sizeof body, "<body xmlns='http://jabber.org/protocol/httpbind' rid='1'>"
	                 "<%c/></body>", what);
	return request(out, id, keep, body, (size_t)n);
}

/* Reads one answer up to END_REQUEST: its STDOUT bytes, or -1 (closed first). */
static long answer(int fd)
{
	static uint8_t buf[1 << 17];
	size_t have = 0;
	long stdout_bytes = 0;
	for (int tries = 0; tries < 2000; tries++) {
		while (have >= 8) {
			size_t clen = (size_t)buf[4] << 8 | buf[5], rec = 8 + clen + buf[6];
			if (have < rec)
				break;
			int type = buf[1];
			memmove(buf, buf + rec, have - rec);
			have -= rec;
			if (type == FCGI_END_REQUEST)
				return stdout_bytes;
			stdout_bytes += (long)clen;
		}
		ssize_t n = recv(fd, buf + have, sizeof buf - have, MSG_DONTWAIT);
		if (n == 0)
			return -1;
		if (n > 0)
			have += (size_t)n;
		else
			loop_run_once(l, 5); /* one turn: returns as soon as there is work */
	}
	return -1;
}

static int is_closed(int fd)
{
	for (int i = 0; i < 20; i++) {
		char c;
		ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return 1;
		pump();
	}
	return 0;
}

static void test_kept_connection(void)
{
	uint8_t req[512];
	struct fcgi_conn_stats s0, s1;
	fcgi_conn_stats(&s0);
	int fd = client();
	for (uint16_t id = 1; id <= 3; id++) {
		size_t n = body_req(req, id, 1, 'a');
		CHECK(send(fd, req, n, 0) == (ssize_t)n);
		CHECK(answer(fd) > 0);
	}
	/* a byte at a time */
	size_t n = body_req(req, 4, 1, 'a');
	for (size_t i = 0; i < n; i++) {
		CHECK(send(fd, req + i, 1, 0) == 1);
		pump();
	}
	CHECK(answer(fd) > 0);
	fcgi_conn_stats(&s1);
	CHECK(s1.accepted - s0.accepted == 1 && s1.requests - s0.requests == 4);
	CHECK(!is_closed(fd));
	close(fd);
	pump();
	fcgi_conn_stats(&s1);
	CHECK(s1.open == s0.open);
	/* not kept: closed after the answer */
	fd = client();
	n = body_req(req, 1, 0, 'a');
	CHECK(send(fd, req, n, 0) == (ssize_t)n);
	CHECK(answer(fd) > 0);
	CHECK(is_closed(fd));
	close(fd);
}

static void test_held(void)
{
	uint8_t req[512];
	int fd = client();
	size_t n = body_req(req, 1, 1, 'h');
	CHECK(send(fd, req, n, 0) == (ssize_t)n);
	pump();
	CHECK(harness_nheld == 1);
	harness_answer_held();
	CHECK(answer(fd) > 0);
	/* held again, then the web server gives up on it */
	n = body_req(req, 2, 1, 'h');
	CHECK(send(fd, req, n, 0) == (ssize_t)n);
	pump();
	CHECK(harness_held[0].resp.kind != RESP_NONE);
	close(fd);
	pump();
	CHECK(harness_held[0].dropped == 1 && harness_held[0].resp.kind == RESP_NONE);
	harness_nheld = 0;
	/* dropped unanswered: closed */
	fd = client();
	n = body_req(req, 1, 1, 'd');
	CHECK(send(fd, req, n, 0) == (ssize_t)n);
	CHECK(is_closed(fd));
	close(fd);
}

static void test_big_answer_then_next_request(void)
{
	uint8_t req[512];
	int fd = client();
	int small = 4096;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	size_t n = body_req(req, 1, 1, 'b');
	CHECK(send(fd, req, n, 0) == (ssize_t)n);
	pump();
	CHECK(reply_pending_count() == 1); /* the socket could not take it all */
	long got = answer(fd);
	CHECK(got >= 1000000);
	pump();
	CHECK(reply_pending_count() == 0);
	n = body_req(req, 2, 1, 'a');
	CHECK(send(fd, req, n, 0) == (ssize_t)n);
	CHECK(answer(fd) > 0); /* the same connection, back in the loop */
	close(fd);
}

static void test_oversized_body(void)
{
	static uint8_t req[40000];
	static char big[20000];
	memset(big, 'x', sizeof big);
	int fd = client();
	int errors = harness_errors;
	size_t n = request(req, 1, 1, big, sizeof big);
	/* answered as soon as it is too big, while the rest still comes */
	CHECK(send(fd, req, 10000, 0) == 10000);
	CHECK(answer(fd) > 0);
	CHECK(harness_errors == errors + 1 && strstr(harness_last_error, "max_data_held"));
	/* the rest, and the next request right behind it in the same write */
	size_t m = n + body_req(req + n, 2, 1, 'a');
	CHECK(send(fd, req + 10000, m - 10000, 0) == (ssize_t)(m - 10000));
	CHECK(answer(fd) > 0);
	CHECK(!is_closed(fd));
	/* whole in one write: answered, the connection goes on */
	n = request(req, 3, 1, big, sizeof big);
	CHECK(send(fd, req, n, 0) == (ssize_t)n);
	CHECK(answer(fd) > 0);
	CHECK(harness_errors == errors + 2);
	n = body_req(req, 4, 1, 'a');
	CHECK(send(fd, req, n, 0) == (ssize_t)n);
	CHECK(answer(fd) > 0);
	close(fd);
	/* sent in small pieces, not kept: answered, closed after the body */
	fd = client();
	n = request(req, 1, 0, big, sizeof big);
	for (size_t i = 0; i < n; i += 1000) {
		size_t k = n - i < 1000 ? n - i : 1000;
		CHECK(send(fd, req + i, k, 0) == (ssize_t)k);
		pump();
	}
	CHECK(answer(fd) > 0);
	CHECK(is_closed(fd));
	close(fd);
}

static void test_protocol_errors_close(void)
{
	uint8_t req[512];
	size_t n = body_req(req, 1, 1, 'a');
	req[0] = 2; /* version */
	int fd = client();
	CHECK(send(fd, req, n, 0) == (ssize_t)n);
	CHECK(is_closed(fd));
	close(fd);
	/* two requests before the first one's answer */
	n = body_req(req, 1, 1, 'h');
	n += body_req(req + n, 2, 1, 'a');
	fd = client();
	CHECK(send(fd, req, n, 0) == (ssize_t)n);
	CHECK(is_closed(fd));
	close(fd);
	CHECK(harness_nheld == 0);
}

/* The connections fds[0..n) wait in the backlog past those taken so far
 * (since s0): each one closed (both its ends are ours here) makes room for
 * more, taken in the order they came; the last one is taken and answered,
 * none refused. Then the limit goes back to old and every client closes. */
static void rest_taken_as_room_frees(int *fds, int n, const struct fcgi_conn_stats *s0,
                                     const struct rlimit *old)
{
	uint8_t req[512];
	struct fcgi_conn_stats s1;
	fcgi_conn_stats(&s1);
	for (int k = 0; k < n - 1 && s1.accepted - s0->accepted < (uint64_t)n; k++) {
		uint64_t before = s1.accepted;
		close(fds[k]);
		fds[k] = -1;
		pump();
		fcgi_conn_stats(&s1);
		CHECK(s1.accepted > before);
	}
	CHECK(s1.accepted - s0->accepted == (uint64_t)n && fds[n - 1] >= 0);
	size_t len = body_req(req, 1, 1, 'a');
	CHECK(send(fds[n - 1], req, len, 0) == (ssize_t)len);
	CHECK(answer(fds[n - 1]) > 0);
	CHECK(setrlimit(RLIMIT_NOFILE, old) == 0);
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	pump();
}

/* Out of descriptors: the listener waits, and takes the next connection as
 * soon as one of ours closes, none refused. */
static void test_out_of_descriptors(void)
{
	int fds[4];
	struct fcgi_conn_stats s0, s1;
	fcgi_conn_stats(&s0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
	int top = 0;
	for (int i = 0; i < 4; i++) {
		fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		top = fds[i] > top ? fds[i] : top;
	}
	struct rlimit old, low;
	CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
	low = old;
	low.rlim_cur = (rlim_t)top + 1 + 3; /* room for three accepted connections */
	CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
	for (int i = 0; i < 4; i++) {
		CHECK(connect(fds[i], (struct sockaddr *)&sa, sizeof sa) == 0);
		pump();
	}
	fcgi_conn_stats(&s1);
	uint64_t taken = s1.accepted - s0.accepted;
	CHECK(taken >= 1 && taken < 4); /* the rest wait in the backlog */
	rest_taken_as_room_frees(fds, 4, &s0, &old);
}

/* A burst of answers leaves at most 1024 idle connections open: the rest
 * are closed right behind their answer. */
static void test_idle_connections_bounded(void)
{
	enum { N = 1100 };
	static int fds[N];
	uint8_t req[512];
	size_t n = body_req(req, 1, 1, 'a');
	struct fcgi_conn_stats st;
	int closed_after = 0;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
	for (int i = 0; i < N; i++) { /* no pump(): answer() turns the loop until the answer is there */
		fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		CHECK(fds[i] >= 0 && connect(fds[i], (struct sockaddr *)&sa, sizeof sa) == 0);
		CHECK(send(fds[i], req, n, 0) == (ssize_t)n);
		CHECK(answer(fds[i]) > 0);
	}
	fcgi_conn_stats(&st);
	CHECK(st.open <= 1024);
	for (int i = 0; i < N; i++) {
		char c;
		closed_after += recv(fds[i], &c, 1, MSG_DONTWAIT) == 0;
		close(fds[i]);
	}
	CHECK(closed_after == N - 1024);
	pump();
	fcgi_conn_stats(&st);
	CHECK(st.open == 0);
}

/* Client sockets fds[0..n), not connected yet, then an open file limit
 * whose budget leaves room for three accepted connections past them, and
 * the connections started on lfd under it; the limit before goes to *old. */
static void start_at_budget(int lfd, int *fds, int n, struct rlimit *old)
{
	enum { PARK_FDS = 2 + FDPARK_BATCH };
	int hold[PARK_FDS];
	for (int i = 0; i < PARK_FDS; i++) /* the park's own, below the clients */
		hold[i] = dup(0);
	int top = 0;
	for (int i = 0; i < n; i++) {
		fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		top = fds[i] > top ? fds[i] : top;
	}
	for (int i = 0; i < PARK_FDS; i++)
		close(hold[i]);
	long limit = top + 1 + 3;
	while (fcgi_listen_fd_budget(limit) < top + 4)
		limit++;
	struct rlimit low;
	getrlimit(RLIMIT_NOFILE, old);
	low = *old;
	low.rlim_cur = (rlim_t)limit;
	CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
	CHECK(fcgi_conn_start(l, lfd, &cfg) == 0);
}

/* Connects fds[0..n) to the listener on sock_path. */
static void connect_all(const int *fds, int n)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
	for (int i = 0; i < n; i++)
		CHECK(connect(fds[i], (struct sockaddr *)&sa, sizeof sa) == 0);
}

/* A listener on sock_path again (the one before was stopped). */
static int fresh_listener(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
	unlink(sock_path);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(lfd, 16) == 0);
	return lfd;
}

/* The descriptor budget: with connections waiting, taking them stops short
 * of the open file limit (some stay free for XMPP connections and the
 * database); the rest are accepted all the same and wait outside the
 * descriptor table (fdpark.h), the backlog empty, none refused; as ours
 * close they come back, oldest first, and are served. Runs last: it starts
 * the listener again, on lfd. */
static void test_descriptor_budget(int lfd)
{
	enum { N = 6 };
	int fds[N];
	struct fcgi_conn_stats s0, s1;
	struct rlimit old;
	start_at_budget(lfd, fds, N, &old);
	fcgi_conn_stats(&s0);
	connect_all(fds, N);
	pump();
	fcgi_conn_stats(&s1);
	CHECK(s1.accepted - s0.accepted == N); /* the backlog is empty */
	CHECK(s1.open == 3 && s1.waiting == N - 3); /* the third reached the budget */
	struct rlimit now;
	getrlimit(RLIMIT_NOFILE, &now);
	int spare = dup(0); /* the reserve is there */
	CHECK(spare >= 0 && (rlim_t)spare < now.rlim_cur);
	if (spare >= 0)
		close(spare);
	/* each waiting one gets a request before it is taken: none is lost */
	uint8_t req[512];
	for (int i = 3; i < N; i++) {
		size_t len = body_req(req, 1, 1, 'a');
		CHECK(send(fds[i], req, len, 0) == (ssize_t)len);
	}
	close(fds[0]); /* room below the budget: the waiting ones come back */
	fds[0] = -1;
	pump();
	fcgi_conn_stats(&s1);
	CHECK(s1.waiting == 0 && s1.requests - s0.requests == N - 3);
	for (int i = 3; i < N; i++)
		CHECK(answer(fds[i]) > 0);
	CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
	for (int i = 0; i < N; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	pump();
	fcgi_conn_stop();
}

/* While connections keep coming, the backlog is looked at every few
 * requests served, within a loop turn (a turn of requests that end
 * sessions is long enough for nginx to fill it); once such a look comes
 * back empty, requests are served without looking. */
static void test_backlog_looked_at_between_requests(void)
{
	enum { M = 12 }; /* within the test listener's backlog of 16 */
	int first, burst[M], late[3];
	struct fcgi_conn_stats s0, s1;
	first = client(); /* a look that found one: connections are coming */
	fcgi_conn_stats(&s0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
	for (int i = 0; i < M; i++) {
		burst[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		CHECK(connect(burst[i], (struct sockaddr *)&sa, sizeof sa) == 0);
	}
	for (int i = 0; i < 15; i++)
		fcgi_listen_served();
	fcgi_conn_stats(&s1);
	CHECK(s1.accepted == s0.accepted); /* not yet */
	fcgi_listen_served();
	fcgi_conn_stats(&s1);
	CHECK(s1.accepted == s0.accepted + M); /* the sixteenth request: taken without a turn */
	for (int i = 0; i < 16; i++) /* a look that finds none ends the burst */
		fcgi_listen_served();
	for (int i = 0; i < 3; i++) {
		late[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		CHECK(connect(late[i], (struct sockaddr *)&sa, sizeof sa) == 0);
	}
	for (int i = 0; i < 32; i++)
		fcgi_listen_served();
	fcgi_conn_stats(&s1);
	CHECK(s1.accepted == s0.accepted + M); /* no looks between requests now */
	pump(); /* the loop sees them */
	fcgi_conn_stats(&s1);
	CHECK(s1.accepted == s0.accepted + M + 3);
	close(first);
	for (int i = 0; i < M; i++)
		close(burst[i]);
	for (int i = 0; i < 3; i++)
		close(late[i]);
	pump();
}

/* After descriptors ran short, answered connections are kept again as
 * soon as there is room, not only after the next accept: a connection
 * taken high up is closed behind its answer, and once the descriptors
 * below are free again a kept one answered next stays open. Starts the
 * listener again on a socket of its own. */
static void test_kept_again_once_descriptors_free(void)
{
	enum { LIMIT = 400, HIGH = 300 }; /* a budget of 336: short from 272 */
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
	unlink(sock_path);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(lfd, 16) == 0);
	struct rlimit old, low;
	getrlimit(RLIMIT_NOFILE, &old);
	low = old;
	low.rlim_cur = LIMIT;
	CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
	CHECK(fcgi_conn_start(l, lfd, &cfg) == 0);
	uint8_t req[512];
	size_t len = body_req(req, 1, 1, 'a');
	int kept = client();
	CHECK(send(kept, req, len, 0) == (ssize_t)len && answer(kept) > 0 && !is_closed(kept));
	static int fill[LIMIT];
	int nfill = 0, fd;
	while ((fd = dup(0)) >= 0 && fd < HIGH) /* what else the process has open */
		fill[nfill++] = fd;
	if (fd >= 0)
		fill[nfill++] = fd;
	int high = client(); /* taken near the budget */
	CHECK(send(high, req, len, 0) == (ssize_t)len && answer(high) > 0 && is_closed(high));
	close(high);
	while (nfill > 0)
		close(fill[--nfill]);
	CHECK(send(kept, req, len, 0) == (ssize_t)len && answer(kept) > 0);
	CHECK(!is_closed(kept)); /* room again: kept, without another accept first */
	close(kept);
	CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
	pump();
	fcgi_conn_stop();
}

/* The park refusing a batch (ETOOMANYREFS): the connections past the
 * budget are taken all the same, within the reserve, and served; accepting
 * pauses, leaving later ones in the backlog, until ours close. */
static void test_park_refused(void)
{
	enum { N = 6, LATE = 2 };
	int all[N + LATE], *fds = all, *late = all + N;
	struct fcgi_conn_stats s0, s1;
	struct rlimit old;
	start_at_budget(fresh_listener(), all, N + LATE, &old);
	fcgi_conn_stats(&s0);
	refuse_rights = ETOOMANYREFS;
	connect_all(fds, N);
	pump();
	fcgi_conn_stats(&s1);
	CHECK(s1.accepted - s0.accepted == N && s1.open == N && s1.waiting == 0); /* taken past the budget */
	connect_all(late, LATE);
	pump();
	fcgi_conn_stats(&s1);
	CHECK(s1.accepted - s0.accepted == N); /* paused: the late ones wait in the backlog */
	uint8_t req[512];
	size_t len = body_req(req, 1, 1, 'a');
	for (int i = 3; i < N; i++) /* served, though past the budget */
		CHECK(send(fds[i], req, len, 0) == (ssize_t)len && answer(fds[i]) > 0);
	refuse_rights = 0;
	for (int i = 0; i < N; i++) { /* ours close: accepting goes on */
		close(fds[i]);
		fds[i] = -1;
	}
	for (int i = 0; i < 10; i++)
		pump();
	fcgi_conn_stats(&s1);
	CHECK(s1.accepted - s0.accepted == N + LATE);
	for (int i = 0; i < LATE; i++)
		CHECK(send(late[i], req, len, 0) == (ssize_t)len && answer(late[i]) > 0);
	CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
	for (int i = 0; i < LATE; i++)
		close(late[i]);
	pump();
	fcgi_conn_stop();
}

/* Taking a batch back from the park fails (recvmsg: ENOMEM): those
 * waiting are closed, which their clients see at once (the web server
 * answers them 502 rather than waiting for ever), and the next connection
 * is served. */
static void test_park_lost(void)
{
	enum { N = 6 };
	int fds[N];
	struct fcgi_conn_stats s0, s1;
	struct rlimit old;
	start_at_budget(fresh_listener(), fds, N, &old);
	fcgi_conn_stats(&s0);
	connect_all(fds, N);
	pump();
	fcgi_conn_stats(&s1);
	CHECK(s1.open == 3 && s1.waiting == N - 3);
	refuse_take = ENOMEM;
	close(fds[0]); /* room: the park is asked for its batch, and fails */
	fds[0] = -1;
	pump();
	refuse_take = 0;
	fcgi_conn_stats(&s1);
	CHECK(s1.waiting == 0);
	for (int i = 3; i < N; i++)
		CHECK(is_closed(fds[i]));
	uint8_t req[512];
	size_t len = body_req(req, 1, 1, 'a');
	int next = client(); /* served as ever */
	CHECK(next >= 0 && send(next, req, len, 0) == (ssize_t)len && answer(next) > 0);
	CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
	close(next);
	for (int i = 0; i < N; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	pump();
	fcgi_conn_stop();
}

int main(void)
{
	harness_config(&cfg);
	l = loop_new();
	reply_init(l, &cfg);
	snprintf(sock_path, sizeof sock_path, "/tmp/test-fcgi-conn-%d.sock", (int)getpid());
	unlink(sock_path);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 16) < 0 ||
	    fcgi_conn_start(l, lfd, &cfg) < 0) {
		perror("listener");
		return 1;
	}
	test_kept_connection();
	test_held();
	test_big_answer_then_next_request();
	test_oversized_body();
	test_protocol_errors_close();
	test_out_of_descriptors();
	test_idle_connections_bounded();
	test_backlog_looked_at_between_requests();
	fcgi_conn_stop();
	pump();
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unlink(sock_path);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 16) < 0) {
		perror("listener");
		return 1;
	}
	test_descriptor_budget(lfd);
	pump();
	test_kept_again_once_descriptors_free();
	pump();
	test_park_refused();
	pump();
	test_park_lost();
	pump();
	loop_free(l);
	unlink(sock_path);
	return check_summary("fcgi_conn");
}
