#define _GNU_SOURCE
#include "restart.h"
#include "fcgi_conn.h"
#include "front.h"
#include "log.h"
#include "pool.h"
#include "reply.h"
#include "session.h"
#include "sesssnap.h"
#include "store.h"
#include "ws_session.h"
#include "metrics_report.h"
#include "control.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK_TIMEOUT_MS 10000
#define PENDING_MAX_MS 3000
#define PENDING_POLL_MS 20

static struct restart_params params;
static struct timer drain_timer;
static uint64_t drain_until;
static int in_progress;
/* The last restart's outcome, for boshctl restart: a sequence number that
 * grows with each outcome, and what happened (carried into the successor). */
static uint64_t outcome_seq;
static char outcome[512];

static void restart_failed(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void restart_failed(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(outcome, sizeof outcome, fmt, ap);
	va_end(ap);
	/* "restart refused: WHY" in the log as "restart refused: reason=\"WHY\"" */
	const char *colon = strstr(outcome, ": ");
	char reason[sizeof outcome + 2];
	if (colon)
		log_error("%.*s: reason=%s", (int)(colon - outcome), outcome,
		          log_quoted(reason, sizeof reason, colon + 2));
	else
		log_error("%s", outcome);
	outcome_seq++;
	M.restart_refusals++;
}

uint64_t restart_outcome(const char **text)
{
	*text = outcome;
	return outcome_seq;
}

void restart_succeeded(long sessions)
{
	snprintf(outcome, sizeof outcome, "restarted in place: %ld sessions taken over", sessions);
	log_info("%s", outcome);
	outcome_seq++;
	M.restarts++;
}

void restart_snapshot_state(struct snap_w *w)
{
	snap_put_u64(w, outcome_seq);
	metrics_snapshot(w);
	control_snapshot(w);
}

void restart_restore_state(struct snap_r *r)
{
	outcome_seq = snap_get_u64(r);
	metrics_restore(r);
	control_restore(r);
}
static size_t nkept;

/* A descriptor the successor takes over: it must survive the exec. */
static void keep_fd(void *ctx, int fd)
{
	(void)ctx;
	int flags = fcntl(fd, F_GETFD);
	if (flags >= 0)
		fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
	nkept++;
}

/* `sessiond -t -T VERSION` with the binary on disk: an upgrade that cannot
 * read the configuration or this process's state must not replace it. It
 * runs beside the loop; its exit comes back through restart_reaped(). */
static pid_t check_pid;
static struct timer check_timer;
static int check_err = -1; /* the check's stderr: why it failed, for our log */

static pid_t start_check(void)
{
	int err[2];
	if (pipe2(err, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(err[0]);
		close(err[1]);
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 1);
		dup2(err[1], 2);
		char version[16];
		snprintf(version, sizeof version, "%d", SNAP_VERSION);
		execl(params.self, params.self, "-t", "-T", version, "-c", params.config_path, (char *)NULL);
		_exit(127);
	}
	close(err[1]);
	check_err = err[0];
	fcntl(check_err, F_SETFL, O_NONBLOCK);
	return pid;
}

static void check_err_close(void)
{
	if (check_err >= 0)
		close(check_err);
	check_err = -1;
}

/* The last thing the check said (its log line's message), for ours. */
static void check_said(char *out, size_t size)
{
	char buf[2048];
	ssize_t n = check_err >= 0 ? read(check_err, buf, sizeof buf - 1) : -1;
	out[0] = 0;
	check_err_close();
	if (n <= 0)
		return;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = 0;
	char *line = strrchr(buf, '\n');
	line = line ? line + 1 : buf;
	char *msg = strstr(line, " error: ");
	msg = msg ? msg + 8 : line;
	size_t k = 0;
	for (; msg[k] && k + 1 < size; k++)
		out[k] = (unsigned char)msg[k] < 0x20 ? ' ' : msg[k];
	out[k] = 0;
}

static void check_too_long(void *ctx)
{
	(void)ctx;
	restart_failed("restart refused: '%s -t' did not finish in %d s; still serving with this process",
	          params.self, CHECK_TIMEOUT_MS / 1000);
	kill(check_pid, SIGKILL); /* reaped, and forgotten, in restart_reaped() */
	check_pid = -1;
	check_err_close();
	in_progress = 0;
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

/* ---- the drainer: the sessions that cannot move stay in a child ---- */

static int drainer;

int restart_is_drainer(void)
{
	return drainer;
}

static void drain_check(void *ctx)
{
	(void)ctx;
	if (sessions_count() == 0) {
		log_info("drained: every session over TLS has ended; exiting");
		loop_stop(params.loop);
		return;
	}
	if (loop_now(params.loop) >= drain_until) {
		log_warn("drain_time passed with %zu sessions left; ending them", sessions_count());
		sessions_end_all("system-shutdown");
		drain_until = UINT64_MAX; /* they linger briefly with their answer, then go */
	}
	timer_set(params.loop, &drain_timer, loop_now(params.loop) + 1000);
}

/* The drainer accepts nothing: a listener kept here would outlive a stop
 * of sessiond (a TCP fcgi_socket would keep its port taken). The control
 * socket is front.c's to close; this finds the FastCGI one and any other. */
static void close_listeners(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d) {
		if (params.fcgi_fd >= 0)
			close(params.fcgi_fd);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name), on = 0;
		socklen_t len = sizeof on;
		if (fd > 2 && fd != dirfd(d) &&
		    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on)
			close(fd);
	}
	closedir(d);
}

