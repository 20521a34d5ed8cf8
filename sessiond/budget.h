/* budget.h - one memory budget shared by every session (max_memory).
 *
 * What a session holds because of what others send it is charged here:
 * stanzas queued for its client (stream.c), its XMPP stream's unfinished
 * stanza (splitter.c) and the answers kept for repeated rids (bosh_rules.c).
 * Each holder keeps the bytes it has charged in a size_t of its own and
 * moves them to what it holds now; giving back always succeeds.
 *
 * Two marks. Past three quarters of the limit (soft), a queue that grows
 * stops its stream's reading until its client takes it: back-pressure, no
 * stanza lost, and the queues, the only part that waits on clients, leave
 * the last quarter to the others. Past the limit itself (hard), what can
 * be refused is: an answer is not kept, an unfinished stanza cannot grow
 * (that session ends). Reaching the soft mark and the first refusal are
 * logged once per episode; the episode ends, and says so, when use falls
 * below half the limit.
 */
#ifndef BOSH_BUDGET_H
#define BOSH_BUDGET_H

#include <stddef.h>

/* 0: no limit (the default, for tools and tests that link the modules). */
void budget_init(size_t limit);

/* Moves *held to now. Growing past the limit is refused: -1, nothing
 * charged, logged once per episode naming what and whose (sid may be
 * NULL). */
int budget_try(size_t *held, size_t now, const char *what, const char *sid);

/* Moves *held to now even past the limit. Returns 1 if use is past the
 * soft mark: the caller should stop taking more. */
int budget_charge(size_t *held, size_t now, const char *sid);

size_t budget_in_use(void);

#endif
