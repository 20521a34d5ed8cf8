#define _GNU_SOURCE
#include "front.h"
#include "config.h"
#include "control.h"
#include "frame.h"
#include "log.h"
#include "reply.h"
#include "session.h"
#include "snapshot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define FRONT_MAX_CONNS 1024

struct conn {
	struct io io;
	int dead;
	uid_t uid;   /* of the process at the other end */
	int trusted; /* its process runs as our own user or root: hand-over frames too */
	int channel; /* from the successor of a restart: [kind byte][frame] */
	struct conn *prev, *next; /* every live connection, for a graceful restart */
};

static struct loop *loop;
static const struct config *front_cfg;
static struct io listener;
static uint8_t *msg_buf; /* one frame; the loop is single-threaded */
static int nconns;
static struct conn *conns;
static struct io drainer = { .fd = -1 }; /* to the process draining TLS sessions */
static uid_t peers[FRONT_MAX_PEERS]; /* handler_users, besides our own user and root */
static size_t npeers;

enum { FWD_FCGI, FWD_CGI };

static void conn_free(void *p) { free(p); }

static void conn_close(struct conn *c, int close_fd)
{
	if (c->dead)
		return;
	c->dead = 1;
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	loop_del(loop, &c->io);
	if (close_fd)
		close(c->io.fd);
	nconns--;
	loop_defer_free(loop, c, conn_free);
}

/* Receives one message and at most one descriptor; extra ones are closed. */
static ssize_t recv_frame(int fd, int *passed)
{
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = msg_buf, .iov_len = FRAME_MAX + 1 }; /* + a forwarded kind byte */
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
	                      .msg_controllen = sizeof ctl.buf };
	*passed = -1;
	ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return n;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int f;
			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
			if (*passed < 0)
				*passed = f;
			else
				close(f);
		}
	}
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		log_warn("handler sent a truncated frame or too many descriptors; dropped");
		if (*passed >= 0)
			close(*passed);
		*passed = -1;
		errno = EMSGSIZE;
		return -1;
	}
	return n;
}

static void answer_method(struct responder *resp, const char *method)
{
	static const char body[] = "Only POST is served here.\n";
	struct reply r = { .status = 405, .content_type = "text/plain; charset=utf-8",
	                   .headers = "Allow: POST, OPTIONS\r\n", .body = body, .body_len = sizeof body - 1 };
	log_info("%s request refused (405)", method);
	reply_send(resp, &r);
}

/* The GET answer form a handler asked for; checked again here, since a
 * handler is trusted no more than the network it read from. */
static int wrap_ok(const char *w)
{
	if (strcmp(w, "xml") == 0 || strcmp(w, "script") == 0)
		return 1;
	if (strncmp(w, "jsonp:", 6) != 0 || !w[6] || strlen(w + 6) > 64)
		return 0;
	for (const char *p = w + 6; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '_' || *p == '$' || *p == '.'))
			return 0;
	return 1;
}

static int send_to_drainer(uint8_t kind, size_t n, int way_back);

/* A request for a session the drainer has: the frame and the way back go
 * there as they are. */
static int forward(struct conn *c, size_t n, int passed, const struct frame_request *fr)
{
	if (drainer.fd < 0 || !sessions_draining(frame_attr(fr, "sid")))
		return 0;
	int cgi = !(fr->flags & FRAME_F_FD_PASSED);
	send_to_drainer(cgi ? FWD_CGI : FWD_FCGI, n, cgi ? c->io.fd : passed);
	if (cgi)
		conn_close(c, 1);
	/* FastCGI: the drainer has its own copy now. CGI: the handler's
	 * connection is the way back; anything attached to its frame is not
	 * ours to keep. */
	if (passed >= 0)
		close(passed);
	return 1;
}

