/* fcgi_rec.h - reading one FastCGI request as a web server sends it.
 *
 * FastCGI 1.0 (the Open Market specification), the responder role only,
 * one request at a time on a connection (nginx and Apache never multiplex).
 * A request is: BEGIN_REQUEST, PARAMS records, an empty PARAMS record,
 * STDIN records, an empty STDIN record. Each record is an 8-byte header
 * (version 1, type, request id u16, content length u16, padding length u8,
 * reserved u8), content, padding.
 *
 * Reading happens in two steps so that nothing is copied until the whole
 * request is in: fcgi_scan() follows the records as bytes arrive (it may be
 * called again with more bytes; it resumes where it stopped), checking
 * every header and the limits; fcgi_decode() then gathers the parameters
 * and the body of a request fcgi_scan() found whole. Records with request
 * id 0 (management records such as GET_VALUES) are skipped.
 *
 * Rejected, with a short reason for the log: a version other than 1, a
 * record of any type but BEGIN_REQUEST before it, a second BEGIN_REQUEST,
 * a role other than RESPONDER, a record for another request id, STDIN
 * before the empty PARAMS record, PARAMS after it, a name-value pair whose
 * lengths run past the parameters, a NUL in a name or a value, more than
 * max_params bytes of parameters or max_stdin bytes of body, any other
 * record type. ABORT_REQUEST for the request is reported as such.
 */
#ifndef BOSH_FCGI_REC_H
#define BOSH_FCGI_REC_H

#include <stddef.h>
#include <stdint.h>

#define FCGI_HEADER_LEN 8

enum fcgi_type {
	FCGI_BEGIN_REQUEST = 1,
	FCGI_ABORT_REQUEST = 2,
	FCGI_END_REQUEST = 3,
	FCGI_PARAMS = 4,
	FCGI_STDIN = 5,
	FCGI_STDOUT = 6,
	FCGI_STDERR = 7,
	FCGI_DATA = 8,
	FCGI_GET_VALUES = 9,
	FCGI_GET_VALUES_RESULT = 10,
	FCGI_UNKNOWN_TYPE = 11,
};

#define FCGI_RESPONDER 1
#define FCGI_KEEP_CONN 1 /* BEGIN_REQUEST flags */

enum fcgi_scan_result {
	FCGI_SCAN_ERROR = -1, /* protocol error or over a limit: close the connection */
	FCGI_SCAN_MORE = 0,   /* the request is not whole yet: read more, call again */
	FCGI_SCAN_DONE = 1,   /* the empty STDIN record is in: s->end bytes make the request */
	FCGI_SCAN_ABORT = 2,  /* the web server sent ABORT_REQUEST for this request */
};

/* Where fcgi_scan() is in the byte stream. Zero it for each new request. */
struct fcgi_scan {
	size_t off;          /* bytes of whole records seen so far */
	size_t end;          /* FCGI_SCAN_DONE: bytes the request spans from buf[0] */
	size_t params_len;   /* content bytes of PARAMS records so far */
	size_t stdin_len;    /* content bytes of STDIN records so far */
	uint16_t id;         /* the request id, once BEGIN_REQUEST is in */
	uint8_t keep_conn;   /* BEGIN_REQUEST asked to keep the connection */
	uint8_t stage;       /* private: 0 before BEGIN, 1 params, 2 stdin */
};

/* Follows the records in buf[0..len) from s->off on. buf always starts at
 * the request's first byte; len only grows between calls. Never reads
 * outside buf; never writes it. On FCGI_SCAN_ERROR *why says what was
 * wrong (a static string). */
int fcgi_scan(struct fcgi_scan *s, const uint8_t *buf, size_t len, size_t max_params,
              size_t max_stdin, const char **why);

/* A request's parameters and body, gathered. */
struct fcgi_request {
	uint16_t id;
	uint8_t keep_conn;
	const char *params;  /* nparams pairs "NAME\0VALUE\0" one after another */
	size_t nparams;
	const char *body;    /* STDIN content, NUL-terminated (the NUL not counted) */
	size_t body_len;
};

/* Gathers the request that fcgi_scan() reported whole in buf[0..s->end):
 * parameters and body are copied into scratch[0..cap); cap >=
 * s->params_len + s->stdin_len + 1 always suffices (each pair's length
 * bytes pay for its two NULs). It works as well on a request not yet
 * whole, with end set to s->off (the records seen): sessiond reads the
 * parameters of an oversized request so before its body has ended.
 * Returns 0, or -1 with *why (a name-value pair cut short, a NUL in a name
 * or value, no room). */
int fcgi_decode(const struct fcgi_scan *s, const uint8_t *buf, char *scratch, size_t cap,
                struct fcgi_request *out, const char **why);

/* The value of parameter name (exact, case-sensitive), or NULL. */
const char *fcgi_param(const struct fcgi_request *r, const char *name);

/* Writes an 8-byte record header for content_len bytes (no padding). */
void fcgi_header(uint8_t out[FCGI_HEADER_LEN], int type, uint16_t id, size_t content_len);

#endif
