/* session.h - BOSH sessions (XEP-0124) carrying XMPP (XEP-0206), and the
 * session layer as the rest of sessiond sees it.
 *
 * Requests come in from front.c already decoded; answers leave through
 * reply.c. What every session has, whatever its transport, is in
 * sesstable.h (the table, the limits, the rows, the lists of sids
 * elsewhere) and sesssnap.h (a restart's snapshot).
 */
#ifndef BOSH_SESSION_H
#define BOSH_SESSION_H

#include "config.h"
#include "frame.h"
#include "loop.h"
#include "reply.h"
#include "sesssnap.h"
#include "sesstable.h"

/* Start: the shared table, then each transport. */
int sessions_init(struct loop *l, const struct config *cfg);

/* How the shared modules act on a BOSH session. */
extern const struct sess_ops bosh_ops;

/* One HTTP request with its way back; the session layer owns resp now. */
void sessions_handle(struct responder *resp, const struct frame_request *req);

/* An answer with no session behind it (unknown sid, bad request). */
void answer_terminate(struct responder *resp, const char *condition);

#endif
