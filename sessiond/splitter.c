/* splitter.c - split an XMPP server's byte stream into self-contained
 * top-level elements (see splitter.h).
 *
 * expat parses the stream; we keep our own copy of every byte not yet
 * delivered, because expat only lends us its input during XML_Parse() and
 * reports positions, not bytes. The element handlers at depth 1 turn expat's
 * absolute byte positions into slices of that copy.
 *
 * Depth counts open elements, the <stream:stream> root included: the root
 * is depth 1, a stanza depth 2, and an element that would be at depth
 * SPLITTER_MAX_DEPTH + 1 is an error.
 *
 * max_stanza bounds the bytes the server sent for one top-level element;
 * the namespace declarations we insert come on top of that.
 *
 * Once splitter_feed() returned anything but SPLITTER_OK (the callback asked
 * to stop, or an error), every later feed returns the same result and
 * delivers nothing: the rest of that chunk was never parsed, so only
 * splitter_reset() or splitter_free() make sense afterwards.
 */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "splitter.h"
#include "budget.h"
#include "snapshot.h"
#include "xmlesc.h"
#include "xmlparser.h"
#include "xmlscan.h"

#include <expat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_SEP '\x01'
#define HEADER_MAX 8192        /* bytes up to the end of the stream header */
/* An attribute or a namespace declaration takes at least 4 bytes (" a=''"
 * takes 5): a header within HEADER_MAX always fits a restart's snapshot. */
_Static_assert(HEADER_MAX / 4 <= SNAP_MAX_ITEMS, "stream header attributes fit a snapshot");
#define HELD_SLACK 64          /* unreported bytes outside markup: a CR, part of a UTF-8 char */
#define FEED_MAX (1 << 30)     /* XML_Parse() takes an int length */
#define BUF_SMALL 4096         /* buffer size worth keeping between calls */

/* A namespace declared on the stream header, to be inserted into each
 * top-level element that does not declare the same prefix itself.
 *
 * What an idle stream keeps for its whole life (these, the header's
 * attributes, the struct itself) is allocated in as few blocks as fit:
 * each malloc'd block costs a header and rounding, and thousands of idle
 * sessions hold them. */
struct ns_decl {
	char *decl;      /* " xmlns:prefix='uri'", escaped, ready to insert; the block
	                  * also holds prefix */
	char *prefix;    /* NULL for the default namespace; inside decl's block */
	size_t decl_len;
	int shadowed;    /* the open top-level element declares this prefix */
};

struct splitter {
	XML_Parser p;
	splitter_cb cb;
	void *ctx;
	size_t max_stanza;
	enum splitter_result result; /* sticky once not SPLITTER_OK */
	char *err;                   /* why, once not SPLITTER_OK (NULL if out of memory) */
	int depth;
	int closed;                  /* </stream:stream> seen */

	/* Undelivered bytes: buf[0] is byte number base of the stream. */
	char *buf;
	size_t len, cap;
	size_t charged;              /* cap, as the memory budget knows it */
	uint64_t base;
	uint64_t keep;               /* between elements: bytes before this are not needed */

	/* The open top-level element (depth >= 2). */
	enum splitter_event ev;
	uint64_t elem_start, tag_end;

	struct ns_decl *ns;
	size_t n_ns;
	char **attrs;                /* stream header: name, value, ..., NULL */
	int replaying;               /* feeding a synthetic header (unpark(), epilog()) */
	int no_fast;                 /* expat for everything (splitter_fast_path) */
	int in_cdata;                /* inside a CDATA section: its text is reported as it
	                              * comes, so nothing is held, yet expat is mid-markup */
	char *root_qname;            /* "stream:stream" as the server wrote it */
};

/* ---- errors ------------------------------------------------------------ */

/* Records the first failure and makes expat return at once; the handlers
 * check s->result because expat may still report an event or two. */
static void fail(struct splitter *s, enum splitter_result r, const char *why)
{
	if (s->result != SPLITTER_OK)
		return;
	s->result = r;
	free(s->err);
	s->err = strdup(why);
	if (s->p)
		XML_StopParser(s->p, XML_FALSE);
}

static void fail_parse(struct splitter *s)
{
	char why[192];
	snprintf(why, sizeof why, "%s at line %llu, column %llu",
		 XML_ErrorString(XML_GetErrorCode(s->p)),
		 (unsigned long long)XML_GetCurrentLineNumber(s->p),
		 (unsigned long long)XML_GetCurrentColumnNumber(s->p));
	s->result = SPLITTER_ERROR;
	free(s->err);
	s->err = strdup(why);
}

