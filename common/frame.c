#include "frame.h"

#include <stdio.h>
#include <string.h>

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

struct writer {
	uint8_t *buf;
	size_t cap, len;
	int overflow;
};

static void put_field(struct writer *w, enum frame_tag tag, const void *a, size_t alen,
                      const void *b, size_t blen)
{
	size_t n = alen + blen;
	if (w->overflow || n > FRAME_MAX || w->cap - w->len < 5 + n) {
		w->overflow = 1;
		return;
	}
	w->buf[w->len] = (uint8_t)tag;
	put_u32(w->buf + w->len + 1, (uint32_t)n);
	if (alen)
		memcpy(w->buf + w->len + 5, a, alen);
	if (blen)
		memcpy(w->buf + w->len + 5 + alen, b, blen);
	w->len += 5 + n;
}

static void put_string(struct writer *w, enum frame_tag tag, const char *s)
{
	if (s)
		put_field(w, tag, s, strlen(s) + 1, NULL, 0);
}

size_t frame_encode_request(uint8_t *buf, size_t cap, const struct frame_request *r)
{
	if (cap < FRAME_HEADER_LEN)
		return 0;
	struct writer w = { buf, cap > FRAME_MAX ? FRAME_MAX : cap, FRAME_HEADER_LEN, 0 };
	uint8_t u16[2] = { (uint8_t)(r->fcgi_id >> 8), (uint8_t)r->fcgi_id };
	uint8_t u32[4];
	put_u32(u32, r->flags);
	put_field(&w, TAG_FCGI_ID, u16, 2, NULL, 0);
	put_field(&w, TAG_FLAGS, u32, 4, NULL, 0);
	put_string(&w, TAG_CLIENT, r->client);
	put_string(&w, TAG_METHOD, r->method);
	put_string(&w, TAG_ORIGIN, r->origin);
	put_string(&w, TAG_USER_AGENT, r->user_agent);
	put_string(&w, TAG_ERROR, r->error);
	put_string(&w, TAG_WRAP, r->wrap);
	put_string(&w, TAG_PAGE, r->page);
	put_string(&w, TAG_COMMAND, r->command);
	for (size_t i = 0; i < r->nattrs; i++)
		put_field(&w, TAG_ATTR, r->attrs[i].name, strlen(r->attrs[i].name) + 1,
		          r->attrs[i].value, strlen(r->attrs[i].value) + 1);
	if (r->payload)
		put_field(&w, TAG_PAYLOAD, r->payload, r->payload_len, NULL, 0);
	if (w.overflow)
		return 0;
	buf[0] = 'B';
	buf[1] = 'F';
	buf[2] = FRAME_VERSION;
	buf[3] = FRAME_REQUEST;
	put_u32(buf + 4, (uint32_t)(w.len - FRAME_HEADER_LEN));
	return w.len;
}

static int fail(char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "%s", why);
	return -1;
}

/* Checks the header; on success fields and flen give the field area. */
static int check_header(const uint8_t *buf, size_t len, enum frame_type type,
                        const uint8_t **fields, size_t *flen, char *err, size_t errlen)
{
	if (len < FRAME_HEADER_LEN)
		return fail(err, errlen, "frame shorter than its header");
	if (len > FRAME_MAX)
		return fail(err, errlen, "frame larger than FRAME_MAX");
	if (buf[0] != 'B' || buf[1] != 'F')
		return fail(err, errlen, "bad frame magic");
	if (buf[2] != FRAME_VERSION) {
		snprintf(err, errlen, "frame version %u, expected %u", buf[2], FRAME_VERSION);
		return -1;
	}
	if (buf[3] != type) {
		snprintf(err, errlen, "frame type %u, expected %u", buf[3], (unsigned)type);
		return -1;
	}
	if (get_u32(buf + 4) != len - FRAME_HEADER_LEN)
		return fail(err, errlen, "frame length does not match the message");
	*fields = buf + FRAME_HEADER_LEN;
	*flen = len - FRAME_HEADER_LEN;
	return 0;
}

/* A string field: exactly one NUL, at the end. */
static const char *as_string(const uint8_t *v, size_t n)
{
	if (n == 0 || v[n - 1] != 0 || memchr(v, 0, n - 1))
		return NULL;
	return (const char *)v;
}

