/* sessiond - the BOSH session daemon.
 *
 * Start-up order matters: sockets are made (and given to the web server's
 * group) while still root, then privileges are dropped, and only then are
 * the database and the handler pool opened, so every file they create
 * belongs to the unprivileged user.
 */
#define _GNU_SOURCE
#include "config.h"
#include "fcgi_conn.h"
#include "front.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "reply.h"
#include "resolver.h"
#include "restart.h"
#include "session.h"
#include "snapshot.h"
#include "control.h"
#include "metrics_report.h"
#include "store.h"
#include "tls.h"
#include "ws_session.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <sched.h>
#include <malloc.h>
#include <limits.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define HOUSEKEEPING_MS 30000
#define LISTEN_BACKLOG 65535 /* the kernel lowers it to net.core.somaxconn */

static struct config cfg;
static struct loop *loop;
static struct io signals;
static struct timer housekeeping;
static struct restart_params restart;
static char self_path[PATH_MAX];
static int ready_fd = -1;        /* to the process that started the daemon */
static int fcgi_listener = -1;   /* fcgi_socket, listened on again by size_backlog() */
static struct timer idle_timer;  /* idle_exit */
static int idle_empty;           /* no session since idle_since */
static uint64_t idle_since;
static int control_gone;         /* the control socket's file is already removed */
static int pid_fd = -1;          /* pid_file, locked while we run */
static int std_to_log;           /* stdout and stderr are the log file (a daemon's) */
static const char *level_arg;    /* -l, which wins over log_level */
static struct timer suppressed_timer; /* reports lines log_limited dropped */
static long max_sessions_asked;  /* the file's max_sessions (raise_fd_limit may lower it) */

/* The PID a running sessiond wrote, if the file is still locked by it
 * (write_pid_file) and that PID runs a sessiond: a stale file must not make
 * us signal whatever process has the number now. 0 if not, with why. */
static long running_pid(const char **why)
{
	long pid = 0;
	char buf[32];
	int fd = open(cfg.pid_file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	if (n > 0) {
		buf[n] = 0;
		pid = strtol(buf, NULL, 10);
	}
	if (fd < 0) {
		*why = strerror(errno);
	} else if (pid <= 0) {
		*why = "no PID in it";
	} else if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		*why = "it is not locked: the sessiond that wrote it is gone";
		pid = 0;
	} else if (errno != EWOULDBLOCK) {
		*why = strerror(errno);
		pid = 0;
	} else {
		char exe[PATH_MAX], proc[64];
		snprintf(proc, sizeof proc, "/proc/%ld/exe", pid);
		ssize_t len = readlink(proc, exe, sizeof exe - 1);
		exe[len > 0 ? len : 0] = 0;
		char *deleted = strstr(exe, " (deleted)"); /* replaced by an upgrade */
		if (deleted)
			*deleted = 0;
		const char *base = strrchr(exe, '/'), *mine = strrchr(self_path, '/');
		if (len <= 0 || !base || !mine || strcmp(base, mine) != 0) {
			*why = len <= 0 ? "that process is gone or not ours to inspect"
			                : "that process is not a sessiond";
			pid = 0;
		}
	}
	if (fd >= 0)
		close(fd);
	return pid;
}

/* Sends sig to the sessiond named by pid_file, checked by running_pid():
 * its PID, or 0 after saying on stderr why nothing was signalled. */
static long signal_running(int sig, const char *option)
{
	const char *why = "pid_file is not set";
	long pid = cfg.pid_file[0] ? running_pid(&why) : 0;
	if (pid <= 0) {
		fprintf(stderr, "sessiond: %s needs pid_file set and a running sessiond (%s: %s); "
		        "nothing signalled\n", option, cfg.pid_file[0] ? cfg.pid_file : "-", why);
		return 0;
	}
	if (kill((pid_t)pid, sig) < 0) {
		fprintf(stderr, "sessiond: signal to %ld: %s\n", pid, strerror(errno));
		return 0;
	}
	return pid;
}

/* sessiond -r: the graceful restart of the running sessiond (SIGUSR2),
 * confirmed when its successor rewrites the pid file. */
static int restart_command(void)
{
	struct stat before;
	if (cfg.pid_file[0] && stat(cfg.pid_file, &before) < 0)
		memset(&before, 0, sizeof before);
	long pid = signal_running(SIGUSR2, "-r");
	if (!pid)
		return 1;
	for (int i = 0; i < 200; i++) {
		struct timespec ts = { 0, 100 * 1000000 };
		nanosleep(&ts, NULL);
		struct stat now;
		if (stat(cfg.pid_file, &now) == 0 &&
		    (now.st_ino != before.st_ino || now.st_mtim.tv_sec != before.st_mtim.tv_sec ||
		     now.st_mtim.tv_nsec != before.st_mtim.tv_nsec)) {
			printf("sessiond %ld restarted in place\n", pid);
			return 0;
		}
	}
	fprintf(stderr, "sessiond: %ld did not restart within 20 s; its log says why\n", pid);
	return 1;
}

