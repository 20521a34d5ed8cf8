#define _GNU_SOURCE
#include "fcgi_listen.h"
#include "fdpark.h"
#include "log.h"
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPT_RETRY_MS 5
/* Requests served between two looks at the backlog while connections keep
 * coming: a turn of 256 requests that end sessions takes tens of
 * milliseconds of CPU, more in wall time with the XMPP server and nginx
 * busy on the same cores, in which nginx can fill a backlog of 4096. */
#define ACCEPT_SWEEP 16

static struct loop *loop;
static void (*adopt)(int fd);
static struct io listener = { .fd = -1 };
static struct timer accept_later;
static int accept_paused; /* out of descriptors: the listener is out of the loop */
static int fd_budget; /* fcgi_listen_fd_budget() */
static int last_accepted_fd = -1;
/* Connections accepted past the budget, waiting their turn. */
static struct fdpark park = { .in = -1, .out = -1 };
static int park_refused; /* the last batch could not be parked */
static uint64_t accepted;
static int coming; /* a look at the backlog found connections, and no sweep since came back empty */
static int served_since_look;

/* Accepting comes before serving. Under a burst (thousands of clients
 * sending at once, each needing a connection beside its held one) the
 * listen backlog must stay short, or the web server's connect() fails,
 * which nginx answers with a 502; an accept costs a microsecond or two, a
 * request a hundred times that. So the backlog is emptied into our table,
 * within the descriptor budget, and the connections are served as the loop
 * reports them readable; between two batches of those the backlog is
 * looked at again. Past the budget, connections wait in the park, outside
 * the descriptor table, and come back oldest first as ours close; only if
 * the park refuses them too does accepting pause, leaving the rest in the
 * backlog. */
static int accept_all(int again);

static void accept_pause(const char *why)
{
	log_limited(LOG_WARN, "accept", "accepting a FastCGI connection: %s (%zu waiting); "
	            "waiting for one to close (raise the open file limit, or lower max_sessions)",
	            why, park.count);
	loop_del(loop, &listener);
	accept_paused = 1;
	timer_set(loop, &accept_later, loop_now(loop) + ACCEPT_RETRY_MS);
}

/* The lowest free descriptor, or -1 if none is. */
static int lowest_free_fd(void)
{
	int probe = fcntl(listener.fd, F_DUPFD_CLOEXEC, 0);
	if (probe >= 0)
		close(probe);
	return probe;
}

static int room_below_budget(void)
{
	int fd = lowest_free_fd();
	return fd >= 0 && fd < fd_budget;
}

static void take(int fd)
{
	last_accepted_fd = fd;
	adopt(fd);
}

/* Connections past the budget (or behind those already waiting) go to the
 * park; if it refuses them they are taken after all (they are within the
 * reserve) and accepting pauses. -1 then. */
static int park_batch(int *fds, int *n)
{
	if (*n == 0)
		return 0;
	if (fdpark_put(&park, fds, *n) == 0) {
		log_limited(LOG_INFO, "park", "FastCGI connections past the descriptor budget: %zu waiting "
		            "outside the descriptor table for their turn", park.count);
		park_refused = 0;
		*n = 0;
		return 0;
	}
	const char *why = park.in < 0 ? "no park" : strerror(errno);
	park_refused = 1;
	for (int i = 0; i < *n; i++)
		take(fds[i]);
	*n = 0;
	char reason[96];
	snprintf(reason, sizeof reason, "descriptor budget reached, and they cannot wait outside it (%s)", why);
	accept_pause(reason);
	return -1;
}

/* Parked connections back, oldest first, while a descriptor below the
 * budget is free. A batch may land up to FDPARK_BATCH - 1 past it, in the
 * reserve. */
static void unpark(void)
{
	while (park.count) {
		if (!room_below_budget())
			return;
		int fds[FDPARK_BATCH];
		int n = fdpark_take(&park, fds);
		if (n < 0) {
			if (errno != EMFILE) {
				log_error("FastCGI connections waiting outside the descriptor table: %s; "
				          "%zu of them closed", strerror(errno), park.count);
				fdpark_close(&park);
				if (fdpark_open(&park) < 0)
					log_error("no new place for them: %s", strerror(errno));
			}
			return;
		}
		for (int i = 0; i < n; i++)
			take(fds[i]);
	}
}

/* Whether accepting may go on after a pause: with a descriptor below the
 * budget, or any descriptor at all while the park takes what comes past
 * the budget (it is closed again as soon as it is parked). */
static int may_resume(void)
{
	int fd = lowest_free_fd();
	return fd >= 0 && (fd < fd_budget || (park.in >= 0 && !park_refused));
}

static void accept_timer(void *ctx)
{
	(void)ctx;
	if (listener.fd < 0)
		return;
	if (park.count)
		unpark();
	if (accept_paused) {
		if (!may_resume() || loop_add(loop, &listener, EPOLLIN) < 0) { /* logged by loop_add */
			timer_set(loop, &accept_later, loop_now(loop) + ACCEPT_RETRY_MS);
			return;
		}
		accept_paused = 0;
	}
	(void)accept_all(1);
	/* Descriptors that free up other than by our closes (XMPP connections
	 * ending) are noticed by looking again. */
	if (park.count && !timer_armed(&accept_later))
		timer_set(loop, &accept_later, loop_now(loop) + ACCEPT_RETRY_MS);
}

