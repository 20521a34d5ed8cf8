/* snapshot.h - the state sessiond hands to its successor on a graceful
 * restart, as a flat byte string: fixed-width integers, length-prefixed
 * strings, counted arrays, and length-framed records. Each module writes
 * and reads its own part in the same order.
 *
 * Limits. The writer and the reader obey the same constants below: what
 * one process writes, the next one reads. A writer that would go past one
 * writes nothing more and sets w->over; a record (one session) written
 * over a limit is taken back whole (snap_record_end), so only that session
 * is lost, never the snapshot. The reader refuses anything past them.
 *
 * A reader never reads past the end: after a short or malformed snapshot
 * every getter returns 0/NULL and snap_failed() is true. A record is read
 * with a reader of its own (snap_get_record): a bad one fails only itself,
 * and the outer reader goes on with the next.
 */
#ifndef BOSH_SNAPSHOT_H
#define BOSH_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#define SNAP_MAGIC 0x626f736873746174ULL /* "boshstat" */
/* Raised whenever what any module writes changes: a successor that reads
 * another format refuses the restart up front (sessiond -t -T VERSION). */
#define SNAP_VERSION 5        /* 4: the web server's FastCGI connections sessiond reads; 5: and those waiting past its descriptor budget */
#define SNAP_VERSION_OLDEST 3 /* the oldest a successor still takes over */

/* One string or byte run: a client queue (max_client_buffer, at most 64 MiB,
 * plus the stanzas of the read that crossed it), an answer kept for a
 * repeated rid, an unfinished stanza, a request body. */
#define SNAP_MAX_BYTES (256u << 20)
/* One small array: the attributes and namespaces of a stream header (the
 * splitter bounds the header to 8 KiB, so fewer than 2048 of each), the
 * handlers, the handler connections, a session's held requests and streams. */
#define SNAP_MAX_ITEMS 4096u
/* A list of sessions: the records, the sids lost in an earlier run, the sids
 * a drainer has. */
#define SNAP_MAX_SIDS (1u << 24)

struct snap_w {
	char *data;
	size_t len, cap;
	int failed; /* out of memory: the whole snapshot is lost */
	int over;   /* a limit was reached: the record being written is lost */
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
/* The length of an array that follows; limit is SNAP_MAX_ITEMS or SNAP_MAX_SIDS. */
void snap_put_count(struct snap_w *w, uint64_t n, uint64_t limit);
/* Bytes written elsewhere with these functions, appended as they are. */
void snap_put_raw(struct snap_w *w, const void *p, size_t len);

/* A record: its length, then what is written until snap_record_end().
 * Records do not nest. end returns 0, or -1 if the record went over a limit:
 * it is then taken back (w is as before begin, over cleared). */
size_t snap_record_begin(struct snap_w *w);
int snap_record_end(struct snap_w *w, size_t mark);

uint64_t snap_get_u64(struct snap_r *r);
int64_t snap_get_i64(struct snap_r *r);
double snap_get_double(struct snap_r *r);
char *snap_get_bytes(struct snap_r *r, size_t *len); /* malloc'ed (NUL-terminated), NULL if empty */
char *snap_get_str(struct snap_r *r);                /* malloc'ed, or NULL */
/* Copies a string into a fixed buffer; fails the reader if it does not fit. */
void snap_get_into(struct snap_r *r, char *dst, size_t size);
/* An array's length; fails the reader above limit. */
uint64_t snap_get_count(struct snap_r *r, uint64_t limit);
/* The next record, as a reader of its own over its bytes; r moves past it
 * whatever the record holds. -1 (and r failed) if r is truncated. */
int snap_get_record(struct snap_r *r, struct snap_r *rec);

static inline int snap_failed(const struct snap_r *r) { return r->failed; }

#endif
