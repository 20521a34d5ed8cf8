/* ws_session.c - XMPP over WebSocket (RFC 7395): listener, handshake and
 * sessions. Nothing of BOSH is here: the shared table (sesstable.h) and
 * the XMPP stream (stream.h) are what both transports use. */
#define _GNU_SOURCE
#include "ws_session.h"
#include "log.h"
#include "reply.h"
#include "route.h"
#include "sesstable.h"
#include "store.h"
#include "stream.h"
#include "ws_conn.h"
#include "ws_handshake.h"
#include "xmpp_framing.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static struct loop *wl;
static const struct config *wcfg;
static struct io listener = { .fd = -1 };
static struct xf_classifier *classifier;

/* ---- the client's address ---- */

/* The proxy's headers are believed only from a peer that can be the web
 * server on this host: a Unix socket, or a loopback address. */
static int peer_is_proxy(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_UNIX)
		return 1;
	if (sa->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return 0;
}

static void peer_text(const struct sockaddr_storage *sa, char *out, size_t len)
{
	out[0] = 0;
	if (sa->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)len);
	else if (sa->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)len);
}

/* ---- sessions ---- */

enum wss_state {
	W_HELLO,   /* 101 sent, waiting for <open/> */
	W_ACTIVE,  /* a stream to the server */
	W_CLOSING, /* our close is out: waiting for the client's answer */
	W_DONE,    /* to be freed (from the timer) */
};

struct wss {
	struct sess c;            /* first: the shared table's part */
	struct io io;
	struct ws_conn *ws;
	struct stream *st;
	struct timer timer;
	enum wss_state state;
	uint8_t in_table, ended, ping_out, paused, active_since_tick, jid_stored;
	char *to, *lang, *ua, *end_condition;
	double created_at, last_seen, ended_at;
	uint64_t next_ping;
	uint16_t close_code;      /* to send once the messages before it are written */
	struct wss *prev, *next;  /* every connection after its 101 */
};

static struct wss *conns;
static const struct sess_ops ws_ops;

static struct wss *wss_of(struct sess *c) { return (struct wss *)c; }
static const struct wss *wss_of_const(const struct sess *c) { return (const struct wss *)c; }
static const char *wsid(const struct wss *w) { return w->in_table ? w->c.sid : "-"; }

static void ws_put_row(struct sess *c)
{
	struct wss *w = wss_of(c);
	struct store_row r = {
		.sid = w->c.sid, .state = w->ended ? "ended" : w->st && !w->st->awaiting_features ? "active"
		                                                                             : "connecting",
		.jid = w->st ? w->st->jid : NULL, .to_domain = w->to, .lang = w->lang,
		.client_addr = w->c.client, .user_agent = w->ua, .created_at = w->created_at,
		.last_seen = w->last_seen, .ended_at = w->ended ? w->ended_at : 0,
		.end_condition = w->end_condition, .ver = "1.0", .transport = "websocket",
	};
	store_put(&r);
}

/* Schedules the next look at the connection: now when it is done, else the
 * next ping, park or close deadline. */
static void arm(struct wss *w, uint64_t at)
{
	timer_set(wl, &w->timer, at);
}

