#include "jsonattrs.h"
#include "utf8.h"

#include <stdint.h>
#include <string.h>

struct out {
	char *p;
	size_t len, cap;
};

static int put(struct out *o, const char *s, size_t n)
{
	if (o->len + n + 1 > o->cap)
		return -1;
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = 0;
	return 0;
}

static const char *skip_ws(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	return s;
}

static int hex4(const char *s, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1;
		if (d < 0)
			return -1;
		*v = *v << 4 | (unsigned)d;
	}
	return 0;
}

/* One \u escape (with its low surrogate, if any) at s (after the "\u"). */
static const char *unicode_escape(const char *s, char *buf, size_t *n)
{
	unsigned cp, lo;
	if (hex4(s, &cp) < 0)
		return NULL;
	s += 4;
	if (cp >= 0xd800 && cp < 0xdc00) {
		if (s[0] != '\\' || s[1] != 'u' || hex4(s + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
			return NULL;
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		s += 6;
	} else if (cp >= 0xdc00 && cp < 0xe000) {
		return NULL;
	}
	if (cp == 0 || cp < 0x20 || cp == 0xfffe || cp == 0xffff)
		return NULL; /* not XML characters */
	*n = (size_t)utf8_put(buf, cp);
	return s;
}

/* A JSON string at s (at its opening quote), decoded into dst (escaped
 * for a '-quoted XML attribute when xml is set). Returns the end, or NULL. */
static const char *string(const char *s, struct out *dst, int xml)
{
	if (*s++ != '"')
		return NULL;
	while (*s != '"') {
		char buf[8];
		size_t n = 1;
		const char *chunk = buf;
		if ((unsigned char)*s < 0x20)
			return NULL;
		if ((unsigned char)*s >= 0x80) { /* as it is, if it is UTF-8 an XML parser takes */
			int len = utf8_valid_len(s);
			if (!len)
				return NULL;
			memcpy(buf, s, (size_t)len);
			n = (size_t)len;
			s += len;
		} else if (*s != '\\') {
			buf[0] = *s++;
		} else {
			s++;
			const char *simple = strchr("\"\\/bfnrt", *s);
			if (!*s)
				return NULL;
			if (*s == 'u') {
				if (!(s = unicode_escape(s + 1, buf, &n)))
					return NULL;
			} else if (simple) {
				buf[0] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
				if ((unsigned char)buf[0] < 0x20 && buf[0] != '\t' && buf[0] != '\n' && buf[0] != '\r')
					return NULL;
				s++;
			} else {
				return NULL;
			}
		}
		if (xml && n == 1 && strchr("&<'\"\t\n\r", buf[0])) {
			static const char *const esc[] = { "&amp;", "&lt;", "&apos;", "&quot;", "&#9;", "&#10;", "&#13;" };
			chunk = esc[strchr("&<'\"\t\n\r", buf[0]) - "&<'\"\t\n\r"];
			n = strlen(chunk);
		}
		if (put(dst, chunk, n) < 0)
			return NULL;
	}
	return s + 1;
}

static int name_allowed(const char *n)
{
	if (!*n || !((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') || *n == '_'))
		return 0;
	for (const char *p = n; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '_' || *p == '-' || *p == '.'))
			return 0; /* no ':' at all: no namespace tricks */
	return strcmp(n, "to") && strcmp(n, "version") && strcmp(n, "xmlns") && strcmp(n, "from") &&
	       strcmp(n, "id");
}

int json_attrs(const char *json, char *out, size_t cap, const char **why)
{
	struct out o = { out, 0, cap };
	char name[64];
	if (cap)
		out[0] = 0;
	const char *s = skip_ws(json);
	if (*s++ != '{')
		return *why = "stream_attrs is not a JSON object", -1;
	s = skip_ws(s);
	while (*s != '}') {
		struct out n = { name, 0, sizeof name };
		if (!(s = string(s, &n, 0)) || !name_allowed(name))
			return *why = "stream_attrs has a name that is not allowed", -1;
		s = skip_ws(s);
		if (*s++ != ':')
			return *why = "stream_attrs is malformed JSON", -1;
		s = skip_ws(s);
		if (put(&o, " ", 1) < 0 || put(&o, name, strlen(name)) < 0 || put(&o, "='", 2) < 0 ||
		    !(s = string(s, &o, 1)) || put(&o, "'", 1) < 0)
			return *why = "stream_attrs has a value that is not a string, or is too long", -1;
		s = skip_ws(s);
		if (*s == ',')
			s = skip_ws(s + 1);
		else if (*s != '}')
			return *why = "stream_attrs is malformed JSON", -1;
	}
	if (*skip_ws(s + 1))
		return *why = "stream_attrs has bytes after the object", -1;
	return 0;
}
