/* ws_handshake.c - the WebSocket opening handshake (see ws_handshake.h).
 *
 * The request is kept as received in one buffer, at most WS_HS_MAX_SIZE
 * bytes, and parsed a complete line at a time; values are cut out in place
 * (NUL-terminated) and remembered by offset, because the buffer may move
 * while it grows. The checks that need every header (Upgrade, Connection,
 * version, key, subprotocol, Origin) run once, at the blank line.
 */
#define _POSIX_C_SOURCE 200809L
#include "ws_handshake.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* Headers we look at; the index is where the value's offset is kept. */
enum hdr {
	H_HOST, H_KEY, H_VERSION, H_ORIGIN, H_XFF, H_XRI, H_UA, H_NSINGLE,
	H_UPGRADE = H_NSINGLE, H_CONNECTION, H_PROTOCOL, H_NONE,
};

static const char *const hdr_names[] = {
	[H_HOST] = "host", [H_KEY] = "sec-websocket-key", [H_VERSION] = "sec-websocket-version",
	[H_ORIGIN] = "origin", [H_XFF] = "x-forwarded-for", [H_XRI] = "x-real-ip",
	[H_UA] = "user-agent", [H_UPGRADE] = "upgrade", [H_CONNECTION] = "connection",
	[H_PROTOCOL] = "sec-websocket-protocol",
};

struct ws_hs {
	struct ws_hs_policy policy;
	struct buf raw;          /* the request as received */
	size_t line_start;       /* first byte of the line being parsed */
	size_t scan;             /* bytes before this hold no '\n' of the current line */
	int nlines;              /* the request line and the header lines seen */
	enum ws_hs_result result;
	int status;
	const char *why;
	size_t path_off;         /* offsets + 1 into raw; 0: absent */
	size_t val_off[H_NSINGLE];
	int has_websocket, has_upgrade, has_xmpp; /* tokens seen in list headers */
	struct ws_hs_request req;
};

struct ws_hs *ws_hs_new(const struct ws_hs_policy *policy)
{
	struct ws_hs *h = calloc(1, sizeof *h);
	if (h && policy)
		h->policy = *policy;
	return h;
}

void ws_hs_free(struct ws_hs *h)
{
	if (!h)
		return;
	buf_free(&h->raw);
	free(h);
}

static enum ws_hs_result fail(struct ws_hs *h, int status, const char *why)
{
	h->result = WS_HS_ERROR;
	h->status = status;
	h->why = why;
	return h->result;
}

int ws_hs_status(const struct ws_hs *h)
{
	return h->result == WS_HS_ERROR ? h->status : 0;
}

const char *ws_hs_why(const struct ws_hs *h)
{
	return h->why ? h->why : "";
}

const struct ws_hs_request *ws_hs_request(const struct ws_hs *h)
{
	return h->result == WS_HS_DONE ? &h->req : NULL;
}

/* ---- tokens ---------------------------------------------------------- */

static int is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* Whether the comma-separated list holds token (RFC 7230 §7; empty
 * elements are allowed and skipped). */
static int list_has(const char *list, const char *token, int nocase)
{
	size_t tl = strlen(token);
	for (const char *p = list; *p;) {
		while (is_ows(*p) || *p == ',')
			p++;
		const char *start = p;
		while (*p && *p != ',')
			p++;
		const char *end = p;
		while (end > start && is_ows(end[-1]))
			end--;
		if ((size_t)(end - start) == tl &&
		    (nocase ? strncasecmp(start, token, tl) : strncmp(start, token, tl)) == 0)
			return 1;
	}
	return 0;
}

/* base64 of exactly 16 bytes: 22 characters, one whose low 4 bits are
 * unused (so they must be zero), then "==". */
static int key_valid(const char *k)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	if (strlen(k) != 24 || strcmp(k + 22, "==") != 0)
		return 0;
	for (int i = 0; i < 22; i++)
		if (!k[i] || !strchr(b64, k[i]))
			return 0;
	return strchr("AQgw", k[21]) != NULL;
}

/* ---- lines ------------------------------------------------------------ */

static char *at(struct ws_hs *h, size_t off)
{
	return h->raw.data + off;
}

