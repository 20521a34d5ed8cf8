/* A WebSocket handshake from the proxy, in any pieces: the parser answers
 * the same whatever the split, never reads past its bounds, and a complete
 * request always yields a 101 answer. The first byte picks the split. */
#include "ws_handshake.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int allow_some(void *arg, const char *origin)
{
	(void)arg;
	return origin[0] != 'x';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t cut = data[0];
	data++, size--;
	const struct ws_hs_policy pol = { allow_some, NULL };
	struct ws_hs *whole = ws_hs_new(&pol), *split = ws_hs_new(&pol);
	if (!whole || !split)
		abort();
	size_t used_a, used_b, taken = 0;
	enum ws_hs_result a = ws_hs_feed(whole, (const char *)data, size, &used_a);
	enum ws_hs_result b = WS_HS_MORE;
	/* pieces of cut + 1 bytes, the way a slow proxy might send them */
	for (size_t off = 0; off < size && b == WS_HS_MORE; off += cut + 1) {
		b = ws_hs_feed(split, (const char *)data + off, size - off < cut + 1 ? size - off : cut + 1, &used_b);
		taken += used_b;
	}
	if (a != b || ws_hs_status(whole) != ws_hs_status(split) || used_a > size ||
	    (a == WS_HS_DONE && used_a != taken))
		abort();
	struct buf out = { 0 };
	if (a == WS_HS_DONE) {
		const struct ws_hs_request *r = ws_hs_request(whole);
		char addr[64];
		if (!r || ws_hs_accept(r, &out) < 0 || strncmp(out.data, "HTTP/1.1 101 ", 13) != 0)
			abort();
		(void)ws_hs_client_addr(r, addr, sizeof addr);
	} else if (a == WS_HS_ERROR) {
		if (ws_hs_reject(ws_hs_status(whole), &out) < 0 || !*ws_hs_why(whole))
			abort();
	}
	buf_free(&out);
	ws_hs_free(whole);
	ws_hs_free(split);
	return 0;
}
