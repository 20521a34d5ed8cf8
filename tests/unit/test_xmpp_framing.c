/* RFC 7395 framing: what a client's message is, what is refused, what the
 * client receives, and that the splitter's server elements stand alone. */
#define _POSIX_C_SOURCE 200809L /* strdup, strndup */
#include "check.h"
#include "splitter.h"
#include "xmpp_framing.h"

#include <stdlib.h>

static struct xf_classifier *x;

static enum xf_kind kind_of(const char *msg)
{
	struct xf_msg m;
	return xf_classify(x, msg, strlen(msg), &m);
}

static const char *why_of(const char *msg)
{
	struct xf_msg m;
	return xf_classify(x, msg, strlen(msg), &m) == XF_INVALID ? m.why : "(accepted)";
}

static void test_open_close(void)
{
	struct xf_msg m;
	const char *open = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' "
	                   "version='1.0' xml:lang='en' from='juliet@example.com'/>";
	CHECK(xf_classify(x, open, strlen(open), &m) == XF_OPEN);
	CHECK_STR(m.to, "example.com");
	CHECK_STR(m.version, "1.0");
	CHECK_STR(m.lang, "en");
	CHECK_STR(m.from, "juliet@example.com");
	CHECK(m.id == NULL && m.ns == NULL);
	/* another prefix for the framing namespace, attributes escaped, whitespace around */
	const char *open2 = "\n <f:open xmlns:f='urn:ietf:params:xml:ns:xmpp-framing' to='a&amp;b' "
	                    "version=\"1.0\"></f:open>\r\n";
	CHECK(xf_classify(x, open2, strlen(open2), &m) == XF_OPEN);
	CHECK_STR(m.to, "a&b");
	CHECK(m.lang == NULL);
	CHECK(kind_of("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>") == XF_CLOSE);
	/* an XML declaration is harmless */
	CHECK(kind_of("<?xml version='1.0'?><close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>") == XF_CLOSE);
	/* not in the framing namespace: a stanza named open, to the server */
	CHECK(xf_classify(x, "<open to='x'/>", 14, &m) == XF_STANZA);
	CHECK_STR(m.ns, "");
	CHECK_STR(m.name, "open");
}

static void test_stanzas(void)
{
	struct xf_msg m;
	const char *msg = "<message xmlns='jabber:client' to='romeo@example.net' type='chat'>"
	                  "<body>caf\xc3\xa9 &amp; &#x263A;<![CDATA[<x>]]></body></message>";
	CHECK(xf_classify(x, msg, strlen(msg), &m) == XF_STANZA);
	CHECK_STR(m.ns, "jabber:client");
	CHECK_STR(m.name, "message");
	CHECK(m.to == NULL); /* attributes are reported for <open/> only */
	const char *auth = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth>";
	CHECK(xf_classify(x, auth, strlen(auth), &m) == XF_STANZA);
	CHECK_STR(m.ns, "urn:ietf:params:xml:ns:xmpp-sasl");
	CHECK_STR(m.name, "auth");
	/* XF_MAX_DEPTH deep is fine, one more is not */
	struct buf b = { 0 };
	for (int i = 0; i < XF_MAX_DEPTH; i++)
		buf_puts(&b, "<a>");
	for (int i = 0; i < XF_MAX_DEPTH; i++)
		buf_puts(&b, "</a>");
	CHECK(xf_classify(x, b.data, b.len, &m) == XF_STANZA);
	b.len = 0;
	for (int i = 0; i <= XF_MAX_DEPTH; i++)
		buf_puts(&b, "<a>");
	for (int i = 0; i <= XF_MAX_DEPTH; i++)
		buf_puts(&b, "</a>");
	CHECK(xf_classify(x, b.data, b.len, &m) == XF_INVALID);
	CHECK_STR(m.why, "elements nested too deep");
	buf_free(&b);
}

