#include "request.h"

#include <stdio.h>
#include <string.h>

/* A GET with a query string carries its body there (query.h). Returns the
 * body length (in qbuf), or 0 with fr->error set, or 0 for a bare GET. */
static long body_from_query(struct frame_request *fr, const char *qs, char *qbuf, size_t qcap,
                            struct request_scratch *rs)
{
	struct query_body q;
	const char *why;
	if (strcmp(fr->method, "GET") != 0 || !qs || !*qs)
		return 0;
	if (query_body(qs, qbuf, qcap, &q, &why) < 0) {
		fr->error = why;
		fr->wrap = "script";
		return 0;
	}
	if (q.callback[0])
		snprintf(rs->wrap, sizeof rs->wrap, "jsonp:%s", q.callback);
	else
		snprintf(rs->wrap, sizeof rs->wrap, "%s", q.script ? "script" : "xml");
	fr->wrap = rs->wrap;
	return (long)q.len;
}

/* The <body/> checks (body.h); the attributes and payload go into fr. */
static void take_body(struct frame_request *fr, const char *buf, long len, long max_data_held,
                      struct request_scratch *rs)
{
	int has_body = strcmp(fr->method, "POST") == 0 || fr->wrap;
	struct body *b = &rs->body;
	if (len < 0)
		snprintf(rs->why, sizeof rs->why, "request body larger than max_data_held (%ld bytes)",
		         max_data_held);
	else if (fr->error)
		; /* the query string was already found wanting */
	else if (has_body && body_parse(buf, (size_t)len, b, rs->why, sizeof rs->why) == 0) {
		if (b->nattrs > FRAME_MAX_ATTRS) {
			snprintf(rs->why, sizeof rs->why, "more than %d attributes on <body/>", FRAME_MAX_ATTRS);
		} else {
			for (size_t i = 0; i < b->nattrs; i++) {
				fr->attrs[i].name = b->attrs[i].name;
				fr->attrs[i].value = b->attrs[i].value;
			}
			fr->nattrs = b->nattrs;
			fr->payload = (const uint8_t *)b->payload;
			fr->payload_len = b->payload_len;
		}
	}
	if (rs->why[0] && has_body)
		fr->error = rs->why;
}

void request_make(struct frame_request *fr, request_param_fn param, void *ctx, const char *buf,
                  long len, char *qbuf, size_t qcap, long max_data_held, struct request_scratch *rs)
{
	rs->body = (struct body){ 0 };
	rs->why[0] = 0;
	fr->method = param(ctx, "REQUEST_METHOD");
	if (!fr->method)
		fr->method = "GET";
	fr->client = param(ctx, "REMOTE_ADDR");
	fr->origin = param(ctx, "HTTP_ORIGIN");
	fr->user_agent = param(ctx, "HTTP_USER_AGENT");
	/* The web server maps sessiond's pages (metrics, status, health) with this parameter. */
	fr->page = param(ctx, "BOSH_PAGE");
	if (len == 0 && !fr->page) {
		len = body_from_query(fr, param(ctx, "QUERY_STRING"), qbuf, qcap, rs);
		buf = qbuf;
	}
	take_body(fr, buf, len, max_data_held, rs);
}

void request_done(struct request_scratch *rs)
{
	body_free(&rs->body);
}