static void watch(struct wss *w)
{
	if (w->state == W_DONE || !w->ws)
		return;
	if (ws_conn_state(w->ws) == WS_DONE) {
		w->state = W_DONE;
		arm(w, loop_now(wl));
		return;
	}
	/* wslay sends control frames before queued messages: the close waits
	 * until the messages before it (a stream error, <close/>) are out. */
	if (w->close_code && ws_conn_queued_bytes(w->ws) == 0) {
		ws_conn_close(w->ws, w->close_code, NULL);
		w->close_code = 0;
	}
	if (w->ended && w->state < W_CLOSING) { /* the client broke a rule: bound its close */
		w->state = W_CLOSING;
		arm(w, loop_now(wl) + WS_CLOSE_WAIT_MS);
	}
	uint32_t ev = (ws_conn_want_read(w->ws) ? EPOLLIN : 0) | (ws_conn_want_write(w->ws) ? EPOLLOUT : 0);
	if (ev != w->io.events && loop_mod(wl, &w->io, ev) < 0)
		log_warn("websocket session %s: epoll: %s", wsid(w), strerror(errno));
	/* Back-pressure (max_client_buffer): the server waits while the browser reads slowly. */
	size_t q = ws_conn_queued_bytes(w->ws);
	if (w->st && w->st->xmpp) {
		if (!w->paused && q > (size_t)wcfg->max_client_buffer) {
			w->paused = 1;
			xmpp_pause(w->st->xmpp, 1);
			log_info("websocket session %s: %zu bytes queued for the client; reading paused", wsid(w), q);
		} else if (w->paused && q <= (size_t)wcfg->max_client_buffer / 2) {
			w->paused = 0;
			xmpp_pause(w->st->xmpp, 0);
		}
	}
}

static void send_msg(struct wss *w, const char *data, size_t len)
{
	if (ws_conn_send_text(w->ws, data, len) < 0)
		log_debug("websocket session %s: a message after the close was dropped", wsid(w));
}

static void send_buf_msg(struct wss *w, struct buf *b, int ok)
{
	if (ok == 0)
		send_msg(w, b->data, b->len);
	else
		log_error("websocket session %s: out of memory building a message", wsid(w));
	buf_free(b);
}

/* The end of a session (its log line and final row); the connection is
 * closed by the caller. */
static void wss_end(struct wss *w, const char *condition)
{
	if (w->ended)
		return;
	w->ended = 1;
	w->ended_at = loop_wallclock();
	w->end_condition = strdup(condition);
	if (w->st)
		stream_close(w->st);
	if (!w->in_table) {
		log_info("websocket connection from %s closed before <open/> (%s)",
		         w->c.client ? w->c.client : "-", condition);
		return;
	}
	sesstable_log_end(&w->c, w->st ? w->st->jid : NULL, w->ended_at - w->created_at, condition);
	ws_put_row(&w->c);
	sesstable_clean(&w->c);
}

/* Ends the session and starts the close handshake: a stream error first if
 * condition is one of ours, then <close/>. */
static void wss_close(struct wss *w, const char *stream_error, uint16_t code, const char *condition)
{
	if (ws_conn_state(w->ws) == WS_OPEN) {
		struct buf b = { 0 };
		if (stream_error)
			send_buf_msg(w, &b, xf_build_stream_error(&b, stream_error, NULL));
		send_buf_msg(w, &b, xf_build_close(&b));
		w->close_code = code; /* sent by watch() */
	}
	wss_end(w, condition);
	if (w->state != W_DONE) {
		w->state = W_CLOSING;
		arm(w, loop_now(wl) + WS_CLOSE_WAIT_MS);
	}
}

/* ---- the server's side ---- */

/* The queued element(s) as one message each: stream.c queues one element
 * per event, and this takes it at once. */
static void forward_queue(struct wss *w, struct stream *st)
{
	if (st->queue.len)
		send_msg(w, st->queue.data, st->queue.len);
	stream_took_queue(st);
	if (w->paused && st->xmpp)
		xmpp_pause(st->xmpp, 1); /* stream_took_queue resumed reading: the socket decides */
}

static void on_features(void *owner, struct stream *st)
{
	struct wss *w = owner;
	struct buf b = { 0 };
	const struct xmpp_conn *x = st->xmpp;
	send_buf_msg(w, &b,
	             xf_build_open(&b, x ? xmpp_stream_attr(x, "from") : st->to,
	                           x ? xmpp_stream_attr(x, "id") : NULL, "1.0",
	                           x ? xmpp_stream_attr(x, "xml:lang") : NULL));
	forward_queue(w, st);
	w->last_seen = loop_wallclock();
	sesstable_dirty(&w->c);
	watch(w);
}