static void test_refused(void)
{
	/* RFC 7395 §3.3.3: one message, one element */
	CHECK_STR(why_of("<presence/><presence/>"), "more than one element, or text after it");
	CHECK_STR(why_of("<presence/>hello"), "more than one element, or text after it");
	CHECK(kind_of("hello<presence/>") == XF_INVALID);
	/* a stanza split over two messages: each half is refused */
	CHECK_STR(why_of("<message><body>hel"), "element not complete (a message holds one whole element)");
	CHECK(kind_of("lo</body></message>") == XF_INVALID);
	CHECK_STR(why_of("<presence type='unavail"), "element not complete (a message holds one whole element)");
	CHECK_STR(why_of("<presence"), "element not complete (a message holds one whole element)");
	CHECK_STR(why_of(""), "no element (empty or text only)");
	CHECK(kind_of("   ") == XF_INVALID);
	CHECK_STR(why_of("not xml at all"), "not XML (syntax error)");
	CHECK(kind_of("<a></b>") == XF_INVALID);
	/* invalid UTF-8, a NUL, characters XML does not have */
	CHECK_STR(why_of("<a>\xff</a>"), "not XML, or not valid UTF-8");
	CHECK(kind_of("<a>\xc3</a>") == XF_INVALID);
	CHECK(kind_of("<a>\xef\xbf\xbe</a>") == XF_INVALID);
	CHECK(kind_of("<a>&#0;</a>") == XF_INVALID);
	struct xf_msg m;
	CHECK(xf_classify(x, "<a>\0</a>", 8, &m) == XF_INVALID);
	/* an encoding declaration does not change how bytes are read */
	CHECK(kind_of("<?xml version='1.0' encoding='ISO-8859-1'?><a>\xe9</a>") == XF_INVALID);
	/* DOCTYPE, entities (billion laughs), PIs, comments */
	CHECK_STR(why_of("<!DOCTYPE a><a/>"), "DOCTYPE (not allowed in XMPP)");
	CHECK_STR(why_of("<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>"), "DOCTYPE (not allowed in XMPP)");
	CHECK_STR(why_of("<!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;'>]><a>&lol2;</a>"),
	          "DOCTYPE (not allowed in XMPP)");
	CHECK(kind_of("<a>&undefined;</a>") == XF_INVALID);
	CHECK_STR(why_of("<a><?pi x?></a>"), "processing instruction (not allowed in XMPP)");
	CHECK_STR(why_of("<a/><?pi x?>"), "processing instruction (not allowed in XMPP)");
	CHECK_STR(why_of("<a><!-- c --></a>"), "comment (not allowed in XMPP)");
	CHECK_STR(why_of("<!-- c --><a/>"), "comment (not allowed in XMPP)");
	/* framing elements with content, unknown ones, a stream header */
	CHECK_STR(why_of("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'><x/></open>"),
	          "a framing element with content");
	CHECK_STR(why_of("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'>bye</close>"),
	          "a framing element with content");
	CHECK_STR(why_of("<restart xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"),
	          "unknown element in the framing namespace");
	CHECK(kind_of("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='x'/>") == XF_INVALID);
	/* an unbound prefix */
	CHECK(kind_of("<x:message/>") == XF_INVALID);
	/* after all that, the classifier still works */
	CHECK(kind_of("<presence/>") == XF_STANZA);
}

