/* GET query strings come straight from the URL. */
#include "query.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *qs = fuzz_cstring(data, size), out[4096];
	if (!qs)
		return 0;
	struct query_body q;
	const char *why;
	if (query_body(qs, out, sizeof out, &q, &why) == 0 && q.len > sizeof out)
		abort();
	free(qs);
	return 0;
}
