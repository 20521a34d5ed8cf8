#define _GNU_SOURCE
#include "loop.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define LOOP_BATCH 256

struct deferred {
	void *ptr;
	void (*freefn)(void *);
};

struct loop {
	int epfd;
	struct io *ios;      /* registered, newest first */
	int running;
	uint64_t now;
	struct timer **heap; /* 1-based */
	size_t heap_len, heap_cap;
	struct deferred *dead;
	size_t dead_len, dead_cap;
	loop_idle_cb idle;
	void *idle_ctx;
};

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

double loop_wallclock(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct loop *loop_new(void)
{
	struct loop *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		log_error("epoll_create1: %s", strerror(errno));
		free(l);
		return NULL;
	}
	l->now = monotonic_ms();
	return l;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	close(l->epfd);
	free(l->heap);
	free(l->dead);
	free(l);
}

static int registered(const struct loop *l, const struct io *io)
{
	return io->reg_prev || l->ios == io;
}

int loop_add(struct loop *l, struct io *io, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = io };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0) {
		log_error("epoll_ctl(ADD, fd %d): %s", io->fd, strerror(errno));
		return -1;
	}
	io->events = events;
	io->reg_prev = NULL;
	io->reg_next = l->ios;
	if (l->ios)
		l->ios->reg_prev = io;
	l->ios = io;
	return 0;
}

int loop_mod(struct loop *l, struct io *io, uint32_t events)
{
	if (events == io->events)
		return 0;
	struct epoll_event ev = { .events = events, .data.ptr = io };
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0) {
		log_error("epoll_ctl(MOD, fd %d): %s", io->fd, strerror(errno));
		return -1;
	}
	io->events = events;
	return 0;
}

void loop_del(struct loop *l, struct io *io)
{
	if (io->fd >= 0)
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->events = 0;
	if (!registered(l, io))
		return;
	if (io->reg_prev)
		io->reg_prev->reg_next = io->reg_next;
	else
		l->ios = io->reg_next;
	if (io->reg_next)
		io->reg_next->reg_prev = io->reg_prev;
	io->reg_prev = io->reg_next = NULL;
}

int loop_after_fork(struct loop *l)
{
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		return -1;
	close(l->epfd); /* the parent's instance lives on in the parent */
	l->epfd = epfd;
	for (struct io *io = l->ios; io; io = io->reg_next) {
		struct epoll_event ev = { .events = io->events, .data.ptr = io };
		if (io->fd >= 0 && epoll_ctl(epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0)
			log_warn("after fork: epoll_ctl(ADD, fd %d): %s", io->fd, strerror(errno));
	}
	return 0;
}

/* ---- timer heap ---- */

static void heap_swap(struct loop *l, size_t a, size_t b)
{
	struct timer *t = l->heap[a];
	l->heap[a] = l->heap[b];
	l->heap[b] = t;
	l->heap[a]->heap_index = a;
	l->heap[b]->heap_index = b;
}

static void heap_up(struct loop *l, size_t i)
{
	while (i > 1 && l->heap[i / 2]->deadline > l->heap[i]->deadline) {
		heap_swap(l, i, i / 2);
		i /= 2;
	}
}

static void heap_down(struct loop *l, size_t i)
{
	for (;;) {
		size_t m = i, c = 2 * i;
		if (c <= l->heap_len && l->heap[c]->deadline < l->heap[m]->deadline)
			m = c;
		if (c + 1 <= l->heap_len && l->heap[c + 1]->deadline < l->heap[m]->deadline)
			m = c + 1;
		if (m == i)
			return;
		heap_swap(l, i, m);
		i = m;
	}
}

void timer_cancel(struct loop *l, struct timer *t)
{
	size_t i = t->heap_index;
	if (!i)
		return;
	t->heap_index = 0;
	if (i != l->heap_len) {
		l->heap[i] = l->heap[l->heap_len];
		l->heap[i]->heap_index = i;
		l->heap_len--;
		heap_up(l, i);
		heap_down(l, i);
	} else {
		l->heap_len--;
	}
}

void timer_set(struct loop *l, struct timer *t, uint64_t deadline)
{
	if (t->heap_index) {
		uint64_t old = t->deadline;
		t->deadline = deadline;
		if (deadline < old)
			heap_up(l, t->heap_index);
		else
			heap_down(l, t->heap_index);
		return;
	}
	if (l->heap_len + 1 >= l->heap_cap) {
		size_t cap = l->heap_cap ? l->heap_cap * 2 : 1024;
		struct timer **h = realloc(l->heap, cap * sizeof *h);
		if (!h) {
			/* Without memory no timer can be kept; this is our own broken state. */
			log_error("out of memory growing the timer heap");
			abort();
		}
		l->heap = h;
		l->heap_cap = cap;
	}
	t->deadline = deadline;
	l->heap[++l->heap_len] = t;
	t->heap_index = l->heap_len;
	heap_up(l, l->heap_len);
}

uint64_t loop_now(const struct loop *l) { return l->now; }

void loop_set_idle(struct loop *l, loop_idle_cb cb, void *ctx)
{
	l->idle = cb;
	l->idle_ctx = ctx;
}

void loop_defer_free(struct loop *l, void *ptr, void (*freefn)(void *))
{
	if (l->dead_len == l->dead_cap) {
		size_t cap = l->dead_cap ? l->dead_cap * 2 : 64;
		struct deferred *d = realloc(l->dead, cap * sizeof *d);
		if (!d) {
			log_error("out of memory deferring a free");
			abort();
		}
		l->dead = d;
		l->dead_cap = cap;
	}
	l->dead[l->dead_len++] = (struct deferred){ ptr, freefn };
}

static void run_deferred(struct loop *l)
{
	/* A free may defer more frees; index, don't iterate a snapshot. */
	for (size_t i = 0; i < l->dead_len; i++)
		l->dead[i].freefn(l->dead[i].ptr);
	l->dead_len = 0;
}

static void run_timers(struct loop *l)
{
	while (l->heap_len && l->heap[1]->deadline <= l->now) {
		struct timer *t = l->heap[1];
		timer_cancel(l, t);
		t->cb(t->ctx);
	}
}

static int next_timeout(struct loop *l)
{
	int ms = -1;
	if (l->heap_len) {
		uint64_t d = l->heap[1]->deadline;
		ms = d <= l->now ? 0 : (int)(d - l->now > 60000 ? 60000 : d - l->now);
	}
	if (l->idle) {
		int idle = l->idle(l->idle_ctx);
		if (idle >= 0 && (ms < 0 || idle < ms))
			ms = idle;
	}
	return ms;
}

int loop_run_once(struct loop *l, int max_wait_ms)
{
	struct epoll_event evs[LOOP_BATCH];
	int timeout = next_timeout(l);
	if (max_wait_ms >= 0 && (timeout < 0 || timeout > max_wait_ms))
		timeout = max_wait_ms;
	int n = epoll_wait(l->epfd, evs, LOOP_BATCH, timeout);
	if (n < 0 && errno != EINTR) {
		log_error("epoll_wait: %s", strerror(errno));
		return -1;
	}
	l->now = monotonic_ms();
	for (int i = 0; i < n; i++) {
		struct io *io = evs[i].data.ptr;
		io->cb(io->ctx, evs[i].events);
	}
	run_deferred(l);
	run_timers(l);
	run_deferred(l);
	return n > 0 ? n : 0;
}

int loop_run(struct loop *l)
{
	l->running = 1;
	while (l->running)
		if (loop_run_once(l, -1) < 0)
			return -1;
	return 0;
}

void loop_stop(struct loop *l) { l->running = 0; }