static void on_stanza(void *owner, struct stream *st)
{
	struct wss *w = owner;
	forward_queue(w, st);
	if (st->jid && !w->jid_stored) { /* bound: the row says who */
		w->jid_stored = 1;
		sesstable_dirty(&w->c);
	}
	w->active_since_tick = 1;
	watch(w);
}

static void on_ended(void *owner, struct stream *st, const char *condition)
{
	struct wss *w = owner;
	int server_error = st->queue.len > 0;
	forward_queue(w, st); /* the server's <stream:error/>, if any, before the close */
	/* Without an error of the server's, say why ourselves, unless it just closed. */
	const char *ours = server_error || strcmp(condition, "remote-stream-error") == 0 ? NULL : condition;
	wss_close(w, ours, WS_CLOSE_NORMAL, condition);
	watch(w);
}

static const struct stream_events ws_stream_events = {
	.features = on_features, .stanza = on_stanza, .ended = on_ended,
};

/* ---- the client's side ---- */

static void refuse(struct wss *w, const char *why, const char *condition)
{
	log_info("websocket session %s (client %s): %s; closing with %s", wsid(w),
	         w->c.client ? w->c.client : "-", why, condition);
	wss_close(w, condition, WS_CLOSE_POLICY, condition);
}

/* The first <open/>: checked as a BOSH session creation is (domain,
 * limits), then a stream to the server. */
static void open_session(struct wss *w, const struct xf_msg *m)
{
	if (!m->to || !*m->to) {
		refuse(w, "<open/> without 'to'", "improper-addressing");
		return;
	}
	const struct config_backend *be = route_valid_domain(m->to) ? config_backend(wcfg, m->to) : NULL;
	char host[256];
	unsigned port = 0;
	if (!be) {
		log_info("websocket session request from %s for unknown domain '%.100s'",
		         w->c.client ? w->c.client : "-", m->to);
		wss_close(w, "host-unknown", WS_CLOSE_POLICY, "host-unknown");
		return;
	}
	const char *refused = route_choose(NULL, be, wcfg->allowed_routes, host, sizeof host, &port);
	if (!refused)
		refused = sesstable_refuse(w->c.client); /* logged */
	if (refused) {
		wss_close(w, strcmp(refused, "host-unknown") == 0 ? refused : "policy-violation",
		          WS_CLOSE_POLICY, refused);
		return;
	}
	if (!(w->to = strdup(m->to)) || (m->lang && !(w->lang = strdup(m->lang))) ||
	    sesstable_add(&w->c, 1) < 0) {
		log_error("out of memory creating a websocket session");
		wss_close(w, "internal-server-error", WS_CLOSE_INTERNAL, "internal-server-error");
		return;
	}
	w->in_table = 1;
	w->created_at = w->last_seen = loop_wallclock();
	log_info("session %s created for %s (websocket, client %s, user agent '%.100s')", w->c.sid,
	         w->to, w->c.client ? w->c.client : "-", w->ua ? w->ua : "-");
	struct xmpp_params p = {
		.domain = w->to, .host = host[0] ? host : NULL, .port = (uint16_t)port,
		.tls = be->tls, .pin = be->pin, .lang = w->lang,
		.max_stanza = (size_t)wcfg->max_xmpp_stanza_size,
		.max_output = (size_t)wcfg->max_data_held * 4,
		.connect_timeout_ms = (unsigned)wcfg->connect_timeout * 1000,
		.stanza_timeout_ms = (unsigned)wcfg->stanza_timeout * 1000,
		.keepalive = { (unsigned)wcfg->xmpp_keepalive_idle, (unsigned)wcfg->xmpp_keepalive_interval,
		               (unsigned)wcfg->xmpp_keepalive_count },
	};
	w->st = stream_open(wl, &p, w->c.sid, (size_t)wcfg->max_client_buffer, &ws_stream_events, w);
	sesstable_dirty(&w->c);
	if (!w->st) {
		wss_close(w, "remote-connection-failed", WS_CLOSE_NORMAL, "remote-connection-failed");
		return;
	}
	w->state = W_ACTIVE;
	uint64_t now = loop_now(wl);
	w->next_ping = wcfg->ws_ping_interval > 0 ? now + (uint64_t)wcfg->ws_ping_interval * 1000 : 0;
	arm(w, now + 1000);
}

