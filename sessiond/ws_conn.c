/* ws_conn.c - WebSocket framing over wslay's event API (see ws_conn.h).
 *
 * wslay reads and writes through our callbacks and reports what it did
 * through its own; four things it does not tell us are worked out here:
 *
 * - Which close code it chose for a rule the client broke. It queues the
 *   close itself and stops reading; we learn the code when the close is
 *   written (wslay_event_get_status_code_sent), which happens in the same
 *   turn unless the client is not reading.
 * - A malformed frame header (a control frame over 125 bytes or
 *   fragmented, a length not in its shortest form) makes wslay queue a
 *   close with no code at all. When that close is all that is queued we
 *   replace the context by a fresh one that says 1002 instead.
 * - Which rule a 1002 stands for. wslay closes with the code alone, so the
 *   headers are followed here as the bytes go by (follow()), with wslay's
 *   own rules, and the first one broken names the reason in the log.
 * - When nothing is in flight. A wslay context holds two 4 KiB buffers,
 *   too much for thousands of idle sessions, so ws_conn_park() frees it
 *   when the connection is idle, and a new one is built when something
 *   happens. Idle means:
 *   every byte handed to wslay belonged to a frame it finished (frames are
 *   masked and wslay refuses lengths not in their shortest form, so a
 *   frame's size on the wire follows from its payload length), no message
 *   is half received over continuation frames, and nothing is queued.
 */
#define _DEFAULT_SOURCE /* MSG_MORE */
#include "ws_conn.h"
#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <wslay/wslay.h>

/* Frame headers as the bytes go to wslay, to name the rule a 1002 broke. */
struct follow {
	uint8_t hdr[14];            /* the header being read */
	uint8_t have;               /* its bytes so far */
	uint8_t code[2], code_have; /* a close frame's status code, unmasked */
	uint8_t in_msg;             /* a data message continues in a later frame */
	uint64_t left;              /* payload bytes of this frame still to come */
	const char *broken;         /* the first rule broken; NULL: none so far */
};

/* What a connection keeps only while something is in flight (a wslay
 * context exists, bytes of the handshake or of a restart wait): freed
 * when it parks, so an idle session does not carry it. */
struct ws_busy {
	struct follow fw;
	char *initial;              /* bytes read with the handshake (or kept by a restart), not yet given to wslay */
	size_t initial_len, initial_off;
	/* For a graceful restart (ws_conn_detach): the bytes handed to wslay
	 * since the last complete message, which the successor's wslay reads
	 * again, and the frames wslay wrote into `unsent` instead of the
	 * socket, which go out before anything else. */
	struct buf replay;
	size_t replay_keep;         /* replay's first bytes that finished messages took */
	struct buf unsent;
	size_t unsent_off;
	uint8_t capture;            /* send_cb appends to `unsent` */
};

/* Every idle WebSocket session keeps one of these (its wslay context
 * parked): packed to fit a 96-byte malloc chunk. */
struct ws_conn {
	int fd;
	uint32_t read_budget;       /* bytes this on_readable call may still read */
	unsigned msg_open : 1;      /* a data message continues in a later frame */
	unsigned peer_gone : 1;     /* EOF or a read error */
	unsigned write_failed : 1;
	unsigned nomem : 1;
	unsigned close_called : 1;  /* ws_conn_close() queued a close */
	unsigned reported : 1;      /* on_close or on_error was called */
	unsigned close_received : 1;
	unsigned repark : 1;        /* woken by ws_conn_ping() alone: park again once the pong is in */
	unsigned pong_in : 1;       /* this on_readable call delivered a pong */
	wslay_event_context_ptr ws; /* NULL while parked */
	const struct ws_conn_cbs *cbs;
	void *ctx;
	size_t max_msg;

	struct ws_busy *busy;       /* NULL while parked */

	uint64_t in_unframed;       /* bytes handed to wslay that no finished frame took yet */
	uint64_t frame_size;        /* wire size of the frame being received */
};
_Static_assert(WS_CONN_READ_BUDGET <= UINT32_MAX, "read_budget is 32 bits");
_Static_assert(sizeof(void *) != 8 || sizeof(struct ws_conn) <= 88,
               "an idle connection fits a 96-byte malloc chunk");

