/* bosh-handler - the FastCGI (or CGI) request handler.
 *
 * For each request: read the body (at most max_data_held bytes), check the
 * <body/> wrapper (body.c), and send one frame to sessiond together with
 * the web server's connection itself (SCM_RIGHTS). sessiond answers the web
 * server directly, possibly much later (a held long-poll); this process is
 * free for the next request at once. As plain CGI there is no connection to
 * hand over: the handler waits for sessiond's answer and writes it out.
 */
#define _GNU_SOURCE
#include "autostart.h"
#include "body.h"
#include "bosh.h"
#include "config.h"
#include "frame.h"
#include "log.h"
#include "query.h"
#include "request.h"

#include <errno.h>
#include <fcntl.h>
#include <fcgiapp.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Longest a request waits for the start lock, then again for a new sessiond. */
#define AUTOSTART_WAIT_MS 10000

static struct config cfg;
static const char *config_file;  /* the one we read, for sessiond's autostart */
static int sessiond_fd = -1;   /* persistent connection (FastCGI mode) */
static uint8_t *frame_buf;     /* one encoded frame */
static char *body_buf;         /* one request body, max_data_held + 1 bytes */

static int connect_once(int timeout_s, int quiet)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error("socket: %s", strerror(errno));
		return -1;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(cfg.control_socket) >= sizeof sa.sun_path) {
		log_error("control_socket path too long: %s", cfg.control_socket);
		close(fd);
		return -1;
	}
	memcpy(sa.sun_path, cfg.control_socket, strlen(cfg.control_socket) + 1); /* checked above */
	int sndbuf = FRAME_MAX;
	struct timeval tv = { .tv_sec = timeout_s };
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		if (!quiet)
			log_warn("cannot reach sessiond at %s: %s", cfg.control_socket, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Connects; with autostart, a missing sessiond is started first (shared hosting). */
static int connect_sessiond(int timeout_s)
{
	int fd = connect_once(timeout_s, cfg.autostart);
	if (fd >= 0 || !cfg.autostart)
		return fd;
	if (autostart_sessiond(&cfg, config_file, AUTOSTART_WAIT_MS) < 0)
		return -1;
	return connect_once(timeout_s, 0);
}

static int send_frame(int fd, const uint8_t *buf, size_t len, int pass_fd)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (pass_fd >= 0) {
		memset(&ctl, 0, sizeof ctl);
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof ctl.buf;
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
	}
	ssize_t n;
	do
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)len ? 0 : -1;
}

/* Reads and throws away the rest of a body that is too large. The web
 * server waits until it has sent the whole body before it reads an answer,
 * so an unread body would leave the answer hanging. Bounded: past 16 MiB
 * the connection is simply given up. */
static void drain(FCGX_Stream *in)
{
	long total = 0;
	int n;
	while (total < 16L * 1024 * 1024 && (n = FCGX_GetStr(body_buf, (int)cfg.max_data_held, in)) > 0)
		total += n;
}

/* Reads the request body; returns its length, or -1 if it is too large. */
static long read_body(FCGX_Stream *in, const char *content_length)
{
	long total = 0;
	if (content_length && atol(content_length) > cfg.max_data_held) {
		drain(in);
		return -1;
	}
	for (;;) {
		int n = FCGX_GetStr(body_buf + total, (int)(cfg.max_data_held + 1 - total), in);
		if (n <= 0)
			break;
		total += n;
		if (total > cfg.max_data_held) {
			drain(in);
			return -1;
		}
	}
	return total;
}

/* Encodes the request into frame_buf; 0 if it does not fit. */
static size_t encode(const struct frame_request *fr)
{
	size_t n = frame_encode_request(frame_buf, FRAME_MAX, fr);
	if (n == 0)
		log_error("request frame does not fit in %d bytes", FRAME_MAX);
	return n;
}

static const char *fcgi_param_of(void *ctx, const char *name)
{
	return FCGX_GetParam(name, ((FCGX_Request *)ctx)->envp);
}

static const char *env_param(void *ctx, const char *name)
{
	(void)ctx;
	return getenv(name);
}

/* SIGTERM stays blocked: it never interrupts libfcgi reading a request or
 * us passing one on, and waits as pending until we look. */