/* ---- names ------------------------------------------------------------- */

/* Whether an expat triplet "URI\1local[\1prefix]" names {ns}local. */
static int name_is(const char *name, const char *ns, const char *local)
{
	size_t nl = strlen(ns), ll = strlen(local);
	if (strncmp(name, ns, nl) != 0 || name[nl] != NS_SEP)
		return 0;
	name += nl + 1;
	return strncmp(name, local, ll) == 0 && (name[ll] == 0 || name[ll] == NS_SEP);
}

/* "id" stays "id"; "URI\1local\1prefix" becomes "prefix:local". Writes
 * the name and a NUL to dst unless dst is NULL; returns its length. */
static size_t attr_name(char *dst, const char *raw)
{
	const char *local = strchr(raw, NS_SEP);
	const char *prefix = local ? strchr(++local, NS_SEP) : NULL;
	if (!local)
		local = raw;
	size_t ll = prefix ? (size_t)(prefix - local) : strlen(local);
	size_t pl = prefix ? strlen(++prefix) : 0, n = prefix ? pl + 1 + ll : ll;
	if (dst) {
		if (prefix) {
			memcpy(dst, prefix, pl);
			dst[pl] = ':';
		}
		memcpy(dst + (n - ll), local, ll);
		dst[n] = 0;
	}
	return n;
}

/* ---- stream header state ------------------------------------------------ */

/* The header's attributes are one block: the array (name, value, ...,
 * NULL), then the strings. */
static void free_attrs(struct splitter *s)
{
	free(s->attrs);
	s->attrs = NULL;
}

static void free_ns(struct splitter *s)
{
	for (size_t i = 0; i < s->n_ns; i++)
		free(s->ns[i].decl);
	free(s->ns);
	s->ns = NULL;
	s->n_ns = 0;
}

/* A block for n strings of chars bytes in all (NULs included), the array's
 * last entry NULL; *area is where the strings go. */
static char **attrs_block(size_t n, size_t chars, char **area)
{
	if (n >= (SIZE_MAX - chars) / sizeof(char *))
		return NULL;
	char **a = malloc((n + 1) * sizeof *a + chars);
	if (a) {
		a[n] = NULL;
		*area = (char *)(a + n + 1);
	}
	return a;
}

static int save_attrs(struct splitter *s, const XML_Char **atts)
{
	size_t n = 0, chars = 0;
	for (; atts[n]; n++)
		chars += (n % 2 ? strlen(atts[n]) : attr_name(NULL, atts[n])) + 1;
	char *o;
	char **a = attrs_block(n, chars, &o);
	if (!a)
		return -1;
	for (size_t i = 0; i < n; i++) {
		a[i] = o;
		if (i % 2) {
			size_t l = strlen(atts[i]) + 1;
			memcpy(o, atts[i], l);
			o += l;
		} else
			o += attr_name(o, atts[i]) + 1;
	}
	free_attrs(s);
	s->attrs = a;
	return 0;
}

/* xmlesc.h's entities, and whitespace as character references: a re-parse
 * would turn a literal tab or newline in a value into a space. */
static const char *attr_escape(char c)
{
	switch (c) {
	case '\t': return "&#9;";
	case '\n': return "&#10;";
	case '\r': return "&#13;";
	}
	return xml_attr_entity(c);
}

/* The length of src escaped by escape_attr(). */
static size_t escaped_len(const char *src)
{
	size_t n = 0;
	for (; *src; src++) {
		const char *e = attr_escape(*src);
		n += e ? strlen(e) : 1;
	}
	return n;
}

/* Appends src to dst escaped for a '-quoted attribute value; returns the
 * new end. Whitespace is escaped too so a re-parse keeps it unchanged. */
static char *escape_attr(char *dst, const char *src)
{
	for (; *src; src++) {
		const char *e = attr_escape(*src);
		if (e) {
			size_t el = strlen(e);
			memcpy(dst, e, el);
			dst += el;
		} else
			*dst++ = *src;
	}
	return dst;
}

/* d's block for a declaration of decl_len bytes and prefix (NULL: the
 * default namespace), copied after it. */
static int ns_decl_alloc(struct ns_decl *d, const char *prefix, size_t decl_len)
{
	size_t pl = prefix ? strlen(prefix) + 1 : 0;
	*d = (struct ns_decl){ .decl = malloc(decl_len + pl), .decl_len = decl_len };
	if (!d->decl)
		return -1;
	if (prefix)
		d->prefix = memcpy(d->decl + decl_len, prefix, pl);
	return 0;
}