static void on_text(void *ctx, const char *msg, size_t len)
{
	struct wss *w = ctx;
	struct xf_msg m;
	if (w->state != W_HELLO && w->state != W_ACTIVE)
		return;
	w->active_since_tick = 1;
	w->last_seen = loop_wallclock();
	switch (xf_classify(classifier, msg, len, &m)) {
	case XF_INVALID:
		refuse(w, m.why ? m.why : "invalid message", "not-well-formed");
		return;
	case XF_OPEN:
		if (w->state == W_HELLO)
			open_session(w, &m);
		else if (w->st && stream_restart(w->st, NULL) < 0)
			wss_close(w, "internal-server-error", WS_CLOSE_INTERNAL, "internal-server-error");
		return;
	case XF_CLOSE:
		wss_close(w, NULL, WS_CLOSE_NORMAL, "terminate");
		return;
	case XF_STANZA:
		if (w->state != W_ACTIVE) {
			refuse(w, "a stanza before <open/>", "not-authorized");
		} else if (stream_send(w->st, msg, len) < 0) {
			refuse(w, "the server's stream cannot take more", "policy-violation");
		}
		return;
	}
}

static void on_pong(void *ctx, const uint8_t *data, size_t len)
{
	struct wss *w = ctx;
	(void)data;
	(void)len;
	w->ping_out = 0;
	w->active_since_tick = 1;
}

static void on_close(void *ctx, uint16_t code)
{
	struct wss *w = ctx;
	char why[48];
	snprintf(why, sizeof why, "client-closed-%u", code);
	wss_end(w, w->ended ? w->end_condition : code == WS_CLOSE_NORMAL ? "client-closed" : why);
}

static void on_error(void *ctx, uint16_t code, const char *why)
{
	struct wss *w = ctx;
	if (!w->ended)
		log_info("websocket session %s (client %s): %s (close code %u)", wsid(w),
		         w->c.client ? w->c.client : "-", why ? why : "-", code);
	wss_end(w, code == WS_CLOSE_ABNORMAL ? "client-gone" : "client-protocol-error");
}

static const struct ws_conn_cbs ws_cbs = {
	.on_text = on_text, .on_pong = on_pong, .on_close = on_close, .on_error = on_error,
};

static void wss_io(void *ctx, uint32_t events)
{
	struct wss *w = ctx;
	if (w->state == W_DONE)
		return;
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		ws_conn_on_readable(w->ws);
	if ((events & EPOLLOUT) && ws_conn_state(w->ws) != WS_DONE)
		ws_conn_on_writable(w->ws);
	watch(w);
}

/* Frees the connection and its session: from the timer, never inside an
 * event of the connection or the stream. */
static void wss_free(struct wss *w)
{
	timer_cancel(wl, &w->timer);
	if (w->in_table)
		sesstable_remove(&w->c);
	if (w->prev)
		w->prev->next = w->next;
	else
		conns = w->next;
	if (w->next)
		w->next->prev = w->prev;
	if (w->st)
		stream_free(w->st);
	if (w->ws)
		ws_conn_free(w->ws);
	if (w->io.fd >= 0) {
		loop_del(wl, &w->io);
		close(w->io.fd);
	}
	free(w->to);
	free(w->lang);
	free(w->ua);
	free(w->end_condition);
	free(w->c.client);
	free(w);
}

