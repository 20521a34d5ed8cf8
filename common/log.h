/* log.h - one line per event, to stderr or a file, shared by sessiond and
 * the handler. Lines read "TIME PROG[PID] LEVEL: message". */
#ifndef BOSH_LOG_H
#define BOSH_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* path NULL, "" or "-" logs to stderr. Returns 0, or -1 if the file cannot
 * be opened (then stderr is used and the reason logged there). */
int log_open(const char *prog, const char *path, enum log_level level);

/* Parses "error", "warn", "info", "debug". Returns -1 for anything else. */
int log_level_parse(const char *s);

int log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