/* sessiond --reload: SIGHUP to the running sessiond, checked like -r (what
 * logrotate's postrotate runs: a stale pid file must not kill a stranger). */
static int reload_command(void)
{
	return signal_running(SIGHUP, "--reload") ? 0 : 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: sessiond [-f] [-c CONFIG] [-l error|warn|info|debug] [-t | -r | --reload]\n"
	                "  -c CONFIG  configuration file (default: bosh.conf)\n"
	                "  -f         stay in the foreground (default: become a daemon)\n"
	                "  -l LEVEL   log level, overriding log_level\n"
	                "  -t         check what a start needs (configuration, CA file, database) and exit\n"
	                "  -r, --restart  restart the running sessiond gracefully (needs pid_file)\n"
	                "  --reload   new log files and the configuration read again: SIGHUP to the\n"
	                "             running sessiond (needs pid_file)\n");
}

/* A Unix socket of ours, mode 0660, owned by uid:gid (when we are root).
 * The control socket replaces a stale file but never a live sessiond; the
 * FastCGI socket is ours to replace. The FastCGI socket stays blocking: the
 * handlers accept on it with libfcgi, and O_NONBLOCK would be shared with
 * them.
 *
 * Why a folder of its own: bind() makes the file by path, and fchmod() or
 * fchown() on a socket descriptor do not reach that file, so its mode and
 * owner can only be set by path. Done at the final path, a user who may
 * write in that folder could put a symbolic link there between bind() and
 * chown(), and root would give that user whatever file the link names. So
 * the socket is bound in a new folder that only we can enter (mkdtemp,
 * 0700), given its mode and owner there, and moved into place with
 * rename(), which replaces a stale file (or link) and follows nothing.
 * Nobody can connect before listen(), which comes last. */
static int unix_listener(const char *path, int type, int refuse_live, uid_t uid, gid_t gid)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[sizeof sa.sun_path];
	const char *slash = strrchr(path, '/');
	int dirlen = slash ? (int)(slash - path) : 1;
	if (strlen(path) >= sizeof sa.sun_path ||
	    snprintf(dir, sizeof dir, "%.*s/.sXXXXXX", dirlen, slash ? path : ".") >= (int)sizeof dir - 2) {
		log_error("socket path too long: %s", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1); /* its length is checked above */
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (refuse_live && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
		log_error("%s: another process is serving this socket; is sessiond already running?", path);
		close(fd);
		return -1;
	}
	if (!mkdtemp(dir)) {
		log_error("cannot make a folder beside %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (snprintf(sa.sun_path, sizeof sa.sun_path, "%s/s", dir) >= (int)sizeof sa.sun_path) {
		rmdir(dir);
		close(fd);
		return -1;
	}
	const char *what = "bind";
	int ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
	         (what = "chmod", chmod(sa.sun_path, 0660) == 0) &&
	         (what = "chown", geteuid() != 0 || lchown(sa.sun_path, uid, gid) == 0) &&
	         (what = "rename", rename(sa.sun_path, path) == 0);
	int saved = errno;
	if (!ok)
		unlink(sa.sun_path);
	rmdir(dir);
	/* A burst (every client of a page reload, a terminate storm) can queue
	 * thousands of connections before a handler accepts: take the largest
	 * backlog the kernel allows (net.core.somaxconn). */
	if (!ok || (what = "listen", listen(fd, LISTEN_BACKLOG) < 0)) {
		log_error("cannot listen on %s (%s): %s", path, what, strerror(ok ? errno : saved));
		close(fd);
		return -1;
	}
	return fd;
}

static int tcp_listener(const char *hostport)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	snprintf(host, sizeof host, "%.*s", (int)(colon - hostport), hostport);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *res;
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0) {
		log_error("cannot resolve %s", hostport);
		return -1;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
		log_error("cannot listen on %s: %s", hostport, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static int lookup_ids(uid_t *uid, gid_t *gid)
{
	*uid = geteuid();
	*gid = getegid();
	if (cfg.user[0]) {
		struct passwd *pw = getpwnam(cfg.user);
		if (!pw) {
			log_error("user %s does not exist", cfg.user);
			return -1;
		}
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
	}
	if (cfg.group[0]) {
		struct group *gr = getgrnam(cfg.group);
		if (!gr) {
			log_error("group %s does not exist", cfg.group);
			return -1;
		}
		*gid = gr->gr_gid;
	}
	return 0;
}

/* Log files are created now, as root, and given to the user we become,
 * so that the handlers (started later, unprivileged) can write theirs too. */
static void give_log_files(uid_t uid, gid_t gid)
{
	const char *paths[] = { cfg.log_file, cfg.handler_log_file };
	for (int i = 0; i < 2; i++) {
		if (strcmp(paths[i], "-") == 0 || strcmp(paths[i], "syslog") == 0)
			continue;
		/* O_NOFOLLOW: the log folder may be the service user's to write in. */
		int fd = open(paths[i], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
		if (fd < 0 || fchown(fd, uid, gid) < 0)
			log_warn("cannot give log file %s to the service user: %s", paths[i], strerror(errno));
		if (fd >= 0)
			close(fd);
	}
}

static int drop_privileges(uid_t uid, gid_t gid)
{
	if (geteuid() != 0 || !cfg.user[0])
		return 0;
	give_log_files(uid, gid);
	if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
		log_error("cannot drop privileges to %s: %s", cfg.user, strerror(errno));
		return -1;
	}
	log_info("running as user %s", cfg.user);
	return 0;
}

/* Held requests and XMPP connections are one descriptor each: take all we may. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (long)rl.rlim_cur < 2 * cfg.max_sessions + 64) {
		/* Better to refuse sessions cleanly than to fail accept() for everyone. */
		long fit = ((long)rl.rlim_cur - 64) / 2;
		log_warn("open file limit %ld allows %ld sessions (each needs two descriptors); "
		         "max_sessions lowered from %ld", (long)rl.rlim_cur, fit, cfg.max_sessions);
		cfg.max_sessions = fit > 1 ? fit : 1;
	}
}

