/* xmpp_framing.c - RFC 7395 messages: classify what a client sends, build
 * what it receives (see xmpp_framing.h).
 *
 * Each message is parsed as a whole document (isFinal set), so expat
 * itself refuses a second element, text after the element and anything
 * unfinished; the handlers refuse what XMPP forbids on top of XML (RFC 6120
 * §11.1: DTDs, comments, processing instructions) and stop the parse at
 * the first offence. The strings handed back are copied into one buffer
 * that is reused for the next message.
 */
#include "xmpp_framing.h"
#include "splitter.h" /* STREAM_NS */
#include "xmlparser.h"

#include <expat.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NS_SEP '\x01'
#define XML_NS "http://www.w3.org/XML/1998/namespace"

struct xf_classifier {
	XML_Parser p;
	int depth;
	enum xf_kind kind;
	const char *why;
	int oom;
	struct buf strings;               /* attribute values, ns and name, NUL-separated */
	size_t off[7];                    /* offsets + 1 into strings; 0: absent */
};

enum { S_TO, S_FROM, S_VERSION, S_LANG, S_ID, S_NS, S_NAME };

static void refuse(struct xf_classifier *x, const char *why)
{
	if (x->kind == XF_INVALID && x->why)
		return;
	x->kind = XF_INVALID;
	x->why = why;
	XML_StopParser(x->p, XML_FALSE);
}

/* Keeps len bytes of s as string number i. */
static void keep(struct xf_classifier *x, int i, const char *s, size_t len)
{
	size_t at = x->strings.len;
	if (buf_append(&x->strings, s, len) < 0 || buf_append(&x->strings, "", 1) < 0) {
		x->oom = 1;
		refuse(x, "out of memory");
		return;
	}
	x->off[i] = at + 1;
}

/* An expat name "URI\1local" or "local": the local part, and the URI's
 * length (0 when none). */
static const char *split_name(const char *name, size_t *ns_len)
{
	const char *sep = strchr(name, NS_SEP);
	*ns_len = sep ? (size_t)(sep - name) : 0;
	return sep ? sep + 1 : name;
}

static int name_is(const char *name, const char *ns, const char *local)
{
	size_t nl;
	const char *l = split_name(name, &nl);
	return nl == strlen(ns) && strncmp(name, ns, nl) == 0 && strcmp(l, local) == 0;
}

static void open_attrs(struct xf_classifier *x, const XML_Char **atts)
{
	static const struct { const char *ns, *local; int slot; } known[] = {
		{ "", "to", S_TO }, { "", "from", S_FROM }, { "", "version", S_VERSION },
		{ "", "id", S_ID }, { XML_NS, "lang", S_LANG },
	};
	for (; atts[0]; atts += 2)
		for (size_t i = 0; i < sizeof known / sizeof *known; i++)
			if (*known[i].ns ? name_is(atts[0], known[i].ns, known[i].local)
			                 : strcmp(atts[0], known[i].local) == 0)
				keep(x, known[i].slot, atts[1], strlen(atts[1]));
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
	struct xf_classifier *x = ud;
	if (++x->depth > XF_MAX_DEPTH)
		return refuse(x, "elements nested too deep");
	if (x->depth > 1) {
		if (x->kind != XF_STANZA)
			refuse(x, "a framing element with content");
		return;
	}
	size_t nl;
	const char *local = split_name(name, &nl);
	if (nl == strlen(XF_NS) && strncmp(name, XF_NS, nl) == 0) {
		if (strcmp(local, "open") == 0) {
			x->kind = XF_OPEN;
			open_attrs(x, atts);
		} else if (strcmp(local, "close") == 0)
			x->kind = XF_CLOSE;
		else
			refuse(x, "unknown element in the framing namespace");
		return;
	}
	if (name_is(name, STREAM_NS, "stream"))
		return refuse(x, "<stream:stream> over WebSocket (RFC 7395 uses <open/>)");
	x->kind = XF_STANZA;
	keep(x, S_NS, name, nl);
	keep(x, S_NAME, local, strlen(local));
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
	struct xf_classifier *x = ud;
	(void)name;
	x->depth--;
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
	struct xf_classifier *x = ud;
	if (x->depth == 1 && x->kind != XF_STANZA)
		for (int i = 0; i < len; i++)
			if (!strchr(" \t\r\n", s[i]))
				return refuse(x, "a framing element with content");
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal)
{
	(void)name, (void)sysid, (void)pubid, (void)has_internal;
	refuse(ud, "DOCTYPE (not allowed in XMPP)");
}

static void XMLCALL on_entity(void *ud, const XML_Char *name, int pe, const XML_Char *value, int vlen,
                              const XML_Char *base, const XML_Char *sysid, const XML_Char *pubid,
                              const XML_Char *notation)
{
	(void)name, (void)pe, (void)value, (void)vlen, (void)base, (void)sysid, (void)pubid, (void)notation;
	refuse(ud, "entity declaration (not allowed in XMPP)");
}

static void XMLCALL on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
	(void)target, (void)data;
	refuse(ud, "processing instruction (not allowed in XMPP)");
}

static void XMLCALL on_comment(void *ud, const XML_Char *data)
{
	(void)data;
	refuse(ud, "comment (not allowed in XMPP)");
}

/* Handlers go after every reset: XML_ParserReset clears them. */
static void setup(struct xf_classifier *x)
{
	xml_parser_no_deferral(x->p);
	XML_SetUserData(x->p, x);
	XML_SetElementHandler(x->p, on_start, on_end);
	XML_SetCharacterDataHandler(x->p, on_text);
	XML_SetStartDoctypeDeclHandler(x->p, on_doctype);
	XML_SetEntityDeclHandler(x->p, on_entity);
	XML_SetProcessingInstructionHandler(x->p, on_pi);
	XML_SetCommentHandler(x->p, on_comment);
	XML_SetParamEntityParsing(x->p, XML_PARAM_ENTITY_PARSING_NEVER);
}