/* ---- reporting ------------------------------------------------------- */

static void report_error(struct ws_conn *c, uint16_t code, const char *why)
{
	if (c->reported)
		return;
	c->reported = 1;
	if (c->cbs->on_error)
		c->cbs->on_error(c->ctx, code, why);
}

static void report_close(struct ws_conn *c, uint16_t code)
{
	c->close_received = 1;
	if (c->reported)
		return;
	c->reported = 1;
	if (c->cbs->on_close)
		c->cbs->on_close(c->ctx, code);
}

/* ---- following the frame headers ------------------------------------- */

/* wslay's rule (RFC 6455 §7.4.1, §7.4.2): codes an endpoint may send. */
static int close_code_valid(unsigned code)
{
	return (code >= 1000 && code <= 1011 && code != 1004 && code != 1005 && code != 1006) ||
	       (code >= 3000 && code <= 4999);
}

/* Bytes the header needs: 2, then the extended length and the mask key. */
static unsigned header_size(const uint8_t *h)
{
	unsigned len7 = h[1] & 0x7f;
	return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (h[1] & 0x80 ? 4 : 0);
}

/* The payload length an extended length field says (len7 126 or 127). */
static uint64_t ext_length(const uint8_t *h)
{
	uint64_t len = 0;
	for (unsigned i = 0; i < ((h[1] & 0x7f) == 126 ? 2u : 8u); i++)
		len = len << 8 | h[2 + i];
	return len;
}

/* After each byte of a header: the rule it breaks (RFC 6455 §5.2, §5.4,
 * §5.5), checked at the byte where wslay checks it (so a header cut short
 * is judged as wslay judged it), or NULL. On the last byte sets fw->left. */
static const char *header_broken(struct follow *fw)
{
	const uint8_t *h = fw->hdr;
	unsigned opcode = h[0] & 0x0f, len7 = h[1] & 0x7f, ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
	int fin = h[0] & 0x80, control = opcode & 0x8;
	if (fw->have == 2 && control && len7 > 125)
		return "control frame over 125 bytes";
	if (fw->have == 2 && control && !fin)
		return "fragmented control frame";
	uint64_t len = ext && fw->have >= 2 + ext ? ext_length(h) : len7;
	if (ext && fw->have == 2 + ext && ((ext == 2 && len < 126) || (ext == 8 && (len < 65536 || len >> 63))))
		return "frame length not in its shortest form";
	if (fw->have < header_size(h))
		return NULL;
	fw->left = len;
	if (h[0] & 0x70)
		return "reserved bits set (no extension was agreed)";
	if (!(h[1] & 0x80))
		return "unmasked frame";
	if ((opcode > 2 && opcode < 8) || opcode > 10)
		return "reserved opcode";
	if (opcode == 0 && !fw->in_msg)
		return "continuation frame with no message begun";
	if ((opcode == 1 || opcode == 2) && fw->in_msg)
		return "a new message inside a fragmented one";
	if (!control)
		fw->in_msg = !fin;
	return NULL;
}

/* Follows n more bytes of the client's stream, up to the first broken rule
 * (wslay reads no further than that either). */
static void follow(struct follow *fw, const uint8_t *p, size_t n)
{
	while (n && !fw->broken) {
		if (fw->have < 2 || fw->have < header_size(fw->hdr)) {
			fw->hdr[fw->have++] = *p++;
			n--;
			if (fw->have >= 2)
				fw->broken = header_broken(fw);
			if (fw->broken || fw->have < 2 || fw->have < header_size(fw->hdr))
				continue;
			fw->code_have = 0;
		} else {
			size_t take = fw->left < n ? (size_t)fw->left : n;
			unsigned at = fw->have - 4; /* the mask key ends the header (unmasked stopped us) */
			for (size_t i = 0; (fw->hdr[0] & 0x0f) == 8 && fw->code_have < 2 && i < take; i++) {
				fw->code[fw->code_have] = p[i] ^ fw->hdr[at + fw->code_have % 4];
				fw->code_have++;
			}
			fw->left -= take;
			p += take;
			n -= take;
		}
		if (!fw->left) { /* the frame is over: the next header */
			if (fw->code_have == 2 && !close_code_valid((unsigned)fw->code[0] << 8 | fw->code[1]))
				fw->broken = "close frame with an invalid code";
			fw->have = 0;
		}
	}
}

