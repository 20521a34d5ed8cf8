/* sessiond - the BOSH session daemon.
 *
 * Start-up order matters: sockets are made (and given to the web server's
 * group) while still root, then privileges are dropped, and only then are
 * the database and the handler pool opened, so every file they create
 * belongs to the unprivileged user.
 */
#define _GNU_SOURCE
#include "config.h"
#include "front.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "reply.h"
#include "resolver.h"
#include "restart.h"
#include "session.h"
#include "snapshot.h"
#include "store.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <malloc.h>
#include <limits.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
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
static struct timer idle_timer;  /* idle_exit */
static int idle_empty;           /* no session since idle_since */
static uint64_t idle_since;
static int control_gone;         /* the control socket's file is already removed */

/* sessiond -r: the graceful restart of the running sessiond (SIGUSR2 to
 * the PID in pid_file), confirmed when its successor rewrites the file. */
static int restart_command(void)
{
	struct stat before;
	long pid = 0;
	FILE *f = cfg.pid_file[0] ? fopen(cfg.pid_file, "r") : NULL;
	if (!f || fscanf(f, "%ld", &pid) != 1 || pid <= 0 || stat(cfg.pid_file, &before) < 0) {
		fprintf(stderr, "sessiond: -r needs pid_file set and a running sessiond (%s)\n",
		        cfg.pid_file[0] ? cfg.pid_file : "pid_file is not set");
		if (f)
			fclose(f);
		return 1;
	}
	fclose(f);
	if (kill((pid_t)pid, SIGUSR2) < 0) {
		fprintf(stderr, "sessiond: signal to %ld: %s\n", pid, strerror(errno));
		return 1;
	}
	for (int i = 0; i < 200; i++) {
		struct timespec ts = { 0, 100 * 1000000 };
		nanosleep(&ts, NULL);
		struct stat now;
		if (stat(cfg.pid_file, &now) == 0 &&
		    (now.st_mtim.tv_sec != before.st_mtim.tv_sec || now.st_mtim.tv_nsec != before.st_mtim.tv_nsec)) {
			printf("sessiond %ld restarted in place\n", pid);
			return 0;
		}
	}
	fprintf(stderr, "sessiond: %ld did not restart within 20 s; its log says why\n", pid);
	return 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: sessiond [-f] [-c CONFIG] [-l error|warn|info|debug] [-t | -r]\n"
	                "  -c CONFIG  configuration file (default: bosh.conf)\n"
	                "  -f         stay in the foreground (default: become a daemon)\n"
	                "  -l LEVEL   log level, overriding log_level\n"
	                "  -t         check what a start needs (configuration, CA file, database) and exit\n"
	                "  -r, --restart  restart the running sessiond gracefully (needs pid_file)\n");
}

/* A Unix socket of ours. The control socket replaces a stale file but
 * never a live sessiond; the FastCGI socket is ours to replace. The
 * FastCGI socket stays blocking: the handlers accept on it with libfcgi,
 * and O_NONBLOCK would be shared with them. */