static int decode_attr(struct frame_request *out, const uint8_t *v, size_t n)
{
	if (out->nattrs == FRAME_MAX_ATTRS || n < 3 || v[n - 1] != 0)
		return -1;
	const uint8_t *nul = memchr(v, 0, n);
	size_t namelen = (size_t)(nul - v);
	if (namelen == 0 || !as_string(nul + 1, n - namelen - 1))
		return -1;
	out->attrs[out->nattrs].name = (const char *)v;
	out->attrs[out->nattrs].value = (const char *)nul + 1;
	out->nattrs++;
	return 0;
}

static int decode_field(struct frame_request *out, unsigned tag, const uint8_t *v, size_t n)
{
	const char **str = NULL;
	switch (tag) {
	case TAG_FCGI_ID:
		if (n != 2)
			return -1;
		out->fcgi_id = (uint16_t)(v[0] << 8 | v[1]);
		return 0;
	case TAG_FLAGS:
		if (n != 4)
			return -1;
		out->flags = get_u32(v);
		return 0;
	case TAG_CLIENT: str = &out->client; break;
	case TAG_METHOD: str = &out->method; break;
	case TAG_ORIGIN: str = &out->origin; break;
	case TAG_USER_AGENT: str = &out->user_agent; break;
	case TAG_ERROR: str = &out->error; break;
	case TAG_WRAP: str = &out->wrap; break;
	case TAG_PAGE: str = &out->page; break;
	case TAG_COMMAND: str = &out->command; break;
	case TAG_ATTR:
		return decode_attr(out, v, n);
	case TAG_PAYLOAD:
		if (out->payload)
			return -1;
		out->payload = v;
		out->payload_len = n;
		return 0;
	default:
		return 0; /* optional field of a newer sender */
	}
	if (*str)
		return -1; /* a repeated field is never legitimate */
	*str = as_string(v, n);
	return *str ? 0 : -1;
}

int frame_decode_request(const uint8_t *buf, size_t len, struct frame_request *out,
                         char *err, size_t errlen)
{
	const uint8_t *p;
	size_t left;
	memset(out, 0, sizeof *out);
	if (check_header(buf, len, FRAME_REQUEST, &p, &left, err, errlen) < 0)
		return -1;
	while (left > 0) {
		if (left < 5)
			return fail(err, errlen, "truncated field header");
		unsigned tag = p[0];
		uint32_t n = get_u32(p + 1);
		if (n > left - 5)
			return fail(err, errlen, "field longer than the frame");
		if (decode_field(out, tag, p + 5, n) < 0) {
			snprintf(err, errlen, "malformed field with tag %u", tag);
			return -1;
		}
		p += 5 + n;
		left -= 5 + n;
	}
	if (!out->method)
		return fail(err, errlen, "request frame without method");
	return 0;
}

void frame_cgi_data_header(uint8_t hdr[FRAME_CGI_HDR_LEN], size_t len)
{
	hdr[0] = 'B';
	hdr[1] = 'F';
	hdr[2] = FRAME_VERSION;
	hdr[3] = FRAME_CGI_DATA;
	put_u32(hdr + 4, (uint32_t)(len + 5));
	hdr[8] = TAG_DATA;
	put_u32(hdr + 9, (uint32_t)len);
}

int frame_decode_cgi_data(const uint8_t *buf, size_t len, const uint8_t **data, size_t *dlen,
                          char *err, size_t errlen)
{
	const uint8_t *p;
	size_t left;
	if (check_header(buf, len, FRAME_CGI_DATA, &p, &left, err, errlen) < 0)
		return -1;
	if (left < 5 || p[0] != TAG_DATA || get_u32(p + 1) != left - 5)
		return fail(err, errlen, "malformed CGI data frame");
	*data = p + 5;
	*dlen = left - 5;
	return 0;
}

const char *frame_attr(const struct frame_request *r, const char *name)
{
	for (size_t i = 0; i < r->nattrs; i++)
		if (strcmp(r->attrs[i].name, name) == 0)
			return r->attrs[i].value;
	return NULL;
}
