/* session.c - the session layer started: the shared table, each transport,
 * and who reads a snapshot's records. */
#define _GNU_SOURCE
#include "session.h"

int sessions_init(struct loop *l, const struct config *c)
{
	if (sesstable_init(l, c) < 0)
		return -1;
	bosh_init(l, c);
	sesssnap_init(&bosh_ops);
	return 0;
}