/* "GET SP target SP HTTP/1.1"; line is NUL-terminated (CRLF removed). */
static enum ws_hs_result request_line(struct ws_hs *h, size_t off)
{
	char *line = at(h, off);
	if (strncmp(line, "GET ", 4) != 0)
		return fail(h, 400, "request method is not GET");
	char *target = line + 4, *sp = strchr(target, ' ');
	if (!sp || strcmp(sp + 1, "HTTP/1.1") != 0)
		return fail(h, 400, "request line is not GET <path> HTTP/1.1");
	*sp = 0;
	if (*target != '/')
		return fail(h, 400, "request target is not a path");
	for (const char *p = target; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return fail(h, 400, "request target has a byte that is not visible ASCII");
	h->path_off = off + 4 + 1;
	return WS_HS_MORE;
}

static enum hdr hdr_lookup(const char *name)
{
	for (int i = 0; i < H_NONE; i++)
		if (strcasecmp(name, hdr_names[i]) == 0)
			return (enum hdr)i;
	return H_NONE;
}

/* "Name: value"; line is NUL-terminated (CRLF removed). */
static enum ws_hs_result header_line(struct ws_hs *h, size_t off)
{
	char *line = at(h, off), *p = line;
	if (is_ows(*p))
		return fail(h, 400, "folded header line (obsolete line folding)");
	while (is_tchar((unsigned char)*p))
		p++;
	if (p == line || *p != ':')
		return fail(h, 400, "header line without a name and a colon");
	*p++ = 0;
	while (is_ows(*p))
		p++;
	char *value = p, *end = value + strlen(value);
	while (end > value && is_ows(end[-1]))
		*--end = 0;
	for (const char *q = value; *q; q++)
		if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
			return fail(h, 400, "control character in a header value");
	enum hdr which = hdr_lookup(line);
	switch (which) {
	case H_UPGRADE: h->has_websocket |= list_has(value, "websocket", 1); break;
	case H_CONNECTION: h->has_upgrade |= list_has(value, "upgrade", 1); break;
	case H_PROTOCOL: h->has_xmpp |= list_has(value, "xmpp", 0); break;
	case H_NONE: break;
	default:
		if (h->val_off[which])
			return fail(h, 400, "a header that may appear once appears twice");
		h->val_off[which] = (size_t)(value - h->raw.data) + 1;
	}
	return WS_HS_MORE;
}

static const char *value_of(struct ws_hs *h, enum hdr which)
{
	return h->val_off[which] ? at(h, h->val_off[which] - 1) : NULL;
}

/* The blank line: everything is known; decide. */
static enum ws_hs_result headers_done(struct ws_hs *h)
{
	struct ws_hs_request *r = &h->req;
	r->host = value_of(h, H_HOST);
	r->key = value_of(h, H_KEY);
	r->origin = value_of(h, H_ORIGIN);
	r->forwarded_for = value_of(h, H_XFF);
	r->real_ip = value_of(h, H_XRI);
	r->user_agent = value_of(h, H_UA);
	const char *version = value_of(h, H_VERSION);
	if (!r->host || !*r->host)
		return fail(h, 400, "no Host header");
	if (!h->has_websocket)
		return fail(h, 400, "not a WebSocket upgrade (no Upgrade: websocket)");
	if (!h->has_upgrade)
		return fail(h, 400, "Connection does not name upgrade");
	if (!version || strcmp(version, "13") != 0)
		return fail(h, 426, "Sec-WebSocket-Version is missing or not 13");
	if (!r->key || !key_valid(r->key))
		return fail(h, 400, "Sec-WebSocket-Key is missing or not base64 of 16 bytes");
	if (!h->has_xmpp)
		return fail(h, 400, "Sec-WebSocket-Protocol does not offer xmpp");
	if (r->origin && h->policy.origin_ok && !h->policy.origin_ok(h->policy.origin_arg, r->origin))
		return fail(h, 403, "Origin not allowed by cors_origins");
	r->path = at(h, h->path_off - 1);
	h->result = WS_HS_DONE;
	return h->result;
}

/* One complete line [line_start, nl]; nl is the '\n'. */
static enum ws_hs_result take_line(struct ws_hs *h, size_t nl)
{
	size_t off = h->line_start;
	h->line_start = h->scan = nl + 1;
	if (nl == off || h->raw.data[nl - 1] != '\r')
		return fail(h, 400, "line not ended by CRLF");
	h->raw.data[nl - 1] = 0;
	if (memchr(at(h, off), '\r', nl - 1 - off) || memchr(at(h, off), 0, nl - 1 - off))
		return fail(h, 400, "CR or NUL inside a line");
	if (nl - 1 == off) { /* the blank line */
		if (h->nlines == 0)
			return fail(h, 400, "empty line before the request line");
		h->raw.len = nl + 1; /* what follows is not ours: see *used */
		return headers_done(h);
	}
	if (h->nlines++ == 0)
		return request_line(h, off);
	if (h->nlines - 1 > WS_HS_MAX_HEADERS)
		return fail(h, 431, "too many header lines");
	return header_line(h, off);
}

enum ws_hs_result ws_hs_feed(struct ws_hs *h, const char *data, size_t len, size_t *used)
{
	*used = 0;
	if (h->result != WS_HS_MORE)
		return h->result;
	size_t before = h->raw.len;
	/* One byte past the limit is enough to know the request is too big. */
	size_t room = WS_HS_MAX_SIZE + 1 - h->raw.len;
	if (buf_append(&h->raw, data, len < room ? len : room) < 0)
		return fail(h, 503, "out of memory");
	while (h->result == WS_HS_MORE && h->scan < h->raw.len) {
		char *nl = memchr(at(h, h->scan), '\n', h->raw.len - h->scan);
		size_t end = nl ? (size_t)(nl - h->raw.data) + 1 : h->raw.len;
		if (end - h->line_start > WS_HS_MAX_LINE)
			return fail(h, h->nlines ? 431 : 414, h->nlines ? "header line too long" : "request line too long");
		if (end > WS_HS_MAX_SIZE)
			return fail(h, 431, "handshake larger than its limit");
		if (!nl) {
			h->scan = h->raw.len;
			break;
		}
		(void)take_line(h, end - 1); /* sets h->result */
	}
	if (h->result == WS_HS_MORE && len > room)
		return fail(h, 431, "handshake larger than its limit");
	*used = h->result == WS_HS_DONE ? h->raw.len - before : len;
	return h->result;
}

/* ---- the client's address --------------------------------------------- */

const char *ws_hs_client_addr(const struct ws_hs_request *req, char *out, size_t outlen)
{
	const char *v = req->real_ip, *end;
	if (!v && req->forwarded_for) {
		const char *comma = strrchr(req->forwarded_for, ',');
		v = comma ? comma + 1 : req->forwarded_for;
	}
	if (!v)
		return NULL;
	while (is_ows(*v))
		v++;
	end = v + strlen(v);
	while (end > v && is_ows(end[-1]))
		end--;
	if ((size_t)(end - v) >= outlen || end == v)
		return NULL;
	memcpy(out, v, (size_t)(end - v));
	out[end - v] = 0;
	unsigned char addr[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, out, addr) != 1 && inet_pton(AF_INET6, out, addr) != 1)
		return NULL;
	return out;
}

