#include "attrs.h"

#include "utf8.h"

#include <stdio.h>
#include <string.h>

static int is_alpha(char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

int attr_lang_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0, sub = 0;
	if (n == 0 || n > ATTR_LANG_MAX || !is_alpha(s[0]))
		return 0;
	for (size_t i = 0; i <= n; i++) {
		if (s[i] == '-' || s[i] == 0) {
			if (sub == 0 || sub > 8)
				return 0;
			sub = 0;
		} else if (is_alpha(s[i]) || is_digit(s[i])) {
			sub++;
		} else {
			return 0;
		}
	}
	return 1;
}

/* 1 to max digits at *p; advances p past them. */
static int digits(const char **p, int max)
{
	int n = 0;
	while (is_digit(**p) && n <= max)
		(*p)++, n++;
	return n >= 1 && n <= max;
}

int attr_ver_ok(const char *s)
{
	if (!s || !digits(&s, 4) || *s++ != '.' || !digits(&s, 4))
		return 0;
	return *s == 0;
}

long attr_number(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > ATTR_NUMBER_MAX)
		return -1;
	long v = 0;
	for (; *s; s++) {
		if (!is_digit(*s))
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v;
}

int attr_header_safe(const char *s, size_t max)
{
	if (!s || strlen(s) > max)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

static int refuse(char *why, size_t whylen, const char *name, const char *rule)
{
	snprintf(why, whylen, "'%s' %s", name, rule);
	return -1;
}

/* Attributes both kinds of request may carry. */
static int check_common(const struct frame_request *fr, char *why, size_t whylen)
{
	static const char *const numbers[] = { "wait", "hold", "pause" };
	for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
		const char *v = frame_attr(fr, numbers[i]);
		if (v && attr_number(v) < 0)
			return refuse(why, whylen, numbers[i], "must be a decimal number of at most 9 digits");
	}
	const char *lang = frame_attr(fr, "xml:lang");
	if (lang && !attr_lang_ok(lang))
		return refuse(why, whylen, "xml:lang", "must be a language tag (RFC 5646) of at most 64 bytes");
	return 0;
}

int attrs_check_creation(const struct frame_request *fr, char *why, size_t whylen)
{
	if (check_common(fr, why, whylen) < 0)
		return -1;
	const char *ver = frame_attr(fr, "ver"), *content = frame_attr(fr, "content");
	const char *from = frame_attr(fr, "from");
	if (ver && !attr_ver_ok(ver))
		return refuse(why, whylen, "ver", "must be MAJOR.MINOR (digits)");
	if (content && !attr_header_safe(content, ATTR_CONTENT_MAX))
		return refuse(why, whylen, "content", "must be a media type of at most 128 printable ASCII bytes");
	if (from && (strlen(from) > ATTR_FROM_MAX || !utf8_valid_str(from)))
		return refuse(why, whylen, "from", "must be a JID of at most 3071 bytes");
	return 0;
}

int attrs_check_request(const struct frame_request *fr, char *why, size_t whylen)
{
	return check_common(fr, why, whylen);
}
