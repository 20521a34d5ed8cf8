/* ws_session.c - XMPP over WebSocket (RFC 7395): a WebSocket session's
 * rules and life, from its first <open/> to its close. Nothing of BOSH is
 * here: the shared table (sesstable.h) and the XMPP stream (stream.h) are
 * what both transports use. The listener and the handshake are in
 * ws_accept.c, the restart's record in ws_save.c. */
#define _GNU_SOURCE
#include "ws_session.h"
#include "budget.h"
#include "log.h"
#include "metrics.h"
#include "reply.h"
#include "route.h"
#include "sesstable.h"
#include "store.h"
#include "stream.h"
#include "ws_conn.h"
#include "ws_int.h"
#include "xmpp_framing.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct loop *wl;
const struct config *wcfg;
struct wss *wss_all; /* every connection after its 101 */
static struct xf_classifier *classifier;

/* ---- sessions ---- */

static const char *wsid(const struct wss *w) { return w->in_table ? w->c.sid : "-"; }

void ws_describe(const struct sess *c, struct store_row *r)
{
	const struct wss *w = wss_of_const(c);
	*r = (struct store_row){
		.sid = w->c.sid, .state = w->ended ? "ended" : w->st && !w->st->awaiting_features ? "active"
		                                                                             : "connecting",
		.jid = w->st ? w->st->jid : NULL, .to_domain = w->to, .lang = w->lang,
		.client_addr = w->c.client, .user_agent = w->ua, .created_at = w->created_at,
		.last_seen = w->last_seen, .ended_at = w->ended ? w->ended_at : 0,
		.end_condition = w->end_condition, .ver = "1.0", .transport = "websocket",
	};
}

/* Schedules the next look at the connection: now when it is done, else the
 * next ping, park or close deadline. */
void wss_arm(struct wss *w, uint64_t at)
{
	timer_set(wl, &w->timer, at);
}

