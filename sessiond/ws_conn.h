/* ws_conn.h - WebSocket framing (RFC 6455) on a non-blocking socket, by
 * wslay, for the XMPP subprotocol: text messages only.
 *
 * The caller owns the descriptor and the event loop: it calls
 * ws_conn_on_readable() / ws_conn_on_writable() when the socket is ready,
 * asks ws_conn_want_read() / ws_conn_want_write() what to wait for next, and
 * closes the descriptor itself after ws_conn_free(). wslay does masking,
 * fragmentation (a message over continuation frames is put together),
 * control frames, ping answers, UTF-8 checking of text and the close
 * handshake.
 *
 * What reaches the caller, through the callbacks (called only from inside
 * ws_conn_on_readable/on_writable; they may queue messages or a close, but
 * must not free the connection):
 *   on_text   a complete text message, valid UTF-8, at most max_msg bytes
 *             (not NUL-terminated; "" when empty)
 *   on_pong   an answer to ws_conn_ping()
 *   on_close  the client's close frame (code, or 1005 when it had none);
 *             the answering close is queued
 *   on_error  we are closing because the client broke a rule: code is
 *             what our close frame says, 0 when it could not be written yet
 *             (the client does not read), and why names the rule (for 1002
 *             which one: "reserved opcode", "unmasked frame", ...); or the
 *             connection ended without a close frame or failed: code 1006
 *             (WS_CLOSE_ABNORMAL)
 * Exactly one of on_close/on_error comes, at most once.
 *
 * Close codes sent: 1002 protocol error (unmasked frame, reserved opcode or
 * bits, oversized or fragmented control frame, invalid close code), 1003 a
 * binary message, 1007 invalid UTF-8, 1009 a message over max_msg, and
 * whatever the caller passes to ws_conn_close().
 */
#ifndef BOSH_WS_CONN_H
#define BOSH_WS_CONN_H

#include <stddef.h>
#include <stdint.h>

/* Bytes one ws_conn_on_readable() call reads at most, so that one fast
 * client cannot hold the loop; the socket stays readable for the next turn
 * (sessiond's epoll is level-triggered). */
#define WS_CONN_READ_BUDGET 65536

#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_GOING_AWAY 1001
#define WS_CLOSE_PROTOCOL 1002
#define WS_CLOSE_UNSUPPORTED 1003
#define WS_CLOSE_NO_STATUS 1005
#define WS_CLOSE_ABNORMAL 1006  /* never sent: the connection ended without a close */
#define WS_CLOSE_BAD_DATA 1007
#define WS_CLOSE_POLICY 1008
#define WS_CLOSE_TOO_BIG 1009
#define WS_CLOSE_INTERNAL 1011

struct ws_conn_cbs {
	void (*on_text)(void *ctx, const char *msg, size_t len);
	void (*on_pong)(void *ctx, const uint8_t *data, size_t len);
	void (*on_close)(void *ctx, uint16_t code);
	void (*on_error)(void *ctx, uint16_t code, const char *why);
};

enum ws_conn_state {
	WS_OPEN,    /* messages flow both ways */
	WS_CLOSING, /* a close is queued or sent: wait for it to be written and answered */
	WS_DONE,    /* finished (close handshake over, or the connection failed):
	             * ws_conn_free() and close the descriptor */
};

struct ws_conn;

/* fd: connected, non-blocking, after the 101 was written. initial: bytes
 * already read past the handshake (ws_hs_feed's leftover), copied; NULL/0
 * if none. max_msg bounds a received message, fragments put together.
 * cbs is kept, not copied: it must outlive the connection (a static). */
struct ws_conn *ws_conn_new(int fd, size_t max_msg, const struct ws_conn_cbs *cbs, void *ctx,
                            const void *initial, size_t initial_len);

/* The socket is readable (or initial bytes wait): reads until it would
 * block or WS_CONN_READ_BUDGET bytes were read, delivers what completed, and writes what that queued (pongs, a
 * close). Returns the state after. */
enum ws_conn_state ws_conn_on_readable(struct ws_conn *c);

/* The socket is writable: writes queued frames until it would block. */
enum ws_conn_state ws_conn_on_writable(struct ws_conn *c);

enum ws_conn_state ws_conn_state(const struct ws_conn *c);
int ws_conn_want_read(const struct ws_conn *c);
int ws_conn_want_write(const struct ws_conn *c);

/* Queues one text message (the caller writes it out with on_writable, or
 * waits for want_write). -1 once closing, or on OOM. */
int ws_conn_send_text(struct ws_conn *c, const char *data, size_t len);

/* Queues a ping carrying data (at most 125 bytes), echoed by the pong. */
int ws_conn_ping(struct ws_conn *c, const uint8_t *data, size_t len);

/* Starts the close handshake with code and a reason (at most 123 bytes,
 * may be NULL). Reading goes on until the client answers; the caller bounds
 * that wait. -1 if a close was already queued. */
int ws_conn_close(struct ws_conn *c, uint16_t code, const char *reason);

/* Payload bytes queued and not yet written: back-pressure. The caller
 * stops reading the XMPP server above its bound (max_client_buffer). */
size_t ws_conn_queued_bytes(const struct ws_conn *c);

/* For a connection quiet for a while (as xmpp.c parks its splitter): frees
 * the wslay context (8 KiB and more) if nothing is in flight, and the next
 * event builds a new one. Returns 1 if parked (or already), 0 if a frame,
 * a fragmented message or a queue is in flight. A parked connection is
 * its descriptor alone: a graceful restart can hand it over as it is (the
 * new process calls ws_conn_new on it); one that is not must finish first. */
int ws_conn_park(struct ws_conn *c);

/* 1 while parked. */
int ws_conn_parked(const struct ws_conn *c);

/* A graceful restart hands the connection to the successor as bytes:
 * unread gets what was read of a message not yet complete (and bytes not
 * yet given to wslay), unsent the frames not yet written (the rest of a
 * frame half written first). The successor makes a ws_conn with unread as
 * its initial bytes and unsent by ws_conn_set_unsent(), and reads on where
 * this one stopped. Only an open connection detaches (-1 otherwise, or on
 * out of memory); after it, only ws_conn_free(). */
struct buf;
int ws_conn_detach(struct ws_conn *c, struct buf *unread, struct buf *unsent);
/* Bytes written to the client before anything queued later; -1 on OOM. */
int ws_conn_set_unsent(struct ws_conn *c, const void *data, size_t len);

/* Frees wslay's state; does not close the descriptor. */
void ws_conn_free(struct ws_conn *c);

#endif
