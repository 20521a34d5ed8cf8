/* ws_accept.c - the ws_socket listener and the opening handshake (RFC
 * 6455 §4): a bounded number of connections may be reading theirs, each
 * within WS_HS_DEADLINE_MS; the 101 written, the connection becomes a
 * WebSocket session (ws_session.c). */
#define _GNU_SOURCE
#include "control.h"
#include "log.h"
#include "netmatch.h"
#include "reply.h"
#include "ws_handshake.h"
#include "ws_int.h"
#include "ws_session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static struct io listener = { .fd = -1 };

/* ---- the client's address ---- */

/* The proxy's headers are believed only from the web server: a peer on
 * the Unix ws_socket (mode 0660, group), or an address in trusted_proxies
 * (loopback by default). */
static int peer_is_proxy(const struct sockaddr_storage *sa)
{
	return sa->ss_family == AF_UNIX || netlist_match(wcfg->trusted_proxies, sa);
}

static void peer_text(const struct sockaddr_storage *sa, char *out, size_t len)
{
	out[0] = 0;
	if (sa->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)len);
	else if (sa->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)len);
}

/* ---- the handshake ---- */

struct pending {
	struct io io;
	struct ws_hs *hs;
	struct timer deadline;
	struct buf out;        /* the 101 being written */
	char *leftover;        /* frames sent before our 101 */
	size_t nleftover;
	char client[64];       /* the client's address, "" if unknown */
	int refused;           /* a complete handshake answered 503 (drain) */
	struct pending *prev, *next;
};

/* For the log: the client's address, or where it came from if unknown yet
 * ("!": the web server's proxy, whose headers were not read yet). */
static const char *peer_name(const struct pending *p)
{
	return p->client[0] == '!' ? "(the web server's proxy)" : p->client[0] ? p->client : "-";
}

static struct pending *pendings;
static size_t npending;

static int origin_ok(void *arg, const char *origin)
{
	(void)arg;
	return reply_cors(origin) != 0;
}

static const struct ws_hs_policy hs_policy = { .origin_ok = origin_ok };

static void pending_free(struct pending *p)
{
	timer_cancel(wl, &p->deadline);
	loop_del(wl, &p->io);
	if (p->prev)
		p->prev->next = p->next;
	else
		pendings = p->next;
	if (p->next)
		p->next->prev = p->prev;
	npending--;
	ws_hs_free(p->hs);
	buf_free(&p->out);
	free(p->leftover);
	free(p);
}

static void pending_drop(struct pending *p)
{
	close(p->io.fd);
	pending_free(p);
}

static void pending_timeout(void *ctx)
{
	struct pending *p = ctx;
	log_limited(LOG_INFO, "websocket handshake timeout",
	            "websocket handshake from %s not complete within %d s; closed",
	            peer_name(p), WS_HS_DEADLINE_MS / 1000);
	pending_drop(p);
}

/* The 101 is written: the connection becomes a WebSocket (ws_session.c). */
static void become_ws(struct pending *p)
{
	const struct ws_hs_request *req = ws_hs_request(p->hs);
	int fd = p->io.fd;
	char *client = p->client[0] ? strdup(p->client) : NULL;
	char *ua = req->user_agent ? strndup(req->user_agent, 200) : NULL;
	char *leftover = p->leftover;
	size_t nleftover = p->nleftover;
	p->leftover = NULL;
	if ((p->client[0] && !client) || (req->user_agent && !ua)) {
		log_error("out of memory accepting a websocket connection");
		free(client);
		free(ua);
		free(leftover);
		pending_drop(p);
		return;
	}
	pending_free(p); /* the descriptor goes on */
	wss_adopt(fd, client, ua, leftover, nleftover);
	free(leftover);
}

static void pending_write(struct pending *p)
{
	while (p->out.len) {
		ssize_t n = write(p->io.fd, p->out.data, p->out.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (loop_mod(wl, &p->io, EPOLLOUT) < 0)
				pending_drop(p);
			return;
		}
		if (n <= 0) {
			pending_drop(p);
			return;
		}
		memmove(p->out.data, p->out.data + n, p->out.len - (size_t)n);
		p->out.len -= (size_t)n;
	}
	if (ws_hs_request(p->hs) && !p->refused)
		become_ws(p);
	else
		pending_drop(p); /* an error answer is written: nothing more to say */
}

