/* sessiond decodes frames from handlers it trusts no more than the network:
 * any message decodes or is refused, and what decodes encodes again. */
#include "frame.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame_request r;
	char err[128];
	if (frame_decode_request(data, size, &r, err, sizeof err) < 0)
		return 0;
	frame_attr(&r, "sid");
	static uint8_t again[FRAME_MAX];
	size_t n = frame_encode_request(again, sizeof again, &r);
	struct frame_request r2;
	if (n && frame_decode_request(again, n, &r2, err, sizeof err) < 0)
		abort(); /* our own encoding of a decoded frame must decode */
	return 0;
}