/* batch_scheduling: SCHED_BATCH or SCHED_OTHER, the two policies any process
 * may take. A message crosses web server, sessiond and XMPP server, each
 * woken by the one before; as SCHED_OTHER every wake-up preempts the writer
 * mid-batch, so each wakes once per message instead of once per batch.
 * A policy the administrator chose (real-time, idle) is left alone. */
static void apply_scheduling(void)
{
	int now = sched_getscheduler(0);
	if (now < 0) {
		log_warn("batch_scheduling: cannot read the scheduling policy: %s", strerror(errno));
		return;
	}
	int reset = now & SCHED_RESET_ON_FORK; /* systemd's CPUSchedulingResetOnFork: kept */
	now &= ~SCHED_RESET_ON_FORK;
	if (now != SCHED_OTHER && now != SCHED_BATCH) {
		const char *name = now == SCHED_FIFO ? "SCHED_FIFO" : now == SCHED_RR ? "SCHED_RR"
		                 : now == SCHED_IDLE ? "SCHED_IDLE" : "a policy of its own";
		log_info("batch_scheduling: left as started (%s, %d, set outside sessiond)", name, now);
		return;
	}
	int want = cfg.batch_scheduling ? SCHED_BATCH : SCHED_OTHER;
	if (now != want && sched_setscheduler(0, want | reset, &(struct sched_param){ .sched_priority = 0 }) < 0)
		log_warn("batch_scheduling = %ld: cannot change the scheduling policy: %s",
		         cfg.batch_scheduling, strerror(errno));
}

static void size_backlog(int fcgi, int listen_again);

/* handler_users as uids; "" = the user named like group, if one exists
 * (www-data, apache, nginx: the web server's own account). */
static int handler_uids(const struct config *c, uid_t *out, size_t *n, char *err, size_t errlen)
{
	char list[sizeof c->handler_users];
	*n = 0;
	snprintf(list, sizeof list, "%s", c->handler_users);
	if (!list[0]) {
		const struct passwd *pw = c->group[0] ? getpwnam(c->group) : NULL;
		if (pw)
			out[(*n)++] = pw->pw_uid;
		return 0;
	}
	for (char *save = NULL, *t = strtok_r(list, " \t,", &save); t; t = strtok_r(NULL, " \t,", &save)) {
		char *end;
		errno = 0;
		unsigned long id = strtoul(t, &end, 10);
		const struct passwd *pw = *end || errno || end == t ? getpwnam(t) : getpwuid((uid_t)id);
		if (!pw && (*end || errno || end == t)) {
			snprintf(err, errlen, "handler_users: no user named %s", t);
			return -1;
		}
		if (*n == FRONT_MAX_PEERS) {
			snprintf(err, errlen, "handler_users: more than %d users", FRONT_MAX_PEERS);
			return -1;
		}
		out[(*n)++] = pw ? pw->pw_uid : (uid_t)id;
	}
	return 0;
}

static int set_peers(const struct config *c, char *err, size_t errlen)
{
	uid_t uids[FRONT_MAX_PEERS];
	size_t n;
	if (handler_uids(c, uids, &n, err, errlen) < 0)
		return -1;
	front_set_peers(uids, n);
	return 0;
}

/* systemd's readiness protocol (sd_notify(3)), without libsystemd: one
 * datagram of "KEY=value" lines to the socket named in $NOTIFY_SOCKET (a
 * path, or '@' for an abstract name). Under Type=notify, systemd counts the
 * service as started, reloading or stopping from these; elsewhere the
 * variable is unset and this does nothing. The variable stays set, so the
 * successor a graceful restart execs (the same PID) reports too. */
