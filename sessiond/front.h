/* front.h - the Unix socket where handlers deliver requests.
 *
 * A SOCK_SEQPACKET listener. Each handler keeps one connection and sends
 * one frame per HTTP request, with the web server's connection attached
 * (SCM_RIGHTS). A plain-CGI handler connects per request and sends the
 * frame alone; that connection then becomes the request's way back.
 * Frames are checked whole (frame.c); a bad one closes that connection.
 */
#ifndef BOSH_FRONT_H
#define BOSH_FRONT_H

#include "loop.h"

#include <stddef.h>
#include <sys/types.h>

#define FRONT_MAX_PEERS 32

struct config;

/* Takes over a listening socket; cfg must outlive it. */
int front_start(struct loop *l, int listen_fd, const struct config *cfg);
void front_stop(void);

/* Who may connect to the control socket (SO_PEERCRED), checked at accept:
 * sessiond's own user, root, and the uids given here (handler_users).
 * Hand-over frames (FRAME_F_HANDOVER) only from our own user and root;
 * any other peer is logged (rate-limited) and its connection closed. */
void front_set_peers(const uid_t *uids, size_t n);

/* A request read and checked, with its way back: answered, held or
 * refused by the session layer, a page or a preflight. */
struct responder;
struct frame_request;
void front_route(struct responder *resp, const struct frame_request *fr);

/* A request read by sessiond itself (fcgi_conn.h) for a session the
 * draining process has: sent there with a copy of fd, its way back.
 * Returns 1 if sent, 0 if the session is not draining, -1 on failure. */
int front_forward(int fd, const struct frame_request *fr);

/* Graceful restart (snapshot.h): the listener and the handler connections. */
struct snap_w;
struct snap_r;
void front_snapshot(struct snap_w *w, void (*keep)(void *ctx, int fd), void *ctx);
int front_restore(struct loop *l, struct snap_r *r, const struct config *cfg);

/* Requests for the sessions another process drains (sesstable.h) go to it
 * through fd, with their way back. */
int front_set_drainer(int fd);
int front_has_drainer(void);
void front_snapshot_drainer(struct snap_w *w, void (*keep)(void *ctx, int fd), void *ctx);
int front_restore_drainer(struct snap_r *r);
/* In the process that drains: stop serving handlers; take requests from
 * the successor through channel only. */
int front_become_drainer(int channel);

#endif