/* ---- wslay's callbacks -------------------------------------------------- */

/* Bytes about to go to wslay: counted, and kept until their message is
 * complete (see `replay`). */
static ssize_t received(struct ws_conn *c, wslay_event_context_ptr ws, const uint8_t *data, size_t n)
{
	follow(&c->busy->fw, data, n);
	if (buf_append(&c->busy->replay, (const char *)data, n) < 0) {
		c->nomem = 1;
		wslay_event_set_error(ws, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	c->in_unframed += n;
	return (ssize_t)n;
}

/* Forgets the replay bytes of messages wslay has finished. */
static void trim_replay(struct ws_conn *c)
{
	struct ws_busy *b = c->busy;
	if (!b || b->replay_keep == 0)
		return;
	if (b->replay_keep >= b->replay.len) {
		b->replay.len = 0;
	} else {
		memmove(b->replay.data, b->replay.data + b->replay_keep, b->replay.len - b->replay_keep);
		b->replay.len -= b->replay_keep;
	}
	b->replay_keep = 0;
}

static ssize_t recv_cb(wslay_event_context_ptr ws, uint8_t *buf, size_t len, int flags, void *user)
{
	struct ws_conn *c = user;
	(void)flags;
	struct ws_busy *b = c->busy;
	if (b->initial_off < b->initial_len) {
		size_t n = b->initial_len - b->initial_off;
		if (n > len)
			n = len;
		memcpy(buf, b->initial + b->initial_off, n);
		b->initial_off += n;
		return received(c, ws, buf, n);
	}
	if (!c->read_budget) { /* the loop is level-triggered: the rest is read next turn */
		wslay_event_set_error(ws, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (len > c->read_budget)
		len = c->read_budget;
	for (;;) {
		ssize_t n = recv(c->fd, buf, len, 0);
		if (n > 0) {
			c->read_budget -= (uint32_t)n;
			return received(c, ws, buf, (size_t)n);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			wslay_event_set_error(ws, WSLAY_ERR_WOULDBLOCK);
			return -1;
		}
		c->peer_gone = 1;
		wslay_event_set_error(ws, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
}

static ssize_t send_cb(wslay_event_context_ptr ws, const uint8_t *data, size_t len, int flags, void *user)
{
	struct ws_conn *c = user;
	int f = MSG_NOSIGNAL | (flags & WSLAY_MSG_MORE ? MSG_MORE : 0);
	if (c->busy->capture) {
		if (buf_append(&c->busy->unsent, (const char *)data, len) < 0) {
			c->nomem = 1;
			wslay_event_set_error(ws, WSLAY_ERR_CALLBACK_FAILURE);
			return -1;
		}
		return (ssize_t)len;
	}
	for (;;) {
		ssize_t n = send(c->fd, data, len, f);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			wslay_event_set_error(ws, WSLAY_ERR_WOULDBLOCK);
			return -1;
		}
		c->write_failed = 1;
		wslay_event_set_error(ws, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
}

static void frame_start_cb(wslay_event_context_ptr ws, const struct wslay_event_on_frame_recv_start_arg *a,
                           void *user)
{
	struct ws_conn *c = user;
	(void)ws;
	uint64_t len = a->payload_length;
	c->frame_size = 2 + (len < 126 ? 0 : len < 65536 ? 2 : 8) + 4 + len;
	if (!(a->opcode & 0x8)) /* a data frame: text, binary, continuation */
		c->msg_open = !a->fin;
}

static void frame_end_cb(wslay_event_context_ptr ws, void *user)
{
	struct ws_conn *c = user;
	(void)ws;
	c->in_unframed -= c->frame_size;
	c->frame_size = 0;
	if (!c->msg_open) /* a control frame, or the last of a message: nothing to read again */
		c->busy->replay_keep = c->busy->replay.len - (size_t)c->in_unframed;
}

static void msg_cb(wslay_event_context_ptr ws, const struct wslay_event_on_msg_recv_arg *a, void *user)
{
	struct ws_conn *c = user;
	switch (a->opcode) {
	case WSLAY_TEXT_FRAME:
		c->repark = 0; /* the client speaks: the caller's quiet second decides */
		if (c->cbs->on_text && !c->reported)
			c->cbs->on_text(c->ctx, a->msg ? (const char *)a->msg : "", a->msg_length);
		break;
	case WSLAY_BINARY_FRAME: {
		static const char why[] = "binary message (XMPP is text)";
		wslay_event_shutdown_read(ws);
		if (wslay_event_queue_close(ws, WS_CLOSE_UNSUPPORTED, (const uint8_t *)why, sizeof why - 1) == 0)
			report_error(c, WS_CLOSE_UNSUPPORTED, why);
		else
			report_error(c, 0, why);
		break;
	}
	case WSLAY_PONG:
		c->pong_in = 1;
		if (c->cbs->on_pong && !c->reported)
			c->cbs->on_pong(c->ctx, a->msg, a->msg_length);
		break;
	case WSLAY_CONNECTION_CLOSE:
		report_close(c, a->status_code ? a->status_code : WS_CLOSE_NO_STATUS);
		break;
	default: /* a ping: wslay queued the pong */
		break;
	}
}

/* ---- the wslay context ------------------------------------------------ */

static int ws_create(struct ws_conn *c)
{
	static const struct wslay_event_callbacks cbs = {
		.recv_callback = recv_cb,
		.send_callback = send_cb,
		.on_frame_recv_start_callback = frame_start_cb,
		.on_frame_recv_end_callback = frame_end_cb,
		.on_msg_recv_callback = msg_cb,
	};
	if (wslay_event_context_server_init(&c->ws, &cbs, c) != 0) {
		c->ws = NULL;
		return -1;
	}
	wslay_event_config_set_max_recv_msg_length(c->ws, c->max_msg);
	return 0;
}

/* The in-flight part; -1 on out of memory. */
static int busy_ensure(struct ws_conn *c)
{
	if (!c->busy && !(c->busy = calloc(1, sizeof *c->busy)))
		return -1;
	return 0;
}

static void busy_free(struct ws_conn *c)
{
	if (!c->busy)
		return;
	free(c->busy->initial);
	buf_free(&c->busy->replay);
	buf_free(&c->busy->unsent);
	free(c->busy);
	c->busy = NULL;
}

/* Bytes not yet written that a restart handed over. */
static size_t unsent_left(const struct ws_conn *c)
{
	return c->busy ? c->busy->unsent.len - c->busy->unsent_off : 0;
}

/* Makes sure a context exists (a parked connection gets a new one). */
static int ws_ready(struct ws_conn *c)
{
	if (c->ws)
		return 0;
	if (busy_ensure(c) < 0 || ws_create(c) < 0) {
		c->nomem = 1;
		return -1;
	}
	return 0;
}

static int idle(const struct ws_conn *c)
{
	const struct ws_busy *b = c->busy;
	return c->ws && !c->reported && !c->close_called && c->in_unframed == 0 && !c->msg_open &&
	       (!b || (b->initial_off == b->initial_len && b->unsent.len == 0)) &&
	       wslay_event_get_queued_msg_count(c->ws) == 0 && wslay_event_get_read_enabled(c->ws);
}

int ws_conn_park(struct ws_conn *c)
{
	if (!c->ws)
		return 1;
	if (!idle(c))
		return 0;
	wslay_event_context_free(c->ws);
	c->ws = NULL;
	busy_free(c); /* idle: nothing half read, between frames, no message open */
	return 1;
}

/* wslay queued a close without a code for a malformed frame header: when
 * nothing else is queued (so no frame is half written), a fresh context
 * sends 1002 instead. Returns the code our close will carry. */
static uint16_t replace_empty_close(struct ws_conn *c)
{
	if (c->close_called || c->close_received || wslay_event_get_queued_msg_count(c->ws) != 1)
		return WS_CLOSE_NO_STATUS;
	wslay_event_context_free(c->ws);
	c->ws = NULL;
	if (ws_create(c) < 0) {
		c->nomem = 1;
		return 0;
	}
	wslay_event_shutdown_read(c->ws);
	if (wslay_event_queue_close(c->ws, WS_CLOSE_PROTOCOL, NULL, 0) != 0)
		return 0;
	return WS_CLOSE_PROTOCOL;
}

/* ---- state ------------------------------------------------------------ */

enum ws_conn_state ws_conn_state(const struct ws_conn *c)
{
	if (c->peer_gone || c->write_failed || c->nomem)
		return WS_DONE;
	if (!c->ws)
		return WS_OPEN; /* parked: only an idle open connection parks */
	int read_on = wslay_event_get_read_enabled(c->ws);
	if (wslay_event_get_close_sent(c->ws) && (c->close_received || !read_on))
		return WS_DONE;
	if (c->close_called || !read_on || c->reported)
		return WS_CLOSING;
	return WS_OPEN;
}

int ws_conn_want_read(const struct ws_conn *c)
{
	if (ws_conn_state(c) == WS_DONE)
		return 0;
	return !c->ws || wslay_event_want_read(c->ws);
}

int ws_conn_want_write(const struct ws_conn *c)
{
	return ws_conn_state(c) != WS_DONE &&
	       (unsent_left(c) > 0 || (c->ws && wslay_event_want_write(c->ws)));
}

size_t ws_conn_queued_bytes(const struct ws_conn *c)
{
	return unsent_left(c) + (c->ws ? wslay_event_get_queued_msg_length(c->ws) : 0);
}

/* The predecessor's frames, before anything wslay queues. 0 once written. */
static int write_unsent(struct ws_conn *c)
{
	struct ws_busy *b = c->busy;
	while (b->unsent_off < b->unsent.len) {
		ssize_t n = send(c->fd, b->unsent.data + b->unsent_off, b->unsent.len - b->unsent_off,
		                 MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return -1;
		if (n < 0) {
			c->write_failed = 1;
			return -1;
		}
		b->unsent_off += (size_t)n;
	}
	buf_free(&b->unsent);
	b->unsent_off = 0;
	return 0;
}

/* Writes what is queued; notes a failed write. */
static void flush(struct ws_conn *c)
{
	if ((unsent_left(c) == 0 || write_unsent(c) == 0) && c->ws && wslay_event_want_write(c->ws) &&
	    wslay_event_send(c->ws) != 0 && !c->write_failed)
		c->nomem = 1; /* not the socket: wslay itself failed */
	if (c->write_failed)
		report_error(c, WS_CLOSE_ABNORMAL, "writing to the client failed");
	else if (c->nomem)
		report_error(c, 0, "out of memory");
}

/* After wslay stopped reading on its own: the close it queued, by code. */
static void report_wslay_close(struct ws_conn *c, uint16_t known)
{
	if (c->reported || !c->ws || c->close_received)
		return;
	uint16_t code = known ? known
	              : wslay_event_get_close_sent(c->ws) ? wslay_event_get_status_code_sent(c->ws) : 0;
	const char *why;
	switch (code) {
	case WS_CLOSE_TOO_BIG: why = "message over the size limit"; break;
	case WS_CLOSE_BAD_DATA: why = "invalid UTF-8 in a text message"; break;
	case WS_CLOSE_PROTOCOL:
		why = c->busy && c->busy->fw.broken ? c->busy->fw.broken : known ? "malformed frame header" : "WebSocket protocol error";
		break;
	case 0: why = "WebSocket protocol error (close not yet written: the client does not read)"; break;
	default: why = "WebSocket protocol error"; break;
	}
	report_error(c, code, why);
}

enum ws_conn_state ws_conn_on_readable(struct ws_conn *c)
{
	if (ws_conn_state(c) == WS_DONE || ws_ready(c) < 0) {
		flush(c);
		return ws_conn_state(c);
	}
	c->read_budget = WS_CONN_READ_BUDGET;
	c->pong_in = 0;
	int r = wslay_event_recv(c->ws);
	uint16_t known = 0;
	if (c->peer_gone) {
		if (!c->close_received)
			report_error(c, WS_CLOSE_ABNORMAL, "connection closed without a close frame");
		return WS_DONE;
	}
	trim_replay(c);
	if (r == WSLAY_ERR_CALLBACK_FAILURE && !c->nomem)
		known = replace_empty_close(c);
	else if (r != 0)
		c->nomem = 1;
	flush(c);
	if (c->ws && !wslay_event_get_read_enabled(c->ws))
		report_wslay_close(c, known);
	/* An idle connection woken for a ping needs no context once the pong is
	 * back: thousands of idle sessions pinged every ws_ping_interval would
	 * otherwise each hold one until the caller's next quiet second. */
	if (c->repark && c->pong_in && ws_conn_park(c))
		c->repark = 0;
	return ws_conn_state(c);
}

enum ws_conn_state ws_conn_on_writable(struct ws_conn *c)
{
	flush(c);
	return ws_conn_state(c);
}

/* ---- queueing ----------------------------------------------------------- */

static int queue(struct ws_conn *c, uint8_t opcode, const void *data, size_t len)
{
	if (ws_conn_state(c) != WS_OPEN || ws_ready(c) < 0)
		return -1;
	struct wslay_event_msg m = { .opcode = opcode, .msg = data, .msg_length = len };
	return wslay_event_queue_msg(c->ws, &m) == 0 ? 0 : -1;
}

int ws_conn_send_text(struct ws_conn *c, const char *data, size_t len)
{
	return queue(c, WSLAY_TEXT_FRAME, data, len);
}

int ws_conn_ping(struct ws_conn *c, const uint8_t *data, size_t len)
{
	int parked = !c->ws;
	if (len > 125 || queue(c, WSLAY_PING, data, len) < 0)
		return -1;
	if (parked)
		c->repark = 1;
	return 0;
}

int ws_conn_close(struct ws_conn *c, uint16_t code, const char *reason)
{
	size_t rl = reason ? strlen(reason) : 0;
	if (rl > 123 || c->close_called || ws_conn_state(c) == WS_DONE || ws_ready(c) < 0)
		return -1;
	if (wslay_event_queue_close(c->ws, code, (const uint8_t *)reason, rl) != 0)
		return -1;
	c->close_called = 1;
	return 0;
}

/* ---- life --------------------------------------------------------------- */

struct ws_conn *ws_conn_new(int fd, size_t max_msg, const struct ws_conn_cbs *cbs, void *ctx,
                            const void *initial, size_t initial_len)
{
	struct ws_conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->fd = fd;
	c->cbs = cbs;
	c->ctx = ctx;
	c->max_msg = max_msg;
	if (initial_len && (busy_ensure(c) < 0 || !(c->busy->initial = malloc(initial_len)))) {
		busy_free(c);
		free(c);
		return NULL;
	}
	if (initial_len) {
		memcpy(c->busy->initial, initial, initial_len);
		c->busy->initial_len = initial_len;
	}
	return c;
}

void ws_conn_free(struct ws_conn *c)
{
	if (!c)
		return;
	wslay_event_context_free(c->ws);
	busy_free(c);
	free(c);
}

int ws_conn_set_unsent(struct ws_conn *c, const void *data, size_t len)
{
	return !len ? 0 : busy_ensure(c) < 0 ? -1 : buf_append(&c->busy->unsent, data, len);
}

/* wslay's state cannot be copied out, so it is made into bytes: what it
 * would write goes into `unsent`, and what it read of an unfinished
 * message is in `replay`. */
int ws_conn_detach(struct ws_conn *c, struct buf *unread, struct buf *unsent)
{
	if (ws_conn_state(c) != WS_OPEN)
		return -1;
	struct ws_busy *b = c->busy;
	if (!b)
		return 0; /* parked: the descriptor is all there is */
	if (c->ws && wslay_event_want_write(c->ws)) {
		b->capture = 1;
		int r = wslay_event_send(c->ws);
		b->capture = 0;
		if (r != 0 || c->nomem || wslay_event_want_write(c->ws))
			return -1;
	}
	if (buf_append(unsent, b->unsent.data + b->unsent_off, b->unsent.len - b->unsent_off) < 0 ||
	    buf_append(unread, b->replay.data, b->replay.len) < 0 ||
	    buf_append(unread, b->initial + b->initial_off, b->initial_len - b->initial_off) < 0)
		return -1;
	return 0;
}

int ws_conn_parked(const struct ws_conn *c)
{
	return c->ws == NULL;
}
