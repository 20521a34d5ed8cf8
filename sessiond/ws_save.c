/* ws_save.c - a WebSocket session across a graceful restart.
 *
 * The connection from the web server's proxy is plain, so it moves to the
 * successor like a held BOSH request: the descriptor, with wslay's state
 * made into bytes (ws_conn_detach: what was read of an unfinished message,
 * to be read again, and the frames not yet written, to be written first).
 * The XMPP stream moves as BOSH's do (stream.h); a stream still being set
 * up is made again by the successor, and one over TLS cannot move: its
 * session stays with the process that drains it (restart.c), WebSocket and
 * all.
 */
#define _GNU_SOURCE
#include "log.h"
#include "snapshot.h"
#include "store.h"
#include "ws_int.h"
#include "ws_session.h"
#include "xmpp.h"
#include "xmpp_framing.h"

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

int ws_can_move(const struct sess *c)
{
	const struct wss *w = wss_of_const(c);
	return !w->st || !w->st->xmpp || !w->features_seen || xmpp_movable(w->st->xmpp);
}

void ws_forget(struct sess *c)
{
	struct wss *w = wss_of(c);
	if (w->st)
		streams_forget(&(struct streams){ .s = { w->st }, .n = 1 });
	w->st = NULL;
	c->ops->destroy(c);
}

/* ---- before the exec ---- */

/* A connection that is not carried is closed as a restart closes it: 1012,
 * which tells the client to come back. */
static void close_for_restart(struct wss *w)
{
	if (w->ws && ws_conn_state(w->ws) == WS_OPEN && !w->ended)
		wss_close(w, NULL, WS_CLOSE_RESTART, "system-restart");
	wss_flush_now(w);
	wss_free(w);
}

/* Detaches an active session's connection; 0 if it can be carried. */
static int detach(struct wss *w)
{
	wss_flush_now(w);
	if (ws_conn_detach(w->ws, &w->carry_in, &w->carry_out) < 0) {
		buf_free(&w->carry_in);
		buf_free(&w->carry_out);
		return -1;
	}
	ws_conn_free(w->ws);
	w->ws = NULL;
	return 0;
}

void ws_restart_prepare(void)
{
	size_t carried = 0, closed = 0, draining = 0, unread = 0, unsent = 0;
	ws_accept_drop_pending();
	struct wss *next;
	for (struct wss *w = wss_all; w; w = next) {
		next = w->next;
		if (w->state == W_ACTIVE && !w->ended && !ws_can_move(&w->c)) {
			draining++; /* over TLS: the drainer keeps it */
			continue;
		}
		if (w->state == W_ACTIVE && !w->ended && w->ws && detach(w) == 0) {
			carried++;
			unread += w->carry_in.len;
			unsent += w->carry_out.len;
			continue;
		}
		if (w->state == W_ACTIVE && !w->ended)
			log_error("restart: websocket session %s cannot be carried over (its connection is "
			          "closing, or out of memory); closing it with 1012", w->c.sid);
		closed++;
		close_for_restart(w);
	}
	if (carried + closed + draining)
		log_info("restart: %zu websocket sessions carried over (%zu bytes half read, %zu bytes "
		         "not yet written), %zu drained here over TLS, %zu connections closed (1012: not "
		         "yet a session, or closing)", carried, unread, unsent, draining, closed);
	store_flush();
}

/* A carried session's connection again, as the successor makes it. 0, or
 * -1 (logged) when the session had to be ended. */
static int reattach(struct wss *w)
{
	int rc = wss_make_conn(w, &w->carry_in, &w->carry_out);
	uint32_t pending = (w->carry_in.len ? EPOLLIN : 0) | (w->carry_out.len ? EPOLLOUT : 0);
	buf_free(&w->carry_in);
	buf_free(&w->carry_out);
	if (rc < 0) {
		log_error("websocket session %s: out of memory taking its connection over; ending it",
		          w->c.sid);
		wss_close(w, NULL, 0, "internal-server-error");
		return -1;
	}
	if (pending)
		wss_io(w, pending); /* what the predecessor had half read, or not yet written */
	else
		wss_watch(w);
	return 0;
}

void ws_restart_abandoned(void)
{
	for (struct wss *w = wss_all; w; w = w->next)
		if (!w->ws && w->state == W_ACTIVE)
			reattach(w);
}

