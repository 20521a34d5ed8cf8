/* snapshot.h - the state sessiond hands to its successor on a graceful
 * restart, as a flat byte string: fixed-width integers, length-prefixed
 * strings. Each module writes and reads its own part in the same order.
 *
 * A reader never reads past the end: after a short or malformed snapshot
 * every getter returns 0/NULL and snap_failed() is true, so the successor
 * can refuse the whole snapshot rather than build half a session.
 */
#ifndef BOSH_SNAPSHOT_H
#define BOSH_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#define SNAP_MAGIC 0x626f736873746174ULL /* "boshstat" */
/* Raised whenever what any module writes changes: a successor that reads
 * another format refuses the restart up front (sessiond -t -T VERSION). */
#define SNAP_VERSION 1
#define SNAP_MAX_STRING (64u << 20)

struct snap_w {
	char *data;
	size_t len, cap;
	int failed;
};

struct snap_r {
	const char *data;
	size_t len, off;
	int failed;
};

void snap_put_u64(struct snap_w *w, uint64_t v);
void snap_put_i64(struct snap_w *w, int64_t v);
void snap_put_double(struct snap_w *w, double v);
void snap_put_bytes(struct snap_w *w, const void *p, size_t len);
void snap_put_str(struct snap_w *w, const char *s); /* NULL is kept as NULL */

uint64_t snap_get_u64(struct snap_r *r);
int64_t snap_get_i64(struct snap_r *r);
double snap_get_double(struct snap_r *r);
char *snap_get_bytes(struct snap_r *r, size_t *len); /* malloc'ed (NUL-terminated), NULL if empty */
char *snap_get_str(struct snap_r *r);                /* malloc'ed, or NULL */
/* Copies a string into a fixed buffer; fails the reader if it does not fit. */
void snap_get_into(struct snap_r *r, char *dst, size_t size);

static inline int snap_failed(const struct snap_r *r) { return r->failed; }

#endif