void wss_watch(struct wss *w)
{
	if (w->state == W_DONE || !w->ws)
		return;
	if (ws_conn_state(w->ws) == WS_DONE) {
		w->state = W_DONE;
		wss_arm(w, loop_now(wl));
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
		wss_arm(w, loop_now(wl) + WS_CLOSE_WAIT_MS);
	}
	uint32_t ev = (ws_conn_want_read(w->ws) ? EPOLLIN : 0) | (ws_conn_want_write(w->ws) ? EPOLLOUT : 0);
	if (ev != w->io.events && loop_mod(wl, &w->io, ev) < 0)
		log_warn("websocket session %s: epoll: %s", wsid(w), strerror(errno));
	/* Back-pressure: the server waits while the browser reads slowly, past
	 * max_client_buffer or while the memory budget is tight (budget.h). */
	size_t q = ws_conn_queued_bytes(w->ws);
	int tight = budget_charge(&w->charged, q, w->in_table ? w->c.sid : NULL) && q > 0;
	if (w->st && w->st->xmpp) {
		if (!w->paused && (q > (size_t)wcfg->max_client_buffer || tight)) {
			w->paused = 1;
			xmpp_pause(w->st->xmpp, 1);
			log_info("websocket session %s: %zu bytes queued for the client; reading paused%s", wsid(w),
			         q, tight ? " (memory budget)" : "");
		} else if (w->paused && q <= (size_t)wcfg->max_client_buffer / 2 && !tight) {
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
	sesstable_put_row(&w->c);
	sesstable_clean(&w->c);
}

/* Ends the session and starts the close handshake: a stream error first if
 * condition is one of ours, then <close/>. */
void wss_close(struct wss *w, const char *stream_error, uint16_t code, const char *condition)
{
	if (w->ws && ws_conn_state(w->ws) == WS_OPEN) {
		struct buf b = { 0 };
		if (stream_error)
			send_buf_msg(w, &b, xf_build_stream_error(&b, stream_error, NULL));
		send_buf_msg(w, &b, xf_build_close(&b));
		w->close_code = code; /* sent by watch() */
	}
	wss_end(w, condition);
	if (w->state != W_DONE) {
		w->state = W_CLOSING;
		wss_arm(w, loop_now(wl) + WS_CLOSE_WAIT_MS);
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
	w->features_seen = 1;
	w->last_seen = loop_wallclock();
	sesstable_dirty(&w->c);
	wss_watch(w);
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
	wss_watch(w);
}

static void on_ended(void *owner, struct stream *st, const char *condition)
{
	struct wss *w = owner;
	int server_error = st->queue.len > 0;
	forward_queue(w, st); /* the server's <stream:error/>, if any, before the close */
	/* Without an error of the server's, say why ourselves, unless it just closed. */
	const char *ours = server_error || strcmp(condition, "remote-stream-error") == 0 ? NULL : condition;
	wss_close(w, ours, WS_CLOSE_NORMAL, condition);
	wss_watch(w);
}

const struct stream_events ws_stream_events = {
	.features = on_features, .stanza = on_stanza, .ended = on_ended,
};

/* ---- the client's side ---- */

static void refuse(struct wss *w, const char *why, const char *condition)
{
	log_info("websocket session %s (client %s): %s; closing with %s", wsid(w),
	         w->c.client ? w->c.client : "-", why, condition);
	wss_close(w, condition, WS_CLOSE_POLICY, condition);
}

const char *wss_connect(struct wss *w)
{
	const struct config_backend *be = config_backend(wcfg, w->to);
	char host[256];
	unsigned port = 0;
	if (!be)
		return "host-unknown";
	const char *refused = route_choose(NULL, be, wcfg->allowed_routes, host, sizeof host, &port);
	if (refused)
		return refused;
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
	return w->st ? NULL : "remote-connection-failed";
}

void wss_schedule_ping(struct wss *w)
{
	w->next_ping = wcfg->ws_ping_interval > 0 ? loop_now(wl) + (uint64_t)wcfg->ws_ping_interval * 1000 : 0;
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
	if (!be) {
		log_info("websocket session request from %s for unknown domain '%.100s'",
		         w->c.client ? w->c.client : "-", m->to);
		wss_close(w, "host-unknown", WS_CLOSE_POLICY, "host-unknown");
		return;
	}
	const char *refused = sesstable_refuse(w->c.client); /* logged */
	if (refused) {
		wss_close(w, "policy-violation", WS_CLOSE_POLICY, refused);
		return;
	}
	if (!(w->to = strdup(m->to)) || (m->lang && !(w->lang = strdup(m->lang))) ||
	    sesstable_add(&w->c, 1) < 0) {
		log_error("out of memory creating a websocket session");
		wss_close(w, "internal-server-error", WS_CLOSE_INTERNAL, "internal-server-error");
		return;
	}
	w->in_table = 1;
	M.sessions_created[MT_WEBSOCKET]++;
	w->created_at = w->last_seen = loop_wallclock();
	char ua[128];
	log_info("session %s created: domain=%s transport=websocket client=%s user_agent=%s", w->c.sid,
	         w->to, w->c.client ? w->c.client : "-", log_quoted(ua, sizeof ua, w->ua));
	refused = wss_connect(w);
	sesstable_dirty(&w->c);
	if (refused) {
		wss_close(w, refused, WS_CLOSE_NORMAL, refused);
		return;
	}
	w->state = W_ACTIVE;
	wss_schedule_ping(w);
	wss_arm(w, loop_now(wl) + 1000);
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

int wss_make_conn(struct wss *w, const struct buf *in, const struct buf *out)
{
	w->ws = ws_conn_new(w->io.fd, (size_t)wcfg->max_data_held, &ws_cbs, w, in ? in->data : NULL,
	                    in ? in->len : 0);
	if (w->ws && out && ws_conn_set_unsent(w->ws, out->data, out->len) < 0) {
		ws_conn_free(w->ws);
		w->ws = NULL;
	}
	return w->ws ? 0 : -1;
}

int wss_link(struct wss *w)
{
	w->io.cb = wss_io;
	w->io.ctx = w;
	w->timer = (struct timer){ .cb = wss_timer, .ctx = w };
	if (loop_add(wl, &w->io, EPOLLIN) < 0) {
		log_error("websocket: epoll: %s", strerror(errno));
		return -1;
	}
	w->prev = NULL;
	w->next = wss_all;
	if (wss_all)
		wss_all->prev = w;
	wss_all = w;
	return 0;
}

void wss_adopt(int fd, char *client, char *ua, const char *leftover, size_t nleftover)
{
	struct wss *w = calloc(1, sizeof *w);
	struct buf in = { .data = (char *)leftover, .len = nleftover };
	if (w) {
		w->io.fd = fd;
		w->c.client = client;
		w->ua = ua;
	}
	if (!w || wss_make_conn(w, &in, NULL) < 0) {
		log_error("out of memory accepting a websocket connection");
		free(w);
		free(client);
		free(ua);
		close(fd);
		return;
	}
	w->c.ops = &ws_ops;
	w->state = W_HELLO;
	w->created_at = w->last_seen = loop_wallclock();
	if (wss_link(w) < 0) {
		ws_conn_free(w->ws);
		free(w->c.client);
		free(w->ua);
		free(w);
		close(fd);
		return;
	}
	wss_arm(w, loop_now(wl) + WS_HS_DEADLINE_MS);
	wss_io(w, EPOLLIN); /* bytes that came with the handshake, if any */
}

void wss_io(void *ctx, uint32_t events)
{
	struct wss *w = ctx;
	if (w->state == W_DONE || !w->ws) /* done, or a restart is carrying it */
		return;
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		ws_conn_on_readable(w->ws);
	if ((events & EPOLLOUT) && ws_conn_state(w->ws) != WS_DONE)
		ws_conn_on_writable(w->ws);
	wss_watch(w);
}

/* Frees the connection and its session: from the timer, never inside an
 * event of the connection or the stream. */
void wss_free(struct wss *w)
{
	timer_cancel(wl, &w->timer);
	if (w->in_table)
		sesstable_remove(&w->c);
	if (w->prev)
		w->prev->next = w->next;
	else
		wss_all = w->next;
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
	budget_charge(&w->charged, 0, NULL);
	wss_free_fields(w);
}

void wss_free_fields(struct wss *w)
{
	free(w->to);
	free(w->lang);
	free(w->ua);
	free(w->end_condition);
	free(w->c.client);
	buf_free(&w->carry_in);
	buf_free(&w->carry_out);
	free(w);
}

void wss_timer(void *ctx)
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
		wss_watch(w);
		return;
	case W_ACTIVE:
		if (!w->ws) { /* a restart is carrying it */
			wss_arm(w, now + 1000);
			return;
		}
		break;
	}
	if (w->next_ping && now >= w->next_ping) {
		if (w->ping_out) {
			log_info("session %s: no answer to a WebSocket ping within %ld s", w->c.sid,
			         wcfg->ws_ping_interval);
			wss_close(w, "connection-timeout", WS_CLOSE_GOING_AWAY, "ping-timeout");
			wss_watch(w);
			return;
		}
		uint8_t data[8];
		memcpy(data, &now, sizeof data);
		if (ws_conn_ping(w->ws, data, sizeof data) == 0)
			w->ping_out = 1;
		wss_schedule_ping(w);
		wss_watch(w);
	} else if (!w->active_since_tick && !w->paused && ws_conn_queued_bytes(w->ws) == 0) {
		ws_conn_park(w->ws); /* quiet for a second: an idle session is its descriptor */
	}
	w->active_since_tick = 0;
	uint64_t next = now + 1000;
	if (w->next_ping && w->next_ping < next)
		next = w->next_ping;
	if (ws_conn_parked(w->ws))
		next = w->next_ping ? w->next_ping : now + 60000;
	wss_arm(w, next);
}

/* ---- what the shared modules ask (sesstable.h) ---- */

static int ws_ended(const struct sess *c) { return wss_of_const(c)->ended; }

static void ws_end_op(struct sess *c, const char *condition)
{
	struct wss *w = wss_of(c);
	wss_close(w, condition, WS_CLOSE_GOING_AWAY, condition);
	wss_watch(w);
}

static void ws_destroy(struct sess *c)
{
	struct wss *w = wss_of(c);
	w->state = W_DONE;
	wss_arm(w, loop_now(wl));
	sesstable_remove(&w->c);
	w->in_table = 0;
}

/* Writes what can be written now: sessiond stops or execs next. */
void wss_flush_now(struct wss *w)
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
	wss_flush_now(w);
}

const struct sess_ops ws_ops = {
	.transport = "websocket", .describe = ws_describe, .ended = ws_ended, .end = ws_end_op, .destroy = ws_destroy,
	.stop = ws_stop_op, .can_move = ws_can_move, .forget = ws_forget, .put = ws_put,
	.get = ws_get, .discard = ws_discard, .resume = ws_resume,
	.restart_prepare = ws_restart_prepare, .restart_abandoned = ws_restart_abandoned,
};

/* ---- start and stop ---- */

int ws_init(struct loop *l, const struct config *cfg)
{
	wl = l;
	wcfg = cfg;
	if (!classifier && !(classifier = xf_classifier_new())) {
		log_error("out of memory starting websocket sessions");
		return -1;
	}
	return 0;
}

void ws_stop(void)
{
	ws_accept_drop_pending();
	for (struct wss *w = wss_all; w; w = w->next) {
		if (w->ws && ws_conn_state(w->ws) == WS_OPEN && !w->close_code) {
			struct buf b = { 0 };
			send_buf_msg(w, &b, xf_build_close(&b));
			w->close_code = WS_CLOSE_GOING_AWAY;
		}
		wss_end(w, "system-shutdown");
		wss_flush_now(w);
	}
	while (wss_all)
		wss_free(wss_all);
	ws_drop_listener();
	xf_classifier_free(classifier);
	classifier = NULL;
}