/* ---- the record ---- */

int ws_put(struct snap_w *sw, const struct sess *c, sessions_fd_cb keep, void *ctx)
{
	const struct wss *w = wss_of_const(c);
	if (w->ws || w->state != W_ACTIVE || w->io.fd < 0)
		return -1; /* not detached by ws_restart_prepare */
	snap_put_str(sw, w->c.sid);
	snap_put_str(sw, w->c.client);
	snap_put_str(sw, w->to);
	snap_put_str(sw, w->lang);
	snap_put_str(sw, w->ua);
	snap_put_double(sw, w->created_at);
	snap_put_double(sw, w->last_seen);
	snap_put_u64(sw, w->next_ping);
	snap_put_u64(sw, (uint64_t)w->ping_out | (uint64_t)w->paused << 1 | (uint64_t)w->jid_stored << 2 |
	                     (uint64_t)w->features_seen << 3);
	snap_put_bytes(sw, w->carry_in.data, w->carry_in.len);
	snap_put_bytes(sw, w->carry_out.data, w->carry_out.len);
	snap_put_i64(sw, w->io.fd);
	keep(ctx, w->io.fd);
	/* A stream not yet set up is made again by the successor. */
	struct streams ss = { .s = { w->st }, .n = w->st && w->features_seen };
	return streams_snapshot(&ss, sw, keep, ctx);
}

static void take_bytes(struct snap_r *r, struct buf *b)
{
	size_t len = 0;
	b->data = snap_get_bytes(r, &len);
	b->len = b->cap = b->data ? len : 0;
}

void ws_discard(struct sess *c)
{
	struct wss *w = wss_of(c);
	if (w->st)
		streams_forget(&(struct streams){ .s = { w->st }, .n = 1 });
	if (w->io.fd >= 0)
		close(w->io.fd);
	wss_free_fields(w);
}

struct sess *ws_get(struct snap_r *r)
{
	struct wss *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->c.ops = &ws_ops;
	w->io.fd = -1;
	snap_get_into(r, w->c.sid, sizeof w->c.sid);
	w->c.client = snap_get_str(r);
	w->to = snap_get_str(r);
	w->lang = snap_get_str(r);
	w->ua = snap_get_str(r);
	w->created_at = snap_get_double(r);
	w->last_seen = snap_get_double(r);
	w->next_ping = snap_get_u64(r);
	uint64_t flags = snap_get_u64(r);
	w->ping_out = flags & 1;
	w->paused = flags >> 1 & 1;
	w->jid_stored = flags >> 2 & 1;
	w->features_seen = flags >> 3 & 1;
	take_bytes(r, &w->carry_in);
	take_bytes(r, &w->carry_out);
	w->io.fd = (int)snap_get_i64(r);
	w->state = W_ACTIVE;
	if (snap_failed(r) || !sid_valid(w->c.sid) || !w->to || w->io.fd < 0) {
		ws_discard(&w->c);
		return NULL;
	}
	struct streams ss = { .n = 0 };
	struct stream_restore_params sp = {
		.loop = wl, .sid = w->c.sid, .max_queue = (size_t)wcfg->max_client_buffer,
		.max_stanza = (size_t)wcfg->max_xmpp_stanza_size, .ev = &ws_stream_events, .owner = w,
	};
	if (streams_restore(&ss, r, &sp) < 0 || ss.n > 1) {
		streams_forget(&ss);
		ws_discard(&w->c);
		return NULL;
	}
	w->st = ss.n ? ss.s[0] : NULL;
	return &w->c;
}

void ws_resume(struct sess *c)
{
	struct wss *w = wss_of(c);
	w->in_table = 1;
	w->timer = (struct timer){ .cb = wss_timer, .ctx = w };
	if (wss_link(w) < 0) {
		close(w->io.fd);
		w->io.fd = -1;
		wss_close(w, NULL, 0, "internal-server-error");
		return;
	}
	if (reattach(w) < 0)
		return;
	const char *refused = w->st ? NULL : wss_connect(w);
	if (refused) {
		wss_close(w, refused, WS_CLOSE_NORMAL, refused);
		wss_watch(w);
		return;
	}
	wss_arm(w, loop_now(wl) + 1000);
}