static int add_stream_ns(struct splitter *s, const XML_Char *prefix, const XML_Char *uri)
{
	struct ns_decl *ns = realloc(s->ns, (s->n_ns + 1) * sizeof *ns);
	if (!ns)
		return -1;
	s->ns = ns;
	struct ns_decl *d = &ns[s->n_ns];
	size_t pl = prefix ? strlen(prefix) : 0;
	if (ns_decl_alloc(d, prefix, sizeof " xmlns:=''" - 1 - !prefix + pl + escaped_len(uri)) < 0)
		return -1;
	char *e = d->decl;
	memcpy(e, " xmlns", 6);
	e += 6;
	if (prefix) {
		*e++ = ':';
		memcpy(e, prefix, pl);
		e += pl;
	}
	*e++ = '=';
	*e++ = '\'';
	e = escape_attr(e, uri);
	*e++ = '\'';
	s->n_ns++;
	return 0;
}

/* ---- the held bytes ------------------------------------------------------ */

/* -1 on OOM, -2 if the memory budget (max_memory) has no room. */
static int buf_append(struct splitter *s, const char *data, size_t n)
{
	if (n > SIZE_MAX / 2 - s->len)
		return -1;
	if (s->len + n > s->cap) {
		size_t cap = s->cap ? s->cap : BUF_SMALL;
		while (cap < s->len + n)
			cap *= 2;
		if (budget_try(&s->charged, cap, "an XMPP stream's unfinished stanza", NULL) < 0)
			return -2;
		char *b = realloc(s->buf, cap);
		if (!b) {
			budget_try(&s->charged, s->cap, NULL, NULL);
			return -1;
		}
		s->buf = b;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	return 0;
}

static void buf_release(struct splitter *s)
{
	free(s->buf);
	s->buf = NULL;
	s->base += s->len;
	s->len = s->cap = 0;
	budget_try(&s->charged, 0, NULL, NULL);
}

/* A burst can grow the buffer far past what the unfinished element needs;
 * give that back so an idle connection holds little. */
static void buf_shrink(struct splitter *s)
{
	if (s->cap <= BUF_SMALL || s->len > s->cap / 4)
		return;
	size_t want = s->len * 2 > BUF_SMALL ? s->len * 2 : BUF_SMALL;
	char *b = realloc(s->buf, want);
	if (b) {
		s->buf = b;
		s->cap = want;
		budget_try(&s->charged, want, NULL, NULL);
	}
}

/* Drops the bytes no event can need any more: everything before the open
 * top-level element, or before the end of the last event between them. */
static void buf_compact(struct splitter *s)
{
	uint64_t need = s->closed ? s->base + s->len : s->depth >= 2 ? s->elem_start : s->keep;
	size_t drop = need > s->base ? (size_t)(need - s->base) : 0;
	if (drop > s->len)
		drop = s->len;
	memmove(s->buf, s->buf + drop, s->len - drop);
	s->len -= drop;
	s->base += drop;
	buf_shrink(s);
}

/* After compaction the buffer holds the open element (or the start of the
 * next one) only, so its length is what the server makes us hold. */
static void check_held(struct splitter *s)
{
	if (s->closed)
		return;
	if (s->depth == 0) {
		if (s->len > HEADER_MAX)
			fail(s, SPLITTER_ERROR, "the stream header is too long");
		return;
	}
	if (s->depth >= 2) {
		if (s->len > s->max_stanza)
			fail(s, SPLITTER_TOO_BIG, "a top-level element is larger than max_stanza");
		return;
	}
	/* Character data between elements is reported (and dropped) at once,
	 * so what is held from the first '<' on is an unfinished tag. */
	const char *lt = memchr(s->buf, '<', s->len);
	size_t markup = lt ? s->len - (size_t)(lt - s->buf) : 0;
	if (markup > s->max_stanza || s->len > s->max_stanza + HELD_SLACK)
		fail(s, SPLITTER_TOO_BIG, "a top-level element is larger than max_stanza");
}

/* ---- delivery ------------------------------------------------------------ */

/* Length of "<qname" at the start of a start tag. */
static size_t name_end(const char *tag, size_t len)
{
	size_t i = 1;
	while (i < len && !strchr(" \t\r\n/>", tag[i]))
		i++;
	return i;
}

/* Hands bytes [start, end) of the stream to the callback, with the stream
 * header's namespace declarations the element lacks inserted after its
 * name, so it means the same inside a BOSH <body/>. */
static void deliver_bytes(struct splitter *s, const char *src, size_t n, size_t name)
{
	size_t extra = 0;
	for (size_t i = 0; i < s->n_ns; i++)
		extra += s->ns[i].shadowed ? 0 : s->ns[i].decl_len;
	char *out = malloc(n + extra), *o = out;
	if (!out) {
		fail(s, SPLITTER_ERROR, "out of memory");
		return;
	}
	memcpy(o, src, name);
	o += name;
	for (size_t i = 0; i < s->n_ns; i++) {
		if (!s->ns[i].shadowed) {
			memcpy(o, s->ns[i].decl, s->ns[i].decl_len);
			o += s->ns[i].decl_len;
		}
		s->ns[i].shadowed = 0;
	}
	memcpy(o, src + name, n - name);
	int stop = s->cb && s->cb(s->ctx, s->ev, out, n + extra);
	free(out);
	if (stop)
		fail(s, SPLITTER_STOPPED, "stopped by the callback");
}

static void deliver(struct splitter *s, uint64_t start, uint64_t end)
{
	if (start < s->base || end > s->base + s->len || end <= start) {
		fail(s, SPLITTER_ERROR, "internal error: element outside the buffer");
		return;
	}
	const char *src = s->buf + (start - s->base);
	size_t n = (size_t)(end - start);
	deliver_bytes(s, src, n, name_end(src, n));
}

/* ---- the fast path (xmlscan.h) --------------------------------------------- */

/* Whether a plain element with this xmlns (NULL: none of its own) is in the
 * streams namespace: <stream:features/> and <stream:error/> are for expat
 * to tell apart. */
static int in_stream_ns(const struct splitter *s, const struct xmlscan_elem *e)
{
	static const char decl[] = " xmlns='" STREAM_NS "'";
	if (e->xmlns)
		return e->xmlns_len == sizeof STREAM_NS - 1 && memcmp(e->xmlns, STREAM_NS, e->xmlns_len) == 0;
	for (size_t i = 0; i < s->n_ns; i++)
		if (!s->ns[i].prefix)
			return s->ns[i].decl_len == sizeof decl - 1 && memcmp(s->ns[i].decl, decl, sizeof decl - 1) == 0;
	return 0;
}

/* The server's </stream:stream> at data: the stream ends without expat (an
 * idle stream's parked parser is not rebuilt to read its last tag: a burst
 * of sessions ending would rebuild thousands). What may follow goes to
 * epilog()'s parser. Returns the tag's length, 0 if it is not that. */
static size_t close_fast(struct splitter *s, const char *data, size_t len)
{
	if (len < 3 || data[0] != '<' || data[1] != '/' || !s->root_qname) /* a stanza, not the end */
		return 0;
	size_t rl = strlen(s->root_qname);
	if (!rl || len < rl + 3 || memcmp(data + 2, s->root_qname, rl) != 0)
		return 0;
	size_t at = xmlscan_skip_space(data, rl + 2, len);
	if (at >= len || data[at] != '>')
		return 0;
	if (s->p) { /* it still has the root open */
		XML_ParserFree(s->p);
		s->p = NULL;
	}
	s->depth = 0;
	s->closed = 1;
	if (s->cb && s->cb(s->ctx, SPLIT_STREAM_CLOSE, NULL, 0))
		fail(s, SPLITTER_STOPPED, "stopped by the callback");
	return at + 1;
}

/* While the stream is between top-level elements with nothing held, whole
 * plain elements (and the whitespace between them) are delivered straight
 * from data, expat neither fed nor, if parked, rebuilt: expat's positions
 * then count only what it was given, which changes nothing (base is where
 * its count stands; the skipped bytes were whole elements). Returns how
 * many bytes were taken; the rest is expat's. */
static size_t feed_fast(struct splitter *s, const char *data, size_t len)
{
	size_t off = 0;
	if (s->no_fast || s->depth != 1 || s->closed || s->len != 0 || s->in_cdata)
		return 0;
	while (off < len && s->result == SPLITTER_OK) {
		size_t at = xmlscan_skip_space(data, off, len), closing;
		if (at == len)
			return len; /* whitespace keepalives: dropped, as expat's path does */
		if ((closing = close_fast(s, data + at, len - at)))
			return at + closing;
		struct xmlscan_elem e;
		size_t avail = len - at < s->max_stanza ? len - at : s->max_stanza;
		if (!xmlscan_element(data + at, avail, SPLITTER_MAX_DEPTH - 1, &e) || in_stream_ns(s, &e))
			return at;
		for (size_t i = 0; i < s->n_ns; i++)
			s->ns[i].shadowed = !s->ns[i].prefix && e.xmlns;
		s->ev = SPLIT_ELEMENT;
		deliver_bytes(s, data + at, e.len, 1 + e.name_len);
		off = at + e.len;
	}
	return off;
}

/* ---- expat handlers ------------------------------------------------------ */

static uint64_t event_start(struct splitter *s)
{
	return (uint64_t)XML_GetCurrentByteIndex(s->p);
}

static uint64_t event_end(struct splitter *s)
{
	return event_start(s) + (uint64_t)XML_GetCurrentByteCount(s->p);
}

/* Declarations on the header are the stream's scope; those on a top-level
 * element (reported just before its start tag) shadow them. */
static void on_ns_decl(void *ud, const XML_Char *prefix, const XML_Char *uri)
{
	struct splitter *s = ud;
	if (s->result != SPLITTER_OK || s->replaying)
		return;
	if (s->depth == 0 && uri && add_stream_ns(s, prefix, uri) < 0)
		fail(s, SPLITTER_ERROR, "out of memory");
	if (s->depth != 1)
		return;
	for (size_t i = 0; i < s->n_ns; i++) {
		const char *p = s->ns[i].prefix;
		if (p == prefix || (p && prefix && strcmp(p, prefix) == 0))
			s->ns[i].shadowed = 1;
	}
}

static void root_start(struct splitter *s, const XML_Char *name, const XML_Char **atts)
{
	if (!name_is(name, STREAM_NS, "stream")) {
		fail(s, SPLITTER_ERROR, "the root element is not <stream:stream>");
		return;
	}
	s->keep = event_end(s);
	if (s->replaying)
		return;
	const char *prefix = strrchr(name, NS_SEP);
	prefix = prefix > strchr(name, NS_SEP) ? prefix + 1 : NULL;
	free(s->root_qname);
	size_t qlen = prefix ? strlen(prefix) + sizeof ":stream" : sizeof "stream";
	s->root_qname = malloc(qlen);
	if (!s->root_qname) {
		fail(s, SPLITTER_ERROR, "out of memory");
		return;
	}
	snprintf(s->root_qname, qlen, "%s%sstream", prefix ? prefix : "", prefix ? ":" : "");
	if (s->keep > HEADER_MAX) {
		fail(s, SPLITTER_ERROR, "the stream header is too long");
		return;
	}
	if (save_attrs(s, atts) < 0) {
		fail(s, SPLITTER_ERROR, "out of memory");
		return;
	}
	if (s->cb && s->cb(s->ctx, SPLIT_STREAM_OPEN, NULL, 0))
		fail(s, SPLITTER_STOPPED, "stopped by the callback");
}

static void child_start(struct splitter *s, const XML_Char *name)
{
	s->ev = name_is(name, STREAM_NS, "features") ? SPLIT_FEATURES
	      : name_is(name, STREAM_NS, "error") ? SPLIT_STREAM_ERROR
	      : SPLIT_ELEMENT;
	s->elem_start = event_start(s);
	s->tag_end = event_end(s);
	if (s->tag_end - s->elem_start > s->max_stanza)
		fail(s, SPLITTER_TOO_BIG, "a top-level element is larger than max_stanza");
}

static void on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
	struct splitter *s = ud;
	if (s->result != SPLITTER_OK)
		return;
	if (s->depth >= SPLITTER_MAX_DEPTH) {
		fail(s, SPLITTER_ERROR, "elements nested too deep");
		return;
	}
	if (s->depth == 0)
		root_start(s, name, atts);
	else if (s->depth == 1)
		child_start(s, name);
	s->depth++;
}