static int sigterm_pending(void)
{
	sigset_t pending;
	return sigpending(&pending) == 0 && sigismember(&pending, SIGTERM);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts); /* the vDSO: no system call */
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits for the next FastCGI request; 0 once SIGTERM (sessiond stopping
 * us, or our parent gone) has come.
 *
 * We accept the connection ourselves and give it to libfcgi to read
 * (libfcgi accepts only when its request has no connection, ipcFd < 0;
 * keepConnection keeps its cleanup of the previous request from closing
 * the one we hand it). A blocking accept wakes one handler per connection
 * (the kernel's wait is exclusive), where waiting in poll woke all of them;
 * and a connection already queued is taken without sleeping first.
 *
 * SIGTERM is ours, not libfcgi's (its handler made its accept give up
 * mid-way: a 502; or spin on a closed descriptor). It is blocked for good
 * and looked for every STOP_CHECK_MS between requests and whenever accept
 * gives up waiting (the listener's one-second receive timeout): a handler
 * stops within about a second, and a busy one pays no system call per
 * request for it. */
#define STOP_CHECK_MS 200
static int next_request(FCGX_Request *req)
{
	static int ready;
	static uint64_t checked;
	if (!ready) {
		sigset_t term;
		sigemptyset(&term);
		sigaddset(&term, SIGTERM);
		sigprocmask(SIG_BLOCK, &term, NULL);
		struct timeval tv = { .tv_sec = 1 };
		if (setsockopt(0, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
			log_warn("SO_RCVTIMEO on the FastCGI socket: %s", strerror(errno));
		ready = 1;
	}
	for (;;) {
		uint64_t now = now_ms();
		if (now - checked >= STOP_CHECK_MS) {
			checked = now;
			if (sigterm_pending())
				return 0;
		}
		int fd = accept4(0, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			req->ipcFd = fd;
			req->keepConnection = 1;
			if (FCGX_Accept_r(req) >= 0)
				return 1;
			continue; /* a connection that sent no request: libfcgi closed it */
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			checked = 0; /* a quiet second: look at once */
		else if (errno != EINTR && errno != ECONNABORTED) {
			log_error("accepting a FastCGI connection: %s", strerror(errno));
			return 0;
		}
	}
}

static void reply_unavailable(FCGX_Stream *out)
{
	static const char body[] = BOSH_TERMINATE_BODY("remote-connection-failed");
	if (FCGX_FPrintF(out, "Status: 503 Service Unavailable\r\nContent-Type: text/xml; charset=utf-8\r\n"
	                      "Content-Length: %d\r\nCache-Control: no-store\r\n" BOSH_INERT_HEADERS
	                      "\r\n%s",
	                 (int)(sizeof body - 1), body) < 0)
		log_warn("cannot write the 503 answer to the web server");
}

/* Sends the frame on the persistent connection, reconnecting once. */
static int deliver(const uint8_t *frame, size_t len, int pass_fd)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		if (sessiond_fd < 0 && (sessiond_fd = connect_sessiond(5)) < 0)
			return -1;
		if (send_frame(sessiond_fd, frame, len, pass_fd) == 0)
			return 0;
		log_warn("sending to sessiond failed: %s; reconnecting", strerror(errno));
		close(sessiond_fd);
		sessiond_fd = -1;
	}
	return -1;
}

static void handle_fcgi(FCGX_Request *req)
{
	struct frame_request fr = { .fcgi_id = (uint16_t)req->requestId, .flags = FRAME_F_FD_PASSED };
	struct request_scratch rs;
	if (req->keepConnection) /* libfcgi's reading of BEGIN_REQUEST's flags */
		fr.flags |= FRAME_F_KEEP_CONN;
	long len = read_body(req->in, FCGX_GetParam("CONTENT_LENGTH", req->envp));
	request_make(&fr, fcgi_param_of, req, body_buf, len, body_buf, (size_t)cfg.max_data_held + 1,
	             cfg.max_data_held, &rs);
	size_t flen = encode(&fr);
	if (flen == 0 || deliver(frame_buf, flen, req->ipcFd) < 0) {
		reply_unavailable(req->out);
		request_done(&rs);
		FCGX_Finish_r(req);
		return;
	}
	request_done(&rs);
	/* sessiond owns the connection now: close only our copy, with no
	 * END_REQUEST and no shutdown() (that would end sessiond's answer too). */
	FCGX_Detach(req);
	FCGX_Free(req, 1);
}

/* Plain CGI: relay sessiond's answer to stdout. Returns 0, -1 on an error
 * or a timeout, or RELAY_NONE if sessiond closed without a byte of answer
 * (it stopped: killed, or idle_exit as the request came). */
#define RELAY_NONE (-2)
static int relay_cgi_answer(int fd)
{
	int got = 0;
	for (;;) {
		ssize_t n = recv(fd, frame_buf, FRAME_MAX, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 && !got)
			return RELAY_NONE;
		if (n <= 0)
			return got ? 0 : -1;
		const uint8_t *data;
		size_t dlen;
		char err[128];
		if (frame_decode_cgi_data(frame_buf, (size_t)n, &data, &dlen, err, sizeof err) < 0) {
			log_error("bad answer from sessiond: %s", err);
			return -1;
		}
		if (fwrite(data, 1, dlen, stdout) != dlen)
			return -1;
		got = 1;
	}
}

/* Sends the frame and relays the answer. A sessiond that went away with
 * the request unanswered is given one more try, with autostart a new one:
 * whatever the old one knew is lost either way, and the new one answers
 * what it can (a new session, or remote-connection-failed for an old one). */
static int exchange_cgi(const uint8_t *frame, size_t len)
{
	struct timeval tv = { .tv_sec = cfg.max_wait + 30 };
	int rc = -1;
	for (int attempt = 0; attempt < 2; attempt++) {
		int fd = connect_sessiond(5);
		if (fd < 0)
			return -1;
		rc = send_frame(fd, frame, len, -1) == 0 &&
		             setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0
		         ? relay_cgi_answer(fd)
		         : -1;
		close(fd);
		if (rc != RELAY_NONE || !cfg.autostart)
			break;
		log_warn("sessiond closed the connection without an answer; trying once more");
	}
	return rc == 0 ? 0 : -1;
}

static int run_cgi(void)
{
	struct frame_request fr = { 0 };
	struct request_scratch rs;
	const char *cl = getenv("CONTENT_LENGTH");
	long len = cl && atol(cl) > cfg.max_data_held ? -1 : 0;
	if (len == 0) {
		len = (long)fread(body_buf, 1, (size_t)cfg.max_data_held + 1, stdin);
		if (len > cfg.max_data_held)
			len = -1;
	}
	request_make(&fr, env_param, NULL, body_buf, len, body_buf, (size_t)cfg.max_data_held + 1,
	             cfg.max_data_held, &rs);
	size_t flen = encode(&fr);
	if (flen == 0 || exchange_cgi(frame_buf, flen) < 0) {
		static const char body[] = BOSH_TERMINATE_BODY("remote-connection-failed");
		printf("Status: 503 Service Unavailable\r\nContent-Type: text/xml; charset=utf-8\r\n"
		       "Content-Length: %zu\r\nCache-Control: no-store\r\n" BOSH_INERT_HEADERS "\r\n%s",
		       sizeof body - 1, body);
	}
	request_done(&rs);
	fflush(stdout);
	return 0;
}

/* name in the folder of this binary (shared hosting: one web folder holds all). */
static void beside_self(char *out, size_t size, const char *name)
{
	char self[PATH_MAX - 16];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	char *slash = n > 0 ? (self[n] = 0, strrchr(self, '/')) : NULL;
	if (!slash) {
		snprintf(out, size, "%s", name);
		return;
	}
	*slash = 0;
	snprintf(out, size, "%s/%s", self, name);
}

/* The config: -c PATH, else $BOSH_CONFIG, else bosh.conf next to this binary. */
static const char *config_path(int argc, char **argv)
{
	static char path[PATH_MAX];
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "-c") == 0)
			return argv[i + 1];
	const char *env = getenv("BOSH_CONFIG");
	if (env && *env)
		return env;
	beside_self(path, sizeof path, "bosh.conf");
	return path;
}