/* In the child: a copy of everything; keep the TLS sessions, drop the rest
 * without touching it (the successor has the same descriptors). */
static void become_drainer(int channel, pid_t parent)
{
	char err[256];
	drainer = 1;
	/* Stopped with sessiond: SIGTERM (which our signalfd takes, as sessiond
	 * does) when the process that forked us goes. That is sessiond itself
	 * after the exec, which keeps the PID and the thread: the signal comes
	 * when sessiond stops or dies, not when it restarts. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent) {
		log_error("drainer: sessiond is gone already; exiting");
		_exit(1);
	}
	if (loop_after_fork(params.loop) < 0 || store_after_fork(err, sizeof err) < 0) {
		log_error("drainer: cannot set up (%s); exiting", err);
		_exit(1);
	}
	pool_forget();
	if (front_become_drainer(channel) < 0 || sessions_split(0) < 0) {
		log_error("drainer: out of memory; exiting");
		_exit(1);
	}
	fcgi_conn_become_drainer(); /* after the split: what the TLS sessions hold stays */
	ws_drop_listener(); /* the successor's */
	close_listeners();
	log_info("draining %zu sessions over TLS in process %ld (drain_time %lds)", sessions_count(),
	         (long)getpid(), params.drain_time);
	drain_until = loop_now(params.loop) + (uint64_t)params.drain_time * 1000;
	drain_timer = (struct timer){ .cb = drain_check };
	timer_set(params.loop, &drain_timer, loop_now(params.loop) + 1000);
}

/* Returns the successor's end of the channel to the drainer, -1 if none is
 * needed, -2 on failure. In the child it returns -3: carry on draining. */
static int fork_drainer(void)
{
	if (sessions_unmovable_count() == 0)
		return -1;
	int ch[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ch) < 0)
		return -2;
	store_flush();
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		close(ch[0]);
		close(ch[1]);
		return -2;
	}
	if (pid == 0) {
		close(ch[1]);
		become_drainer(ch[0], parent);
		return -3;
	}
	close(ch[0]);
	M.drains++;
	return ch[1];
}

