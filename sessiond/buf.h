/* buf.h - a growable byte buffer (answers being built, stanzas queued for a client). */
#ifndef BOSH_BUF_H
#define BOSH_BUF_H

#include <stdlib.h>
#include <string.h>

struct buf {
	char *data;
	size_t len, cap;
};

/* -1 on OOM, b unchanged. */
static inline int buf_append(struct buf *b, const char *data, size_t len)
{
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 512;
		while (cap < b->len + len)
			cap *= 2;
		char *n = realloc(b->data, cap);
		if (!n)
			return -1;
		b->data = n;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

static inline void buf_free(struct buf *b)
{
	free(b->data);
	*b = (struct buf){ 0 };
}

#endif