static void notify_systemd(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = path ? strlen(path) : 0;
	if (!len || restart_is_drainer())
		return;
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof sa.sun_path) {
		log_warn("NOTIFY_SOCKET %s: not a socket path; systemd not told %s", path, state);
		return;
	}
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = 0;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
	                     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
		log_warn("cannot tell systemd (NOTIFY_SOCKET %s) %s: %s", path, state, strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* RELOADING=1 carries the time it began (systemd 253+ asks for it). */
static void notify_reloading(void)
{
	struct timespec ts;
	char msg[64];
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
	         (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
	notify_systemd(msg);
}

/* logrotate has moved the files: write to new ones at the same paths. */
static void reopen_logs(void)
{
	int fd = log_reopen();
	if (fd > 2 && std_to_log && (dup2(fd, 1) < 0 || dup2(fd, 2) < 0))
		log_warn("cannot point stdout and stderr at the new log file: %s", strerror(errno));
}

/* SIGHUP, what logrotate's postrotate and admins send: new log files, and
 * the configuration file read again. What can change under running sessions
 * changes now (limits, log level, CORS, headers, backends, routes, who may
 * use the control socket; see config.c); sockets, paths, the user and the
 * database wait for a restart, and the log says which. The handlers are
 * replaced one by one, so they read the new file too. A file that does not
 * parse changes nothing: never a reason to stop serving. */
static int reload_into(struct buf *out)
{
	static struct config next; /* large: not on the stack */
	char err[512], changed[1024], later[1024];
	uid_t uids[FRONT_MAX_PEERS];
	size_t nuids;
	reopen_logs();
	config_defaults(&next);
	if (config_load(&next, cfg.path, err, sizeof err) < 0 ||
	    handler_uids(&next, uids, &nuids, err, sizeof err) < 0) {
		log_error("SIGHUP: log files reopened; the configuration was NOT reloaded and the running one "
		          "stays: %s", err);
		buf_printf(out, "log files reopened; the configuration was NOT reloaded and the running one "
		                "stays: %s\n", err);
		return -1;
	}
	long running = cfg.max_sessions; /* raise_fd_limit may have lowered the file's value */
	cfg.max_sessions = max_sessions_asked;
	config_reload(&cfg, &next, changed, sizeof changed, later, sizeof later);
	if (cfg.max_sessions == max_sessions_asked) {
		cfg.max_sessions = running;
	} else {
		max_sessions_asked = cfg.max_sessions;
		raise_fd_limit();
	}
	if (!level_arg)
		log_set_level((enum log_level)cfg.log_level);
	front_set_peers(uids, nuids);
	apply_scheduling();
	if (!restart_is_drainer()) /* the drainer closed its copy of the listener */
		size_backlog(fcgi_listener, 1);
	reply_init(loop, &cfg);
	restart.drain_time = cfg.drain_time;
	pool_recycle();
	log_info("SIGHUP: log files reopened, %s read again; changed: %s", cfg.path,
	         changed[0] ? changed : "nothing");
	buf_printf(out, "log files reopened, %s read again; changed: %s\n", cfg.path,
	           changed[0] ? changed : "nothing");
	if (later[0]) {
		log_warn("SIGHUP: changed but applied only when sessiond restarts (sessiond -r): %s", later);
		buf_printf(out, "changed but applied only when sessiond restarts (boshctl restart): %s\n", later);
	}
	return 0;
}

static void reload(void)
{
	struct buf ignored = { 0 };
	reload_into(&ignored);
	buf_free(&ignored);
}

static void restart_now(void)
{
	restart_request(&restart);
}

static void report_suppressed(void *ctx)
{
	(void)ctx;
	log_flush_suppressed();
}

static void suppressing(void)
{
	if (loop && !timer_armed(&suppressed_timer))
		timer_set(loop, &suppressed_timer, loop_now(loop) + 1000);
}

static void signal_io(void *ctx, uint32_t events)
{
	(void)ctx;
	(void)events;
	struct signalfd_siginfo si;
	while (read(signals.fd, &si, sizeof si) == sizeof si) {
		if (si.ssi_signo == SIGCHLD) {
			pool_reap();
		} else if (si.ssi_signo == SIGHUP) {
			notify_reloading();
			reload();
			notify_systemd("READY=1\nSTATUS=serving");
		} else if (si.ssi_signo == SIGUSR2) {
			log_info("signal USR2: restarting in place");
			restart_request(&restart);
		} else {
			notify_systemd("STOPPING=1");
			log_info("signal %u: stopping (%zu sessions)", si.ssi_signo, sessions_count());
			loop_stop(loop);
		}
	}
}

static int setup_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	signals = (struct io){ .fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC), .cb = signal_io };
	return signals.fd < 0 ? -1 : loop_add(loop, &signals, EPOLLIN);
}

/* Every so often: drop rows past their retention, and give the memory of
 * past bursts (parsers of sessions since parked, answers) back to the system. */
static void housekeep(void *ctx)
{
	(void)ctx;
	store_prune(loop_wallclock() - (double)cfg.ended_retention);
	malloc_trim(0);
	timer_set(loop, &housekeeping, loop_now(loop) + HOUSEKEEPING_MS);
}

/* Only if it is still ours: after an idle exit, a new sessiond may
 * already have started and written its own. */