static void pending_answer(struct pending *p, enum ws_hs_result r)
{
	int rc;
	if (r == WS_HS_DONE && control_draining()) {
		log_limited(LOG_INFO, "drain refusals", "websocket handshake from %s refused: draining (503)",
		            peer_name(p));
		p->refused = 1;
		rc = ws_hs_reject(503, &p->out);
	} else if (r == WS_HS_DONE) {
		rc = ws_hs_accept(ws_hs_request(p->hs), &p->out);
	} else {
		log_limited(LOG_INFO, "websocket handshake refused",
		            "websocket handshake from %s refused (%d): %s", peer_name(p),
		            ws_hs_status(p->hs), ws_hs_why(p->hs));
		rc = ws_hs_reject(ws_hs_status(p->hs), &p->out);
	}
	if (rc < 0) {
		log_error("out of memory answering a websocket handshake");
		pending_drop(p);
		return;
	}
	pending_write(p);
}

static void pending_io(void *ctx, uint32_t events)
{
	struct pending *p = ctx;
	if (p->out.len) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			pending_write(p);
		return;
	}
	char data[2048];
	ssize_t n = read(p->io.fd, data, sizeof data);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		pending_drop(p);
		return;
	}
	size_t used = 0;
	enum ws_hs_result r = ws_hs_feed(p->hs, data, (size_t)n, &used);
	if (r == WS_HS_MORE)
		return;
	if (r == WS_HS_DONE) {
		const struct ws_hs_request *req = ws_hs_request(p->hs);
		char addr[64];
		if (p->client[0] == 0 || p->client[0] == '!') {
			/* the peer is the proxy: its headers say who the client is */
			const char *a = ws_hs_client_addr(req, addr, sizeof addr);
			snprintf(p->client, sizeof p->client, "%s", a ? a : "");
		}
		if (used < (size_t)n) {
			p->nleftover = (size_t)n - used;
			if (!(p->leftover = malloc(p->nleftover))) {
				pending_drop(p);
				return;
			}
			memcpy(p->leftover, data + used, p->nleftover);
		}
	}
	pending_answer(p, r);
}

static void on_accept(void *ctx, uint32_t events)
{
	(void)ctx;
	(void)events;
	for (;;) {
		struct sockaddr_storage sa;
		socklen_t salen = sizeof sa;
		int fd = accept4(listener.fd, (struct sockaddr *)&sa, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				log_warn("accept on ws_socket: %s", strerror(errno));
			return;
		}
		if (npending >= WS_HS_MAX_PENDING) {
			log_limited(LOG_WARN, "websocket handshakes", "%d websocket handshakes incomplete; "
			            "refusing a connection", WS_HS_MAX_PENDING);
			close(fd);
			continue;
		}
		struct pending *p = calloc(1, sizeof *p);
		if (!p || !(p->hs = ws_hs_new(&hs_policy))) {
			log_error("out of memory accepting a websocket connection");
			free(p);
			close(fd);
			continue;
		}
		/* "!" marks a peer that is the proxy: its headers decide, later. */
		if (peer_is_proxy(&sa))
			snprintf(p->client, sizeof p->client, "!");
		else
			peer_text(&sa, p->client, sizeof p->client);
		p->io = (struct io){ .fd = fd, .cb = pending_io, .ctx = p };
		p->deadline = (struct timer){ .cb = pending_timeout, .ctx = p };
		if (loop_add(wl, &p->io, EPOLLIN) < 0) {
			log_error("websocket: epoll: %s", strerror(errno));
			ws_hs_free(p->hs);
			free(p);
			close(fd);
			continue;
		}
		p->next = pendings;
		if (pendings)
			pendings->prev = p;
		pendings = p;
		npending++;
		timer_set(wl, &p->deadline, loop_now(wl) + WS_HS_DEADLINE_MS);
	}
}

/* ---- the listener ---- */

int ws_start(int fd)
{
	listener = (struct io){ .fd = fd, .cb = on_accept };
	if (loop_add(wl, &listener, EPOLLIN) < 0) {
		log_error("websocket: epoll: %s", strerror(errno));
		listener.fd = -1;
		return -1;
	}
	return 0;
}

int ws_listener_fd(void) { return listener.fd; }

void ws_drop_listener(void)
{
	if (listener.fd < 0)
		return;
	loop_del(wl, &listener);
	close(listener.fd);
	listener.fd = -1;
}

void ws_accept_drop_pending(void)
{
	while (pendings)
		pending_drop(pendings);
}
