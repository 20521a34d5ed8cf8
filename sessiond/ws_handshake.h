/* ws_handshake.h - the WebSocket opening handshake (RFC 6455 §4.2.1) as
 * the web server's proxy passes it on, with XMPP's subprotocol (RFC 7395
 * §3.1).
 *
 * Feed the bytes as they arrive, in any pieces; the parser keeps its own
 * copy of the request (never more than WS_HS_MAX_SIZE bytes) and answers
 * WS_HS_MORE until the blank line that ends the headers, then either
 * WS_HS_DONE with the request's fields or WS_HS_ERROR with the HTTP status
 * to answer and a reason for the log. Nothing past the blank line is taken:
 * a client should wait for our 101 before it sends a frame (RFC 6455 §4.1),
 * but whether one that did not is caught would depend on how its bytes were
 * cut into reads, so bytes after the blank line are left to the caller
 * (hand them to ws_conn_new() as the first bytes of the connection).
 *
 * The parser does no I/O and no logging; the caller owns the socket, reads
 * at most what it has room for, and decides whom to believe for the client
 * address (ws_hs_client_addr() only when the peer is the configured proxy).
 */
#ifndef BOSH_WS_HANDSHAKE_H
#define BOSH_WS_HANDSHAKE_H

#include "buf.h"

#include <stddef.h>

#define WS_HS_MAX_SIZE 8192    /* the whole request, blank line included */
#define WS_HS_MAX_HEADERS 64   /* header lines */
#define WS_HS_MAX_LINE 4096    /* one line, CRLF included */

/* Whether a browser's Origin may open a session; NULL in the policy allows
 * every origin. The integration passes reply_cors(origin) != 0, so BOSH
 * and WebSocket follow the same cors_origins. Never called without an
 * Origin header: a request without one is not from a browser. */
typedef int (*ws_hs_origin_cb)(void *arg, const char *origin);

struct ws_hs_policy {
	ws_hs_origin_cb origin_ok;
	void *origin_arg;
};

/* The fields of a complete request, pointing into the parser (valid until
 * ws_hs_free). Values have surrounding whitespace removed. */
struct ws_hs_request {
	const char *path;          /* request target, starts with '/' */
	const char *host;          /* Host */
	const char *key;           /* Sec-WebSocket-Key, checked: base64 of 16 bytes */
	const char *origin;        /* Origin, NULL if absent (already allowed by the policy) */
	const char *forwarded_for; /* X-Forwarded-For as sent, NULL if absent */
	const char *real_ip;       /* X-Real-IP as sent, NULL if absent */
	const char *user_agent;    /* User-Agent, NULL if absent, for the log */
};

enum ws_hs_result {
	WS_HS_MORE,  /* the request is not complete yet: feed more */
	WS_HS_DONE,  /* ws_hs_request() holds the fields; answer ws_hs_accept() */
	WS_HS_ERROR, /* answer ws_hs_reject(), then close; see ws_hs_status/why */
};

struct ws_hs;

struct ws_hs *ws_hs_new(const struct ws_hs_policy *policy);

/* Feeds len more bytes; *used is how many belong to the handshake (all of
 * them unless the result is WS_HS_DONE: data + *used is then the start of
 * the WebSocket frames). After DONE or ERROR every later call returns the
 * same result and takes nothing. */
enum ws_hs_result ws_hs_feed(struct ws_hs *h, const char *data, size_t len, size_t *used);

/* After WS_HS_DONE: the request's fields. NULL before. */
const struct ws_hs_request *ws_hs_request(const struct ws_hs *h);

/* After WS_HS_ERROR: the status to answer (400 malformed or not a
 * WebSocket/XMPP request, 403 Origin not allowed, 414 request line too long,
 * 426 wrong or missing Sec-WebSocket-Version, 431 headers too large or too
 * many, 503 out of memory) and why, for the log. */
int ws_hs_status(const struct ws_hs *h);
const char *ws_hs_why(const struct ws_hs *h);

void ws_hs_free(struct ws_hs *h);

/* The client's address as the proxy reports it: X-Real-IP if present, else
 * the last (right-most, the proxy's own) entry of X-Forwarded-For. NULL if
 * neither is there or the value is not an IPv4 or IPv6 address. Only to be
 * used when the peer of the socket is the configured proxy. */
const char *ws_hs_client_addr(const struct ws_hs_request *req, char *out, size_t outlen);

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)), 28 characters
 * and a NUL into out (at least 29 bytes). -1 if the digest failed. */
int ws_hs_accept_value(const char *key, char out[29]);

/* Appends the 101 Switching Protocols answer (with Sec-WebSocket-Protocol:
 * xmpp) for a complete request. -1 on OOM or a failed digest. */
int ws_hs_accept(const struct ws_hs_request *req, struct buf *out);

/* Appends the error answer for a status from ws_hs_status() (426 carries
 * Sec-WebSocket-Version: 13), with Connection: close. -1 on OOM. */
int ws_hs_reject(int status, struct buf *out);

#endif
