/* utf8.h - one code point to UTF-8, for the decoders of character
 * references (XML in stream.c, JSON in jsonattrs.c), and the check of one
 * sequence (those decoders, and xmlscan.c's characters). */
#ifndef BOSH_UTF8_H
#define BOSH_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Writes cp (at most U+10FFFF) to dst, 1 to 4 bytes; returns how many. */
static inline int utf8_put(char *dst, unsigned long cp)
{
	if (cp < 0x80) {
		dst[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		dst[0] = (char)(0xc0 | cp >> 6);
		dst[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		dst[0] = (char)(0xe0 | cp >> 12);
		dst[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		dst[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	dst[0] = (char)(0xf0 | cp >> 18);
	dst[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	dst[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	dst[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* The length (2 to 4) of the well-formed UTF-8 sequence that starts with a
 * byte of 0x80 or more at s, of which no more than avail bytes are read, or
 * 0: overlong forms, surrogates, code points past U+10FFFF, U+FFFE/U+FFFF
 * (not XML characters), and a sequence cut short by avail are refused. A
 * NUL ends a sequence too, so avail may be SIZE_MAX for a string. */
static inline size_t utf8_multibyte_len(const unsigned char *s, size_t avail)
{
	unsigned long cp;
	size_t n;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (avail < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	static const unsigned long min[] = { 0, 0, 0x80, 0x800, 0x10000 };
	if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000) || cp == 0xfffe || cp == 0xffff)
		return 0;
	return n;
}

/* The length (1 to 4) of the well-formed UTF-8 sequence at s, whose
 * string ends at a NUL, or 0 (see utf8_multibyte_len). */
static inline int utf8_valid_len(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	if (s[0] < 0x80)
		return s[0] ? 1 : 0;
	return (int)utf8_multibyte_len(s, SIZE_MAX);
}

/* 1 if the NUL-terminated s is well-formed UTF-8 throughout. */
static inline int utf8_valid_str(const char *s)
{
	for (int n; *s; s += n)
		if (!(n = utf8_valid_len(s)))
			return 0;
	return 1;
}

#endif