static void on_end(void *ud, const XML_Char *name)
{
	struct splitter *s = ud;
	(void)name;
	if (s->result != SPLITTER_OK)
		return;
	s->depth--;
	if (s->depth == 0) {
		s->closed = 1;
		if (s->replaying)
			return;
		if (s->cb && s->cb(s->ctx, SPLIT_STREAM_CLOSE, NULL, 0))
			fail(s, SPLITTER_STOPPED, "stopped by the callback");
		return;
	}
	if (s->depth != 1)
		return;
	/* For <a/> expat 2.5 reports the end with no bytes of its own at the
	 * end of the tag; should a version report it at the tag's start, the
	 * element still ends no earlier than its start tag. */
	uint64_t end = event_end(s);
	if (end < s->tag_end)
		end = s->tag_end;
	s->keep = end;
	if (end - s->elem_start > s->max_stanza)
		fail(s, SPLITTER_TOO_BIG, "a top-level element is larger than max_stanza");
	else
		deliver(s, s->elem_start, end);
}

/* Text between top-level elements (whitespace keepalives) is dropped. */
static void on_chars(void *ud, const XML_Char *text, int len)
{
	struct splitter *s = ud;
	(void)text;
	(void)len;
	if (s->result == SPLITTER_OK && s->depth == 1)
		s->keep = event_end(s);
}