/* ---- answers ---------------------------------------------------------- */

int ws_hs_accept_value(const char *key, char out[29])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t kl = strlen(key);
	char in[64 + sizeof WS_GUID];
	if (kl > 64)
		return -1;
	memcpy(in, key, kl);
	memcpy(in + kl, WS_GUID, sizeof WS_GUID);
	if (!EVP_Digest(in, kl + sizeof WS_GUID - 1, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
		return -1;
	return EVP_EncodeBlock((unsigned char *)out, md, 20) == 28 ? 0 : -1;
}

int ws_hs_accept(const struct ws_hs_request *req, struct buf *out)
{
	char accept[29];
	if (ws_hs_accept_value(req->key, accept) < 0)
		return -1;
	return buf_printf(out, "HTTP/1.1 101 Switching Protocols\r\n"
	                       "Upgrade: websocket\r\n"
	                       "Connection: Upgrade\r\n"
	                       "Sec-WebSocket-Accept: %s\r\n"
	                       "Sec-WebSocket-Protocol: xmpp\r\n"
	                       "\r\n", accept);
}

static const char *status_text(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 414: return "URI Too Long";
	case 426: return "Upgrade Required";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

int ws_hs_reject(int status, struct buf *out)
{
	const char *text = status_text(status);
	return buf_printf(out, "HTTP/1.1 %d %s\r\n"
	                       "Content-Type: text/plain; charset=utf-8\r\n"
	                       "Content-Length: %zu\r\n"
	                       "%s"
	                       "Connection: close\r\n"
	                       "\r\n"
	                       "%s\n",
	                  status, text, strlen(text) + 1,
	                  status == 426 ? "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" : "", text);
}
