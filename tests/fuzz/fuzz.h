/* fuzz.h - what the fuzz targets share. */
#ifndef BOSH_FUZZ_H
#define BOSH_FUZZ_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The input as a NUL-terminated string (inputs with a NUL end early, as
 * they would in the C string the code under test gets). NULL on OOM. */
static inline char *fuzz_cstring(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (s) {
		memcpy(s, data, size);
		s[size] = 0;
	}
	return s;
}

#endif