static void on_cdata_start(void *ud)
{
	((struct splitter *)ud)->in_cdata = 1;
}

static void on_cdata_end(void *ud)
{
	((struct splitter *)ud)->in_cdata = 0;
}

/* XMPP forbids these (RFC 6120 §11.1); a DTD could also expand entities. */
static void on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
		       const XML_Char *pubid, int has_internal_subset)
{
	(void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
	fail(ud, SPLITTER_ERROR, "a DOCTYPE is not allowed in XMPP");
}

static void on_entity(void *ud, const XML_Char *name, int is_param, const XML_Char *value,
		      int value_len, const XML_Char *base, const XML_Char *sysid,
		      const XML_Char *pubid, const XML_Char *notation)
{
	(void)name, (void)is_param, (void)value, (void)value_len;
	(void)base, (void)sysid, (void)pubid, (void)notation;
	fail(ud, SPLITTER_ERROR, "entity declarations are not allowed in XMPP");
}

static void on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
	(void)target, (void)data;
	fail(ud, SPLITTER_ERROR, "processing instructions are not allowed in XMPP");
}

static void on_comment(void *ud, const XML_Char *data)
{
	(void)data;
	fail(ud, SPLITTER_ERROR, "comments are not allowed in XMPP");
}

/* Needed after creation and after XML_ParserReset(), which clears them. */
static void install(struct splitter *s)
{
	XML_SetUserData(s->p, s);
	XML_SetReturnNSTriplet(s->p, 1); /* prefixes too, to tell declarations apart */
	XML_SetElementHandler(s->p, on_start, on_end);
	XML_SetNamespaceDeclHandler(s->p, on_ns_decl, NULL);
	XML_SetCharacterDataHandler(s->p, on_chars);
	XML_SetStartDoctypeDeclHandler(s->p, on_doctype);
	XML_SetEntityDeclHandler(s->p, on_entity);
	XML_SetProcessingInstructionHandler(s->p, on_pi);
	XML_SetCommentHandler(s->p, on_comment);
	XML_SetCdataSectionHandler(s->p, on_cdata_start, on_cdata_end);
	xml_parser_no_deferral(s->p); /* else a stanza could wait for more bytes */
}