static void wss_timer(void *ctx)
{
	struct wss *w = ctx;
	uint64_t now = loop_now(wl);
	switch (w->state) {
	case W_DONE:
	case W_CLOSING: /* the client did not answer our close in time */
		if (w->state == W_CLOSING && !w->ended)
			wss_end(w, "client-gone");
		wss_free(w);
		return;
	case W_HELLO:
		log_info("websocket connection from %s: no <open/> within %d s", w->c.client ? w->c.client : "-",
		         WS_HS_DEADLINE_MS / 1000);
		wss_close(w, "connection-timeout", WS_CLOSE_POLICY, "connection-timeout");
		watch(w);
		return;
	case W_ACTIVE:
		break;
	}
	if (w->next_ping && now >= w->next_ping) {
		if (w->ping_out) {
			log_info("session %s: no answer to a WebSocket ping within %ld s", w->c.sid,
			         wcfg->ws_ping_interval);
			wss_close(w, "connection-timeout", WS_CLOSE_GOING_AWAY, "ping-timeout");
			watch(w);
			return;
		}
		uint8_t data[8];
		memcpy(data, &now, sizeof data);
		if (ws_conn_ping(w->ws, data, sizeof data) == 0)
			w->ping_out = 1;
		w->next_ping = wcfg->ws_ping_interval > 0 ? now + (uint64_t)wcfg->ws_ping_interval * 1000 : 0;
		watch(w);
	} else if (!w->active_since_tick && !w->paused && ws_conn_queued_bytes(w->ws) == 0) {
		ws_conn_park(w->ws); /* quiet for a second: an idle session is its descriptor */
	}
	w->active_since_tick = 0;
	uint64_t next = now + 1000;
	if (w->next_ping && w->next_ping < next)
		next = w->next_ping;
	if (ws_conn_parked(w->ws))
		next = w->next_ping ? w->next_ping : now + 60000;
	arm(w, next);
}

/* ---- what the shared modules ask (sesstable.h) ---- */

static int ws_ended(const struct sess *c) { return wss_of_const(c)->ended; }

static void ws_end_op(struct sess *c, const char *condition)
{
	struct wss *w = wss_of(c);
	wss_close(w, condition, WS_CLOSE_GOING_AWAY, condition);
	watch(w);
}

static void ws_destroy(struct sess *c)
{
	struct wss *w = wss_of(c);
	w->state = W_DONE;
	arm(w, loop_now(wl));
	sesstable_remove(&w->c);
	w->in_table = 0;
}

/* Writes what can be written now: sessiond stops or execs next. */
static void flush_now(struct wss *w)
{
	if (!w->ws || ws_conn_state(w->ws) == WS_DONE)
		return;
	if (ws_conn_want_write(w->ws))
		ws_conn_on_writable(w->ws);
	if (w->close_code && ws_conn_queued_bytes(w->ws) == 0 && ws_conn_state(w->ws) != WS_DONE) {
		ws_conn_close(w->ws, w->close_code, NULL);
		w->close_code = 0;
		ws_conn_on_writable(w->ws);
	}
}

static void ws_stop_op(struct sess *c)
{
	struct wss *w = wss_of(c);
	wss_close(w, "system-shutdown", WS_CLOSE_GOING_AWAY, "system-shutdown");
	flush_now(w);
}

static int ws_can_move(const struct sess *c)
{
	(void)c;
	return 1; /* closed before the snapshot (ws_close_all_for_restart) */
}

static void ws_forget(struct sess *c)
{
	struct wss *w = wss_of(c);
	if (w->st)
		streams_forget(&(struct streams){ .s = { w->st }, .n = 1 });
	w->st = NULL;
	ws_destroy(c);
}

static int ws_put(struct snap_w *w, const struct sess *c, sessions_fd_cb keep, void *ctx)
{
	(void)w;
	(void)c;
	(void)keep;
	(void)ctx;
	return -1; /* not carried over: see ws_close_all_for_restart */
}

static const struct sess_ops ws_ops = {
	.put_row = ws_put_row, .ended = ws_ended, .end = ws_end_op, .destroy = ws_destroy,
	.stop = ws_stop_op, .can_move = ws_can_move, .forget = ws_forget, .put = ws_put,
};

/* ---- the handshake ---- */

