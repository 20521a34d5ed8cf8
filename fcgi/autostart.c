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
	strcpy(sa.sun_path, control_socket);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	int ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* sessiond daemonizes itself (fork, setsid, fork): we wait only for the first child. */
static int spawn(const struct config *cfg, const char *config_path)
{
	pid_t pid = fork();
	if (pid < 0) {
		log_error("autostart: fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
		}
		execl(cfg->sessiond_path, cfg->sessiond_path, "-c", config_path, (char *)NULL);
		_exit(127);
	}
	int status;
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		log_error("autostart: %s -c %s failed to start (status %d); see its log file",
		          cfg->sessiond_path, config_path, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return -1;
	}
	log_info("autostart: started sessiond (%s)", cfg->sessiond_path);
	return 0;
}

/* The lock, bounded: a stuck holder must not hang every request. */
static int take_lock(const char *path, int timeout_ms)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
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
		rc = spawn(cfg, config_path);
		int waited = 0;
		while (rc == 0 && !sessiond_answers(cfg->control_socket) && waited < timeout_ms) {
			sleep_ms(POLL_MS);
			waited += POLL_MS;
		}
		if (rc == 0 && waited >= timeout_ms) {
			log_error("autostart: sessiond did not answer on %s within %d ms", cfg->control_socket,
			          timeout_ms);
			rc = -1;
		}
	}
	close(fd); /* releases the lock */
	return rc;
}
