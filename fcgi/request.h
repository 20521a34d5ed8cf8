/* request.h - one HTTP request, as CGI parameters and a body, made into
 * the frame_request that sessiond acts on.
 *
 * The same checks whoever reads the request: bosh-handler (FastCGI or
 * CGI, which then sends the frame to sessiond) and sessiond's own FastCGI
 * front (fcgi_conn.c, which acts on it in place). A body that fails them
 * still makes a request, with fr->error saying why, so that sessiond
 * answers and logs it like any other.
 */
#ifndef BOSH_REQUEST_H
#define BOSH_REQUEST_H

#include "body.h"
#include "frame.h"
#include "query.h"

/* What request_make() fills fr's pointers with besides the caller's
 * buffers; lives as long as fr is used. */
struct request_scratch {
	struct body body;
	char why[256];
	char wrap[QUERY_CALLBACK_MAX + 8];
};

typedef const char *(*request_param_fn)(void *ctx, const char *name);

/* Fills fr from the request's parameters (param(ctx, "REQUEST_METHOD")...)
 * and its body buf[0..len); len is -1 for a body over max_data_held. A
 * bare GET's query string is decoded into qbuf[0..qcap) (qcap at least
 * max_data_held + 1; it may be buf itself when len is 0). fr's other
 * fields (fcgi_id, flags) are the caller's. */
void request_make(struct frame_request *fr, request_param_fn param, void *ctx, const char *buf,
                  long len, char *qbuf, size_t qcap, long max_data_held, struct request_scratch *rs);

/* Frees what request_make() allocated (the parsed attributes). */
void request_done(struct request_scratch *rs);

#endif
