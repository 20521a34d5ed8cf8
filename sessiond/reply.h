/* reply.h - answers to the web server.
 *
 * A responder is one HTTP request's way back: the web server's FastCGI
 * connection handed over by a handler (with its FastCGI request id), or,
 * for plain CGI, the handler's own socket. reply_send() writes the whole
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

enum responder_kind { RESP_NONE, RESP_FCGI, RESP_CGI };

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

/* Answers still being written (the web server reads slowly); a graceful
 * restart waits for them. */
int reply_pending_count(void);

/* Closes without an answer (the web server gave up on the request). */
void reply_drop(struct responder *resp);

#endif
