#define _GNU_SOURCE
#include "pool.h"
#include "log.h"
#include "snapshot.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POOL_MAX 64
#define QUICK_DEATH_MS 1000
#define MAX_BACKOFF_MS 10000

struct worker {
	pid_t pid;
	uint64_t started;
	unsigned backoff_ms;
	struct timer restart;
};

static struct loop *loop;
static struct worker workers[POOL_MAX];
static int nworkers;
static int listen_fd = -1;
static char *handler, *config;
static int (*other_child)(pid_t pid, int status);
static pid_t retiring[POOL_MAX * 4]; /* replaced by pool_recycle, finishing their request */
static int nretiring;

void pool_on_other_child(int (*cb)(pid_t pid, int status))
{
	other_child = cb;
}

/* Marks every descriptor from low on close-on-exec. */
static void cloexec_from(int low)
{
#ifdef CLOSE_RANGE_CLOEXEC
	if (close_range((unsigned)low, ~0u, CLOSE_RANGE_CLOEXEC) == 0)
		return;
#endif
	/* an older kernel: one by one (no allocation: this runs after fork) */
	struct rlimit rl;
	int max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 1u << 20 ? (int)rl.rlim_cur : 1 << 20;
	for (int fd = low; fd < max; fd++) {
		int flags = fcntl(fd, F_GETFD);
		if (flags >= 0 && !(flags & FD_CLOEXEC))
			fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
	}
}

static void spawn(void *ctx)
{
	struct worker *w = ctx;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		log_error("fork for a handler: %s", strerror(errno));
		w->backoff_ms = w->backoff_ms ? w->backoff_ms : 1000;
		timer_set(loop, &w->restart, loop_now(loop) + w->backoff_ms);
		return;
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* A handler outliving its sessiond would hold the FastCGI socket
		 * with nowhere to send requests. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(0);
		/* FastCGI: the listening socket is descriptor 0. Nothing else of
		 * ours goes with it: right after a restart (pool_restore) every
		 * held request and XMPP connection is still inheritable. */
		if (dup2(listen_fd, 0) < 0)
			_exit(127);
		cloexec_from(3);
		execl(handler, handler, "-c", config, (char *)NULL);
		log_error("cannot start handler %s: %s", handler, strerror(errno));
		_exit(127);
	}
	w->pid = pid;
	w->started = loop_now(loop);
	log_debug("handler %ld started", (long)pid);
}

int pool_start(struct loop *l, int fd, int count, const char *handler_path, const char *config_path)
{
	loop = l;
	listen_fd = fd;
	handler = strdup(handler_path);
	config = strdup(config_path);
	if (!handler || !config)
		return -1;
	nworkers = count > POOL_MAX ? POOL_MAX : count;
	for (int i = 0; i < nworkers; i++) {
		workers[i].restart = (struct timer){ .cb = spawn, .ctx = &workers[i] };
		spawn(&workers[i]);
	}
	log_info("%d handler processes (%s)", nworkers, handler);
	return 0;
}

static struct worker *find_worker(pid_t pid)
{
	for (int i = 0; i < nworkers; i++)
		if (workers[i].pid == pid)
			return &workers[i];
	return NULL;
}

static void describe_exit(pid_t pid, int status)
{
	if (WIFSIGNALED(status))
		log_warn("handler %ld killed by signal %d; starting another", (long)pid, WTERMSIG(status));
	else
		log_warn("handler %ld exited with status %d; starting another", (long)pid,
		         WEXITSTATUS(status));
}

static int forget_retiring(pid_t pid)
{
	for (int i = 0; i < nretiring; i++)
		if (retiring[i] == pid) {
			retiring[i] = retiring[--nretiring];
			return 1;
		}
	return 0;
}

/* The new handler first, then SIGTERM to the old one: one is always
 * accepting, and the old one finishes the request in hand. */
