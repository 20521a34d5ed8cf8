/* restart.h - graceful restart and upgrade in place.
 *
 * On SIGUSR2 sessiond checks the binary on disk against the configuration
 * (`sessiond -t`), ends the sessions whose XMPP connection cannot move (TLS:
 * an OpenSSL connection lives in this process's memory), waits for answers
 * still being written, and then execs the binary on disk with a snapshot of
 * everything else (snapshot.h) in a memfd. The PID stays the same, so the
 * handlers (its children), their connections, the listening sockets, every
 * held request's web-server connection and every XMPP connection simply
 * stay open: nothing is lost and nothing has to reconnect. If the check or
 * exec fails, the running sessiond logs why and carries on serving.
 *
 * Sessions over TLS cannot move: just before the exec sessiond forks, and
 * the child (the drainer) keeps those sessions until they end or
 * drain_time passes, while the successor serves everything else and every
 * new session, and forwards requests for the drained sessions to it.
 */
#ifndef BOSH_RESTART_H
#define BOSH_RESTART_H

#include "loop.h"
#include "snapshot.h"

#include <sys/types.h>

struct restart_params {
	struct loop *loop;
	const char *self;        /* the binary on disk */
	const char *config_path;
	const char *level;       /* -l given at start, or NULL */
	int fcgi_fd;             /* the FastCGI listener of the handler pool, or -1 */
	long drain_time;         /* seconds the drainer keeps TLS sessions at most */
};

/* 1 in the process draining TLS sessions after a restart. */
int restart_is_drainer(void);

void restart_request(const struct restart_params *p);

/* A child exited (SIGCHLD): 1 if it was the restart's check of the new
 * binary, which the restart then goes on from (or is refused). */
int restart_reaped(pid_t pid, int status);

/* In the successor: reads the snapshot from fd (and closes it). The reader
 * owns a buffer: free r->data when done. Checks the magic. */
int restart_read_snapshot(int fd, struct snap_r *r, int *fcgi_fd);
/* The format of the snapshot restart_read_snapshot() read (SNAP_VERSION_OLDEST..). */
int restart_snap_version(void);

/* The last outcome (refused, abandoned, or restarted) and its sequence
 * number, which grows by one with each; boshctl restart waits for it. */
uint64_t restart_outcome(const char **text);
/* In the successor: the restart is done (logged, counted). */
void restart_succeeded(long sessions);
/* The outcome and the counters (metrics.h), first in the snapshot. */
void restart_snapshot_state(struct snap_w *w);
void restart_restore_state(struct snap_r *r);

/* In the successor, once everything is taken over: our descriptors go back
 * to close-on-exec, so handlers started later inherit none of them. */
void restart_cloexec_all(void);

#endif
