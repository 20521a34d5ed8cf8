/* control.h - what an admin asks of sessiond (boshctl), and the pages the
 * web server maps (metrics, status, health).
 *
 * boshctl sends a FRAME_REQUEST on the control socket with method
 * "CONTROL", the command in TAG_COMMAND, its arguments as TAG_ATTR pairs,
 * and one end of a socketpair attached (FRAME_F_FD_PASSED). sessiond writes
 * the answer there and closes it: a first line with the exit status ("0",
 * "1": refused or nothing matched, "2": not yet), then the output, text or
 * JSON (argument json=1). Only root and sessiond's own user may send one
 * (front.c checks SO_PEERCRED); the log names who did what.
 *
 * Commands: status; sessions [jid=GLOB] [domain=D] [client=ADDR]; kick
 * target=SID|JID [condition=C]; drain; undrain; reload; restart;
 * restart-result seq=N.
 *
 * Pages come from a handler: a FRAME_REQUEST with TAG_PAGE (the web
 * server's BOSH_PAGE parameter), answered through the request's responder:
 * "metrics" (Prometheus text), "status" (HTML), "health" (200 "ok", or 503
 * "draining": what a load balancer checks).
 */
#ifndef BOSH_CONTROL_H
#define BOSH_CONTROL_H

#include "buf.h"
#include "frame.h"
#include "loop.h"
#include "reply.h"

#include <sys/types.h>

struct control_actions {
	/* SIGHUP's work; what changed (or why nothing did) goes to out. 0, or -1. */
	int (*reload)(struct buf *out);
	/* SIGUSR2's work: starts a graceful restart. */
	void (*restart)(void);
};

void control_init(struct loop *l, const struct config *cfg, const struct control_actions *a);

/* A command frame from a peer of uid; reply_fd is the passed descriptor
 * (taken, closed when answered). */
void control_command(const struct frame_request *fr, int reply_fd, uid_t uid);

/* A page request; answered through resp. */
void control_page(struct responder *resp, const char *page);

/* `boshctl status` (text, or JSON): the status page shows the same. */
int control_status(struct buf *out, int json);

/* 1 while `boshctl drain` is in force: new sessions are refused (503). */
int control_draining(void);

/* Graceful restart: the drain state goes to the successor. */
struct snap_w;
struct snap_r;
void control_snapshot(struct snap_w *w);
void control_restore(struct snap_r *r);

#endif
