/* The <body/> parser takes anything a client sends: it must answer (parse or
 * refuse) without a fault, and a parsed payload must lie inside the input.
 * The fast path (xmlscan.h) against expat alone: the same answer, the same
 * attributes and payload, whatever the input. */
#include "body.h"
#include "../body_compare.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct body b = { 0 }, e = { 0 };
	char err[256];
	int rb = body_parse((const char *)data, size, &b, err, sizeof err);
	if (rb == 0) {
		if (b.payload && (b.payload < (const char *)data ||
		                  b.payload + b.payload_len > (const char *)data + size))
			abort();
		body_attr(&b, "rid");
	}
	body_fast_path(0);
	int re = body_parse((const char *)data, size, &e, err, sizeof err);
	body_fast_path(1);
	if (rb != re || (rb == 0 && !body_same(&b, &e)))
		abort();
	body_free(&b);
	body_free(&e);
	return 0;
}
