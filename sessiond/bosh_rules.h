/* bosh_rules.h - BOSH sessions (XEP-0124) carrying XMPP (XEP-0206).
 *
 * Requests come in from front.c already decoded; answers leave through
 * reply.c. The rules (rid window, held requests, answers, keys, pause,
 * acks, multiple streams) are in bosh_rules.c, creation in bosh_new.c, a
 * session's row and snapshot record in bosh_save.c. What every session
 * has, whatever its transport, is in sesstable.h and sesssnap.h.
 */
#ifndef BOSH_BOSH_RULES_H
#define BOSH_BOSH_RULES_H

#include "config.h"
#include "frame.h"
#include "loop.h"
#include "reply.h"
#include "sesstable.h"

void bosh_init(struct loop *l, const struct config *cfg);

/* How the shared modules act on a BOSH session. */
extern const struct sess_ops bosh_ops;

/* One HTTP request with its way back; the session layer owns resp now. */
void sessions_handle(struct responder *resp, const struct frame_request *req);

/* An answer with no session behind it (unknown sid, bad request). */
void answer_terminate(struct responder *resp, const char *condition);

#endif