static void accept_io(void *ctx, uint32_t events)
{
	(void)ctx;
	(void)events;
	(void)accept_all(0);
}

/* again: called by the timer, which looks once more in the next turn, not
 * in this one (the requests accepted so far get their turn first).
 * Returns how many were accepted, -1 if accepting paused. */
static int accept_all(int again)
{
	int got = 0, batch[FDPARK_BATCH], nbatch = 0;
	for (;;) {
		int fd = accept4(listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue; /* that one gave up waiting; the next may not have */
		if (fd < 0 && errno == EMFILE && nbatch) { /* parking them frees their descriptors */
			if (park_batch(batch, &nbatch) < 0)
				return -1;
			continue;
		}
		if (fd < 0)
			break;
		accepted++;
		got++;
		/* accept() gives the lowest free descriptor: all below are in use */
		if (fd < fd_budget && !park.count && !nbatch) {
			take(fd);
			continue;
		}
		batch[nbatch++] = fd;
		if (nbatch == FDPARK_BATCH && park_batch(batch, &nbatch) < 0)
			return -1;
	}
	int err = errno;
	if (park_batch(batch, &nbatch) < 0)
		return -1;
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		/* The listener stays readable: out of the loop instead of spinning;
		 * the connections wait in its backlog until one of ours closes, or
		 * a moment has passed. */
		accept_pause(strerror(err));
		return -1;
	}
	if (err != EAGAIN)
		log_warn("accepting a FastCGI connection: %s", strerror(err));
	served_since_look = 0;
	if (got) {
		coming = 1;
		timer_set(loop, &accept_later, loop_now(loop) + (again ? 1 : 0));
	}
	return got;
}

int fcgi_listen_start(struct loop *l, int listen_fd, void (*take_fn)(int fd))
{
	loop = l;
	adopt = take_fn;
	accept_later = (struct timer){ .cb = accept_timer };
	last_accepted_fd = -1;
	struct rlimit rl;
	fd_budget = fcgi_listen_fd_budget(getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < INT_MAX
	                                        ? (long)rl.rlim_cur : INT_MAX);
	if (listen_fd < 0)
		return 0;
	int fl = fcntl(listen_fd, F_GETFL);
	if (fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		log_error("fcgi_socket: cannot make it non-blocking: %s", strerror(errno));
		return -1;
	}
	if (park.in < 0 && fdpark_open(&park) < 0) /* a burst past the budget then waits in the backlog */
		log_warn("fcgi_socket: no place for connections past the descriptor budget: %s",
		         strerror(errno));
	listener = (struct io){ .fd = listen_fd, .cb = accept_io };
	return loop_add(l, &listener, EPOLLIN);
}

void fcgi_listen_stop(void)
{
	if (!loop)
		return;
	if (listener.fd >= 0) {
		loop_del(loop, &listener);
		close(listener.fd);
		listener.fd = -1;
	}
	fdpark_close(&park);
	timer_cancel(loop, &accept_later);
	accept_paused = 0;
}

/* Where the next connection lands is known as of the last accept, which a
 * burst keeps fresh; after a burst, it is looked up again (once: then it
 * is low). */
int fcgi_listen_short(void)
{
	if (accept_paused || park.count)
		return 1;
	if (last_accepted_fd < fd_budget - FCGI_LISTEN_FD_RESERVE)
		return 0;
	if (listener.fd >= 0) {
		int next = lowest_free_fd();
		last_accepted_fd = next >= 0 ? next : fd_budget;
	}
	return last_accepted_fd >= fd_budget - FCGI_LISTEN_FD_RESERVE;
}

void fcgi_listen_room(void)
{
	if (accept_paused || park.count) /* the next one's turn */
		timer_set(loop, &accept_later, loop_now(loop));
}

void fcgi_listen_served(void)
{
	if (!coming || accept_paused || listener.fd < 0 || ++served_since_look < ACCEPT_SWEEP)
		return;
	if (accept_all(1) == 0)
		coming = 0; /* the burst is over: no more looks between requests */
}

size_t fcgi_listen_waiting(void) { return park.count; }
uint64_t fcgi_listen_accepted(void) { return accepted; }
void fcgi_listen_set_accepted(uint64_t n) { accepted = n; }

void fcgi_listen_snapshot(struct snap_w *w, void (*keep)(void *ctx, int fd), void *ctx)
{
	snap_put_i64(w, park.in);
	snap_put_i64(w, park.out);
	snap_put_u64(w, park.count);
	if (park.in >= 0) {
		keep(ctx, park.in);
		keep(ctx, park.out);
	}
}

void fcgi_listen_restore(struct snap_r *r)
{
	int in = (int)snap_get_i64(r), out = (int)snap_get_i64(r);
	size_t count = (size_t)snap_get_u64(r);
	if (snap_failed(r) || in < 0 || out < 0)
		return;
	if (listener.fd < 0) { /* not ours to serve any more (fcgi_direct off) */
		if (count)
			log_warn("restart: %zu FastCGI connections waiting past the descriptor budget closed "
			         "(fcgi_direct is off now)", count);
		close(in);
		close(out);
		return;
	}
	fdpark_close(&park);
	fdpark_adopt(&park, in, out, count);
	if (count)
		timer_set(loop, &accept_later, loop_now(loop));
}
