#define _POSIX_C_SOURCE 200809L
#include "log.h"
#include "log_syslog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

static const char *log_prog = "bosh";
static int log_fd = 2;
static enum log_level log_threshold = LOG_INFO;
static char log_path[4096]; /* "" = stderr */
static int log_to_syslog;   /* log_file = syslog */
static struct log_bucket *buckets; /* every call site of log_limited used so far */
static void (*suppress_cb)(void);

static const char *const level_names[] = { "error", "warn", "info", "debug" };

/* O_NOFOLLOW: a log folder writable by the service user must not let it
 * point the file we open as root at /etc/shadow. */
static int open_log_file(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0640);
}

int log_open(const char *prog, const char *path, enum log_level level)
{
	log_prog = prog;
	log_threshold = level;
	if (path && strcmp(path, "syslog") == 0) {
		log_path[0] = 0;
		log_to_syslog = 1;
		log_syslog_open(prog);
		return 0;
	}
	if (!path || !*path || strcmp(path, "-") == 0) {
		log_path[0] = 0;
		log_fd = 2;
		return 0;
	}
	snprintf(log_path, sizeof log_path, "%s", path);
	int fd = open_log_file(path);
	if (fd < 0) {
		log_fd = 2;
		log_error("cannot open log file %s: %s", path, strerror(errno));
		return -1;
	}
	if (log_fd > 2)
		close(log_fd);
	log_fd = fd;
	return 0;
}

int log_reopen(void)
{
	if (!log_path[0]) /* stderr, or syslog: nothing to open again */
		return 2;
	int fd = open_log_file(log_path);
	if (fd < 0) {
		log_error("cannot open log file %s again (still writing to the old one): %s", log_path,
		          strerror(errno));
		return -1;
	}
	if (log_fd > 2)
		close(log_fd);
	log_fd = fd;
	return fd;
}

void log_set_level(enum log_level level) { log_threshold = level; }

const char *log_quoted(char *dst, size_t cap, const char *value)
{
	size_t n = 0;
	if (cap < 3)
		return cap ? (dst[0] = 0, dst) : dst;
	dst[n++] = '"';
	for (const char *p = value ? value : ""; *p && n + 2 < cap; p++)
		dst[n++] = *p == '"' ? '\'' : *p;
	dst[n++] = '"';
	dst[n] = 0;
	return dst;
}

int log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

const char *log_level_name(enum log_level level)
{
	return (unsigned)level < 4 ? level_names[level] : "?";
}

int log_enabled(enum log_level level) { return level <= log_threshold; }

/* Copies src to dst (room: cap bytes), every control byte as \xNN: a
 * newline from a client must not start a line of its own. */
static size_t escape_into(char *dst, size_t cap, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
		if (*p >= 0x20 && *p != 0x7f) {
			if (n + 1 > cap)
				break;
			dst[n++] = (char)*p;
		} else {
			if (n + 4 > cap)
				break;
			dst[n++] = '\\';
			dst[n++] = 'x';
			dst[n++] = hex[*p >> 4];
			dst[n++] = hex[*p & 15];
		}
	}
	return n;
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX], msg[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld] %s: ",
	                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	                 tm.tm_sec, ts.tv_nsec / 1000000, log_prog, (long)getpid(),
	                 level_names[level]);
	if (n < 0 || (size_t)n >= sizeof line)
		return;
	if (vsnprintf(msg, sizeof msg, fmt, ap) < 0)
		msg[0] = 0;
	if (log_to_syslog) {
		size_t m = escape_into(line, sizeof line - 1, msg);
		line[m] = 0;
		log_syslog_write(level, line);
		return;
	}
	size_t len = (size_t)n + escape_into(line + n, sizeof line - (size_t)n - 1, msg);
	line[len++] = '\n';
	/* One write per line keeps lines whole when several processes share the file. */
	ssize_t w = write(log_fd, line, len);
	(void)w;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (level > log_threshold)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

/* ---- rate limits ---- */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void report_dropped(struct log_bucket *b, enum log_level level)
{
	if (!b->dropped)
		return;
	log_msg(level, "suppressed %lu similar lines (%s): more than %d a second", b->dropped, b->what,
	        LOG_LIMIT_RATE);
	b->dropped = 0;
}

void log_limited_msg(struct log_bucket *b, enum log_level level, const char *what, const char *fmt, ...)
{
	long long now = now_ms();
	if (!b->last_ms) { /* first use of this call site */
		b->what = what;
		b->tokens = LOG_LIMIT_BURST;
		b->last_ms = now;
		b->next = buckets;
		buckets = b;
	}
	b->tokens += (double)(now - b->last_ms) * LOG_LIMIT_RATE / 1000.0;
	if (b->tokens > LOG_LIMIT_BURST)
		b->tokens = LOG_LIMIT_BURST;
	b->last_ms = now;
	if (b->tokens < 1) {
		if (b->dropped++ == 0 && suppress_cb)
			suppress_cb();
		return;
	}
	b->tokens -= 1;
	report_dropped(b, level);
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void log_flush_suppressed(void)
{
	for (struct log_bucket *b = buckets; b; b = b->next)
		report_dropped(b, LOG_WARN);
}

void log_on_suppress(void (*cb)(void))
{
	suppress_cb = cb;
}
