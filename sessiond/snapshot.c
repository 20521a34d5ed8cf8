#include "snapshot.h"

#include <stdlib.h>
#include <string.h>

static void put(struct snap_w *w, const void *p, size_t len)
{
	if (w->failed)
		return;
	if (w->len + len > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		while (cap < w->len + len)
			cap *= 2;
		char *n = realloc(w->data, cap);
		if (!n) {
			w->failed = 1;
			return;
		}
		w->data = n;
		w->cap = cap;
	}
	memcpy(w->data + w->len, p, len);
	w->len += len;
}

void snap_put_u64(struct snap_w *w, uint64_t v) { put(w, &v, sizeof v); }
void snap_put_i64(struct snap_w *w, int64_t v) { put(w, &v, sizeof v); }
void snap_put_double(struct snap_w *w, double v) { put(w, &v, sizeof v); }

void snap_put_bytes(struct snap_w *w, const void *p, size_t len)
{
	snap_put_u64(w, len);
	if (len)
		put(w, p, len);
}

void snap_put_str(struct snap_w *w, const char *s)
{
	if (!s) {
		snap_put_u64(w, UINT64_MAX);
		return;
	}
	snap_put_bytes(w, s, strlen(s));
}

static int get(struct snap_r *r, void *p, size_t len)
{
	if (r->failed || r->len - r->off < len) {
		r->failed = 1;
		memset(p, 0, len);
		return -1;
	}
	memcpy(p, r->data + r->off, len);
	r->off += len;
	return 0;
}

uint64_t snap_get_u64(struct snap_r *r)
{
	uint64_t v;
	get(r, &v, sizeof v);
	return v;
}

int64_t snap_get_i64(struct snap_r *r)
{
	int64_t v;
	get(r, &v, sizeof v);
	return v;
}

double snap_get_double(struct snap_r *r)
{
	double v;
	get(r, &v, sizeof v);
	return v;
}

static char *get_counted(struct snap_r *r, size_t *len, int null_ok)
{
	uint64_t n = snap_get_u64(r);
	*len = 0;
	if (r->failed || (n == UINT64_MAX && null_ok))
		return NULL;
	if (n > SNAP_MAX_STRING || n > r->len - r->off) {
		r->failed = 1;
		return NULL;
	}
	char *s = malloc((size_t)n + 1);
	if (!s) {
		r->failed = 1;
		return NULL;
	}
	get(r, s, (size_t)n);
	s[n] = 0;
	*len = (size_t)n;
	return s;
}

char *snap_get_bytes(struct snap_r *r, size_t *len)
{
	char *s = get_counted(r, len, 0);
	if (s && *len == 0) {
		free(s);
		return NULL;
	}
	return s;
}

char *snap_get_str(struct snap_r *r)
{
	size_t len;
	char *s = get_counted(r, &len, 1);
	if (s && strlen(s) != len) { /* a NUL inside: not a string of ours */
		free(s);
		r->failed = 1;
		return NULL;
	}
	return s;
}

void snap_get_into(struct snap_r *r, char *dst, size_t size)
{
	char *s = snap_get_str(r);
	dst[0] = 0;
	if (s && strlen(s) < size)
		strcpy(dst, s);
	else if (s)
		r->failed = 1;
	free(s);
}
