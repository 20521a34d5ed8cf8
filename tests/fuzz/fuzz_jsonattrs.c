/* stream_attrs (a client's JSON) becomes XML attributes of the stream header. */
#include "jsonattrs.h"
#include "utf8.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *json = fuzz_cstring(data, size), out[2048];
	if (!json)
		return 0;
	const char *why;
	if (json_attrs(json, out, sizeof out, &why) >= 0) {
		/* nothing that could end the value or open markup comes through raw:
		 * no '<', no '"', '&' only as an entity, and the quotes pair up */
		size_t quotes = 0;
		for (const char *p = out; *p; p++) {
			int entity = *p == '&' && (!strncmp(p, "&amp;", 5) || !strncmp(p, "&lt;", 4) ||
			                           !strncmp(p, "&apos;", 6) || !strncmp(p, "&quot;", 6) ||
			                           !strncmp(p, "&#9;", 4) || !strncmp(p, "&#10;", 5) ||
			                           !strncmp(p, "&#13;", 5));
			if ((unsigned char)*p >= 0x80) { /* the header must stay well-formed XML */
				int len = utf8_valid_len(p);
				if (!len)
					abort();
				p += len - 1;
				continue;
			}
			if (*p == '<' || *p == '"' || (*p == '&' && !entity))
				abort();
			quotes += *p == '\'';
		}
		if (quotes % 2)
			abort();
	}
	free(json);
	return 0;
}
