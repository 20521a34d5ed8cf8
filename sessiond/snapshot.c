#include "snapshot.h"

#include <stdlib.h>
#include <string.h>

static void put(struct snap_w *w, const void *p, size_t len)
{
	if (w->failed || w->over)
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
	if (len > SNAP_MAX_BYTES) {
		w->over = 1; /* the reader would refuse it: say so here */
		return;
	}
	snap_put_u64(w, len);
	if (len)
		put(w, p, len);
}

void snap_put_count(struct snap_w *w, uint64_t n, uint64_t limit)
{
	if (n > limit) {
		w->over = 1;
		return;
	}
	snap_put_u64(w, n);
}

void snap_put_raw(struct snap_w *w, const void *p, size_t len)
{
	if (len)
		put(w, p, len);
}

size_t snap_record_begin(struct snap_w *w)
{
	size_t mark = w->len;
	w->over = 0;
	snap_put_u64(w, 0); /* the length, filled in by snap_record_end() */
	return mark;
}

int snap_record_end(struct snap_w *w, size_t mark)
{
	if (w->failed)
		return -1;
	if (w->over) {
		w->len = mark;
		w->over = 0;
		return -1;
	}
	uint64_t n = w->len - mark - sizeof n;
	memcpy(w->data + mark, &n, sizeof n);
	return 0;
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
	if (n > SNAP_MAX_BYTES || n > r->len - r->off) {
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
	size_t n = s ? strlen(s) : 0;
	dst[0] = 0;
	if (s && n < size)
		memcpy(dst, s, n + 1);
	else if (s)
		r->failed = 1;
	free(s);
}

uint64_t snap_get_count(struct snap_r *r, uint64_t limit)
{
	uint64_t n = snap_get_u64(r);
	if (n > limit) {
		r->failed = 1;
		return 0;
	}
	return n;
}

int snap_get_record(struct snap_r *r, struct snap_r *rec)
{
	uint64_t n = snap_get_u64(r);
	*rec = (struct snap_r){ .data = r->data, .failed = 1 };
	if (r->failed || n > r->len - r->off) {
		r->failed = 1;
		return -1;
	}
	*rec = (struct snap_r){ .data = r->data + r->off, .len = (size_t)n };
	r->off += (size_t)n;
	return 0;
}
