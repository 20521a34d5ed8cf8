#define _DEFAULT_SOURCE /* getrandom */
#define _POSIX_C_SOURCE 200809L
#include "body.h"
#include "xmlparser.h"
#include "xmlscan.h"

#include <expat.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* \x01 cannot occur in an XML 1.0 name or namespace URI, so splitting
 * expat's "URI<sep>local" names on it is unambiguous. */
#define NS_SEP    '\x01'
#define BODY_NAME BODY_NS "\x01" "body"
#define XML_NS    "http://www.w3.org/XML/1998/namespace"
#define XBOSH_NS  "urn:xmpp:xbosh"

struct parse {
	XML_Parser p;
	const char *buf;
	size_t len;
	struct body body;     /* built here, handed to the caller only on success */
	int depth;
	int nsdecls;          /* declarations seen since the last start tag */
	int body_done;
	size_t payload_start;
	char reason[256];     /* first reason we stopped for; "" while all is well */
};

/* Expat may still call a handler or two after XML_StopParser (e.g. the end
 * handler of an empty-element tag), so handlers check reason first and only
 * the first failure is kept. */
static void fail(struct parse *ps, const char *fmt, ...)
{
	va_list ap;

	if (ps->reason[0])
		return;
	va_start(ap, fmt);
	vsnprintf(ps->reason, sizeof ps->reason, fmt, ap);
	va_end(ap);
	XML_StopParser(ps->p, XML_FALSE);
}

static int failed(void *ud)
{
	return ((struct parse *)ud)->reason[0] != '\0';
}

static int all_space(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return 0;
	return 1;
}

/* --- Refused constructs. Each would otherwise let the client declare
 * entities (expansion bombs, external fetches) or smuggle markup that the
 * payload's consumers are not prepared for. --- */

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
	(void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
	fail(ud, "DOCTYPE not allowed");
}

static void XMLCALL on_entity(void *ud, const XML_Char *name, int is_param,
                              const XML_Char *value, int value_len, const XML_Char *base,
                              const XML_Char *sysid, const XML_Char *pubid,
                              const XML_Char *notation)
{
	(void)name, (void)is_param, (void)value, (void)value_len, (void)base;
	(void)sysid, (void)pubid, (void)notation;
	fail(ud, "entity declaration not allowed");
}

static void XMLCALL on_unparsed(void *ud, const XML_Char *name, const XML_Char *base,
                                const XML_Char *sysid, const XML_Char *pubid,
                                const XML_Char *notation)
{
	(void)name, (void)base, (void)sysid, (void)pubid, (void)notation;
	fail(ud, "entity declaration not allowed");
}

static void XMLCALL on_notation(void *ud, const XML_Char *name, const XML_Char *base,
                                const XML_Char *sysid, const XML_Char *pubid)
{
	(void)name, (void)base, (void)sysid, (void)pubid;
	fail(ud, "notation declaration not allowed");
}

static void XMLCALL on_eldecl(void *ud, const XML_Char *name, XML_Content *model)
{
	struct parse *ps = ud;

	(void)name;
	/* Setting this handler makes the model ours to free. */
	XML_FreeContentModel(ps->p, model);
	fail(ps, "element declaration not allowed");
}

static void XMLCALL on_attlist(void *ud, const XML_Char *elname, const XML_Char *attname,
                               const XML_Char *type, const XML_Char *dflt, int required)
{
	(void)elname, (void)attname, (void)type, (void)dflt, (void)required;
	fail(ud, "attribute list declaration not allowed");
}

static void XMLCALL on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
	(void)target, (void)data;
	fail(ud, "processing instruction not allowed");
}

static void XMLCALL on_comment(void *ud, const XML_Char *data)
{
	(void)data;
	fail(ud, "comment not allowed");
}

/* Expat does not report namespace declarations as attributes, so without
 * this an element could carry an unbounded number of them. */
