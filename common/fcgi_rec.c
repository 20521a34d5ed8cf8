#include "fcgi_rec.h"

#include <string.h>

/* One record header, read; clen + plen bound a record to 8 + 65535 + 255 bytes. */
struct rec {
	uint8_t version, type;
	uint16_t id;
	size_t clen, plen;
};

static void rec_read(const uint8_t *p, struct rec *r)
{
	r->version = p[0];
	r->type = p[1];
	r->id = (uint16_t)(p[2] << 8 | p[3]);
	r->clen = (size_t)p[4] << 8 | p[5];
	r->plen = p[6];
}

static size_t rec_size(const struct rec *r)
{
	return FCGI_HEADER_LEN + r->clen + r->plen;
}

/* ---- scanning ------------------------------------------------------------
 *
 * stage 0: nothing but management records (id 0) until BEGIN_REQUEST;
 * stage 1: PARAMS records, until the empty one;
 * stage 2: STDIN records, until the empty one, which ends the request.
 * ABORT_REQUEST for the request may come in stage 1 or 2.
 *
 * A record is judged on its header alone as soon as the header is in, so
 * that junk (an HTTP request sent to the FastCGI port, say) is refused at
 * once rather than after up to 64 KiB more of it; it counts only once it is
 * whole. */

/* Why the record may not come now, or NULL if it may. */
static const char *rec_refused(const struct fcgi_scan *s, const struct rec *r, size_t max_params,
                               size_t max_stdin)
{
	if (r->version != 1)
		return "FastCGI version other than 1";
	if (r->id == 0)
		return NULL; /* a management record: skipped whatever its type */
	if (s->stage == 0) {
		if (r->type != FCGI_BEGIN_REQUEST)
			return "FastCGI record before BEGIN_REQUEST";
		return r->clen == 8 ? NULL : "FastCGI BEGIN_REQUEST body not 8 bytes";
	}
	if (r->id != s->id)
		return "FastCGI multiplexing is not supported";
	switch (r->type) {
	case FCGI_BEGIN_REQUEST:
		return "second FastCGI BEGIN_REQUEST";
	case FCGI_ABORT_REQUEST:
		return NULL;
	case FCGI_PARAMS:
		if (s->stage != 1)
			return "FastCGI PARAMS after the empty PARAMS record";
		/* written so that a smaller max on a later call cannot wrap */
		if (s->params_len > max_params || r->clen > max_params - s->params_len)
			return "FastCGI parameters over the limit";
		return NULL;
	case FCGI_STDIN:
		if (s->stage != 2)
			return "FastCGI STDIN before the empty PARAMS record";
		if (s->stdin_len > max_stdin || r->clen > max_stdin - s->stdin_len)
			return "request body over the limit";
		return NULL;
	default:
		return "unexpected FastCGI record type";
	}
}

/* Takes in a whole record that rec_refused() let through. */
static int rec_take(struct fcgi_scan *s, const struct rec *r, const uint8_t *content, const char **why)
{
	if (r->id == 0)
		return FCGI_SCAN_MORE;
	switch (r->type) {
	case FCGI_BEGIN_REQUEST:
		if ((content[0] << 8 | content[1]) != FCGI_RESPONDER) {
			*why = "FastCGI role other than RESPONDER";
			return FCGI_SCAN_ERROR;
		}
		s->keep_conn = (uint8_t)(content[2] & FCGI_KEEP_CONN);
		s->id = r->id;
		s->stage = 1;
		return FCGI_SCAN_MORE;
	case FCGI_ABORT_REQUEST:
		return FCGI_SCAN_ABORT;
	case FCGI_PARAMS:
		s->params_len += r->clen;
		if (r->clen == 0)
			s->stage = 2;
		return FCGI_SCAN_MORE;
	case FCGI_STDIN:
		s->stdin_len += r->clen;
		return r->clen == 0 ? FCGI_SCAN_DONE : FCGI_SCAN_MORE;
	default:
		*why = "unexpected FastCGI record type"; /* rec_refused() stops these */
		return FCGI_SCAN_ERROR;
	}
}

/* Each call reads the records it has not seen once, plus at most one
 * header it had already judged: linear in the request however it is fed.
 * The outcome is the same however the bytes are split. s->off stays at the
 * start of a bad or ABORT_REQUEST record, so a call after either gives the
 * same answer again; after DONE, so does s->end. */