static void remove_pid_file(void)
{
	long pid = 0;
	char buf[32];
	int fd = cfg.pid_file[0] ? open(cfg.pid_file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n > 0) {
		buf[n] = 0;
		pid = strtol(buf, NULL, 10);
	}
	if (pid == (long)getpid() && unlink(cfg.pid_file) < 0)
		log_warn("cannot remove pid_file %s: %s", cfg.pid_file, strerror(errno));
	if (pid_fd >= 0)
		close(pid_fd);
	pid_fd = -1;
}

/* Written whole under another name in the same folder, then renamed: a
 * reader never sees a half-written file, and a link planted at the name is
 * replaced, not followed (mkostemp creates with O_EXCL). The file stays
 * open and locked (flock) while we run, which is how `sessiond -r` knows
 * that the PID in it is still ours. */
static void write_pid_file(void)
{
	char tmp[PATH_MAX];
	if (!cfg.pid_file[0])
		return;
	if (snprintf(tmp, sizeof tmp, "%s.XXXXXX", cfg.pid_file) >= (int)sizeof tmp) {
		log_warn("pid_file path too long: %s", cfg.pid_file);
		return;
	}
	int fd = mkostemp(tmp, O_CLOEXEC);
	char line[32];
	int len = snprintf(line, sizeof line, "%ld\n", (long)getpid());
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0 || fchmod(fd, 0644) < 0 ||
	    write(fd, line, (size_t)len) != len || rename(tmp, cfg.pid_file) < 0) {
		log_warn("cannot write pid_file %s: %s", cfg.pid_file, strerror(errno));
		if (fd >= 0) {
			unlink(tmp);
			close(fd);
		}
		return;
	}
	if (pid_fd >= 0)
		close(pid_fd);
	pid_fd = fd;
}