static void test_builders(void)
{
	struct buf b = { 0 };
	CHECK(xf_build_open(&b, "example.com", "a'<&\"b", "1.0", "en") == 0);
	CHECK_MEM(b.data, b.len, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='example.com' "
	          "id='a&apos;&lt;&amp;&quot;b' version='1.0' xml:lang='en'/>");
	/* what we build, we accept */
	struct xf_msg m;
	CHECK(xf_classify(x, b.data, b.len, &m) == XF_OPEN);
	CHECK_STR(m.id, "a'<&\"b");
	/* whitespace too: a parser turns a literal tab or newline in an
	 * attribute into a space, so they go as character references */
	b.len = 0;
	CHECK(xf_build_open(&b, "example.com", "a\tb\nc\rd", NULL, NULL) == 0);
	CHECK(xf_classify(x, b.data, b.len, &m) == XF_OPEN);
	CHECK_STR(m.id, "a\tb\nc\rd");
	b.len = 0;
	CHECK(xf_build_open(&b, "example.com", NULL, NULL, NULL) == 0);
	CHECK_MEM(b.data, b.len, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='example.com'/>");
	b.len = 0;
	CHECK(xf_build_close(&b) == 0);
	CHECK_MEM(b.data, b.len, "<close xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\" />");
	b.len = 0;
	CHECK(xf_build_stream_error(&b, "invalid-xml", "two <elements> & more") == 0);
	CHECK_MEM(b.data, b.len, "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>"
	          "<invalid-xml xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
	          "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>two &lt;elements&gt; &amp; more</text>"
	          "</stream:error>");
	CHECK(xf_classify(x, b.data, b.len, &m) == XF_STANZA);
	CHECK_STR(m.ns, STREAM_NS);
	CHECK_STR(m.name, "error");
	b.len = 0;
	CHECK(xf_build_stream_error(&b, "x'/><evil", NULL) < 0);
	CHECK(xf_build_stream_error(&b, "", NULL) < 0);
	buf_free(&b);
}

/* ---- the server's side: the splitter's elements stand alone ---------------- */

struct got {
	struct xf_msg m[8];
	char *data[8];
	int ev[8];
	int n;
};

static int collect(void *ctx, enum splitter_event ev, const char *data, size_t len)
{
	struct got *g = ctx;
	if (g->n == 8)
		return 1;
	g->ev[g->n] = ev;
	g->data[g->n] = NULL;
	if (data) {
		g->data[g->n] = strndup(data, len);
		/* each element, as one WebSocket message, is a document on its own */
		if (xf_classify(x, data, len, &g->m[g->n]) != XF_STANZA)
			fprintf(stderr, "not standalone: %.*s (%s)\n", (int)len, data, g->m[g->n].why);
		/* copy what we check: the classifier's strings change with the next call */
		g->m[g->n].ns = strdup(g->m[g->n].ns ? g->m[g->n].ns : "(none)");
		g->m[g->n].name = strdup(g->m[g->n].name ? g->m[g->n].name : "(none)");
	}
	g->n++;
	return 0;
}

static void test_server_elements(void)
{
	const char *stream = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
		"xmlns:stream='http://etherx.jabber.org/streams' id='s1&amp;' from='example.com' "
		"version='1.0' xml:lang='en'>"
		"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
		"<mechanism>PLAIN</mechanism></mechanisms></stream:features>"
		"<message from='a@example.com' to='b@example.com'><body>hi</body></message>"
		"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
		"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
		"</stream:stream>";
	struct got g = { 0 };
	struct splitter *s = splitter_new(65536, collect, &g);
	CHECK(splitter_feed(s, stream, strlen(stream)) == SPLITTER_OK);
	CHECK(g.n == 6);
	CHECK(g.ev[0] == SPLIT_STREAM_OPEN);
	/* the stream header becomes <open/> */
	struct buf b = { 0 };
	CHECK(xf_build_open(&b, splitter_stream_attr(s, "from"), splitter_stream_attr(s, "id"),
	                    splitter_stream_attr(s, "version"), splitter_stream_attr(s, "xml:lang")) == 0);
	CHECK_MEM(b.data, b.len, "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='example.com' "
	          "id='s1&amp;' version='1.0' xml:lang='en'/>");
	buf_free(&b);
	/* features in the stream namespace, the stanza in jabber:client (RFC 7395 §3.3.3, §3.4) */
	CHECK(g.ev[1] == SPLIT_FEATURES);
	CHECK_STR(g.m[1].ns, STREAM_NS);
	CHECK_STR(g.m[1].name, "features");
	CHECK(g.ev[2] == SPLIT_ELEMENT);
	CHECK_STR(g.m[2].ns, "jabber:client");
	CHECK_STR(g.m[2].name, "message");
	CHECK(strstr(g.data[2], "xmlns='jabber:client'") != NULL);
	CHECK_STR(g.m[3].ns, "urn:ietf:params:xml:ns:xmpp-sasl");
	/* the stream error passes through as it is (RFC 7395 §3.6) */
	CHECK(g.ev[4] == SPLIT_STREAM_ERROR);
	CHECK_STR(g.m[4].ns, STREAM_NS);
	CHECK_STR(g.m[4].name, "error");
	CHECK(g.ev[5] == SPLIT_STREAM_CLOSE);
	for (int i = 0; i < g.n; i++) {
		free(g.data[i]);
		if (i && i < 5) {
			free((char *)g.m[i].ns);
			free((char *)g.m[i].name);
		}
	}
	splitter_free(s);
}

int main(void)
{
	x = xf_classifier_new();
	if (!x)
		abort();
	test_open_close();
	test_stanzas();
	test_refused();
	test_builders();
	test_server_elements();
	xf_classifier_free(x);
	return check_summary("xmpp_framing");
}
