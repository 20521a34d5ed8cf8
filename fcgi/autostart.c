#define _GNU_SOURCE
#include "autostart.h"
#include "config.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POLL_MS 25
#define READY_GRACE_MS 1000

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

int sessiond_answers(const char *control_socket)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(control_socket) >= sizeof sa.sun_path)
		return 0;
	memcpy(sa.sun_path, control_socket, strlen(control_socket) + 1); /* length checked above */
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	int ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* In the child: the web server's pipes and sockets must not stay open in a
 * daemon that outlives this request (the server would wait for their EOF),
 * so everything but stdio is closed and stdio goes to sessiond's log file,
 * where even errors printed before its log is open are kept. */
static void exec_sessiond(const struct config *cfg, const char *config_path)
{
	int null = open("/dev/null", O_RDWR);
	int out = strcmp(cfg->log_file, "-") == 0 || strcmp(cfg->log_file, "syslog") == 0
	          ? -1 : open(cfg->log_file, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, 0640);
	if (out < 0)
		out = null;
	if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(126);
	if (close_range(3, ~0U, 0) < 0)
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
	execl(cfg->sessiond_path, cfg->sessiond_path, "-c", config_path, (char *)NULL);
	dprintf(2, "bosh-handler: cannot run %s: %s\n", cfg->sessiond_path, strerror(errno));
	_exit(127);
}

/* Waits for pid at most timeout_ms; 0 when it exited, with *status. */
static int wait_child(pid_t pid, int *status, int timeout_ms)
{
	for (int waited = 0;; waited += POLL_MS) {
		pid_t got = waitpid(pid, status, WNOHANG);
		if (got == pid)
			return 0;
		if (got < 0 && errno != EINTR) {
			log_error("autostart: waitpid: %s", strerror(errno));
			return -1;
		}
		if (waited >= timeout_ms) {
			log_error("autostart: sessiond (pid %ld) not ready after %d ms", (long)pid, timeout_ms);
			return -1;
		}
		sleep_ms(POLL_MS);
	}
}

/* sessiond becomes a daemon itself (fork, setsid, fork), and its first
 * process exits only once the daemon is ready (0) or has failed: waiting for
 * that child is waiting for the outcome. Bounded: a sessiond stuck in its
 * start (a DNS lookup of a backend) must not hold every request. */
static int spawn(const struct config *cfg, const char *config_path, int timeout_ms)
{
	if (strcmp(cfg->log_file, "-") == 0)
		log_warn("autostart: log_file is '-': the sessiond started now logs nowhere; set log_file");
	pid_t pid = fork();
	if (pid < 0) {
		log_error("autostart: fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0)
		exec_sessiond(cfg, config_path);
	int status = 0;
	if (wait_child(pid, &status, timeout_ms) < 0)
		return -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		log_error("autostart: %s -c %s did not start (exit status %d); its reason is in %s",
		          cfg->sessiond_path, config_path, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
		          cfg->log_file);
		return -1;
	}
	log_info("autostart: started sessiond (%s -c %s)", cfg->sessiond_path, config_path);
	return 0;
}

/* The lock, bounded: a stuck holder must not hang every request. */
static int take_lock(const char *path, int timeout_ms)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		log_error("autostart: cannot open lock file %s: %s", path, strerror(errno));
		return -1;
	}
	for (int waited = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; waited += POLL_MS) {
		if (errno != EWOULDBLOCK || waited >= timeout_ms) {
			log_error("autostart: cannot lock %s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		sleep_ms(POLL_MS);
	}
	return fd;
}

int autostart_sessiond(const struct config *cfg, const char *config_path, int timeout_ms)
{
	char lock[sizeof cfg->control_socket + 8];
	snprintf(lock, sizeof lock, "%s.lock", cfg->control_socket);
	int fd = take_lock(lock, timeout_ms);
	if (fd < 0)
		return -1;
	/* Always look again with the lock held: the handler that held it
	 * before us may just have started sessiond. */
	int rc = 0;
	if (!sessiond_answers(cfg->control_socket)) {
		rc = spawn(cfg, config_path, timeout_ms);
		/* Ready means listening; a short grace covers a full listen queue. */
		int waited = 0;
		while (rc == 0 && !sessiond_answers(cfg->control_socket) && waited < READY_GRACE_MS) {
			sleep_ms(POLL_MS);
			waited += POLL_MS;
		}
		if (rc == 0 && waited >= READY_GRACE_MS) {
			log_error("autostart: sessiond said it was ready but does not answer on %s",
			          cfg->control_socket);
			rc = -1;
		}
	}
	close(fd); /* releases the lock */
	return rc;
}