/* ---- public interface ---------------------------------------------------- */

struct splitter *splitter_new(size_t max_stanza, splitter_cb cb, void *ctx)
{
	struct splitter *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->p = xml_parser_new(NS_SEP);
	if (!s->p) {
		free(s);
		return NULL;
	}
	s->max_stanza = max_stanza;
	s->cb = cb;
	s->ctx = ctx;
	install(s);
	return s;
}

/* An unparked splitter gets a new parser, in the same state as the old one:
 * inside the stream root, with the stream's namespace declarations in scope.
 * The synthetic header's bytes count in expat's positions, so the held-bytes
 * buffer starts right after them. */
static int unpark(struct splitter *s)
{
	s->p = xml_parser_new(NS_SEP);
	if (!s->p)
		return -1;
	install(s);
	/* The same root name as the server's, so its </stream:stream> matches. */
	size_t rl = strlen(s->root_qname), n = 1 + rl + 1;
	for (size_t i = 0; i < s->n_ns; i++)
		n += s->ns[i].decl_len;
	char *h = malloc(n + 1), *o = h;
	if (!h)
		return -1;
	*o++ = '<';
	memcpy(o, s->root_qname, rl);
	o += rl;
	for (size_t i = 0; i < s->n_ns; i++) {
		memcpy(o, s->ns[i].decl, s->ns[i].decl_len);
		o += s->ns[i].decl_len;
	}
	*o++ = '>';
	size_t hlen = (size_t)(o - h);
	s->replaying = 1;
	s->depth = 0;
	int ok = XML_Parse(s->p, h, (int)hlen, 0) == XML_STATUS_OK && s->depth == 1;
	s->replaying = 0;
	free(h);
	s->base = s->keep = hlen;
	return ok ? 0 : -1;
}