static void XMLCALL on_nsdecl(void *ud, const XML_Char *prefix, const XML_Char *uri)
{
	struct parse *ps = ud;

	(void)prefix;
	if (failed(ps))
		return;
	if (++ps->nsdecls > BODY_MAX_ATTRS)
		fail(ps, "more than %d namespace declarations on one element", BODY_MAX_ATTRS);
	else if (uri && strlen(uri) > BODY_MAX_ATTR_LEN)
		fail(ps, "namespace URI longer than %d bytes", BODY_MAX_ATTR_LEN);
}

/* --- Attributes --- */

static const char *conventional_prefix(const char *uri, size_t urilen)
{
	if (urilen == strlen(XML_NS) && memcmp(uri, XML_NS, urilen) == 0)
		return "xml:";
	if (urilen == strlen(XBOSH_NS) && memcmp(uri, XBOSH_NS, urilen) == 0)
		return "xmpp:";
	return NULL;
}

/* The client may bind urn:xmpp:xbosh to any prefix; callers look
 * attributes up by the conventional one, so name them by URI. */
static char *attr_name(const char *expat_name)
{
	const char *sep = strchr(expat_name, NS_SEP);
	const char *local, *prefix;
	size_t urilen, n;
	char *s;

	if (!sep)
		return strdup(expat_name);
	local = sep + 1;
	urilen = (size_t)(sep - expat_name);
	prefix = conventional_prefix(expat_name, urilen);
	n = strlen(local) + (prefix ? strlen(prefix) : urilen + 2) + 1;
	s = malloc(n);
	if (!s)
		return NULL;
	if (prefix)
		snprintf(s, n, "%s%s", prefix, local);
	else
		snprintf(s, n, "{%.*s}%s", (int)urilen, expat_name, local);
	return s;
}

/* Returns -1 on OOM; what was copied so far stays in b for body_free. */
static int copy_attrs(struct body *b, const XML_Char **atts)
{
	size_t n = 0;

	while (atts[2 * n])
		n++;
	if (n == 0)
		return 0;
	b->attrs = calloc(n, sizeof *b->attrs);
	if (!b->attrs)
		return -1;
	for (size_t i = 0; i < n; i++) {
		b->nattrs = i + 1;
		b->attrs[i].name = attr_name(atts[2 * i]);
		b->attrs[i].value = strdup(atts[2 * i + 1]);
		if (!b->attrs[i].name || !b->attrs[i].value)
			return -1;
	}
	return 0;
}

/* Applies to every element: payload elements are parsed here too and
 * must not be a way around the limits. */
static int attrs_ok(struct parse *ps, const XML_Char **atts)
{
	size_t n = 0;

	while (atts[2 * n])
		n++;
	if (n > BODY_MAX_ATTRS) {
		fail(ps, "more than %d attributes on one element", BODY_MAX_ATTRS);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (strlen(atts[2 * i + 1]) > BODY_MAX_ATTR_LEN) {
			fail(ps, "attribute value longer than %d bytes", BODY_MAX_ATTR_LEN);
			return 0;
		}
	}
	return 1;
}

/* --- Elements and text --- */

static void start_body(struct parse *ps, const XML_Char *name, const XML_Char **atts)
{
	if (strcmp(name, BODY_NAME) != 0) {
		fail(ps, "root element is not <body/> in namespace " BODY_NS);
		return;
	}
	if (copy_attrs(&ps->body, atts) != 0) {
		fail(ps, "out of memory");
		return;
	}
	/* One XML_Parse call over the whole buffer, so byte indexes are
	 * offsets into buf. */
	ps->payload_start = (size_t)(XML_GetCurrentByteIndex(ps->p) + XML_GetCurrentByteCount(ps->p));
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
	struct parse *ps = ud;

	if (failed(ps))
		return;
	/* This element's declarations were checked as they came; start
	 * counting afresh for the next element. */
	ps->nsdecls = 0;
	if (++ps->depth > BODY_MAX_DEPTH) {
		fail(ps, "nesting deeper than %d", BODY_MAX_DEPTH);
		return;
	}
	if (attrs_ok(ps, atts) && ps->depth == 1)
		start_body(ps, name, atts);
}

