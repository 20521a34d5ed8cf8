/* boshctl - asks the running sessiond, over its control socket.
 *
 *   boshctl [-c CONFIG] [--json] status
 *   boshctl [-c CONFIG] [--json] sessions [--jid GLOB] [--domain D] [--client ADDR]
 *   boshctl [-c CONFIG] kick SID|JID [--condition C]
 *   boshctl [-c CONFIG] drain | undrain | reload | restart
 *
 * Only root and sessiond's own user may (sessiond checks SO_PEERCRED). The
 * command goes as a frame (control.h) with one end of a socketpair, on
 * which sessiond writes the answer: its first line is the exit status.
 */
#define _GNU_SOURCE
#include "config.h"
#include "frame.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define RESTART_WAIT_S 60 /* the new binary's check, the snapshot, the exec */

static struct config cfg;
static uint8_t frame[FRAME_MAX];

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("boshctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void usage(void)
{
	fputs("usage: boshctl [-c CONFIG] [--json] COMMAND\n"
	      "  status                       what sessiond is doing\n"
	      "  sessions [--jid GLOB] [--domain D] [--client ADDR]\n"
	      "                               live sessions (the columns of active_sessions)\n"
	      "  kick SID|JID [--condition C] end sessions (default policy-violation)\n"
	      "  drain | undrain              refuse new sessions (503) / accept them again\n"
	      "  reload                       read the configuration again (as SIGHUP)\n"
	      "  restart                      graceful restart in place; waits for the outcome\n",
	      stderr);
	exit(2);
}

/* Sends the command; returns the descriptor the answer comes on. */
static int send_command(const char *command, const struct frame_attr *args, size_t nargs)
{
	struct frame_request fr = { .method = "CONTROL", .command = command, .flags = FRAME_F_FD_PASSED };
	for (size_t i = 0; i < nargs; i++)
		fr.attrs[fr.nattrs++] = args[i];
	size_t n = frame_encode_request(frame, sizeof frame, &fr);
	int pair[2], fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(cfg.control_socket) >= sizeof sa.sun_path)
		die("control_socket path too long: %s", cfg.control_socket);
	memcpy(sa.sun_path, cfg.control_socket, strlen(cfg.control_socket) + 1);
	if (!n || fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("cannot reach sessiond at %s: %s", cfg.control_socket, strerror(errno));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
		die("socketpair: %s", strerror(errno));
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = frame, .iov_len = n };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
	                      .msg_controllen = sizeof ctl.buf };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &pair[1], sizeof(int));
	if (sendmsg(fd, &msg, MSG_NOSIGNAL) != (ssize_t)n)
		die("sending to sessiond: %s", strerror(errno));
	close(pair[1]);
	close(fd);
	return pair[0];
}

/* Reads the whole answer: its status line's value, the rest in *out. */
static int read_answer(int fd, char **out, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *b = malloc(cap);
	struct timeval tv = { .tv_sec = 30 };
	if (!b)
		die("out of memory");
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	for (;;) {
		if (n == cap && !(b = realloc(b, cap *= 2)))
			die("out of memory");
		ssize_t m = read(fd, b + n, cap - n);
		if (m < 0 && errno == EINTR)
			continue;
		if (m < 0)
			die("reading sessiond's answer: %s", strerror(errno));
		if (m == 0)
			break;
		n += (size_t)m;
	}
	close(fd);
	char *nl = memchr(b, '\n', n);
	if (!nl)
		die("sessiond closed without an answer (is it this version? its log may say why)");
	int status = atoi(b);
	*len = n - (size_t)(nl + 1 - b);
	memmove(b, nl + 1, *len);
	*out = b;
	return status;
}

static int run(const char *command, const struct frame_attr *args, size_t nargs, int print)
{
	char *out;
	size_t len;
	int status = read_answer(send_command(command, args, nargs), &out, &len);
	if (print)
		fwrite(out, 1, len, status == 1 ? stderr : stdout);
	free(out);
	return status;
}

/* restart: the outcome's number before, then wait for the next one. */
static int restart(void)
{
	char *out;
	size_t len;
	int status = read_answer(send_command("restart", NULL, 0), &out, &len);
	if (status != 0) {
		fwrite(out, 1, len, stderr);
		return 1;
	}
	char seq[32];
	snprintf(seq, sizeof seq, "%llu", strtoull(out, NULL, 10));
	free(out);
	struct frame_attr a = { "seq", seq };
	for (int i = 0; i < RESTART_WAIT_S * 10; i++) {
		struct timespec ts = { 0, 100 * 1000000 };
		nanosleep(&ts, NULL);
		status = read_answer(send_command("restart-result", &a, 1), &out, &len);
		if (status != 2) {
			fwrite(out, 1, len, status ? stderr : stdout);
			free(out);
			return status;
		}
		free(out);
	}
	fprintf(stderr, "boshctl: no outcome of the restart within %d s; sessiond's log says why\n",
	        RESTART_WAIT_S);
	return 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },      { "jid", required_argument, NULL, 'J' },
		{ "domain", required_argument, NULL, 'D' }, { "client", required_argument, NULL, 'C' },
		{ "condition", required_argument, NULL, 'k' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = getenv("BOSH_CONFIG") ? getenv("BOSH_CONFIG") : "/etc/bosh/bosh.conf";
	struct frame_attr args[8];
	size_t nargs = 0;
	int opt;
	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': config = optarg; break;
		case 'j': args[nargs++] = (struct frame_attr){ "json", "1" }; break;
		case 'J': args[nargs++] = (struct frame_attr){ "jid", optarg }; break;
		case 'D': args[nargs++] = (struct frame_attr){ "domain", optarg }; break;
		case 'C': args[nargs++] = (struct frame_attr){ "client", optarg }; break;
		case 'k': args[nargs++] = (struct frame_attr){ "condition", optarg }; break;
		default: usage();
		}
		if (nargs == sizeof args / sizeof args[0])
			usage();
	}
	if (optind >= argc)
		usage();
	const char *command = argv[optind++];
	if (strcmp(command, "kick") == 0) {
		if (optind != argc - 1)
			usage();
		args[nargs++] = (struct frame_attr){ "target", argv[optind++] };
	}
	if (optind != argc)
		usage();
	char err[512];
	config_defaults(&cfg);
	if (config_load(&cfg, config, err, sizeof err) < 0)
		die("%s", err);
	if (strcmp(command, "restart") == 0)
		return restart();
	static const char *const known[] = { "status", "sessions", "kick", "drain", "undrain", "reload" };
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strcmp(command, known[i]) == 0)
			return run(command, args, nargs, 1);
	usage();
}