static void exec_successor(void)
{
	struct snap_w w = { 0 };
	sessions_restart_prepare();
	int channel = fork_drainer();
	if (channel == -3)
		return; /* the drainer's loop goes on */
	if (channel == -2) {
		restart_failed("restart abandoned: cannot start a process for the TLS sessions: %s",
		          strerror(errno));
		sessions_restart_abandoned();
		in_progress = 0;
		return;
	}
	if (sessions_split(1) < 0 || (channel >= 0 && front_set_drainer(channel) < 0)) {
		restart_failed("restart abandoned: out of memory splitting the sessions");
		/* the drainer has the TLS sessions; we carry on with the rest */
		sessions_restart_abandoned();
		in_progress = 0;
		return;
	}
	snap_put_u64(&w, SNAP_MAGIC);
	snap_put_u64(&w, SNAP_VERSION);
	snap_put_i64(&w, params.fcgi_fd);
	if (params.fcgi_fd >= 0)
		keep_fd(NULL, params.fcgi_fd);
	/* The WebSocket listener goes by the environment: the snapshot's format
	 * stays the same. */
	char wsarg[16];
	if (ws_listener_fd() >= 0) {
		keep_fd(NULL, ws_listener_fd());
		snprintf(wsarg, sizeof wsarg, "%d", ws_listener_fd());
		if (setenv(WS_FD_ENV, wsarg, 1) < 0)
			log_warn("restart: the WebSocket listener cannot be handed over: %s", strerror(errno));
	}
	restart_snapshot_state(&w);
	pool_snapshot(&w);
	front_snapshot(&w, keep_fd, NULL);
	front_snapshot_drainer(&w, keep_fd, NULL);
	fcgi_conn_snapshot(&w, keep_fd, NULL);
	if (sessions_snapshot(&w, keep_fd, NULL) < 0 || w.failed) {
		restart_failed("restart abandoned: out of memory writing the snapshot");
		goto undo;
	}
	int fd = write_memfd(&w);
	if (fd < 0) {
		restart_failed("restart abandoned: cannot write the snapshot: %s", strerror(errno));
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
	restart_failed("restart abandoned: exec %s: %s", params.self, strerror(errno));
	close(fd);
	char err[256];
	if (store_reopen(err, sizeof err) < 0)
		log_error("database: %s", err);
undo:
	unsetenv(WS_FD_ENV);
	sessions_restart_abandoned();
	free(w.data);
	restart_cloexec_all(); /* no exec after all: nothing of ours leaks into a handler */
	nkept = 0;
	in_progress = 0;
}

/* Answers still being written to the web server would be lost with the
 * process image: give them a moment. */
static void pending_tick(void *ctx)
{
	(void)ctx;
	if (reply_pending_count() > 0 && loop_now(params.loop) < drain_until) {
		timer_set(params.loop, &drain_timer, loop_now(params.loop) + PENDING_POLL_MS);
		return;
	}
	exec_successor();
}

void restart_request(const struct restart_params *p)
{
	if (drainer) {
		log_info("this process only drains sessions of an earlier restart; signal ignored");
		return;
	}
	if (in_progress) {
		log_info("restart already under way");
		return;
	}
	params = *p;
	if (front_has_drainer() && sessions_unmovable_count() > 0) {
		/* One drainer at a time keeps the forwarding simple. */
		restart_failed("restart refused: the sessions over TLS of the last restart are still "
		          "draining (see drain_time); try again when they have ended");
		return;
	}
	in_progress = 1;
	check_pid = start_check();
	if (check_pid < 0) {
		restart_failed("restart refused: fork: %s", strerror(errno));
		in_progress = 0;
		return;
	}
	check_timer = (struct timer){ .cb = check_too_long };
	timer_set(p->loop, &check_timer, loop_now(p->loop) + CHECK_TIMEOUT_MS);
}

int restart_reaped(pid_t pid, int status)
{
	if (pid != check_pid || pid <= 0)
		return 0;
	check_pid = -1;
	timer_cancel(params.loop, &check_timer);
	int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	char said[512];
	check_said(said, sizeof said);
	if (rc == 3) {
		restart_failed("restart refused: %s keeps its state in another format than this process "
		          "(version %d); still serving; stop and start it instead", params.self, SNAP_VERSION);
	} else if (rc != 0) {
		restart_failed("restart refused: '%s -t -c %s' failed (%s); still serving with this process",
		          params.self, params.config_path, said[0] ? said : "no reason given");
	} else {
		drain_until = loop_now(params.loop) + PENDING_MAX_MS;
		drain_timer = (struct timer){ .cb = pending_tick };
		timer_set(params.loop, &drain_timer, loop_now(params.loop));
		return 1;
	}
	in_progress = 0;
	return 1;
}

static uint64_t read_version;

int restart_snap_version(void)
{
	return (int)read_version;
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
	uint64_t magic = snap_get_u64(r);
	read_version = snap_get_u64(r);
	if (magic != SNAP_MAGIC || read_version < SNAP_VERSION_OLDEST || read_version > SNAP_VERSION) {
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
