/* buf.h - a growable byte buffer: the one way we build XML and HTTP.
 *
 * Answers, stream headers and queued stanzas are assembled here, never in
 * fixed-size arrays: a value from a client or a server can be any length,
 * and the buffer grows to fit it or fails with -1 (out of memory), leaving
 * what was built so far intact. Callers bound what they accept before they
 * build (attribute lengths, stanza sizes); the buffer never truncates.
 */
#ifndef BOSH_BUF_H
#define BOSH_BUF_H

#include "xmlesc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct buf {
	char *data;
	size_t len, cap;
};

/* Room for len more bytes. -1 on OOM (or a size that cannot be), b unchanged. */
static inline int buf_reserve(struct buf *b, size_t len)
{
	if (len > (size_t)-1 / 2 - b->len)
		return -1;
	if (b->len + len <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 512;
	while (cap < b->len + len)
		cap *= 2;
	char *n = realloc(b->data, cap);
	if (!n)
		return -1;
	b->data = n;
	b->cap = cap;
	return 0;
}

/* -1 on OOM, b unchanged. */
static inline int buf_append(struct buf *b, const char *data, size_t len)
{
	if (buf_reserve(b, len) < 0)
		return -1;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

static inline int buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

/* A string literal, its length known at compile time. */
#define buf_lit(b, lit) buf_append((b), "" lit, sizeof(lit) - 1)

/* v in decimal. -1 on OOM, b unchanged. */
static inline int buf_u64(struct buf *b, unsigned long long v)
{
	char d[20]; /* 2^64 - 1 has 20 digits */
	size_t n = sizeof d;
	do
		d[--n] = (char)('0' + v % 10);
	while ((v /= 10));
	return buf_append(b, d + n, sizeof d - n);
}

/* printf onto the end, however long the result. -1 on OOM, b unchanged. */
static inline int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? b->cap - b->len : 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n >= b->cap - b->len || !b->data) {
		if (buf_reserve(b, (size_t)n + 1) < 0)
			return -1;
		va_start(ap, fmt);
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
	return 0;
}

/* value escaped for an XML attribute in either kind of quotes. */
static inline int buf_xml_escaped(struct buf *b, const char *value)
{
	const char *run = value;
	for (const char *p = value;; p++) {
		const char *rep = *p ? xml_attr_entity(*p) : NULL;
		if (!*p || rep) {
			if (buf_append(b, run, (size_t)(p - run)) < 0 || (rep && buf_puts(b, rep) < 0))
				return -1;
			if (!*p)
				return 0;
			run = p + 1;
		}
	}
}

/* " name='value'" with the value escaped; nothing when value is NULL. */
static inline int buf_attr(struct buf *b, const char *name, const char *value)
{
	if (!value)
		return 0;
	size_t at = b->len;
	if (buf_lit(b, " ") < 0 || buf_puts(b, name) < 0 || buf_lit(b, "='") < 0 || buf_xml_escaped(b, value) < 0 ||
	    buf_lit(b, "'") < 0) {
		b->len = at;
		return -1;
	}
	return 0;
}

static inline void buf_free(struct buf *b)
{
	free(b->data);
	*b = (struct buf){ 0 };
}

#endif