static void end_body(struct parse *ps)
{
	XML_Index at = XML_GetCurrentByteIndex(ps->p);
	size_t end;

	/* For <body/> expat calls the end handler with a zero-length event
	 * at the end of the tag: there is no payload. */
	if (XML_GetCurrentByteCount(ps->p) == 0)
		end = ps->payload_start;
	else
		end = at < 0 ? 0 : (size_t)at;
	if (end < ps->payload_start || end > ps->len) {
		fail(ps, "internal error: payload offsets %zu..%zu", ps->payload_start, end);
		return;
	}
	ps->body.payload = ps->buf + ps->payload_start;
	ps->body.payload_len = end - ps->payload_start;
	ps->body_done = 1;
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	struct parse *ps = ud;

	(void)name;
	if (failed(ps))
		return;
	if (ps->depth-- == 1)
		end_body(ps);
}

/* Between stanzas only literal whitespace may appear. The raw bytes are
 * checked as well as the decoded text so that a character reference such
 * as &#32; (decoded to a space) cannot slip into the payload. */
static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
	struct parse *ps = ud;
	XML_Index at;
	int n;

	if (failed(ps) || ps->depth != 1)
		return;
	at = XML_GetCurrentByteIndex(ps->p);
	n = XML_GetCurrentByteCount(ps->p);
	if (!all_space(s, (size_t)len) || at < 0 || n < 0 || (size_t)at + (size_t)n > ps->len
	    || !all_space(ps->buf + at, (size_t)n))
		fail(ps, "text directly inside <body/>");
}

/* A CDATA section directly inside <body/> is text, and its markers would
 * end up in the payload. */
static void XMLCALL on_cdata(void *ud)
{
	struct parse *ps = ud;

	if (!failed(ps) && ps->depth == 1)
		fail(ps, "CDATA section directly inside <body/>");
}

/* --- Driver --- */

static int harden(struct parse *ps)
{
	XML_Parser p = ps->p;

	XML_SetUserData(p, ps);
	XML_SetStartDoctypeDeclHandler(p, on_doctype);
	XML_SetEntityDeclHandler(p, on_entity);
	XML_SetUnparsedEntityDeclHandler(p, on_unparsed);
	XML_SetNotationDeclHandler(p, on_notation);
	XML_SetElementDeclHandler(p, on_eldecl);
	XML_SetAttlistDeclHandler(p, on_attlist);
	XML_SetProcessingInstructionHandler(p, on_pi);
	XML_SetCommentHandler(p, on_comment);
	XML_SetStartNamespaceDeclHandler(p, on_nsdecl);
	XML_SetElementHandler(p, on_start, on_end);
	XML_SetCharacterDataHandler(p, on_text);
	XML_SetStartCdataSectionHandler(p, on_cdata);
	return XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER) ? 0 : -1;
}

/* Expat sniffs the first two bytes for UTF-16 (a byte order mark, or a
 * NUL next to '<') and switches to it even when told the input is UTF-8.
 * None of these bytes can start a UTF-8 XML document, so refuse them. */
static int looks_like_utf16(const char *buf, size_t len)
{
	for (size_t i = 0; i < len && i < 2; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c == 0x00 || c == 0xFE || c == 0xFF)
			return 1;
	}
	return 0;
}

