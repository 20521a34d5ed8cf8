#include "query.h"

#include <string.h>

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* URL-decodes src[0..n) ('+' is a space) into out; -1 if malformed or too long. */
static long url_decode(const char *src, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)src[i];
		if (c == '%') {
			int hi = i + 1 < n ? hexval(src[i + 1]) : -1;
			int lo = i + 2 < n ? hexval(src[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return -1;
			c = hi << 4 | lo;
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (o == cap)
			return -1;
		out[o++] = (char)c;
	}
	return (long)o;
}

/* The value of parameter name in qs, as [*val, *val + *len), or 0 if absent. */
static int param(const char *qs, const char *name, const char **val, size_t *len)
{
	size_t nl = strlen(name);
	for (const char *p = qs; *p;) {
		const char *amp = strchr(p, '&'), *end = amp ? amp : p + strlen(p);
		if ((size_t)(end - p) > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			*val = p + nl + 1;
			*len = (size_t)(end - *val);
			return 1;
		}
		p = amp ? amp + 1 : end;
	}
	return 0;
}

/* A JSONP callback is put into a script verbatim: allow plain names only. */
static int callback_ok(const char *s)
{
	if (!*s || strlen(s) > QUERY_CALLBACK_MAX || (*s >= '0' && *s <= '9'))
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '_' || *s == '$' || *s == '.'))
			return 0;
	return 1;
}

int query_body(const char *qs, char *out, size_t cap, struct query_body *q, const char **why)
{
	const char *val;
	size_t len;
	long n;
	memset(q, 0, sizeof *q);
	if (param(qs, "data", &val, &len)) {
		if ((n = url_decode(val, len, out, cap)) < 0)
			return *why = "the data parameter is malformed or too long", -1;
		q->len = (size_t)n;
		if (param(qs, "callback", &val, &len)) {
			if ((n = url_decode(val, len, q->callback, QUERY_CALLBACK_MAX)) < 0)
				return *why = "the callback parameter is malformed", -1;
			q->callback[n] = 0;
			if (!callback_ok(q->callback))
				return *why = "the callback is not a plain JavaScript name", -1;
		}
		return 0;
	}
	if ((n = url_decode(qs, strlen(qs), out, cap)) < 0)
		return *why = "the query string is malformed or too long", -1;
	q->len = (size_t)n;
	q->script = 1;
	return 0;
}
