#define _GNU_SOURCE
#include "reply.h"
#include "bosh.h"
#include "buf.h"
#include "config.h"
#include "frame.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define FCGI_VERSION_1 1
#define FCGI_END_REQUEST 3
#define FCGI_STDOUT 6
#define FCGI_MAX_CONTENT 65535
#define REPLY_WRITE_TIMEOUT_MS 30000
#define CGI_CHUNK 32768

/* An answer the socket could not take at once. */
struct pending {
	struct io io;
	struct timer timer;
	char *buf;
	size_t len, off;
	int kind;
	int dead;
};

#define CORS_MAX 32
#define CORS_ANY 255

static struct loop *reply_loop;
static const struct config *reply_cfg;
/* Allowed origins, pointing into a copy of cors_origins; index + 1 is the verdict. */
static const struct reply_direct_ops *direct; /* set before any RESP_DIRECT exists */
static char cors_list[sizeof ((struct config *)0)->cors_origins];
static const char *cors_origin[CORS_MAX];
static int ncors, cors_any;
static char cors_text[sizeof cors_list]; /* cors_origins as last parsed */

/* Called again on SIGHUP. A held request keeps the verdict (an index) it
 * got on arrival: the list is parsed again only when it changed. */
void reply_init(struct loop *l, const struct config *cfg)
{
	reply_loop = l;
	reply_cfg = cfg;
	if (ncors + cors_any && strcmp(cors_text, cfg->cors_origins) == 0)
		return;
	snprintf(cors_text, sizeof cors_text, "%s", cfg->cors_origins);
	snprintf(cors_list, sizeof cors_list, "%s", cfg->cors_origins);
	ncors = cors_any = 0;
	for (char *save, *tok = strtok_r(cors_list, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
		if (strcmp(tok, "*") == 0)
			cors_any = 1;
		else if (ncors < CORS_MAX)
			cors_origin[ncors++] = tok;
		else
			log_warn("cors_origins: more than %d origins; %s and later ignored", CORS_MAX, tok);
	}
}

uint8_t reply_cors(const char *origin)
{
	if (!origin || !*origin)
		return 0;
	for (int i = 0; i < ncors; i++)
		if (strcmp(cors_origin[i], origin) == 0)
			return (uint8_t)(i + 1);
	return cors_any ? CORS_ANY : 0;
}

/* Appends each string up to a NULL; -1 if memory ran out (b then holds a part). */
static int buf_cat(struct buf *b, ...)
{
	va_list ap;
	va_start(ap, b);
	int rc = 0;
	for (const char *str; rc == 0 && (str = va_arg(ap, const char *));)
		rc = buf_append(b, str, strlen(str));
	va_end(ap);
	return rc;
}

/* The CORS headers for a verdict (browsers need them on every answer, errors too). */
static int cors_headers(struct buf *b, uint8_t cors)
{
	/* A verdict from before a SIGHUP that shortened the list names no origin now. */
	if (!cors || (cors != CORS_ANY && cors > ncors))
		return 0;
	char age[24];
	snprintf(age, sizeof age, "%ld", reply_cfg->cors_max_age);
	return buf_cat(b, "Access-Control-Allow-Origin: ", cors == CORS_ANY ? "*" : cors_origin[cors - 1],
	               "\r\n", cors == CORS_ANY ? "" : "Vary: Origin\r\n",
	               "Access-Control-Allow-Methods: POST, GET, OPTIONS\r\n"
	               "Access-Control-Allow-Headers: Content-Type\r\n"
	               "Access-Control-Max-Age: ", age, "\r\n", (char *)NULL);
}

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

/* The CGI-style response head: Status, headers, blank line. The Content-Type
 * may be the client's choice ('content'); BOSH_INERT_HEADERS keep any answer
 * a browser opens as a document from running what the stanzas carry. */
static int format_head(struct buf *h, const struct reply *r, uint8_t cors)
{
	/* once per answer: no printf */
	if (buf_reserve(h, 512) < 0 || buf_lit(h, "Status: ") < 0 || buf_u64(h, (unsigned)r->status) < 0 ||
	    buf_cat(h, " ", status_text(r->status), "\r\nContent-Type: ",
	            r->content_type ? r->content_type : "text/xml; charset=utf-8", "\r\nContent-Length: ",
	            (char *)NULL) < 0 ||
	    buf_u64(h, r->body_len) < 0 ||
	    buf_cat(h, "\r\nCache-Control: no-store\r\n", BOSH_INERT_HEADERS, (char *)NULL) < 0 ||
	    cors_headers(h, cors) < 0)
		return -1;
	return buf_cat(h, reply_cfg ? reply_cfg->extra_headers : "", r->headers ? r->headers : "",
	               "\r\n", (char *)NULL);
}

static void fcgi_header(uint8_t *p, int type, uint16_t id, size_t len)
{
	p[0] = FCGI_VERSION_1;
	p[1] = (uint8_t)type;
	p[2] = (uint8_t)(id >> 8);
	p[3] = (uint8_t)id;
	p[4] = (uint8_t)(len >> 8);
	p[5] = (uint8_t)len;
	p[6] = 0; /* padding */
	p[7] = 0;
}

/* Bytes [from, from + n) of head (hlen bytes) followed by body, to dst. */
static void copy_span(char *dst, const char *head, size_t hlen, const char *body, size_t from, size_t n)
{
	if (from < hlen) {
		size_t k = hlen - from < n ? hlen - from : n;
		memcpy(dst, head + from, k);
		dst += k;
		from += k;
		n -= k;
	}
	if (n)
		memcpy(dst, body + (from - hlen), n);
}

/* Wraps head+body into STDOUT records, the empty STDOUT, and END_REQUEST. */
static char *encode_fcgi(uint16_t id, const char *head, size_t hlen, const struct reply *r,
                         size_t *outlen)
{
	size_t content = hlen + r->body_len;
	size_t records = content / FCGI_MAX_CONTENT + 1;
	size_t total = content + records * 8 + 8 + 16;
	char *out = malloc(total);
	if (!out)
		return NULL;
	size_t o = 0, done = 0;
	while (done < content) {
		size_t n = content - done > FCGI_MAX_CONTENT ? FCGI_MAX_CONTENT : content - done;
		fcgi_header((uint8_t *)out + o, FCGI_STDOUT, id, n);
		o += 8;
		copy_span(out + o, head, hlen, r->body, done, n);
		o += n;
		done += n;
	}
	fcgi_header((uint8_t *)out + o, FCGI_STDOUT, id, 0);
	o += 8;
	fcgi_header((uint8_t *)out + o, FCGI_END_REQUEST, id, 8);
	o += 8;
	memset(out + o, 0, 8); /* appStatus 0, FCGI_REQUEST_COMPLETE */
	o += 8;
	*outlen = o;
	return out;
}

/* CGI_DATA frames of at most CGI_CHUNK bytes each. */
static char *encode_cgi(const char *head, size_t hlen, const struct reply *r, size_t *outlen)
{
	size_t content = hlen + r->body_len;
	size_t frames = content / CGI_CHUNK + 1;
	char *out = malloc(content + frames * FRAME_CGI_HDR_LEN);
	if (!out)
		return NULL;
	size_t o = 0, done = 0;
	while (done < content) {
		size_t n = content - done > CGI_CHUNK ? CGI_CHUNK : content - done;
		frame_cgi_data_header((uint8_t *)out + o, n);
		o += FRAME_CGI_HDR_LEN;
		copy_span(out + o, head, hlen, r->body, done, n);
		o += n;
		done += n;
	}
	*outlen = o;
	return out;
}

static void pending_free(void *p)
{
	struct pending *pw = p;
	free(pw->buf);
	free(pw);
}

static int npending;

int reply_pending_count(void)
{
	return npending;
}

/* whole: the answer is written; a RESP_DIRECT connection may carry the next request. */
static void pending_finish(struct pending *pw, int whole)
{
	if (pw->dead)
		return;
	pw->dead = 1;
	npending--;
	loop_del(reply_loop, &pw->io);
	timer_cancel(reply_loop, &pw->timer);
	if (pw->kind == RESP_DIRECT)
		direct->answered(pw->io.fd, whole);
	else
		close(pw->io.fd);
	loop_defer_free(reply_loop, pw, pending_free);
}

/* Writes what it can; for CGI each frame must go whole in one send. */
static int write_some(int fd, int kind, const char *buf, size_t len, size_t *off)
{
	while (*off < len) {
		size_t n = len - *off;
		if (kind == RESP_CGI) {
			const uint8_t *h = (const uint8_t *)buf + *off;
			n = FRAME_HEADER_LEN + ((size_t)h[4] << 24 | (size_t)h[5] << 16 | (size_t)h[6] << 8 | h[7]);
		}
		ssize_t w = send(fd, buf + *off, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno == EAGAIN ? 0 : -1;
		*off += (size_t)w;
	}
	return 1;
}

static void pending_io(void *ctx, uint32_t events)
{
	struct pending *pw = ctx;
	if (pw->dead)
		return;
	int rc = (events & (EPOLLERR | EPOLLHUP)) ? -1
	         : write_some(pw->io.fd, pw->kind, pw->buf, pw->len, &pw->off);
	if (rc != 0) {
		if (rc < 0)
			log_info("web server connection closed before the answer was written");
		pending_finish(pw, rc > 0);
	}
}

static void pending_timeout(void *ctx)
{
	struct pending *pw = ctx;
	log_warn("web server did not take an answer within %d ms; closing", REPLY_WRITE_TIMEOUT_MS);
	pending_finish(pw, 0);
}

static void give_up(int fd, int kind)
{
	if (kind == RESP_DIRECT)
		direct->answered(fd, 0);
	else
		close(fd);
}

static void keep_pending(int fd, int kind, char *buf, size_t len, size_t off)
{
	struct pending *pw = calloc(1, sizeof *pw);
	if (!pw) {
		log_error("out of memory keeping an answer; dropped");
		free(buf);
		give_up(fd, kind);
		return;
	}
	pw->buf = buf;
	pw->len = len;
	pw->off = off;
	pw->kind = kind;
	pw->io = (struct io){ .fd = fd, .cb = pending_io, .ctx = pw };
	pw->timer.cb = pending_timeout;
	pw->timer.ctx = pw;
	if (loop_add(reply_loop, &pw->io, EPOLLOUT) < 0) {
		pending_free(pw);
		give_up(fd, kind);
		return;
	}
	timer_set(reply_loop, &pw->timer, loop_now(reply_loop) + REPLY_WRITE_TIMEOUT_MS);
	npending++;
}

/* The body as a JavaScript string literal, safe inside a <script> element. */
static int js_string(struct buf *out, const char *src, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];
		int rc;
		if (c == '"' || c == '\\')
			rc = buf_printf(out, "\\%c", c);
		else if (c < 0x20 || c == '<' || c == '>' || c == '&')
			rc = buf_printf(out, "\\u%04x", c);
		else if (c == 0xe2 && i + 2 < n && (unsigned char)src[i + 1] == 0x80 &&
		         ((unsigned char)src[i + 2] == 0xa8 || (unsigned char)src[i + 2] == 0xa9)) {
			/* U+2028 and U+2029 end a line in older JavaScript */
			rc = buf_printf(out, "\\u%04x", (unsigned char)src[i + 2] == 0xa8 ? 0x2028 : 0x2029);
			i += 2;
		} else {
			rc = buf_append(out, (const char *)&src[i], 1);
		}
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* GET forms: _BOSH_("...") (Openfire) or NAME({"reply":"..."}) (node-xmpp-bosh). */
static char *wrap_script(const char *wrap, const struct reply *r, size_t *outlen)
{
	struct buf out = { 0 };
	int jsonp = strncmp(wrap, "jsonp:", 6) == 0;
	if ((jsonp ? buf_cat(&out, wrap + 6, "({\"reply\":\"", (char *)NULL) : buf_puts(&out, "_BOSH_(\"")) < 0 ||
	    buf_reserve(&out, r->body_len + 8) < 0 || js_string(&out, r->body, r->body_len) < 0 ||
	    buf_puts(&out, jsonp ? "\"});" : "\");") < 0) {
		buf_free(&out);
		return NULL;
	}
	*outlen = out.len;
	return out.data;
}

void reply_send(struct responder *resp, const struct reply *r)
{
	if (resp->kind == RESP_NONE)
		return;
	if (!resp->wrap) /* a wrapped answer is counted once, as itself */
		metrics_http(r->status);
	if (resp->wrap) {
		char *wrap = resp->wrap;
		size_t len;
		char *js = wrap_script(wrap, r, &len);
		resp->wrap = NULL;
		free(wrap);
		struct reply w = { .status = r->status, .content_type = "text/javascript; charset=utf-8",
		                   .headers = r->headers, .body = js, .body_len = js ? len : 0 };
		if (!js)
			log_error("out of memory wrapping an answer as a script");
		reply_send(resp, &w);
		free(js);
		return;
	}
	struct buf head = { 0 };
	size_t len = 0, off = 0;
	char *buf = NULL;
	if (format_head(&head, r, resp->cors) == 0)
		buf = resp->kind != RESP_CGI ? encode_fcgi(resp->fcgi_id, head.data, head.len, r, &len)
		                              : encode_cgi(head.data, head.len, r, &len);
	buf_free(&head);
	if (!buf) {
		log_error("out of memory building an answer; closing the connection");
		reply_drop(resp);
		return;
	}
	int rc = write_some(resp->fd, resp->kind, buf, len, &off);
	if (rc < 0)
		log_info("web server connection closed before the answer: %s", strerror(errno));
	if (rc == 0) {
		if (resp->kind == RESP_DIRECT)
			direct->release(resp->fd); /* out of its loop until the rest is written */
		keep_pending(resp->fd, resp->kind, buf, len, off);
	} else if (resp->kind == RESP_DIRECT) {
		free(buf);
		direct->answered(resp->fd, rc > 0);
	} else {
		free(buf);
		close(resp->fd);
	}
	resp->kind = RESP_NONE;
	resp->fd = -1;
}

void reply_preflight(struct responder *resp)
{
	struct reply r = { .status = 200, .content_type = "text/plain; charset=utf-8" };
	reply_send(resp, &r);
}

void reply_drop(struct responder *resp)
{
	if (resp->kind != RESP_NONE) {
		free(resp->wrap);
		resp->wrap = NULL;
	}
	if (resp->kind == RESP_DIRECT)
		direct->answered(resp->fd, 0);
	else if (resp->kind != RESP_NONE && resp->fd >= 0)
		close(resp->fd);
	resp->kind = RESP_NONE;
	resp->fd = -1;
}

void reply_set_direct(const struct reply_direct_ops *ops)
{
	direct = ops;
}

void reply_keep_conn(struct responder *resp)
{
	if (direct && resp->kind == RESP_FCGI && direct->adopt(resp->fd) == 0)
		resp->kind = RESP_DIRECT;
}

int reply_watch(const struct responder *resp, struct io *io)
{
	if (resp->kind == RESP_DIRECT)
		return direct->watch(resp->fd, io);
	io->fd = resp->fd;
	return loop_add(reply_loop, io, EPOLLIN | EPOLLRDHUP);
}

void reply_unwatch(const struct responder *resp, struct io *io)
{
	if (resp->kind == RESP_DIRECT)
		direct->watch(resp->fd, NULL);
	else
		loop_del(reply_loop, io);
}