/* After a </stream:stream> that close_fast() took, what comes next goes to
 * a parser in the state expat is in after a document's root has ended (a
 * synthetic root opened and closed), so what it allows there (whitespace)
 * and refuses (anything else) stays expat's call. */
static int epilog(struct splitter *s)
{
	static const char doc[] = "<stream:stream xmlns:stream='" STREAM_NS "'/>";
	s->p = xml_parser_new(NS_SEP);
	if (!s->p)
		return -1;
	install(s);
	s->replaying = 1;
	s->depth = 0;
	int ok = XML_Parse(s->p, doc, (int)sizeof doc - 1, 0) == XML_STATUS_OK && s->depth == 0;
	s->replaying = 0;
	s->base = s->keep = sizeof doc - 1;
	return ok ? 0 : -1;
}

int splitter_pending(const struct splitter *s)
{
	if (s->result != SPLITTER_OK || s->closed)
		return 0;
	if (s->depth >= 2)
		return 1;
	/* Between elements, held bytes from a '<' on are an unfinished tag. */
	return s->len > 0 && memchr(s->buf, '<', s->len) != NULL;
}

int splitter_park(struct splitter *s)
{
	if (!s->p || s->result != SPLITTER_OK || s->depth != 1 || s->closed || s->len != 0 ||
	    s->in_cdata || !s->root_qname)
		return 0;
	XML_ParserFree(s->p);
	s->p = NULL;
	buf_release(s);
	return 1;
}

int splitter_parked(const struct splitter *s)
{
	return s->p == NULL;
}

static void feed_piece(struct splitter *s, const char *data, size_t n)
{
	if (!s->p && (s->closed ? epilog(s) : unpark(s)) < 0) {
		fail(s, SPLITTER_ERROR, "out of memory (unparking the parser)");
		return;
	}
	int rc = buf_append(s, data, n);
	if (rc < 0) {
		if (rc == -2)
			fail(s, SPLITTER_NO_MEMORY, "max_memory reached: no room for the stream's unfinished stanza");
		else
			fail(s, SPLITTER_ERROR, "out of memory");
		return;
	}
	/* expat gets the caller's bytes: handlers may then look at (and
	 * deliver from) our copy without expat's input moving under it. */
	if (XML_Parse(s->p, data, (int)n, 0) != XML_STATUS_OK && s->result == SPLITTER_OK)
		fail_parse(s);
	if (s->result != SPLITTER_OK)
		return;
	buf_compact(s);
	check_held(s);
}

enum splitter_result splitter_feed(struct splitter *s, const char *data, size_t len)
{
	size_t fast = s->result == SPLITTER_OK ? feed_fast(s, data, len) : 0;
	data += fast;
	len -= fast;
	while (s->result == SPLITTER_OK && len > 0) {
		size_t n = len > FEED_MAX ? FEED_MAX : len;
		feed_piece(s, data, n);
		data += n;
		len -= n;
	}
	if (s->result != SPLITTER_OK)
		buf_release(s); /* nothing more will be delivered */
	return s->result;
}

int splitter_reset(struct splitter *s)
{
	buf_release(s);
	free_attrs(s);
	free_ns(s);
	s->result = SPLITTER_OK;
	free(s->err);
	s->err = NULL;
	s->depth = s->closed = s->in_cdata = 0;
	s->base = s->keep = s->elem_start = s->tag_end = 0;
	if (!s->p && !(s->p = xml_parser_new(NS_SEP))) {
		fail(s, SPLITTER_ERROR, "out of memory");
		return -1;
	}
	if (!XML_ParserReset(s->p, "UTF-8")) {
		fail(s, SPLITTER_ERROR, "resetting the XML parser failed");
		return -1;
	}
	install(s);
	return 0;
}

const char *splitter_stream_attr(const struct splitter *s, const char *name)
{
	for (char **a = s->attrs; a && a[0] && a[1]; a += 2)
		if (strcmp(a[0], name) == 0)
			return a[1];
	return NULL;
}

void splitter_fast_path(struct splitter *s, int on)
{
	s->no_fast = !on;
}

const char *splitter_error(const struct splitter *s)
{
	if (s->result == SPLITTER_OK)
		return "";
	return s->err ? s->err : "out of memory (and describing an error)";
}

void splitter_free(struct splitter *s)
{
	if (!s)
		return;
	if (s->p)
		XML_ParserFree(s->p);
	buf_release(s);
	free_attrs(s);
	free_ns(s);
	free(s->root_qname);
	free(s->err);
	free(s);
}

/* ---- graceful restart ---- */