int fcgi_scan(struct fcgi_scan *s, const uint8_t *buf, size_t len, size_t max_params,
              size_t max_stdin, const char **why)
{
	if (s->end) /* the shortest request is 32 bytes: end is never 0 when done */
		return FCGI_SCAN_DONE;
	if (s->off > len) {
		*why = "fcgi_scan: fewer bytes than on the last call";
		return FCGI_SCAN_ERROR;
	}
	while (len - s->off >= FCGI_HEADER_LEN) {
		struct rec r;
		rec_read(buf + s->off, &r);
		const char *bad = rec_refused(s, &r, max_params, max_stdin);
		if (bad) {
			*why = bad;
			return FCGI_SCAN_ERROR;
		}
		if (len - s->off < rec_size(&r))
			break;
		int res = rec_take(s, &r, buf + s->off + FCGI_HEADER_LEN, why);
		if (res == FCGI_SCAN_ERROR || res == FCGI_SCAN_ABORT)
			return res;
		s->off += rec_size(&r);
		if (res == FCGI_SCAN_DONE) {
			s->end = s->off;
			return FCGI_SCAN_DONE;
		}
	}
	return FCGI_SCAN_MORE;
}

/* ---- decoding ------------------------------------------------------------ */

/* The next whole record of the request's id and this type at or after *off
 * in buf[0..end), its content at *content; 0 if there is none. */
static int rec_find(const uint8_t *buf, size_t end, uint16_t id, int type, size_t *off, struct rec *r,
                    const uint8_t **content)
{
	while (end - *off >= FCGI_HEADER_LEN) {
		rec_read(buf + *off, r);
		if (end - *off < rec_size(r))
			return 0;
		*content = buf + *off + FCGI_HEADER_LEN;
		*off += rec_size(r);
		if (r->id == id && r->type == type)
			return 1;
	}
	return 0;
}

/* The PARAMS content of the request, read as one stream across its
 * records: a name-value pair, even a length, may be split between two. */
struct pstream {
	const uint8_t *buf;
	size_t end;          /* where the request ends in buf */
	size_t next;         /* the next record header to look at */
	const uint8_t *at;   /* unread content of the current record */
	size_t left;
	size_t rest;         /* unread content of all PARAMS records */
	uint16_t id;
};

/* Copies the next n bytes of the stream to dst; -1 if it ends first. */
static int ps_take(struct pstream *p, void *dst, size_t n)
{
	uint8_t *d = dst;
	if (n > p->rest)
		return -1;
	while (n) {
		struct rec r;
		if (p->left == 0) {
			if (!rec_find(p->buf, p->end, p->id, FCGI_PARAMS, &p->next, &r, &p->at) || r.clen == 0)
				return -1;
			p->left = r.clen;
		}
		size_t k = n < p->left ? n : p->left;
		memcpy(d, p->at, k);
		d += k, p->at += k, p->left -= k, p->rest -= k, n -= k;
	}
	return 0;
}

/* A name or value length: one byte below 128, else four, big-endian, top bit set. */
static int ps_len(struct pstream *p, size_t *len)
{
	uint8_t b[4];
	if (ps_take(p, b, 1) < 0)
		return -1;
	if (b[0] < 0x80) {
		*len = b[0];
		return 0;
	}
	if (ps_take(p, b + 1, 3) < 0)
		return -1;
	*len = (size_t)(b[0] & 0x7f) << 24 | (size_t)b[1] << 16 | (size_t)b[2] << 8 | b[3];
	return 0;
}

/* Copies n bytes of a name or value to out and ends it with a NUL; the
 * caller has made room for n + 1. */
static int ps_string(struct pstream *p, char *out, size_t n, const char **why)
{
	if (ps_take(p, out, n) < 0) {
		*why = "FastCGI name-value pair cut short";
		return -1;
	}
	if (memchr(out, 0, n)) {
		*why = "NUL in a FastCGI parameter";
		return -1;
	}
	out[n] = 0;
	return 0;
}

/* One pair to scratch[*w..cap) as "NAME\0VALUE\0". Each pair carries at
 * least two length bytes, which pay for its two NULs: pairs never take more
 * room than their encoding. An empty name is let through: nothing looks
 * parameters up by "", so it is harmless. */
static int decode_pair(struct pstream *p, char *scratch, size_t cap, size_t *w, const char **why)
{
	size_t nlen, vlen;
	if (ps_len(p, &nlen) < 0 || ps_len(p, &vlen) < 0 || nlen > p->rest || vlen > p->rest - nlen) {
		*why = "FastCGI name-value pair cut short";
		return -1;
	}
	/* nlen + vlen <= rest <= params_len: the sum cannot wrap */
	if (nlen + vlen + 2 > cap - *w) {
		*why = "no room for the FastCGI parameters";
		return -1;
	}
	if (ps_string(p, scratch + *w, nlen, why) < 0 ||
	    ps_string(p, scratch + *w + nlen + 1, vlen, why) < 0)
		return -1;
	*w += nlen + vlen + 2;
	return 0;
}

