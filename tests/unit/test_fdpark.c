/* The park (fdpark.h): descriptors kept outside the descriptor table come
 * back in the order they went, each still the same connection; a batch is
 * never taken without the spares to land it in; closing the park closes
 * what waits in it. */
#define _GNU_SOURCE
#include "check.h"
#include "fdpark.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

enum { N = 40 };
static int near[N], far[N]; /* near ends are parked; far ends stay here */

static void make_pairs(void)
{
	for (int i = 0; i < N; i++) {
		int sv[2];
		CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
		near[i] = sv[0];
		far[i] = sv[1];
	}
}

/* Which pair fd belongs to: a byte written at each far end in turn names
 * it (one sent to another pair waits there, and names that one as well). */
static int which(int fd)
{
	for (int i = 0; i < N; i++) {
		unsigned char b = (unsigned char)i, got;
		if (far[i] >= 0 && send(far[i], &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1 &&
		    recv(fd, &got, 1, MSG_DONTWAIT) == 1)
			return got == b ? i : -1;
	}
	return -1;
}

static void test_order_kept(void)
{
	struct fdpark p;
	CHECK(fdpark_open(&p) == 0 && p.nspare == FDPARK_BATCH);
	make_pairs();
	/* batches of 16, 16 and 8: each near end is closed once parked */
	for (int i = 0; i < N; i += FDPARK_BATCH) {
		int n = N - i < FDPARK_BATCH ? N - i : FDPARK_BATCH;
		CHECK(fdpark_put(&p, near + i, n) == 0);
		for (int k = 0; k < n; k++) {
			CHECK(fcntl(near[i + k], F_GETFD) < 0 && errno == EBADF);
			near[i + k] = -1;
		}
	}
	CHECK(p.count == N);
	int next = 0, fds[FDPARK_BATCH], n;
	while ((n = fdpark_take(&p, fds)) > 0)
		for (int k = 0; k < n; k++) {
			CHECK(which(fds[k]) == next);
			next++;
			close(fds[k]);
		}
	CHECK(n == 0 && next == N && p.count == 0);
	for (int i = 0; i < N; i++) { /* each one closed when taken and closed */
		char c;
		CHECK(recv(far[i], &c, 1, MSG_DONTWAIT) == 0);
		close(far[i]);
	}
	fdpark_close(&p);
}

/* Without FDPARK_BATCH descriptors to land a batch in, nothing is taken
 * (the kernel would close what it had no room for); once there is room,
 * the batch comes back whole. */
static void test_no_room_nothing_lost(void)
{
	struct fdpark p;
	CHECK(fdpark_open(&p) == 0);
	make_pairs();
	CHECK(fdpark_put(&p, near, 3) == 0 && fdpark_put(&p, near + 3, 3) == 0);
	for (int i = 6; i < N; i++)
		close(near[i]);
	/* a full table: every descriptor below a lowered limit in use */
	struct rlimit old, low;
	getrlimit(RLIMIT_NOFILE, &old);
	low = old;
	low.rlim_cur = (rlim_t)fcntl(0, F_DUPFD_CLOEXEC, 0) + 1;
	close((int)low.rlim_cur - 1);
	CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
	int fill[N], nfill = 0;
	while (nfill < N && (fill[nfill] = dup(0)) >= 0)
		nfill++;
	CHECK(dup(0) < 0 && errno == EMFILE);
	int a[FDPARK_BATCH], b[FDPARK_BATCH];
	CHECK(fdpark_take(&p, a) == 3); /* lands in three of the spares */
	CHECK(p.nspare == FDPARK_BATCH - 3);
	CHECK(fdpark_take(&p, b) < 0 && errno == EMFILE && p.count == 3); /* not safe now */
	for (int k = 0; k < 3; k++) {
		CHECK(which(a[k]) == k);
		close(a[k]);
	}
	CHECK(fdpark_take(&p, b) == 3 && p.count == 0); /* room again */
	for (int k = 0; k < 3; k++) {
		CHECK(which(b[k]) == 3 + k);
		close(b[k]);
	}
	CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
	while (nfill > 0)
		close(fill[--nfill]);
	/* what still waits when the park closes is closed with it */
	make_pairs();
	CHECK(fdpark_put(&p, near, 2) == 0);
	fdpark_close(&p);
	for (int i = 0; i < N; i++) {
		char c;
		if (i < 2)
			CHECK(recv(far[i], &c, 1, MSG_DONTWAIT) == 0);
		else
			close(near[i]);
		close(far[i]);
	}
	CHECK(fdpark_put(&p, far, 1) < 0); /* a closed park refuses */
}

/* A full queue refuses a batch whole: nothing of it parked, every
 * descriptor still open and the caller's. */
static void test_full_queue_refuses(void)
{
	struct fdpark p;
	CHECK(fdpark_open(&p) == 0);
	int small = 1; /* the kernel's minimum: a few messages */
	CHECK(setsockopt(p.in, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
	make_pairs();
	int refused = -1;
	size_t parked = 0;
	for (int i = 0; i < N; i++) {
		if (fdpark_put(&p, near + i, 1) < 0) {
			refused = i;
			break;
		}
		parked++;
		near[i] = -1;
	}
	CHECK(refused > 0 && errno == EAGAIN && p.count == parked);
	if (refused > 0)
		CHECK(fcntl(near[refused], F_GETFD) >= 0 && which(near[refused]) == refused);
	int fds[FDPARK_BATCH], n, next = 0;
	while ((n = fdpark_take(&p, fds)) > 0)
		for (int k = 0; k < n; k++, next++) {
			CHECK(which(fds[k]) == next);
			close(fds[k]);
		}
	CHECK((size_t)next == parked);
	for (int i = 0; i < N; i++) {
		if (near[i] >= 0)
			close(near[i]);
		close(far[i]);
	}
	fdpark_close(&p);
}

int main(void)
{
	test_order_kept();
	test_no_room_nothing_lost();
	test_full_queue_refuses();
	return check_summary("fdpark");
}
