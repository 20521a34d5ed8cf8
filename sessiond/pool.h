/* pool.h - the handler processes, supervised the way php-fpm runs workers.
 *
 * sessiond starts `handlers` copies of the handler with the FastCGI
 * listening socket as their descriptor 0 (the FastCGI convention), and
 * starts a new one whenever one exits. A handler that keeps dying right
 * after its start is restarted with a growing delay, not in a tight loop.
 */
#ifndef BOSH_POOL_H
#define BOSH_POOL_H

#include "loop.h"

#include <sys/types.h>

int pool_start(struct loop *l, int listen_fd, int count, const char *handler_path,
               const char *config_path);

/* Call after SIGCHLD: reaps exited handlers and schedules their restart.
 * Children that are not handlers are reaped too. */
void pool_reap(void);

/* pool_reap() hands the exit of any child that is not a handler to cb. */
void pool_on_other_child(int (*cb)(pid_t pid, int status));

/* Replaces every handler with a new one (SIGHUP: the configuration and
 * the handler log file read again); the old ones finish their request. */
void pool_recycle(void);

/* Stops every handler (SIGTERM) and waits a little for them. */
void pool_stop(void);

/* After a restart: up to count handlers, if fewer were handed over (none
 * when the predecessor read FastCGI itself, fcgi_direct). */
void pool_fill(int count);

/* In a process forked off at a restart: the handlers are not its own. */
void pool_forget(void);

/* Graceful restart (snapshot.h): the handler PIDs. */
struct snap_w;
struct snap_r;
void pool_snapshot(struct snap_w *w);
int pool_restore(struct loop *l, struct snap_r *r, int fd, const char *handler_path,
                 const char *config_path);

#endif
