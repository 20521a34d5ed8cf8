/* xmlscan.c - the splitter's fast path (see xmlscan.h). One pass over the
 * bytes, no allocation: the open elements' names are offsets into them.
 * Every step checks that its bytes are there; running out is declining. */
#include "xmlscan.h"
#include "utf8.h"

#include <stdint.h>
#include <string.h>

#define XMLSCAN_MAX_DEPTH 64
#define XML_NS "http://www.w3.org/XML/1998/namespace"
#define XMLNS_NS "http://www.w3.org/2000/xmlns/"

struct scan {
	const unsigned char *p;
	size_t n, i;
};

struct span {
	size_t off, len;
};

static int is_space(unsigned c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static int is_name_start(unsigned c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_name_char(unsigned c)
{
	return is_name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}
/* ASCII that stands for itself in text and attribute values */
static int is_plain(unsigned c) { return c >= 0x20 && c < 0x80 && c != '<' && c != '&'; }

/* The XML character at s->i: its length in bytes, 0 if it is none (or is
 * not whole yet). XML 1.0's Char: tab, LF, CR, U+0020-U+D7FF,
 * U+E000-U+FFFD, U+10000-U+10FFFF, as shortest-form UTF-8. */
static size_t xml_char(const struct scan *s)
{
	const unsigned char *p = s->p + s->i;
	if (p[0] < 0x80)
		return p[0] >= 0x20 || p[0] == '\t' || p[0] == '\n' || p[0] == '\r';
	return utf8_multibyte_len(p, s->n - s->i);
}

size_t xmlscan_entity(const char *p, size_t n, char *c)
{
	static const struct {
		const char *text;
		size_t len;
		char c;
	} known[] = { { "&lt;", 4, '<' }, { "&gt;", 4, '>' }, { "&amp;", 5, '&' }, { "&quot;", 6, '"' },
		      { "&apos;", 6, '\'' } };
	for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
		if (n >= known[k].len && memcmp(p, known[k].text, known[k].len) == 0) {
			if (c)
				*c = known[k].c;
			return known[k].len;
		}
	return 0;
}

static size_t entity(const struct scan *s)
{
	return xmlscan_entity((const char *)s->p + s->i, s->n - s->i, NULL);
}

size_t xmlscan_skip_space(const char *p, size_t at, size_t n)
{
	while (at < n && is_space((unsigned char)p[at]))
		at++;
	return at;
}

/* The length of the ASCII name (no colon) at s->i, 0 if none starts there. */
static size_t name_at(const struct scan *s, size_t i)
{
	if (i >= s->n || !is_name_start(s->p[i]))
		return 0;
	size_t k = i + 1;
	while (k < s->n && is_name_char(s->p[k]))
		k++;
	return k - i;
}

static void skip_space(struct scan *s)
{
	s->i = xmlscan_skip_space((const char *)s->p, s->i, s->n);
}

static int span_is(const struct scan *s, struct span a, const char *lit)
{
	size_t l = strlen(lit);
	return a.len == l && memcmp(s->p + a.off, lit, l) == 0;
}

/* A quoted attribute value at s->i; its content goes to *v. */
static int attr_value(struct scan *s, struct span *v, int *has_ref)
{
	if (s->i >= s->n || (s->p[s->i] != '\'' && s->p[s->i] != '"'))
		return 0;
	unsigned q = s->p[s->i++];
	v->off = s->i;
	*has_ref = 0;
	for (;;) {
		while (s->i < s->n && is_plain(s->p[s->i]) && s->p[s->i] != q)
			s->i++;
		if (s->i >= s->n)
			return 0;
		unsigned c = s->p[s->i];
		if (c == q)
			break;
		size_t k = c == '<' ? 0 : c == '&' ? (*has_ref = 1, entity(s)) : xml_char(s);
		if (!k)
			return 0;
		s->i += k;
	}
	v->len = s->i - v->off;
	s->i++;
	return 1;
}

/* One attribute at s->i: name (xml:lang the one prefixed name taken), '=',
 * quoted value. */
static int attribute(struct scan *s, struct xmlscan_attr *a)
{
	struct span n = { .off = s->i }, *name = &n;
	size_t l = name_at(s, s->i);
	if (!l)
		return 0;
	s->i += l;
	if (s->i < s->n && s->p[s->i] == ':') {
		if (l != 3 || memcmp(s->p + name->off, "xml", 3) != 0 || name_at(s, s->i + 1) != 4 ||
		    memcmp(s->p + s->i + 1, "lang", 4) != 0)
			return 0;
		s->i += 5;
		if (s->i < s->n && s->p[s->i] == ':')
			return 0;
	}
	name->len = s->i - name->off;
	a->name_off = name->off;
	a->name_len = name->len;
	skip_space(s);
	if (s->i >= s->n || s->p[s->i] != '=')
		return 0;
	s->i++;
	skip_space(s);
	struct span v;
	int has_ref;
	if (!attr_value(s, &v, &has_ref))
		return 0;
	a->value_off = v.off;
	a->value_len = v.len;
	a->has_ref = has_ref;
	/* a namespace is compared as written, so no references in it; the two
	 * reserved names may not be bound (expat refuses them) */
	if (span_is(s, *name, "xmlns") && (has_ref || span_is(s, v, XML_NS) || span_is(s, v, XMLNS_NS)))
		return 0;
	return 1;
}

/* A start tag at s->i ('<' and a name start) into *t (offsets from s->p).
 * Attributes need space before them and may not repeat. */
static int start_tag(struct scan *s, struct xmlscan_tag *t)
{
	size_t start = s->i++;
	t->nattrs = 0;
	t->name_len = name_at(s, s->i);
	s->i += t->name_len;
	for (;;) {
		size_t before = s->i;
		skip_space(s);
		if (s->i >= s->n)
			return 0;
		unsigned c = s->p[s->i];
		if (c == '>' || c == '/') {
			t->empty = c == '/';
			if (t->empty && (s->i + 1 >= s->n || s->p[s->i + 1] != '>'))
				return 0;
			s->i += 1 + (size_t)t->empty;
			t->len = s->i - start;
			return 1;
		}
		struct xmlscan_attr *a = &t->attr[t->nattrs];
		if (s->i == before || t->nattrs == XMLSCAN_MAX_ATTRS || !attribute(s, a))
			return 0;
		for (int k = 0; k < t->nattrs; k++)
			if (t->attr[k].name_len == a->name_len &&
			    memcmp(s->p + t->attr[k].name_off, s->p + a->name_off, a->name_len) == 0)
				return 0;
		t->nattrs++;
	}
}

size_t xmlscan_start_tag(const char *p, size_t n, struct xmlscan_tag *t)
{
	struct scan s = { .p = (const unsigned char *)p, .n = n };
	if (n < 2 || p[0] != '<' || !is_name_start((unsigned char)p[1]))
		return 0;
	return start_tag(&s, t) ? t->len : 0;
}

/* An end tag at s->i ("</"): it must close the element named open. */
static int end_tag(struct scan *s, struct span open)
{
	s->i += 2;
	size_t l = name_at(s, s->i);
	if (l != open.len || memcmp(s->p + s->i, s->p + open.off, l) != 0)
		return 0;
	s->i += l;
	skip_space(s);
	if (s->i >= s->n || s->p[s->i] != '>')
		return 0;
	s->i++;
	return 1;
}

/* Text at s->i up to the next '<': characters, the five entities, no "]]>". */
static int text(struct scan *s)
{
	for (;;) {
		while (s->i < s->n && is_plain(s->p[s->i]) && s->p[s->i] != ']')
			s->i++;
		if (s->i >= s->n)
			return 0;
		unsigned c = s->p[s->i];
		if (c == '<')
			return 1;
		size_t k;
		if (c == ']')
			k = s->n - s->i < 3 ? 0 : s->p[s->i + 1] == ']' && s->p[s->i + 2] == '>' ? 0 : 1;
		else
			k = c == '&' ? entity(s) : xml_char(s);
		if (!k)
			return 0;
		s->i += k;
	}
}

int xmlscan_element(const char *p, size_t n, int max_depth, struct xmlscan_elem *out)
{
	struct scan s = { .p = (const unsigned char *)p, .n = n };
	struct span open[XMLSCAN_MAX_DEPTH];
	int depth = 0;
	if (max_depth > XMLSCAN_MAX_DEPTH)
		max_depth = XMLSCAN_MAX_DEPTH;
	if (n < 2 || p[0] != '<' || !is_name_start((unsigned char)p[1]) || max_depth < 1)
		return 0;
	*out = (struct xmlscan_elem){ 0 };
	for (;;) {
		/* at a '<' */
		if (s.i + 1 >= n)
			return 0;
		unsigned next = s.p[s.i + 1];
		if (next == '/') {
			if (!end_tag(&s, open[depth - 1]))
				return 0;
			depth--;
		} else {
			struct xmlscan_tag t;
			if (!is_name_start(next) || depth == max_depth || !start_tag(&s, &t))
				return 0;
			for (int k = 0; k < t.nattrs; k++) {
				const struct xmlscan_attr *a = &t.attr[k];
				if (a->value_len > out->max_value_len)
					out->max_value_len = a->value_len;
				if (depth == 0 && a->name_len == 5 && memcmp(p + a->name_off, "xmlns", 5) == 0) {
					out->xmlns = p + a->value_off;
					out->xmlns_len = a->value_len;
				}
			}
			if (depth == 0)
				out->name_len = t.name_len;
			if (!t.empty)
				open[depth++] = (struct span){ .off = s.i - t.len + 1, .len = t.name_len };
		}
		if (depth == 0) {
			out->len = s.i;
			return 1;
		}
		if (!text(&s))
			return 0;
	}
}