static int reject(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static void run(struct parse *ps)
{
	enum XML_Status st;
	const char *msg;

	if (harden(ps) != 0) {
		fail(ps, "cannot disable parameter entity parsing");
		return;
	}
	st = XML_Parse(ps->p, ps->buf, (int)ps->len, 1);
	if (ps->reason[0])
		return;
	if (st != XML_STATUS_OK) {
		msg = XML_ErrorString(XML_GetErrorCode(ps->p));
		snprintf(ps->reason, sizeof ps->reason, "line %lu, column %lu: %s",
		         (unsigned long)XML_GetCurrentLineNumber(ps->p),
		         (unsigned long)XML_GetCurrentColumnNumber(ps->p),
		         msg ? msg : "XML error");
	} else if (!ps->body_done) {
		snprintf(ps->reason, sizeof ps->reason, "internal error: no </body> seen");
	}
}

/* One parser for the process, reset for each body: making one per request
 * costs its allocations and a getrandom() for the hash salt every time.
 * The salt is drawn once per process instead (a reset would draw anew). */
static XML_Parser reusable_parser(void)
{
	static XML_Parser p;
	static unsigned long salt;
	if (p && !XML_ParserReset(p, "UTF-8")) {
		XML_ParserFree(p);
		p = NULL;
	}
	if (!p) {
		if (!(p = xml_parser_new(NS_SEP)))
			return NULL;
		if (!salt && getrandom(&salt, sizeof salt, 0) != (ssize_t)sizeof salt)
			salt = (unsigned long)time(NULL) ^ ((unsigned long)getpid() << 16);
	}
	xml_parser_no_deferral(p);
	XML_SetHashSalt(p, salt);
	return p;
}

/* --- The fast path: a plain <body/> without expat (xmlscan.h) ---
 *
 * Most requests are <body rid='..' sid='..' xmlns='..httpbind'> with a
 * stanza or two, or none. The wrapper's start tag and each stanza are
 * checked by xmlscan.h; anything it declines, a prefixed attribute
 * (xmpp:version, in the session request), whitespace inside an attribute
 * value (expat normalizes it), an XML declaration, text inside <body/>,
 * goes to expat as before, which alone gives the reasons for refusals. */

static int fast_path_off;
static unsigned long fast_parses;

void body_fast_path(int on)
{
	fast_path_off = !on;
}

unsigned long body_fast_parses(void)
{
	return fast_parses;
}

/* v[0..n) as written, with the five entities xmlscan.h lets through decoded. */
static char *decode_value(const char *v, size_t n)
{
	char *out = malloc(n + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t k = v[i] == '&' ? xmlscan_entity(v + i, n - i, o) : 0;
		if (k) {
			o++;
			i += k;
		} else {
			*o++ = v[i++];
		}
	}
	*o = 0;
	return out;
}

/* Whether the wrapper's own attributes are ones the fast path can give as
 * expat would: the httpbind namespace, values without whitespace to
 * normalize, within the limits. */
static int plain_wrapper(const char *tag, const struct xmlscan_tag *t)
{
	int ns = 0;
	if (t->name_len != 4 || memcmp(tag + 1, "body", 4) != 0)
		return 0;
	for (int k = 0; k < t->nattrs; k++) {
		const struct xmlscan_attr *a = &t->attr[k];
		const char *v = tag + a->value_off;
		if (a->value_len > BODY_MAX_ATTR_LEN)
			return 0;
		for (size_t i = 0; i < a->value_len; i++)
			if (v[i] == '\t' || v[i] == '\n' || v[i] == '\r')
				return 0;
		if (a->name_len == 5 && memcmp(tag + a->name_off, "xmlns", 5) == 0)
			ns = a->value_len == sizeof BODY_NS - 1 && memcmp(v, BODY_NS, a->value_len) == 0;
	}
	return ns;
}

/* The wrapper's attributes, but its namespace declaration, as expat gives them. */
static int fast_attrs(const char *tag, const struct xmlscan_tag *t, struct body *b)
{
	if (t->nattrs <= 1)
		return 0;
	b->attrs = calloc((size_t)t->nattrs - 1, sizeof *b->attrs);
	if (!b->attrs)
		return -1;
	for (int k = 0; k < t->nattrs; k++) {
		const struct xmlscan_attr *a = &t->attr[k];
		if (a->name_len == 5 && memcmp(tag + a->name_off, "xmlns", 5) == 0)
			continue;
		struct body_attr *ba = &b->attrs[b->nattrs++];
		ba->name = strndup(tag + a->name_off, a->name_len);
		ba->value = decode_value(tag + a->value_off, a->value_len);
		if (!ba->name || !ba->value)
			return -1;
	}
	return 0;
}

/* 1: buf was a plain <body/>, *out filled; 0: declined (expat's turn);
 * -1: out of memory. */
static int parse_fast(const char *buf, size_t len, struct body *out)
{
	struct xmlscan_tag t;
	size_t i = xmlscan_skip_space(buf, 0, len), tag_at = i, end;
	size_t n = xmlscan_start_tag(buf + i, len - i, &t);
	if (!n || !plain_wrapper(buf + i, &t))
		return 0;
	i += n;
	end = i;
	if (!t.empty) {
		for (;;) {
			i = xmlscan_skip_space(buf, i, len);
			struct xmlscan_elem e;
			if (len - i >= 2 && buf[i] == '<' && buf[i + 1] == '/')
				break;
			if (!xmlscan_element(buf + i, len - i, BODY_MAX_DEPTH - 1, &e) ||
			    e.max_value_len > BODY_MAX_ATTR_LEN)
				return 0;
			i += e.len;
		}
		end = i;
		if (len - i < 7 || memcmp(buf + i, "</body", 6) != 0)
			return 0;
		i = xmlscan_skip_space(buf, i + 6, len);
		if (i >= len || buf[i] != '>')
			return 0;
		i++;
	}
	if (xmlscan_skip_space(buf, i, len) != len)
		return 0;
	memset(out, 0, sizeof *out);
	if (fast_attrs(buf + tag_at, &t, out) < 0) {
		body_free(out);
		return -1;
	}
	out->payload = buf + tag_at + n;
	out->payload_len = end - (tag_at + n);
	fast_parses++;
	return 1;
}

int body_parse(const char *buf, size_t len, struct body *out, char *err, size_t errlen)
{
	struct parse ps;

	/* Zeroed on failure too, so an unconditional body_free is safe. */
	memset(out, 0, sizeof *out);
	if (!buf || len == 0)
		return reject(err, errlen, "empty input");
	if (len > INT_MAX)
		return reject(err, errlen, "input longer than %d bytes", INT_MAX);
	if (looks_like_utf16(buf, len))
		return reject(err, errlen, "input is not UTF-8 (UTF-16 byte order mark or NUL byte at start)");
	int fast = fast_path_off ? 0 : parse_fast(buf, len, out);
	if (fast < 0)
		return reject(err, errlen, "out of memory");
	if (fast)
		return 0;
	memset(&ps, 0, sizeof ps);
	ps.buf = buf;
	ps.len = len;
	/* Forcing UTF-8 makes expat ignore any encoding in the XML
	 * declaration and reject bytes that are not valid UTF-8. */
	ps.p = reusable_parser();
	if (!ps.p)
		return reject(err, errlen, "out of memory");
	run(&ps);
	if (ps.reason[0]) {
		body_free(&ps.body);
		return reject(err, errlen, "%s", ps.reason);
	}
	*out = ps.body;
	return 0;
}

const char *body_attr(const struct body *b, const char *name)
{
	if (!b || !name)
		return NULL;
	for (size_t i = 0; i < b->nattrs; i++)
		if (strcmp(b->attrs[i].name, name) == 0)
			return b->attrs[i].value;
	return NULL;
}

void body_free(struct body *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->nattrs; i++) {
		free(b->attrs[i].name);
		free(b->attrs[i].value);
	}
	free(b->attrs);
	memset(b, 0, sizeof *b);
}
