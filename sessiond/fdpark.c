#define _GNU_SOURCE
#include "fdpark.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Keeps FDPARK_BATCH descriptors in hand; short of them where the limit
 * says no (fdpark_take then waits until they can be had). */
static void top_up_spares(struct fdpark *p)
{
	while (p->nspare < FDPARK_BATCH) {
		int fd = fcntl(p->out, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return;
		p->spare[p->nspare++] = fd;
	}
}

static void close_spares(struct fdpark *p)
{
	while (p->nspare > 0)
		close(p->spare[--p->nspare]);
}

void fdpark_adopt(struct fdpark *p, int in, int out, size_t count)
{
	*p = (struct fdpark){ .in = in, .out = out, .count = count };
	top_up_spares(p);
}

int fdpark_open(struct fdpark *p)
{
	int sv[2];
	/* A stream socket: its queue is bounded by the send buffer (a message
	 * of FDPARK_BATCH descriptors costs a few hundred bytes of it), not by
	 * the ten datagrams a datagram socketpair allows. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
		*p = (struct fdpark){ .in = -1, .out = -1 };
		return -1;
	}
	int want = 4 << 20; /* as much room as net.core.wmem_max allows; the default if none */
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
	fdpark_adopt(p, sv[0], sv[1], 0);
	return 0;
}

void fdpark_close(struct fdpark *p)
{
	close_spares(p);
	if (p->in >= 0)
		close(p->in);
	if (p->out >= 0)
		close(p->out);
	*p = (struct fdpark){ .in = -1, .out = -1 };
}

union fd_cmsg {
	struct cmsghdr h;
	char buf[CMSG_SPACE(FDPARK_BATCH * sizeof(int))];
};

int fdpark_put(struct fdpark *p, const int *fds, int n)
{
	if (p->in < 0 || n < 1 || n > FDPARK_BATCH) {
		errno = EINVAL;
		return -1;
	}
	char byte = 0;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union fd_cmsg u;
	memset(&u, 0, sizeof u);
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
		            .msg_controllen = CMSG_SPACE(n * sizeof(int)) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(n * sizeof(int));
	memcpy(CMSG_DATA(c), fds, n * sizeof(int));
	ssize_t w;
	do
		w = sendmsg(p->in, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w != 1)
		return -1;
	for (int i = 0; i < n; i++)
		close(fds[i]);
	p->count += (size_t)n;
	return 0;
}

int fdpark_take(struct fdpark *p, int *fds)
{
	if (p->out < 0 || p->count == 0)
		return 0;
	top_up_spares(p);
	if (p->nspare < FDPARK_BATCH) {
		errno = EMFILE;
		return -1;
	}
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union fd_cmsg u;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
		            .msg_controllen = sizeof u.buf };
	close_spares(p); /* the batch lands where they were */
	ssize_t r;
	do
		r = recvmsg(p->out, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	int saved = errno;
	int n = 0;
	if (r == 1)
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
				if (k > FDPARK_BATCH - n)
					k = FDPARK_BATCH - n;
				memcpy(fds + n, CMSG_DATA(c), (size_t)k * sizeof(int));
				n += k;
			}
	top_up_spares(p);
	if (r < 0 && saved == EAGAIN) {
		p->count = 0; /* nothing waits after all */
		return 0;
	}
	if (r != 1) {
		errno = r == 0 ? EPIPE : saved;
		return -1;
	}
	p->count = p->count >= (size_t)n ? p->count - (size_t)n : 0;
	return n;
}