struct pending {
	struct io io;
	struct ws_hs *hs;
	struct timer deadline;
	struct buf out;        /* the 101 being written */
	char *leftover;        /* frames sent before our 101 */
	size_t nleftover;
	char client[64];       /* the client's address, "" if unknown */
	struct pending *prev, *next;
};

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
	            p->client[0] ? p->client : "-", WS_HS_DEADLINE_MS / 1000);
	pending_drop(p);
}

/* The 101 is written: the connection becomes a WebSocket. */
static void become_ws(struct pending *p)
{
	const struct ws_hs_request *req = ws_hs_request(p->hs);
	struct wss *w = calloc(1, sizeof *w);
	int fd = p->io.fd;
	if (!w || (p->client[0] && !(w->c.client = strdup(p->client))) ||
	    (req->user_agent && !(w->ua = strndup(req->user_agent, 200))) ||
	    !(w->ws = ws_conn_new(fd, (size_t)wcfg->max_data_held, &ws_cbs, w, p->leftover,
	                          p->nleftover))) {
		log_error("out of memory accepting a websocket connection");
		if (w) {
			free(w->c.client);
			free(w->ua);
		}
		free(w);
		pending_drop(p);
		return;
	}
	pending_free(p); /* the descriptor is w's now */
	w->c.ops = &ws_ops;
	w->io = (struct io){ .fd = fd, .cb = wss_io, .ctx = w };
	w->timer = (struct timer){ .cb = wss_timer, .ctx = w };
	w->state = W_HELLO;
	w->created_at = w->last_seen = loop_wallclock();
	if (loop_add(wl, &w->io, EPOLLIN) < 0) {
		log_error("websocket: epoll: %s", strerror(errno));
		w->io.fd = -1;
		close(fd);
		ws_conn_free(w->ws);
		free(w->c.client);
		free(w->ua);
		free(w);
		return;
	}
	w->next = conns;
	if (conns)
		conns->prev = w;
	conns = w;
	arm(w, loop_now(wl) + WS_HS_DEADLINE_MS);
	wss_io(w, EPOLLIN); /* bytes that came with the handshake, if any */
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
	if (ws_hs_request(p->hs))
		become_ws(p);
	else
		pending_drop(p); /* an error answer is written: nothing more to say */
}

static void pending_answer(struct pending *p, enum ws_hs_result r)
{
	int rc;
	if (r == WS_HS_DONE) {
		rc = ws_hs_accept(ws_hs_request(p->hs), &p->out);
	} else {
		log_limited(LOG_INFO, "websocket handshake refused",
		            "websocket handshake from %s refused (%d): %s", p->client[0] ? p->client : "-",
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

/* ---- start, restart, stop ---- */

int ws_start(struct loop *l, const struct config *cfg, int fd)
{
	wl = l;
	wcfg = cfg;
	if (!(classifier = xf_classifier_new())) {
		log_error("out of memory starting the websocket listener");
		return -1;
	}
	listener = (struct io){ .fd = fd, .cb = on_accept };
	if (loop_add(l, &listener, EPOLLIN) < 0) {
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

static void close_every(uint16_t code, const char *condition)
{
	while (pendings)
		pending_drop(pendings);
	for (struct wss *w = conns; w; w = w->next) {
		if (w->ws && ws_conn_state(w->ws) == WS_OPEN && !w->close_code) {
			struct buf b = { 0 };
			send_buf_msg(w, &b, xf_build_close(&b));
			w->close_code = code;
		}
		wss_end(w, condition);
		flush_now(w);
	}
	while (conns)
		wss_free(conns);
}

void ws_close_all_for_restart(void)
{
	if (conns)
		log_info("restart: closing the websocket sessions (1012); they are not carried over");
	close_every(WS_CLOSE_RESTART, "system-restart");
	store_flush();
}

void ws_stop(void)
{
	close_every(WS_CLOSE_GOING_AWAY, "system-shutdown");
	ws_drop_listener();
	xf_classifier_free(classifier);
	classifier = NULL;
}
