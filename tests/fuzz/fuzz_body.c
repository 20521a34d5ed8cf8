/* The <body/> parser takes anything a client sends: it must answer (parse or
 * refuse) without a fault, and a parsed payload must lie inside the input. */
#include "body.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct body b = { 0 };
	char err[256];
	if (body_parse((const char *)data, size, &b, err, sizeof err) == 0) {
		if (b.payload && (b.payload < (const char *)data ||
		                  b.payload + b.payload_len > (const char *)data + size))
			abort();
		body_attr(&b, "rid");
	}
	body_free(&b);
	return 0;
}