/* The handler binary: configured, else bosh-handler beside this program. */
static void handler_binary(char *out, size_t size)
{
	if (cfg.handler_path[0]) {
		snprintf(out, size, "%s", cfg.handler_path);
		return;
	}
	char self[PATH_MAX - 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	self[n > 0 ? n : 0] = 0;
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = 0;
	snprintf(out, size, "%s/bosh-handler", n > 0 ? self : ".");
}

/* Becomes a daemon (fork, setsid, fork). The first process stays until the
 * daemon says it is ready (exit 0) or dies first (exit 1), so whoever started
 * it, a handler starting it on demand among them, learns the outcome at once
 * instead of polling a socket. stdout and stderr go to the log file: what the
 * daemon or its libraries print (sanitizer reports too) is not lost. */
static int daemonize(void)
{
	int ready[2];
	if (pipe2(ready, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		char c;
		ssize_t n;
		close(ready[1]);
		do
			n = read(ready[0], &c, 1);
		while (n < 0 && errno == EINTR);
		_exit(n == 1 ? 0 : 1);
	}
	close(ready[0]);
	if (setsid() < 0 || (pid = fork()) < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	ready_fd = ready[1];
	int null = open("/dev/null", O_RDWR);
	int out = strcmp(cfg.log_file, "-") == 0 || strcmp(cfg.log_file, "syslog") == 0
	          ? -1 : open(cfg.log_file, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, 0640);
	std_to_log = out >= 0;
	if (null < 0 || dup2(null, 0) < 0 || (out >= 0 && (dup2(out, 1) < 0 || dup2(out, 2) < 0)))
		log_warn("cannot point standard streams at /dev/null and %s: %s", cfg.log_file, strerror(errno));
	if (null > 2)
		close(null);
	if (out > 2)
		close(out);
	return 0;
}

static void tell_ready(void)
{
	notify_systemd("READY=1\nSTATUS=serving");
	if (ready_fd < 0)
		return;
	if (write(ready_fd, "r", 1) != 1)
		log_warn("cannot tell the starting process we are ready: %s", strerror(errno));
	close(ready_fd);
	ready_fd = -1;
}

/* Shared hosts kill idle daemons anyway: with idle_exit, sessiond leaves by
 * itself once it has had no session for that long, and the next request's
 * handler starts a new one (autostart). */
static void check_idle(void *ctx)
{
	(void)ctx;
	uint64_t now = loop_now(loop);
	if (restart_is_drainer())
		return; /* the socket is the successor's; the drainer leaves by itself */
	if (sessions_count() > 0) {
		idle_empty = 0;
	} else if (!idle_empty) {
		idle_empty = 1;
		idle_since = now;
	} else if (now - idle_since >= (uint64_t)cfg.idle_exit * 1000) {
		log_info("no session for %ld s (idle_exit): stopping", cfg.idle_exit);
		notify_systemd("STOPPING=1");
		/* Off the file system first: a handler that comes now starts a new
		 * sessiond rather than queue a request this one will never read. */
		control_gone = unlink(cfg.control_socket) == 0;
		loop_stop(loop);
		return;
	}
	/* a quarter of idle_exit: it exits at most 25% late */
	uint64_t step = (uint64_t)cfg.idle_exit * 250;
	timer_set(loop, &idle_timer, now + (step < 250 ? 250 : step > HOUSEKEEPING_MS ? HOUSEKEEPING_MS : step));
}

/* ws_socket, if set: a Unix path (0660, group) or HOST:PORT. */
static int open_ws_socket(int *ws, uid_t uid, gid_t gid)
{
	*ws = -1;
	if (!cfg.ws_socket[0])
		return 0;
	*ws = cfg.ws_socket[0] == '/' ? unix_listener(cfg.ws_socket, SOCK_STREAM | SOCK_NONBLOCK, 0, uid, gid)
	                              : tcp_listener(cfg.ws_socket);
	if (*ws >= 0 && cfg.ws_socket[0] != '/' && fcntl(*ws, F_SETFL, O_NONBLOCK) < 0) {
		log_error("ws_socket: %s", strerror(errno));
		close(*ws);
		*ws = -1;
	}
	return *ws < 0 ? -1 : 0;
}

/* After a restart: the predecessor's listener, or a new one if it had none. */
static int resume_ws_socket(int *ws, uid_t uid, gid_t gid)
{
	const char *v = getenv(WS_FD_ENV);
	*ws = -1;
	if (v) {
		*ws = atoi(v);
		unsetenv(WS_FD_ENV);
		if (*ws > 2 && fcntl(*ws, F_SETFD, FD_CLOEXEC) == 0 && fcntl(*ws, F_SETFL, O_NONBLOCK) == 0)
			return 0;
		log_error("restart: the WebSocket listener %s is not usable", v);
		*ws = -1;
	}
	return open_ws_socket(ws, uid, gid);
}

static int open_sockets(int *control, int *fcgi, uid_t uid, gid_t gid)
{
	*fcgi = -1;
	if ((*control = unix_listener(cfg.control_socket, SOCK_SEQPACKET | SOCK_NONBLOCK, 1, uid, gid)) < 0)
		return -1;
	if (cfg.handlers == 0 || !cfg.fcgi_socket[0])
		return 0; /* handlers run elsewhere (spawn-fcgi, mod_fcgid) */
	if (cfg.fcgi_socket[0] == '/')
		*fcgi = unix_listener(cfg.fcgi_socket, SOCK_STREAM, 0, uid, gid);
	else
		*fcgi = tcp_listener(cfg.fcgi_socket);
	return *fcgi < 0 ? -1 : 0;
}

/* sessiond -t: what a start, and a restart's successor, do before they can
 * serve, without serving: the configuration (read by now), the service
 * user, the resolver, the TLS context with tls_ca_file, the database. It
 * runs as the service user, as a successor does (it never was root), so a
 * CA file or database only root may read is found here, and not by a
 * successor that then cannot start. A restart runs this on the binary on
 * disk first; its errors go to stderr, which the restart logs. */
static int check_startup(const char *config_path)
{
	uid_t uid;
	gid_t gid;
	char err[512];
	if (lookup_ids(&uid, &gid) < 0)
		return 1;
	if (geteuid() == 0 && cfg.user[0] &&
	    (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0)) {
		log_error("cannot become %s: %s", cfg.user, strerror(errno));
		return 1;
	}
	struct loop *l = loop_new();
	int ok = l && resolver_init(l, cfg.dns_servers, (unsigned)cfg.connect_timeout * 1000) == 0 &&
	         tls_init(cfg.tls_ca_file) == 0;
	if (ok && store_check(cfg.database, err, sizeof err) < 0) {
		log_error("database: %s", err);
		ok = 0;
	}
	resolver_shutdown();
	tls_shutdown();
	if (l)
		loop_free(l);
	if (!ok)
		return 1;
	printf("%s: OK (%zu domains)\n", config_path, cfg.nbackends);
	return 0;
}

/* The handler pool accepts with blocking calls on the listener it shares;
 * sessiond's own reading (fcgi_conn.c) makes it non-blocking. */
static int fcgi_blocking(int fcgi)
{
	int fl = fcntl(fcgi, F_GETFL);
	if (fl < 0 || fcntl(fcgi, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		log_error("fcgi_socket: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* The kernel caps every listen backlog at net.core.somaxconn (4096 by default),
 * read at listen(): listen_again (SIGHUP, a restart in place; a fresh socket
 * was listened on just now) so a raised value applies to a socket we have. A backlog below max_sessions is a burst of 502s
 * waiting to happen (every client ending its session at once, each end a new
 * connection): said once per value of the cap, not at every SIGHUP (logrotate
 * sends one a night). */
static void size_backlog(int fcgi, int listen_again)
{
	static long warned_cap;
	if (fcgi < 0)
		return;
	if (listen_again && listen(fcgi, LISTEN_BACKLOG) < 0)
		log_warn("fcgi_socket: listen again for the backlog: %s", strerror(errno));
	long cap = 0;
	FILE *f = fopen("/proc/sys/net/core/somaxconn", "r");
	if (f) {
		if (fscanf(f, "%ld", &cap) != 1)
			cap = 0;
		fclose(f);
	}
	/* Only what raising the cap would mend: past LISTEN_BACKLOG it is ours. */
	if (cap <= 0 || cap >= LISTEN_BACKLOG || cap >= cfg.max_sessions || cap == warned_cap)
		return;
	warned_cap = cap;
	log_warn("fcgi_socket: listen backlog %ld (net.core.somaxconn) is below max_sessions %ld: "
	         "more new connections than that at once (clients ending their sessions together) "
	         "get 502s from the web server; raise it (sysctl -w net.core.somaxconn=65535), "
	         "then reload sessiond (SIGHUP)", cap, cfg.max_sessions);
}

/* After a graceful restart: everything comes from the predecessor. */
static int resume(struct snap_r *snap, int fcgi, const char *handler, const char *config_path)
{
	long n = -1;
	restart_restore_state(snap);
	int direct = fcgi >= 0 && cfg.fcgi_direct;
	/* fcgi_direct changed: the predecessor's handlers stop, or its
	 * connections are served to their end beside the new handlers. */
	if (pool_restore(loop, snap, fcgi, handler, config_path) == 0 &&
	    front_restore(loop, snap, &cfg) == 0 && front_restore_drainer(snap) == 0 &&
	    (restart_snap_version() < 4 ? fcgi_conn_start(loop, direct ? fcgi : -1, &cfg)
	                                : fcgi_conn_restore(loop, snap, direct ? fcgi : -1, &cfg,
	                                                    restart_snap_version())) == 0)
		n = sessions_restore(snap);
	if (n >= 0 && direct)
		pool_stop();
	else if (n >= 0 && fcgi >= 0 && fcgi_blocking(fcgi) < 0)
		n = -1;
	else if (n >= 0 && fcgi >= 0)
		pool_fill((int)cfg.handlers); /* fcgi_direct turned off: nobody else accepts */
	free((void *)snap->data);
	if (n < 0) {
		log_error("restart: the predecessor's state could not be taken over");
		return -1;
	}
	restart_cloexec_all();
	restart_succeeded(n);
	return 0;
}

static int start_fresh(int control, int fcgi, const char *handler, const char *config_path)
{
	if (sessions_recover() < 0 || front_start(loop, control, &cfg) < 0)
		return -1;
	if (fcgi >= 0 && cfg.fcgi_direct)
		return fcgi_conn_start(loop, fcgi, &cfg);
	if (fcgi_conn_start(loop, -1, &cfg) < 0 || fcgi < 0)
		return fcgi < 0 ? 0 : -1;
	return fcgi_blocking(fcgi) < 0 || pool_start(loop, fcgi, (int)cfg.handlers, handler, config_path) < 0
	       ? -1 : 0;
}

static int run(const char *config_path, const char *level, int resume_fd)
{
	uid_t uid;
	gid_t gid;
	int control = -1, fcgi = -1, ws = -1;
	char err[512], handler[PATH_MAX];
	struct snap_r snap = { 0 };
	max_sessions_asked = cfg.max_sessions;
	raise_fd_limit();
	apply_scheduling();
	/* Every request allocates and frees a few small buffers; without this
	 * glibc gives the top of the heap back and takes it again (brk) each time. */
	mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);
	mallopt(M_TOP_PAD, 1024 * 1024);
	srandom((unsigned)time(NULL) ^ (unsigned)getpid()); /* SRV weights */
	if (resume_fd >= 0 && restart_read_snapshot(resume_fd, &snap, &fcgi) < 0) {
		log_error("restart: the snapshot is unreadable");
		return 1;
	}
	/* Before dropping privileges: resolv.conf and the CA files are read now. */
	if (set_peers(&cfg, err, sizeof err) < 0) {
		log_error("%s", err);
		return 1;
	}
	if (lookup_ids(&uid, &gid) < 0 || !(loop = loop_new()) ||
	    resolver_init(loop, cfg.dns_servers, (unsigned)cfg.connect_timeout * 1000) < 0 ||
	    tls_init(cfg.tls_ca_file) < 0 || setup_signals() < 0)
		return 1;
	if (resume_fd < 0 && (open_sockets(&control, &fcgi, uid, gid) < 0 ||
	                      open_ws_socket(&ws, uid, gid) < 0 || drop_privileges(uid, gid) < 0))
		return 1;
	if (resume_fd >= 0 && resume_ws_socket(&ws, uid, gid) < 0)
		log_error("restart: serving without ws_socket");
	fcgi_listener = fcgi;
	size_backlog(fcgi, resume_fd >= 0);
	if (store_open(cfg.database, err, sizeof err) < 0) {
		log_error("database: %s", err);
		return 1;
	}
	reply_init(loop, &cfg);
	suppressed_timer = (struct timer){ .cb = report_suppressed };
	log_on_suppress(suppressing);
	handler_binary(handler, sizeof handler);
	if (sessions_init(loop, &cfg) < 0 ||
	    (resume_fd >= 0 ? resume(&snap, fcgi, handler, config_path)
	                    : start_fresh(control, fcgi, handler, config_path)) < 0 ||
	    (ws >= 0 && ws_start(ws) < 0))
		return 1;
	pool_on_other_child(restart_reaped);
	control_init(loop, &cfg, &(struct control_actions){ .reload = reload_into, .restart = restart_now });
	store_on_flush(metrics_db_flush);
	metrics_start(loop);
	restart = (struct restart_params){ .loop = loop, .self = self_path, .config_path = config_path,
	                                   .level = level, .fcgi_fd = fcgi, .drain_time = cfg.drain_time };
	write_pid_file();
	loop_set_idle(loop, sessions_idle, NULL);
	housekeeping = (struct timer){ .cb = housekeep };
	timer_set(loop, &housekeeping, loop_now(loop) + HOUSEKEEPING_MS);
	if (cfg.idle_exit > 0) {
		idle_timer = (struct timer){ .cb = check_idle };
		check_idle(NULL);
	}
	log_info("sessiond ready: control socket %s, FastCGI %s, WebSocket %s, database %s, %zu domains",
	         cfg.control_socket,
	         fcgi < 0 ? "(external handlers)" : cfg.fcgi_direct ? "read by sessiond" : cfg.fcgi_socket,
	         ws >= 0 ? cfg.ws_socket : "(none)", cfg.database, cfg.nbackends);
	tell_ready();
	int rc = loop_run(loop);
	if (restart_is_drainer()) {
		/* The sockets and the pid file are the successor's. */
		sessions_shutdown();
		store_close();
		log_info("draining process stopped");
		return rc < 0 ? 1 : 0;
	}
	pool_stop();
	sessions_shutdown();
	ws_stop();
	fcgi_conn_stop();
	front_stop();
	if (!control_gone)
		unlink(cfg.control_socket);
	if (fcgi >= 0 && cfg.fcgi_socket[0] == '/')
		unlink(cfg.fcgi_socket);
	if (ws >= 0 && cfg.ws_socket[0] == '/')
		unlink(cfg.ws_socket);
	store_close();
	resolver_shutdown();
	tls_shutdown();
	remove_pid_file();
	log_info("sessiond stopped");
	return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	const char *config_path = "bosh.conf", *level = NULL;
	int foreground = 0, check = 0, opt;
	int resume_fd = -1;
	int restart_cmd = 0, reload_cmd = 0, snap_version = 0;
	static const struct option longopts[] = {
		{ "restart", no_argument, NULL, 'r' }, { "check", no_argument, NULL, 't' },
		{ "config", required_argument, NULL, 'c' }, { "help", no_argument, NULL, 'h' },
		{ "reload", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	while ((opt = getopt_long(argc, argv, "c:fl:thrR:T:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'f': foreground = 1; break;
		case 'l': level = optarg; break;
		case 't': check = 1; break;
		case 'r': restart_cmd = 1; break;
		case 'H': reload_cmd = 1; break;
		case 'R': resume_fd = atoi(optarg); break; /* internal: a graceful restart */
		case 'T': snap_version = atoi(optarg); break; /* internal: with -t, the state format */
		default: usage(); return opt == 'h' ? 0 : 2;
		}
	}
	/* Nothing we create (log, database, pid file) is for everyone to read. */
	umask(027);
	ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
	self_path[n > 0 ? n : 0] = 0;
	/* An upgrade replaces the file: restart with the binary now on disk. */
	char *deleted = strstr(self_path, " (deleted)");
	if (deleted)
		*deleted = 0;
	level_arg = level;
	char err[512], abspath[PATH_MAX];
	if (realpath(config_path, abspath))
		config_path = abspath;
	config_defaults(&cfg);
	if (config_load(&cfg, config_path, err, sizeof err) < 0) {
		fprintf(stderr, "sessiond: %s\n", err);
		return 1;
	}
	if (level && log_level_parse(level) < 0) {
		fprintf(stderr, "sessiond: -l %s: expected error, warn, info or debug\n", level);
		return 2;
	}
	if (restart_cmd)
		return restart_command();
	if (reload_cmd)
		return reload_command();
	if (check && snap_version && (snap_version < SNAP_VERSION_OLDEST || snap_version > SNAP_VERSION)) {
		fprintf(stderr, "sessiond: state format %d asked for, this binary reads %d\n", snap_version,
		        SNAP_VERSION);
		return 3;
	}
	uid_t peers[FRONT_MAX_PEERS];
	size_t npeers;
	if (check && handler_uids(&cfg, peers, &npeers, err, sizeof err) < 0) {
		fprintf(stderr, "sessiond: %s: %s\n", config_path, err);
		return 1;
	}
	if (check)
		return check_startup(config_path);
	log_open("sessiond", cfg.log_file, (enum log_level)(level ? log_level_parse(level) : cfg.log_level));
	/* systemd's NOTIFY_SOCKET is for a sessiond it runs itself (-f): one a
	 * handler starts on demand may have inherited another service's. */
	if (!foreground && resume_fd < 0)
		unsetenv("NOTIFY_SOCKET");
	if (!foreground && resume_fd < 0 && daemonize() < 0) {
		log_error("cannot become a daemon: %s", strerror(errno));
		return 1;
	}
	return run(config_path, level, resume_fd);
}
