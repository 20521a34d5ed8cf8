/* session.h - BOSH sessions (XEP-0124) carrying XMPP (XEP-0206).
 *
 * The session layer owns every session, its held requests, its queue of
 * stanzas for the client and its XMPP connection. Requests come in from
 * front.c already decoded; answers leave through reply.c.
 */
#ifndef BOSH_SESSION_H
#define BOSH_SESSION_H

#include "config.h"
#include "frame.h"
#include "loop.h"
#include "reply.h"

#include <sys/socket.h>

/* A backend with its address resolved at start. */
int sessions_init(struct loop *l, const struct config *cfg);

/* Loads what the database says about sessions of an earlier run. */
int sessions_recover(void);

/* One HTTP request with its way back; the session layer owns resp now. */
void sessions_handle(struct responder *resp, const struct frame_request *req);

/* Writes queued rows; the loop's idle hook. Returns ms until the next flush
 * is due, or -1. */
int sessions_idle(void *ctx);

/* Stop: write every row, answer held requests with empty bodies. */
void sessions_shutdown(void);

size_t sessions_count(void);

/* An answer with no session behind it (unknown sid, bad request). */
void answer_terminate(struct responder *resp, const char *condition);

/* Graceful restart (snapshot.h). keep(ctx, fd) is called for every
 * descriptor the snapshot names, which must survive into the successor. */
struct snap_w;
struct snap_r;
typedef void (*sessions_fd_cb)(void *ctx, int fd);
/* Sessions whose XMPP connection cannot move (TLS). */
long sessions_unmovable_count(void);
/* After the fork of a restart: the successor's side keeps the movable
 * sessions (and notes the others' sids as draining elsewhere), the drainer
 * the others. The sessions dropped are forgotten, not ended. */
int sessions_split(int keep_movable);
/* 1 if requests for sid go to the process draining it. */
int sessions_draining(const char *sid);
void sessions_drainer_gone(void);
void sessions_end_all(const char *condition);
int sessions_snapshot(struct snap_w *w, sessions_fd_cb keep, void *ctx);
/* Takes the sessions of a snapshot over; returns how many, -1 if it is corrupt. */
long sessions_restore(struct snap_r *r);

#endif
