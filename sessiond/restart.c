#define _GNU_SOURCE
#include "restart.h"
#include "front.h"
#include "log.h"
#include "pool.h"
#include "reply.h"
#include "session.h"
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK_TIMEOUT_MS 10000
#define DRAIN_MAX_MS 3000
#define DRAIN_POLL_MS 20

static struct restart_params params;
static struct timer drain_timer;
static uint64_t drain_until;
static int in_progress;
static int *kept_fds;
static size_t nkept, kept_cap;

static void keep_fd(void *ctx, int fd)
{
	(void)ctx;
	int flags = fcntl(fd, F_GETFD);
	if (flags >= 0)
		fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
	if (nkept == kept_cap) {
		size_t cap = kept_cap ? kept_cap * 2 : 256;
		int *n = realloc(kept_fds, cap * sizeof *n);
		if (!n)
			return; /* only the undo after a failed exec needs the list */
		kept_fds = n;
		kept_cap = cap;
	}
	kept_fds[nkept++] = fd;
}

static void undo_keep(void)
{
	for (size_t i = 0; i < nkept; i++) {
		int flags = fcntl(kept_fds[i], F_GETFD);
		if (flags >= 0)
			fcntl(kept_fds[i], F_SETFD, flags | FD_CLOEXEC);
	}
	nkept = 0;
}

/* `sessiond -t` with the binary on disk: an upgrade that cannot even read
 * the configuration must not replace a working process. */
static int check_successor(void)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 1);
		execl(params.self, params.self, "-t", "-c", params.config_path, (char *)NULL);
		_exit(127);
	}
	for (int waited = 0; waited < CHECK_TIMEOUT_MS; waited += 10) {
		int status;
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
		if (r < 0)
			return -1;
		struct timespec ts = { 0, 10 * 1000000 };
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static int write_memfd(const struct snap_w *w)
{
	int fd = memfd_create("sessiond-state", 0);
	if (fd < 0)
		return -1;
	for (size_t off = 0; off < w->len;) {
		ssize_t n = write(fd, w->data + off, w->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void exec_successor(void)
{
	struct snap_w w = { 0 };
	snap_put_u64(&w, SNAP_MAGIC);
	snap_put_i64(&w, params.fcgi_fd);
	if (params.fcgi_fd >= 0)
		keep_fd(NULL, params.fcgi_fd);
	pool_snapshot(&w);
	front_snapshot(&w, keep_fd, NULL);
	if (sessions_snapshot(&w, keep_fd, NULL) < 0 || w.failed) {
		log_error("restart abandoned: out of memory writing the snapshot");
		goto undo;
	}
	int fd = write_memfd(&w);
	if (fd < 0) {
		log_error("restart abandoned: cannot write the snapshot: %s", strerror(errno));
		goto undo;
	}
	char fdarg[16];
	snprintf(fdarg, sizeof fdarg, "%d", fd);
	const char *argv[] = { params.self, "-f", "-c", params.config_path, "-R", fdarg,
	                       params.level ? "-l" : NULL, params.level, NULL };
	log_info("restarting in place: %zu sessions, %zu descriptors, %zu bytes of state",
	         sessions_count(), nkept, w.len);
	store_close();
	execv(params.self, (char *const *)argv);
	log_error("restart abandoned: exec %s: %s", params.self, strerror(errno));
	close(fd);
	char err[256];
	if (store_reopen(err, sizeof err) < 0)
		log_error("database: %s", err);
undo:
	free(w.data);
	undo_keep();
	in_progress = 0;
}

/* Answers still being written to the web server would be lost with the
 * process image: give them a moment. */
static void drain_tick(void *ctx)
{
	(void)ctx;
	if (reply_pending_count() > 0 && loop_now(params.loop) < drain_until) {
		timer_set(params.loop, &drain_timer, loop_now(params.loop) + DRAIN_POLL_MS);
		return;
	}
	exec_successor();
}

void restart_request(const struct restart_params *p)
{
	if (in_progress) {
		log_info("restart already under way");
		return;
	}
	params = *p;
	if (check_successor() < 0) {
		log_error("restart refused: '%s -t -c %s' failed; still serving with this process",
		          params.self, params.config_path);
		return;
	}
	in_progress = 1;
	long ended = sessions_end_unmovable();
	if (ended)
		log_warn("restart: %ld sessions over TLS could not move and were ended", ended);
	drain_until = loop_now(p->loop) + DRAIN_MAX_MS;
	drain_timer = (struct timer){ .cb = drain_tick };
	timer_set(p->loop, &drain_timer, loop_now(p->loop));
}

int restart_read_snapshot(int fd, struct snap_r *r, int *fcgi_fd)
{
	off_t size = lseek(fd, 0, SEEK_END);
	char *data = size > 0 ? malloc((size_t)size) : NULL;
	if (!data || lseek(fd, 0, SEEK_SET) < 0) {
		free(data);
		close(fd);
		return -1;
	}
	for (off_t off = 0; off < size;) {
		ssize_t n = read(fd, data + off, (size_t)(size - off));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(data);
			close(fd);
			return -1;
		}
		off += n;
	}
	close(fd);
	*r = (struct snap_r){ .data = data, .len = (size_t)size };
	if (snap_get_u64(r) != SNAP_MAGIC) {
		free(data);
		return -1;
	}
	*fcgi_fd = (int)snap_get_i64(r);
	return 0;
}

void restart_cloexec_all(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);
		if (fd > 2 && fd != dirfd(d)) {
			int flags = fcntl(fd, F_GETFD);
			if (flags >= 0 && !(flags & FD_CLOEXEC))
				fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
		}
	}
	closedir(d);
}
