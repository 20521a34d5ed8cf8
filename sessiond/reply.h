/* reply.h - answers to the web server.
 *
 * A responder is one HTTP request's way back: the web server's FastCGI
 * connection handed over by a handler (with its FastCGI request id), one
 * sessiond reads itself (fcgi_conn.h: after the answer it may carry the
 * next request), or, for plain CGI, the handler's own socket. reply_send() writes the whole
 * answer (FastCGI STDOUT records and END_REQUEST, or CGI_DATA frames),
 * then closes the descriptor; what the socket cannot take at once is kept
 * and written when it can, bounded in time. The caller forgets the
 * responder after reply_send() or reply_drop().
 */
#ifndef BOSH_REPLY_H
#define BOSH_REPLY_H

#include "loop.h"

#include <stddef.h>
#include <stdint.h>

enum responder_kind { RESP_NONE, RESP_FCGI, RESP_CGI, RESP_DIRECT };

struct responder {
	int fd;
	uint16_t fcgi_id;
	uint8_t kind;
	uint8_t cors; /* from reply_cors(): which CORS headers go with the answer */
	char *wrap;   /* owned: "script" or "jsonp:NAME" for GET forms, else NULL */
};

struct reply {
	int status;               /* HTTP status */
	const char *content_type; /* NULL: text/xml; charset=utf-8 */
	const char *headers;      /* extra "Name: value\r\n" lines, or NULL */
	const char *body;
	size_t body_len;
};

struct config;

/* Takes the CORS policy and extra headers from the configuration, which
 * must outlive the reply module. Called again after SIGHUP changed it. */
void reply_init(struct loop *l, const struct config *cfg);

/* The CORS verdict for a request's Origin header (NULL: none), to store in
 * responder.cors: 0 means no CORS headers (no Origin, or not allowed). */
uint8_t reply_cors(const char *origin);

/* The answer to a CORS preflight (OPTIONS). */
void reply_preflight(struct responder *resp);

/* Writes r to resp and closes it. */
void reply_send(struct responder *resp, const struct reply *r);

/* A held request's watch on its connection: io's callback runs when the
 * web server closes it (or sends anything). A connection fcgi_conn.c reads
 * is in the loop already, so watching it costs no system call. */
int reply_watch(const struct responder *resp, struct io *io);
void reply_unwatch(const struct responder *resp, struct io *io);

/* How RESP_DIRECT connections are given back to their reader (fcgi_conn.c,
 * which registers itself; reply.c sits below it and names it not):
 * answered(fd, 1) once the whole answer is written (the connection may
 * carry the next request), answered(fd, 0) to close it unanswered or after
 * a failed write; release(fd) when reply.c keeps the fd to finish a slow
 * write itself (and closes it then); watch(fd, io or NULL) as reply_watch. */
struct reply_direct_ops {
	void (*answered)(int fd, int whole);
	void (*release)(int fd);
	int (*watch)(int fd, struct io *io);
	int (*adopt)(int fd);
};
void reply_set_direct(const struct reply_direct_ops *ops);

/* A connection a handler passed, which the web server keeps for its next
 * request (FRAME_F_KEEP_CONN): from now on read by sessiond, as RESP_DIRECT.
 * Left as it is if that cannot be. */
void reply_keep_conn(struct responder *resp);

/* Answers still being written (the web server reads slowly); a graceful
 * restart waits for them. */
int reply_pending_count(void);

/* Closes without an answer (the web server gave up on the request). */
void reply_drop(struct responder *resp);

#endif
