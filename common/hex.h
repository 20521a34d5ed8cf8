/* hex.h - bytes as lowercase hex, for sids, stream names and key digests. */
#ifndef BOSH_HEX_H
#define BOSH_HEX_H

#include <stddef.h>

/* Writes 2 * n hex digits and a NUL: out must hold 2 * n + 1 bytes. */
static inline void hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = 0;
}

#endif