int main(int argc, char **argv)
{
	char err[512];
	config_defaults(&cfg);
	const char *path = config_path(argc, argv);
	config_file = path;
	if (access(path, R_OK) == 0 && config_load(&cfg, path, err, sizeof err) < 0) {
		fprintf(stderr, "bosh-handler: %s\n", err);
		return 1;
	}
	log_open("bosh-handler", cfg.handler_log_file, (enum log_level)cfg.log_level);
	if (access(path, R_OK) < 0)
		log_warn("no configuration at %s (%s): using the defaults", path, strerror(errno));
	if (!cfg.sessiond_path[0])
		beside_self(cfg.sessiond_path, sizeof cfg.sessiond_path, "sessiond");
	signal(SIGPIPE, SIG_IGN);
	/* Web servers may start us with SIGCHLD ignored; autostart waits for its child. */
	signal(SIGCHLD, SIG_DFL);
	frame_buf = malloc(FRAME_MAX);
	body_buf = malloc((size_t)cfg.max_data_held + 1);
	if (!frame_buf || !body_buf || FCGX_Init() != 0) {
		log_error("initialisation failed");
		return 1;
	}
	if (FCGX_IsCGI())
		return run_cgi();
	FCGX_Request req;
	if (FCGX_InitRequest(&req, 0, 0) != 0) {
		log_error("FCGX_InitRequest failed");
		return 1;
	}
	log_debug("handler ready, sessiond at %s", cfg.control_socket);
	while (next_request(&req))
		handle_fcgi(&req);
	return 0;
}
