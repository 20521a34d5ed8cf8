/* session.c - the session layer started: the shared table, each transport,
 * and who reads a snapshot's records. */
#define _GNU_SOURCE
#include "session.h"
#include "ws_session.h"

int sessions_init(struct loop *l, const struct config *c)
{
	if (sesstable_init(l, c) < 0)
		return -1;
	static const struct sess_ops *const transports[] = { &bosh_ops, &ws_ops };
	bosh_init(l, c);
	if (ws_init(l, c) < 0)
		return -1;
	sesssnap_init(transports, sizeof transports / sizeof transports[0]);
	return 0;
}
