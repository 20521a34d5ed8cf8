/* loop.h - sessiond's one event loop: epoll for file descriptors, a binary
 * heap of timers, and deferred frees.
 *
 * Everything runs on this loop's thread. An object that an event callback
 * wants to free while other events of the same batch may still name it is
 * handed to loop_defer_free(): it is freed after the batch.
 */
#ifndef BOSH_LOOP_H
#define BOSH_LOOP_H

#include <stddef.h>
#include <stdint.h>

struct loop;

typedef void (*io_cb)(void *ctx, uint32_t events);

/* Embedded in its owner; fd and cb set by the owner before loop_add. An io
 * in the loop must not be copied over or moved: loop_del() it first. */
struct io {
	int fd;
	uint32_t events; /* as registered */
	io_cb cb;
	void *ctx;
	struct io *reg_prev, *reg_next; /* every io in the loop (loop_after_fork) */
};

typedef void (*timer_cb)(void *ctx);

/* Embedded in its owner; zero-initialised means "not armed". */
struct timer {
	uint64_t deadline; /* loop_now() milliseconds */
	size_t heap_index; /* 0 = not in the heap */
	timer_cb cb;
	void *ctx;
};

struct loop *loop_new(void);
void loop_free(struct loop *l);

int loop_add(struct loop *l, struct io *io, uint32_t events);
int loop_mod(struct loop *l, struct io *io, uint32_t events);
void loop_del(struct loop *l, struct io *io);

/* Arms (or re-arms) t for deadline; cb/ctx must be set. */
void timer_set(struct loop *l, struct timer *t, uint64_t deadline);
void timer_cancel(struct loop *l, struct timer *t);
static inline int timer_armed(const struct timer *t) { return t->heap_index != 0; }

/* Monotonic milliseconds, read once per loop turn. */
uint64_t loop_now(const struct loop *l);
/* Wall-clock seconds (for the database and logs). */
double loop_wallclock(void);

/* Called once per turn before waiting; returns the longest time in ms the
 * loop may then sleep (-1: no limit). Used for batched database writes. */
typedef int (*loop_idle_cb)(void *ctx);
void loop_set_idle(struct loop *l, loop_idle_cb cb, void *ctx);

void loop_defer_free(struct loop *l, void *ptr, void (*freefn)(void *));

/* In a child after fork(): the epoll instance is shared with the parent, so
 * the child gets one of its own with the same registrations. Call it first
 * thing, before any loop_add/mod/del. */
int loop_after_fork(struct loop *l);

/* One turn: waits at most max_wait_ms (-1: as long as the timers allow),
 * runs what is ready. Returns how many descriptors were ready, -1 if epoll
 * fails. For tests and fuzzers that drive the loop themselves. */
int loop_run_once(struct loop *l, int max_wait_ms);

/* Runs until loop_stop(). Returns 0, or -1 if epoll fails. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

#endif
