/* log_syslog.h - the syslog side of log.c (log_file = syslog): facility
 * daemon, the program's name and PID on every line (journald and rsyslog
 * add the time). */
#ifndef BOSH_LOG_SYSLOG_H
#define BOSH_LOG_SYSLOG_H

void log_syslog_open(const char *ident);
/* level: log.h's enum log_level (0 error ... 3 debug). */
void log_syslog_write(int level, const char *msg);

#endif