int splitter_movable(const struct splitter *s)
{
	/* mid-CDATA between elements, nothing is held to say so */
	return s->result == SPLITTER_OK && !s->closed && !(s->depth >= 1 && !s->root_qname) && !s->in_cdata;
}

int splitter_snapshot(const struct splitter *s, struct snap_w *w)
{
	if (!splitter_movable(s))
		return -1;
	/* What is held is exactly the unfinished part: the open element, or a
	 * partial tag or header (buf_compact() dropped everything before it). */
	snap_put_u64(w, s->depth >= 1);
	snap_put_str(w, s->root_qname);
	size_t n = 0;
	for (char **a = s->attrs; a && a[0] && a[1]; a += 2)
		n++;
	snap_put_count(w, n, SNAP_MAX_ITEMS);
	for (size_t i = 0; i < n; i++) {
		snap_put_str(w, s->attrs[2 * i]);
		snap_put_str(w, s->attrs[2 * i + 1]);
	}
	snap_put_count(w, s->n_ns, SNAP_MAX_ITEMS);
	for (size_t i = 0; i < s->n_ns; i++) {
		snap_put_str(w, s->ns[i].prefix);
		snap_put_bytes(w, s->ns[i].decl, s->ns[i].decl_len);
	}
	snap_put_bytes(w, s->buf, s->len);
	return w->failed || w->over ? -1 : 0;
}

/* n name/value pairs from the snapshot into one block (save_attrs()). */
static int restore_attrs(struct splitter *s, struct snap_r *r, size_t n)
{
	char **tmp = calloc(2 * n + 1, sizeof *tmp);
	size_t chars = 0, i;
	int rc = -1;
	for (i = 0; tmp && i < 2 * n; i++) {
		if (!(tmp[i] = snap_get_str(r)))
			goto out;
		chars += strlen(tmp[i]) + 1;
	}
	char *o;
	if (!tmp || !(s->attrs = attrs_block(2 * n, chars, &o)))
		goto out;
	for (i = 0; i < 2 * n; i++) {
		size_t l = strlen(tmp[i]) + 1;
		s->attrs[i] = memcpy(o, tmp[i], l);
		o += l;
	}
	rc = 0;
out:
	for (i = 0; tmp && i < 2 * n && tmp[i]; i++)
		free(tmp[i]);
	free(tmp);
	return rc;
}

static int restore_stream(struct splitter *s, struct snap_r *r)
{
	s->root_qname = snap_get_str(r);
	uint64_t n = snap_get_count(r, SNAP_MAX_ITEMS);
	if (snap_failed(r) || !s->root_qname)
		return -1;
	if (restore_attrs(s, r, (size_t)n) < 0)
		return -1;
	uint64_t nns = snap_get_count(r, SNAP_MAX_ITEMS);
	if (snap_failed(r) || !(s->ns = calloc(nns ? nns : 1, sizeof *s->ns)))
		return -1;
	for (; s->n_ns < nns; s->n_ns++) {
		char *prefix = snap_get_str(r);
		size_t len;
		char *decl = snap_get_bytes(r, &len);
		int ok = decl && ns_decl_alloc(&s->ns[s->n_ns], prefix, len) == 0;
		if (ok)
			memcpy(s->ns[s->n_ns].decl, decl, len);
		free(prefix);
		free(decl);
		if (!ok)
			return -1;
	}
	/* Parked: the next feed builds a parser inside the stream (unpark()). */
	XML_ParserFree(s->p);
	s->p = NULL;
	s->depth = 1;
	return snap_failed(r) ? -1 : 0;
}

struct splitter *splitter_restore(struct snap_r *r, size_t max_stanza, splitter_cb cb, void *ctx)
{
	struct splitter *s = splitter_new(max_stanza, NULL, NULL);
	if (!s)
		return NULL;
	int in_stream = (int)snap_get_u64(r);
	if (in_stream) {
		if (restore_stream(s, r) < 0)
			goto fail;
	} else {
		char *q = snap_get_str(r);
		free(q);
		if (snap_get_u64(r) != 0 || snap_get_u64(r) != 0)
			goto fail;
	}
	size_t len;
	char *tail = snap_get_bytes(r, &len);
	if (snap_failed(r))
		goto fail;
	/* Replayed with no callback: the tail holds no complete element. */
	if (len && splitter_feed(s, tail, len) != SPLITTER_OK) {
		free(tail);
		goto fail;
	}
	free(tail);
	s->cb = cb;
	s->ctx = ctx;
	return s;
fail:
	splitter_free(s);
	return NULL;
}
