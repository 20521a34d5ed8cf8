/* log.h - one line per event, to stderr, a file or syslog, shared by
 * sessiond and the handler. Lines read "TIME PROG[PID] LEVEL: message"
 * (syslog adds its own time and PROG[PID]).
 *
 * Messages carry bytes from outside (sids, JIDs, 'to', routes, User-Agent):
 * every control byte (below 0x20, and 0x7f) of the formatted message is
 * written as \xNN, so a line in the file is always one event. */
#ifndef BOSH_LOG_H
#define BOSH_LOG_H

#include <stddef.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* path NULL, "" or "-" logs to stderr, "syslog" to syslog (facility
 * daemon). Returns 0, or -1 if the file cannot be opened (then stderr is
 * used and the reason logged there). A symbolic link at path is never
 * followed. */
int log_open(const char *prog, const char *path, enum log_level level);

/* Opens the file given to log_open again (after logrotate moved it).
 * Returns the new descriptor (2 for stderr), or -1 if it cannot be
 * opened: then the old one stays in use and the reason is logged. */
int log_reopen(void);

void log_set_level(enum log_level level);

/* Parses "error", "warn", "info", "debug". Returns -1 for anything else. */
int log_level_parse(const char *s);
const char *log_level_name(enum log_level level);

int log_enabled(enum log_level level);

/* A value for a key=value field of an event line, in double quotes (a
 * double quote inside becomes a single one), cut to fit dst. Returns dst.
 * Event lines (session created/ended/kicked, restart, drain, backend
 * failure) are "WHAT: key=value key=value ...", for admins to grep. */
const char *log_quoted(char *dst, size_t cap, const char *value);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

/* ---- lines a flood of requests can produce ----
 *
 * log_limited(LEVEL, "what", fmt, ...) writes at most LOG_LIMIT_RATE lines
 * a second from one call site (a token bucket, LOG_LIMIT_BURST deep); the
 * lines it drops are counted and reported in one line, "suppressed N
 * similar lines (what)", before the next line it writes or when the
 * program calls log_flush_suppressed(). */
#define LOG_LIMIT_RATE  10
#define LOG_LIMIT_BURST 20

struct log_bucket {
	const char *what;
	double tokens;
	long long last_ms;     /* CLOCK_MONOTONIC of the last refill; 0 = never used */
	unsigned long dropped; /* since the last report */
	struct log_bucket *next;
};

void log_limited_msg(struct log_bucket *b, enum log_level level, const char *what, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));

#define log_limited(level, what, ...)                                 \
	do {                                                              \
		static struct log_bucket log_bucket_;                         \
		if (log_enabled(level))                                       \
			log_limited_msg(&log_bucket_, level, what, __VA_ARGS__);  \
	} while (0)

/* Writes the "suppressed" line of every call site that dropped lines. */
void log_flush_suppressed(void);

/* cb is called when a call site starts dropping lines, so that a program
 * with a loop can call log_flush_suppressed() a little later. */
void log_on_suppress(void (*cb)(void));

#endif