/* The STDIN content to scratch[*w..cap), NUL-terminated. */
static int decode_body(const struct fcgi_scan *s, const uint8_t *buf, char *scratch, size_t cap,
                       size_t *w, const char **why)
{
	if (s->stdin_len >= cap - *w) {
		*why = "no room for the request body";
		return -1;
	}
	size_t off = 0;
	struct rec r;
	const uint8_t *content;
	while (rec_find(buf, s->end, s->id, FCGI_STDIN, &off, &r, &content)) {
		if (r.clen >= cap - *w) { /* only if s did not come from fcgi_scan() on buf */
			*why = "no room for the request body";
			return -1;
		}
		memcpy(scratch + *w, content, r.clen);
		*w += r.clen;
	}
	scratch[*w] = 0;
	return 0;
}

/* A length at at[*i] in at[0..len), as ps_len() reads one. */
static int flat_len(const uint8_t *at, size_t len, size_t *i, size_t *out)
{
	if (*i >= len)
		return -1;
	if (at[*i] < 0x80) {
		*out = at[(*i)++];
		return 0;
	}
	if (len - *i < 4)
		return -1;
	const uint8_t *b = at + *i;
	*out = (size_t)(b[0] & 0x7f) << 24 | (size_t)b[1] << 16 | (size_t)b[2] << 8 | b[3];
	*i += 4;
	return 0;
}

/* The pairs when one record holds them all, as nginx and Apache send them:
 * what decode_pair() does, without its walk over records for every byte. In
 * the encoding a name and its value are adjacent: one look for a NUL. */
static int decode_flat(const uint8_t *at, size_t len, char *scratch, size_t cap, size_t *w, size_t *n,
                       const char **why)
{
	for (size_t i = 0; i < len; (*n)++) {
		size_t nlen, vlen;
		if (flat_len(at, len, &i, &nlen) < 0 || flat_len(at, len, &i, &vlen) < 0 || nlen > len - i ||
		    vlen > len - i - nlen) {
			*why = "FastCGI name-value pair cut short";
			return -1;
		}
		if (nlen + vlen + 2 > cap - *w) {
			*why = "no room for the FastCGI parameters";
			return -1;
		}
		if (memchr(at + i, 0, nlen + vlen)) {
			*why = "NUL in a FastCGI parameter";
			return -1;
		}
		char *d = scratch + *w;
		memcpy(d, at + i, nlen);
		d[nlen] = 0;
		memcpy(d + nlen + 1, at + i + nlen, vlen);
		d[nlen + 1 + vlen] = 0;
		*w += nlen + vlen + 2;
		i += nlen + vlen;
	}
	return 0;
}

int fcgi_decode(const struct fcgi_scan *s, const uint8_t *buf, char *scratch, size_t cap,
                struct fcgi_request *out, const char **why)
{
	if (!s->end) {
		*why = "fcgi_decode: the request is not whole";
		return -1;
	}
	struct pstream p = { buf, s->end, 0, NULL, 0, s->params_len, s->id };
	size_t w = 0, n = 0, first = 0;
	struct rec r;
	const uint8_t *content;
	if (s->params_len && rec_find(buf, s->end, s->id, FCGI_PARAMS, &first, &r, &content) &&
	    r.clen == s->params_len) {
		if (decode_flat(content, r.clen, scratch, cap, &w, &n, why) < 0)
			return -1;
	} else {
		for (; p.rest; n++)
			if (decode_pair(&p, scratch, cap, &w, why) < 0)
				return -1;
	}
	size_t body = w;
	if (decode_body(s, buf, scratch, cap, &w, why) < 0)
		return -1;
	out->id = s->id;
	out->keep_conn = s->keep_conn;
	out->params = scratch;
	out->nparams = n;
	out->body = scratch + body;
	out->body_len = w - body;
	return 0;
}

/* The first pair of that name wins. */
const char *fcgi_param(const struct fcgi_request *r, const char *name)
{
	const char *p = r->params;
	for (size_t i = 0; i < r->nparams; i++) {
		const char *v = p + strlen(p) + 1;
		if (strcmp(p, name) == 0)
			return v;
		p = v + strlen(v) + 1;
	}
	return NULL;
}

void fcgi_header(uint8_t out[FCGI_HEADER_LEN], int type, uint16_t id, size_t content_len)
{
	out[0] = 1;
	out[1] = (uint8_t)type;
	out[2] = (uint8_t)(id >> 8);
	out[3] = (uint8_t)id;
	out[4] = (uint8_t)(content_len >> 8);
	out[5] = (uint8_t)content_len;
	out[6] = 0;
	out[7] = 0;
}