void pool_recycle(void)
{
	int n = 0;
	for (int i = 0; i < nworkers && listen_fd >= 0; i++) {
		pid_t old = workers[i].pid;
		if (old <= 0 || nretiring == (int)(sizeof retiring / sizeof retiring[0]))
			continue; /* between deaths: its restart reads the new file anyway */
		spawn(&workers[i]);
		if (workers[i].pid == old) { /* fork failed: it stays */
			timer_cancel(loop, &workers[i].restart);
			continue;
		}
		retiring[nretiring++] = old;
		kill(old, SIGTERM);
		n++;
	}
	if (n)
		log_info("%d handler processes replaced (configuration read again)", n);
}

void pool_reap(void)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct worker *w = find_worker(pid);
		if (!w && forget_retiring(pid))
			continue;
		if (!w) {
			if (other_child)
				other_child(pid, status);
			continue;
		}
		w->pid = 0;
		if (listen_fd < 0)
			continue; /* stopping */
		describe_exit(pid, status);
		uint64_t lived = loop_now(loop) - w->started;
		if (lived < QUICK_DEATH_MS)
			w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : 250;
		else
			w->backoff_ms = 0;
		if (w->backoff_ms > MAX_BACKOFF_MS)
			w->backoff_ms = MAX_BACKOFF_MS;
		timer_set(loop, &w->restart, loop_now(loop) + w->backoff_ms);
	}
}

void pool_stop(void)
{
	listen_fd = -1;
	for (int i = 0; i < nworkers; i++) {
		timer_cancel(loop, &workers[i].restart);
		if (workers[i].pid > 0)
			kill(workers[i].pid, SIGTERM);
	}
	/* Handlers exit on SIGTERM once the request in hand is done; wait briefly. */
	for (int tries = 0; tries < 50; tries++) {
		int alive = 0;
		for (int i = 0; i < nworkers; i++) {
			if (workers[i].pid > 0 && waitpid(workers[i].pid, NULL, WNOHANG) == workers[i].pid)
				workers[i].pid = 0;
			alive += workers[i].pid > 0;
		}
		if (!alive)
			break;
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	for (int i = 0; i < nworkers; i++)
		if (workers[i].pid > 0) {
			kill(workers[i].pid, SIGKILL);
			waitpid(workers[i].pid, NULL, 0);
		}
	nworkers = 0;
	free(handler);
	free(config);
	handler = config = NULL;
}

/* Graceful restart: the handlers stay our children across exec (same PID). */
void pool_snapshot(struct snap_w *w)
{
	snap_put_count(w, (uint64_t)nworkers, POOL_MAX);
	for (int i = 0; i < nworkers; i++)
		snap_put_i64(w, workers[i].pid);
}

int pool_restore(struct loop *l, struct snap_r *r, int fd, const char *handler_path,
                 const char *config_path)
{
	loop = l;
	listen_fd = fd;
	handler = strdup(handler_path);
	config = strdup(config_path);
	uint64_t n = snap_get_count(r, POOL_MAX);
	if (!handler || !config || snap_failed(r))
		return -1;
	nworkers = (int)n;
	for (int i = 0; i < nworkers; i++) {
		workers[i] = (struct worker){ .pid = (pid_t)snap_get_i64(r), .started = loop_now(l) };
		workers[i].restart = (struct timer){ .cb = spawn, .ctx = &workers[i] };
		if (workers[i].pid <= 0) /* it was between deaths: start one now */
			spawn(&workers[i]);
	}
	return snap_failed(r) ? -1 : 0;
}

void pool_fill(int count)
{
	int from = nworkers;
	if (listen_fd < 0 || count <= from)
		return;
	nworkers = count > POOL_MAX ? POOL_MAX : count;
	for (int i = from; i < nworkers; i++) {
		workers[i] = (struct worker){ .restart = { .cb = spawn, .ctx = &workers[i] } };
		spawn(&workers[i]);
	}
	log_info("%d handler processes started (%s)", nworkers - from, handler);
}

void pool_forget(void)
{
	for (int i = 0; i < nworkers; i++)
		timer_cancel(loop, &workers[i].restart);
	nworkers = 0;
}
