/* session.h - the session layer, as the rest of sessiond sees it.
 *
 * What every session has, whatever its transport, is in sesstable.h (the
 * table, the limits, the rows, the lists of sids elsewhere) and sesssnap.h
 * (a restart's snapshot); BOSH sessions are in bosh_rules.h.
 */
#ifndef BOSH_SESSION_H
#define BOSH_SESSION_H

#include "bosh_rules.h"
#include "config.h"
#include "loop.h"
#include "sesssnap.h"
#include "sesstable.h"

/* Start: the shared table, then each transport. */
int sessions_init(struct loop *l, const struct config *cfg);

#endif
