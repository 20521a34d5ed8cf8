/* body_compare.h - whether two parsed <body/>s are the same, attribute by
 * attribute and payload by payload: for the unit test and the fuzz target
 * that hold body.c's fast path against expat alone. */
#ifndef BOSH_BODY_COMPARE_H
#define BOSH_BODY_COMPARE_H

#include "body.h"

#include <string.h>

static inline int body_same(const struct body *a, const struct body *b)
{
	if (a->nattrs != b->nattrs || a->payload != b->payload || a->payload_len != b->payload_len)
		return 0;
	for (size_t i = 0; i < a->nattrs; i++)
		if (strcmp(a->attrs[i].name, b->attrs[i].name) != 0 ||
		    strcmp(a->attrs[i].value, b->attrs[i].value) != 0)
			return 0;
	return 1;
}

#endif