/* The frame in msg_buf[0..n) and its way back go to the draining process. */
static int send_to_drainer(uint8_t kind, size_t n, int way_back)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov[2] = { { &kind, 1 }, { msg_buf, n } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2, .msg_control = ctl.buf,
	                      .msg_controllen = sizeof ctl.buf };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &way_back, sizeof(int));
	if (sendmsg(drainer.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		log_warn("forwarding a request to the draining process failed: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* boshctl: only from root and sessiond's own user, with a way back. */
static void control_frame(struct conn *c, const struct frame_request *fr, int passed)
{
	if (!c->trusted || c->channel || passed < 0 || strcmp(fr->method, "CONTROL") != 0) {
		log_limited(LOG_WARN, "refused peers",
		            "control socket: command '%.32s' from uid %u refused (only sessiond's own user and "
		            "root may send one, with a descriptor for the answer)", fr->command, (unsigned)c->uid);
		if (passed >= 0)
			close(passed);
		return;
	}
	control_command(fr, passed, c->uid);
}

static void dispatch(struct conn *c, size_t n, int passed)
{
	struct frame_request fr;
	char err[128];
	const uint8_t *frame = msg_buf;
	int cgi_from_channel = 0;
	if (c->channel) { /* forwarded: the kind byte, then the handler's frame */
		if (n < 1 || passed < 0) {
			if (passed >= 0)
				close(passed);
			return;
		}
		cgi_from_channel = msg_buf[0] == FWD_CGI;
		frame++;
		n--;
	}
	if (frame_decode_request(frame, n, &fr, err, sizeof err) < 0) {
		log_limited(LOG_WARN, "bad frames", "bad frame from a handler (%s); closing its connection", err);
		if (passed >= 0)
			close(passed);
		conn_close(c, 1);
		return;
	}
	/* A hand-over makes sessiond answer a session's next request at once,
	 * whoever sends it: only sessiond's own user (bosh-prebind) and root. */
	if ((fr.flags & FRAME_F_HANDOVER) && !c->trusted) {
		log_limited(LOG_WARN, "refused peers",
		            "control socket: hand-over frame from uid %u refused (only sessiond's own user "
		            "and root may send one); closing its connection", (unsigned)c->uid);
		if (passed >= 0)
			close(passed);
		conn_close(c, 1);
		return;
	}
	if (fr.command) {
		control_frame(c, &fr, passed);
		return;
	}
	if (!c->channel && forward(c, n, passed, &fr))
		return;
	struct responder resp;
	if (cgi_from_channel) {
		resp = (struct responder){ .fd = passed, .kind = RESP_CGI };
	} else if (fr.flags & FRAME_F_FD_PASSED) {
		if (passed < 0) {
			log_warn("handler frame says a connection is attached but none came; dropped");
			return;
		}
		/* Left blocking: every send and recv on it says MSG_DONTWAIT, which
		 * saves two fcntl calls per request. */
		resp = (struct responder){ .fd = passed, .fcgi_id = fr.fcgi_id, .kind = RESP_FCGI };
		if ((fr.flags & FRAME_F_KEEP_CONN) && !c->channel)
			reply_keep_conn(&resp);
	} else {
		if (passed >= 0)
			close(passed);
		/* Plain CGI: this connection is the way back; the session layer owns it now. */
		resp = (struct responder){ .fd = c->io.fd, .kind = RESP_CGI };
		conn_close(c, 0);
	}
	front_route(&resp, &fr);
}

void front_route(struct responder *resp, const struct frame_request *fr)
{
	resp->cors = reply_cors(fr->origin);
	int get = strcmp(fr->method, "GET") == 0 && fr->wrap && wrap_ok(fr->wrap) && front_cfg->allow_get;
	if (get && strcmp(fr->wrap, "xml") != 0 && !(resp->wrap = strdup(fr->wrap))) {
		log_error("out of memory; GET request dropped");
		reply_drop(resp);
		return;
	}
	if (fr->page && strcmp(fr->method, "GET") == 0)
		control_page(resp, fr->page);
	else if (fr->page)
		answer_method(resp, fr->method);
	else if (strcmp(fr->method, "POST") == 0 || get)
		sessions_handle(resp, fr);
	else if (strcmp(fr->method, "OPTIONS") == 0)
		reply_preflight(resp); /* CORS headers if the origin is allowed, else none */
	else
		answer_method(resp, fr->method);
}

int front_forward(int fd, const struct frame_request *fr)
{
	if (drainer.fd < 0 || !sessions_draining(frame_attr(fr, "sid")))
		return 0;
	size_t n = frame_encode_request(msg_buf, FRAME_MAX, fr);
	if (n == 0) {
		log_error("a request for a draining session does not fit a frame; dropped");
		return -1;
	}
	return send_to_drainer(FWD_FCGI, n, fd) < 0 ? -1 : 1;
}

static void conn_io(void *ctx, uint32_t events)
{
	struct conn *c = ctx;
	(void)events;
	/* A few frames per turn: one busy handler must not starve the others. */
	for (int i = 0; i < 16 && !c->dead; i++) {
		int passed;
		ssize_t n = recv_frame(c->io.fd, &passed);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0 && passed >= 0)
			close(passed); /* an empty message with a descriptor: not ours to keep */
		if (n <= 0) {
			if (n < 0 && errno != EMSGSIZE)
				log_info("handler connection: %s", strerror(errno));
			if (n < 0 && errno == EMSGSIZE)
				continue;
			conn_close(c, 1);
			return;
		}
		dispatch(c, (size_t)n, passed);
	}
}

static int adopt(int fd);

static void accept_io(void *ctx, uint32_t events)
{
	(void)ctx;
	(void)events;
	for (;;) {
		int fd = accept4(listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn("accept on the control socket: %s", strerror(errno));
			return;
		}
		if (adopt(fd) < 0)
			close(fd);
	}
}

void front_set_peers(const uid_t *uids, size_t n)
{
	npeers = n < FRONT_MAX_PEERS ? n : FRONT_MAX_PEERS;
	memcpy(peers, uids, npeers * sizeof *uids);
}

/* The socket's mode lets the web server's group connect; what a process
 * may send depends on who it is (SO_PEERCRED: the uid it had at connect). */
static int peer_allowed(int fd, uid_t *uid, int *trusted)
{
	struct ucred cred;
	socklen_t len = sizeof cred;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warn("control socket: cannot tell who connected (%s); refused", strerror(errno));
		return 0;
	}
	*uid = cred.uid;
	*trusted = cred.uid == geteuid() || cred.uid == 0;
	for (size_t i = 0; !*trusted && i < npeers; i++)
		if (peers[i] == cred.uid)
			return 1;
	if (!*trusted)
		log_limited(LOG_WARN, "refused peers",
		            "control socket: refused a process of uid %u (pid %ld): not sessiond's user, "
		            "root or one of handler_users", (unsigned)cred.uid, (long)cred.pid);
	return *trusted;
}

static int adopt(int fd)
{
	uid_t uid;
	int trusted;
	if (!peer_allowed(fd, &uid, &trusted))
		return -1;
	struct conn *c = nconns < FRONT_MAX_CONNS ? calloc(1, sizeof *c) : NULL;
	if (!c) {
		log_warn("too many handler connections (%d); refusing one", nconns);
		return -1;
	}
	c->uid = uid;
	c->trusted = trusted;
	c->io = (struct io){ .fd = fd, .cb = conn_io, .ctx = c };
	if (loop_add(loop, &c->io, EPOLLIN) < 0) {
		free(c);
		return -1;
	}
	c->next = conns;
	if (conns)
		conns->prev = c;
	conns = c;
	nconns++;
	return 0;
}

int front_start(struct loop *l, int listen_fd, const struct config *cfg)
{
	loop = l;
	front_cfg = cfg;
	msg_buf = malloc(FRAME_MAX + 1);
	if (!msg_buf)
		return -1;
	listener = (struct io){ .fd = listen_fd, .cb = accept_io };
	return loop_add(l, &listener, EPOLLIN);
}

void front_stop(void)
{
	loop_del(loop, &listener);
	close(listener.fd);
	free(msg_buf);
	msg_buf = NULL;
}

/* Graceful restart: the listener and every handler connection stay open
 * across exec; frames not read yet wait in them for the successor. */
void front_snapshot(struct snap_w *w, void (*keep)(void *ctx, int fd), void *ctx)
{
	snap_put_i64(w, listener.fd);
	keep(ctx, listener.fd);
	snap_put_count(w, (uint64_t)nconns, FRONT_MAX_CONNS);
	for (struct conn *c = conns; c; c = c->next) {
		snap_put_i64(w, c->io.fd);
		keep(ctx, c->io.fd);
	}
}

int front_restore(struct loop *l, struct snap_r *r, const struct config *cfg)
{
	int fd = (int)snap_get_i64(r);
	if (snap_failed(r) || front_start(l, fd, cfg) < 0)
		return -1;
	uint64_t n = snap_get_count(r, FRONT_MAX_CONNS);
	for (uint64_t i = 0; i < n && !snap_failed(r); i++) {
		int cfd = (int)snap_get_i64(r);
		if (cfd >= 0 && adopt(cfd) < 0)
			close(cfd);
	}
	return snap_failed(r) ? -1 : 0;
}

/* ---- the two processes of a restart ---- */

static void drainer_io(void *ctx, uint32_t events)
{
	(void)ctx;
	char b;
	if (!(events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) && recv(drainer.fd, &b, 1, MSG_DONTWAIT) != 0)
		return;
	log_info("the process draining sessions of the last restart has finished");
	loop_del(loop, &drainer);
	close(drainer.fd);
	drainer.fd = -1;
	sessions_drainer_gone();
}

int front_has_drainer(void)
{
	return drainer.fd >= 0;
}

int front_set_drainer(int fd)
{
	drainer = (struct io){ .fd = fd, .cb = drainer_io };
	return loop_add(loop, &drainer, EPOLLRDHUP);
}

void front_snapshot_drainer(struct snap_w *w, void (*keep)(void *ctx, int fd), void *ctx)
{
	snap_put_i64(w, drainer.fd);
	if (drainer.fd >= 0)
		keep(ctx, drainer.fd);
}

int front_restore_drainer(struct snap_r *r)
{
	int fd = (int)snap_get_i64(r);
	return fd >= 0 && !snap_failed(r) ? front_set_drainer(fd) : 0;
}

int front_become_drainer(int channel)
{
	/* The listener and the handlers' connections are the successor's now. */
	loop_del(loop, &listener);
	close(listener.fd);
	listener.fd = -1;
	while (conns)
		conn_close(conns, 1);
	if (drainer.fd >= 0) { /* an older drainer is the successor's business */
		loop_del(loop, &drainer);
		close(drainer.fd);
		drainer.fd = -1;
	}
	if (adopt(channel) < 0)
		return -1;
	conns->channel = 1;
	return 0;
}