static int unix_listener(const char *path, int type, int refuse_live)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path) {
		log_error("socket path too long: %s", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (refuse_live && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
		log_error("%s: another process is serving this socket; is sessiond already running?", path);
		close(fd);
		return -1;
	}
	unlink(path);
	/* A burst (every client of a page reload, a terminate storm) can queue
	 * thousands of connections before a handler accepts: take the largest
	 * backlog the kernel allows (net.core.somaxconn). */
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
		log_error("cannot listen on %s: %s", path, strerror(errno));
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
		log_error("cannot resolve fcgi_socket %s", hostport);
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

/* Sockets are 0660 and owned by user:group, so only the web server's group can talk to us. */
static int restrict_socket(const char *path, uid_t uid, gid_t gid)
{
	if (chmod(path, 0660) < 0 || (geteuid() == 0 && chown(path, uid, gid) < 0)) {
		log_error("cannot set owner and mode of %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
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
		if (strcmp(paths[i], "-") == 0)
			continue;
		int fd = open(paths[i], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
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

static void signal_io(void *ctx, uint32_t events)
{
	(void)ctx;
	(void)events;
	struct signalfd_siginfo si;
	while (read(signals.fd, &si, sizeof si) == sizeof si) {
		if (si.ssi_signo == SIGCHLD) {
			pool_reap();
		} else if (si.ssi_signo == SIGUSR2) {
			log_info("signal USR2: restarting in place");
			restart_request(&restart);
		} else {
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
	FILE *f = cfg.pid_file[0] ? fopen(cfg.pid_file, "r") : NULL;
	if (!f)
		return;
	int ours = fscanf(f, "%ld", &pid) == 1 && pid == (long)getpid();
	fclose(f);
	if (ours && unlink(cfg.pid_file) < 0)
		log_warn("cannot remove pid_file %s: %s", cfg.pid_file, strerror(errno));
}

static void write_pid_file(void)
{
	if (!cfg.pid_file[0])
		return;
	FILE *f = fopen(cfg.pid_file, "w");
	if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0)
		log_warn("cannot write pid_file %s: %s", cfg.pid_file, strerror(errno));
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
	int out = strcmp(cfg.log_file, "-") == 0 ? -1 : open(cfg.log_file, O_WRONLY | O_APPEND | O_CREAT, 0640);
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

static int open_sockets(int *control, int *fcgi, uid_t uid, gid_t gid)
{
	*fcgi = -1;
	if ((*control = unix_listener(cfg.control_socket, SOCK_SEQPACKET | SOCK_NONBLOCK, 1)) < 0 ||
	    restrict_socket(cfg.control_socket, uid, gid) < 0)
		return -1;
	if (cfg.handlers == 0 || !cfg.fcgi_socket[0])
		return 0; /* handlers run elsewhere (spawn-fcgi, mod_fcgid) */
	if (cfg.fcgi_socket[0] == '/')
		*fcgi = unix_listener(cfg.fcgi_socket, SOCK_STREAM, 0);
	else
		*fcgi = tcp_listener(cfg.fcgi_socket);
	if (*fcgi < 0 || (cfg.fcgi_socket[0] == '/' && restrict_socket(cfg.fcgi_socket, uid, gid) < 0))
		return -1;
	return 0;
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

/* After a graceful restart: everything comes from the predecessor. */
static int resume(struct snap_r *snap, int fcgi, const char *handler, const char *config_path)
{
	long n = -1;
	if (pool_restore(loop, snap, fcgi, handler, config_path) == 0 &&
	    front_restore(loop, snap, &cfg) == 0 && front_restore_drainer(snap) == 0)
		n = sessions_restore(snap);
	free((void *)snap->data);
	if (n < 0) {
		log_error("restart: the predecessor's state could not be taken over");
		return -1;
	}
	restart_cloexec_all();
	log_info("restarted in place: %ld sessions taken over", n);
	return 0;
}

static int start_fresh(int control, int fcgi, const char *handler, const char *config_path)
{
	return sessions_recover() < 0 || front_start(loop, control, &cfg) < 0 ||
	       (fcgi >= 0 && pool_start(loop, fcgi, (int)cfg.handlers, handler, config_path) < 0) ? -1 : 0;
}

static int run(const char *config_path, const char *level, int resume_fd)
{
	uid_t uid;
	gid_t gid;
	int control = -1, fcgi = -1;
	char err[512], handler[PATH_MAX];
	struct snap_r snap = { 0 };
	raise_fd_limit();
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
	if (lookup_ids(&uid, &gid) < 0 || !(loop = loop_new()) ||
	    resolver_init(loop, cfg.dns_servers, (unsigned)cfg.connect_timeout * 1000) < 0 ||
	    tls_init(cfg.tls_ca_file) < 0 || setup_signals() < 0)
		return 1;
	if (resume_fd < 0 && (open_sockets(&control, &fcgi, uid, gid) < 0 || drop_privileges(uid, gid) < 0))
		return 1;
	if (store_open(cfg.database, err, sizeof err) < 0) {
		log_error("database: %s", err);
		return 1;
	}
	reply_init(loop, &cfg);
	handler_binary(handler, sizeof handler);
	if (sessions_init(loop, &cfg) < 0 ||
	    (resume_fd >= 0 ? resume(&snap, fcgi, handler, config_path)
	                    : start_fresh(control, fcgi, handler, config_path)) < 0)
		return 1;
	pool_on_other_child(restart_reaped);
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
	log_info("sessiond ready: control socket %s, FastCGI %s, database %s, %zu domains",
	         cfg.control_socket, fcgi >= 0 ? cfg.fcgi_socket : "(external handlers)", cfg.database,
	         cfg.nbackends);
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
	front_stop();
	if (!control_gone)
		unlink(cfg.control_socket);
	if (fcgi >= 0 && cfg.fcgi_socket[0] == '/')
		unlink(cfg.fcgi_socket);
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
	int restart_cmd = 0, snap_version = 0;
	static const struct option longopts[] = {
		{ "restart", no_argument, NULL, 'r' }, { "check", no_argument, NULL, 't' },
		{ "config", required_argument, NULL, 'c' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	while ((opt = getopt_long(argc, argv, "c:fl:thrR:T:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'f': foreground = 1; break;
		case 'l': level = optarg; break;
		case 't': check = 1; break;
		case 'r': restart_cmd = 1; break;
		case 'R': resume_fd = atoi(optarg); break; /* internal: a graceful restart */
		case 'T': snap_version = atoi(optarg); break; /* internal: with -t, the state format */
		default: usage(); return opt == 'h' ? 0 : 2;
		}
	}
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
	if (check && snap_version && snap_version != SNAP_VERSION) {
		fprintf(stderr, "sessiond: state format %d asked for, this binary reads %d\n", snap_version,
		        SNAP_VERSION);
		return 3;
	}
	if (check)
		return check_startup(config_path);
	log_open("sessiond", cfg.log_file, (enum log_level)(level ? log_level_parse(level) : cfg.log_level));
	if (!foreground && resume_fd < 0 && daemonize() < 0) {
		log_error("cannot become a daemon: %s", strerror(errno));
		return 1;
	}
	ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
	self_path[n > 0 ? n : 0] = 0;
	/* An upgrade replaces the file: restart with the binary now on disk. */
	char *deleted = strstr(self_path, " (deleted)");
	if (deleted)
		*deleted = 0;
	return run(config_path, level, resume_fd);
}
