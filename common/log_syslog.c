/* log_syslog.c - log lines to syslog (log_file = syslog). Apart from log.c
 * because <syslog.h> defines LOG_INFO and LOG_DEBUG, which log.h's levels
 * are also called. */
#define _DEFAULT_SOURCE
#include "log_syslog.h"

#include <syslog.h>

void log_syslog_open(const char *ident)
{
	openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_syslog_write(int level, const char *msg)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	syslog(prio[level >= 0 && level < 4 ? level : 3], "%s", msg);
}
