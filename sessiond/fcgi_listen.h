/* fcgi_listen.h - the listening socket of the web server's FastCGI
 * connections (fcgi_direct): accepting comes before serving, within a
 * descriptor budget, and what comes past the budget waits outside the
 * descriptor table (fdpark.h). This module owns the listener, the budget
 * and the park; fcgi_conn.c owns the connections, handed to it one by one
 * in the order they came.
 */
#ifndef BOSH_FCGI_LISTEN_H
#define BOSH_FCGI_LISTEN_H

#include "loop.h"

#include <stddef.h>
#include <stdint.h>

/* Accepting comes before serving (a burst must not overflow the listen
 * backlog, which nginx answers with a 502), within a budget: connections
 * are taken into the table until a descriptor this high is in use,
 * leaving some for XMPP connections, the database and boshctl; past it
 * they wait in the park until ours close. open_files_limit: RLIMIT_NOFILE
 * when the listener starts. */
#define FCGI_LISTEN_FD_RESERVE 64
static inline int fcgi_listen_fd_budget(long open_files_limit)
{
	if (open_files_limit > 1L << 30)
		open_files_limit = 1L << 30;
	return (int)(open_files_limit > 2 * FCGI_LISTEN_FD_RESERVE ? open_files_limit - FCGI_LISTEN_FD_RESERVE
	                                                         : open_files_limit / 2);
}

/* Serves listen_fd (-1: none; the budget still counts for connections
 * handlers pass on). take(fd) adopts a connection, or closes it. */
int fcgi_listen_start(struct loop *l, int listen_fd, void (*take)(int fd));
/* Closes the listener and the park with what waits in it: on stopping, and
 * in a drainer (whose copies only: the successor has its own). */
void fcgi_listen_stop(void);

/* Descriptors are short (accepting paused, connections waiting, or the
 * next one would come close to the budget): answered connections are
 * closed rather than kept. */
int fcgi_listen_short(void);
/* One of the taken connections closed: a descriptor is free. */
void fcgi_listen_room(void);
/* A request was handed on. While connections keep coming, the backlog is
 * looked at every few requests within a loop turn, not only between turns. */
void fcgi_listen_served(void);

size_t fcgi_listen_waiting(void);
uint64_t fcgi_listen_accepted(void);

/* Graceful restart: the park goes over with what waits in it (snapshot
 * version 5); the count of accepted connections with fcgi_conn's part. */
struct snap_w;
struct snap_r;
void fcgi_listen_snapshot(struct snap_w *w, void (*keep)(void *ctx, int fd), void *ctx);
void fcgi_listen_restore(struct snap_r *r);
void fcgi_listen_set_accepted(uint64_t n);

#endif