struct xf_classifier *xf_classifier_new(void)
{
	struct xf_classifier *x = calloc(1, sizeof *x);
	if (!x)
		return NULL;
	x->p = xml_parser_new(NS_SEP);
	if (!x->p) {
		free(x);
		return NULL;
	}
	return x;
}

void xf_classifier_free(struct xf_classifier *x)
{
	if (!x)
		return;
	XML_ParserFree(x->p);
	buf_free(&x->strings);
	free(x);
}

static const char *str(const struct xf_classifier *x, int i)
{
	return x->off[i] ? x->strings.data + x->off[i] - 1 : NULL;
}

/* Why expat refused the message, in the terms of RFC 7395. expat says "no
 * element found" also when the element is not closed by the end of the
 * message: half of a stanza the client split over two messages. */
static const char *parse_error(const struct xf_classifier *x)
{
	switch (XML_GetErrorCode(x->p)) {
	case XML_ERROR_JUNK_AFTER_DOC_ELEMENT:
		return "more than one element, or text after it";
	case XML_ERROR_NO_ELEMENTS:
		return x->depth > 0 ? "element not complete (a message holds one whole element)"
		                    : "no element (empty or text only)";
	case XML_ERROR_UNCLOSED_TOKEN:
		return "element not complete (a message holds one whole element)";
	case XML_ERROR_SYNTAX:
		return "not XML (syntax error)";
	case XML_ERROR_INVALID_TOKEN:
	case XML_ERROR_BAD_CHAR_REF:
		return "not XML, or not valid UTF-8";
	default:
		return XML_ErrorString(XML_GetErrorCode(x->p));
	}
}

enum xf_kind xf_classify(struct xf_classifier *x, const char *msg, size_t len, struct xf_msg *out)
{
	*out = (struct xf_msg){ .kind = XF_INVALID };
	if (!XML_ParserReset(x->p, "UTF-8")) {
		out->why = "out of memory";
		return XF_INVALID;
	}
	setup(x);
	x->depth = 0;
	x->kind = XF_INVALID;
	x->why = NULL;
	x->oom = 0;
	x->strings.len = 0;
	memset(x->off, 0, sizeof x->off);
	if (len > INT_MAX) {
		out->why = "message too large";
		return XF_INVALID;
	}
	enum XML_Status st = XML_Parse(x->p, msg, (int)len, XML_TRUE);
	if (x->why) { /* a handler refused */
		out->why = x->why;
		return XF_INVALID;
	}
	if (st != XML_STATUS_OK) {
		out->why = parse_error(x);
		return XF_INVALID;
	}
	out->kind = x->kind;
	out->to = str(x, S_TO);
	out->from = str(x, S_FROM);
	out->version = str(x, S_VERSION);
	out->lang = str(x, S_LANG);
	out->id = str(x, S_ID);
	out->ns = str(x, S_NS);
	out->name = str(x, S_NAME);
	return out->kind;
}

/* ---- what the client receives --------------------------------------------- */

/* " name='value'" (nothing when value is NULL), escaped so that a parser
 * reads back the same value: a literal tab, CR or LF in an attribute would
 * be read as a space (XML 1.0 §3.3.3), so those go as references too. The
 * values come from the server's stream header, as the splitter decoded it. */
static int attr_exact(struct buf *b, const char *name, const char *value)
{
	if (!value)
		return 0;
	if (buf_printf(b, " %s='", name) < 0)
		return -1;
	for (const char *p = value; *p; p++) {
		const char *e = xml_attr_entity(*p);
		if (!e)
			e = *p == '\t' ? "&#9;" : *p == '\n' ? "&#10;" : *p == '\r' ? "&#13;" : NULL;
		if (e ? buf_puts(b, e) < 0 : buf_append(b, p, 1) < 0)
			return -1;
	}
	return buf_append(b, "'", 1);
}

int xf_build_open(struct buf *b, const char *from, const char *id, const char *version, const char *lang)
{
	if (buf_puts(b, "<open xmlns='" XF_NS "'") < 0 || attr_exact(b, "from", from) < 0 ||
	    attr_exact(b, "id", id) < 0 || attr_exact(b, "version", version) < 0 ||
	    attr_exact(b, "xml:lang", lang) < 0)
		return -1;
	return buf_puts(b, "/>");
}

/* These exact bytes: Strophe.js (and converse.js on it) recognises the
 * server's <close/> by comparing the message with this string, and takes
 * any other spelling for a stanza. */
int xf_build_close(struct buf *b)
{
	return buf_puts(b, "<close xmlns=\"" XF_NS "\" />");
}

/* Escapes text for element content. */
static int buf_text(struct buf *b, const char *text)
{
	for (const char *p = text; *p; p++) {
		const char *e = *p == '&' ? "&amp;" : *p == '<' ? "&lt;" : *p == '>' ? "&gt;" : NULL;
		if (e ? buf_puts(b, e) < 0 : buf_append(b, p, 1) < 0)
			return -1;
	}
	return 0;
}

int xf_build_stream_error(struct buf *b, const char *condition, const char *text)
{
	if (!*condition || strspn(condition, "abcdefghijklmnopqrstuvwxyz-") != strlen(condition))
		return -1;
	if (buf_printf(b, "<stream:error xmlns:stream='" STREAM_NS "'>"
	                  "<%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>", condition) < 0)
		return -1;
	if (text && (buf_puts(b, "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>") < 0 ||
	             buf_text(b, text) < 0 || buf_puts(b, "</text>") < 0))
		return -1;
	return buf_puts(b, "</stream:error>");
}
