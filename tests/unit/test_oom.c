/* Out of memory at each allocation in turn, for what parses input from
 * outside: the stream splitter (fast path, expat, a parked parser rebuilt,
 * the epilog after </stream:stream>), the <body/> parser (fast path and
 * expat) and the WebSocket message classifier. Each run with its n-th allocation refused must end in an error
 * the module reports, never a crash, must deliver only a prefix of what a
 * run without failures delivers, and must free everything it allocated.
 *
 * malloc, calloc, realloc and free are replaced for the whole binary (glibc
 * allows it, and expat's and libc's own calls come here too), so this test
 * is built without ASan, whose allocator would clash with ours. */
#include "check.h"
#include "body.h"
#include "budget.h"
#include "splitter.h"
#include "xmpp_framing.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);

static long fail_at = -1; /* the allocation (0-based, from arming) refused; -1: none */
static long allocs;       /* allocations asked for since arming */
static long live;         /* blocks held: malloc'd and not freed */

static int refuse(void)
{
	return fail_at >= 0 && allocs++ == fail_at;
}

void *malloc(size_t n)
{
	if (refuse())
		return NULL;
	void *p = __libc_malloc(n);
	live += p != NULL;
	return p;
}

void *calloc(size_t n, size_t size)
{
	if (refuse())
		return NULL;
	void *p = __libc_calloc(n, size);
	live += p != NULL;
	return p;
}

void *realloc(void *old, size_t n)
{
	if (refuse())
		return NULL;
	void *p = __libc_realloc(old, n);
	if (!old && p)
		live++;
	else if (old && !p && n == 0)
		live--; /* realloc(p, 0) freed it */
	return p;
}

void free(void *p)
{
	live -= p != NULL;
	__libc_free(p);
}

static void arm(long n)
{
	allocs = 0;
	fail_at = n;
}

static void disarm(void)
{
	fail_at = -1;
}

/* ---- the splitter ---------------------------------------------------------- */

/* What the callback was given, in static storage: the callback must not
 * allocate, or the allocation counts would be its own. */
#define MAX_EVENTS 32
static struct {
	int n;
	enum splitter_event ev[MAX_EVENTS];
	size_t off[MAX_EVENTS], len[MAX_EVENTS];
	char bytes[16384];
	size_t used;
} got;

static int record(void *ctx, enum splitter_event ev, const char *data, size_t len)
{
	(void)ctx;
	if (got.n == MAX_EVENTS || len > sizeof got.bytes - got.used)
		abort();
	got.ev[got.n] = ev;
	got.off[got.n] = got.used;
	got.len[got.n] = len;
	if (len)
		memcpy(got.bytes + got.used, data, len);
	got.used += len;
	got.n++;
	return 0;
}

/* A stream's life in pieces: the header, features (expat: the streams
 * namespace), a plain stanza (the fast path), a stanza cut in two (expat,
 * bytes held), a park and a stanza after it (the parser rebuilt), the close
 * (without expat) and whitespace after it (the epilog's parser). */
static const char *const pieces[] = {
	"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
	"xmlns:stream='http://etherx.jabber.org/streams' id='abc' from='example.com' version='1.0' "
	"xml:lang='en'>",
	"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN"
	"</mechanism></mechanisms></stream:features>",
	"<message to='a@example.com' id='1' type='chat'><body>hello</body></message>",
	"<message to='a@example.com' id='2'><body>half",
	" and the rest</body></message>",
	NULL, /* park here */
	"<presence from='b@example.com/r'><status>away &amp; back</status></presence>",
	"<iq type='result' id='x'/>",
	"</stream:stream>",
	"\n  ",
};
#define NPIECES (sizeof pieces / sizeof pieces[0])

struct outcome {
	int n;                 /* events delivered */
	enum splitter_result result;
	int created;
};

static struct outcome run_stream(void)
{
	struct outcome o = { 0, SPLITTER_OK, 0 };
	got.n = 0;
	got.used = 0;
	struct splitter *s = splitter_new(65536, record, NULL);
	if (!s)
		return o;
	o.created = 1;
	for (size_t i = 0; i < NPIECES && o.result == SPLITTER_OK; i++) {
		if (!pieces[i])
			splitter_park(s);
		else
			o.result = splitter_feed(s, pieces[i], strlen(pieces[i]));
	}
	if (o.result != SPLITTER_OK) {
		const char *why = splitter_error(s);
		CHECK(why == NULL || *why); /* NULL only when even the reason found no memory */
	}
	o.n = got.n;
	splitter_free(s);
	return o;
}

static void test_splitter(void)
{
	long base = live;
	struct outcome all = run_stream();
	CHECK(all.result == SPLITTER_OK && all.n == 7); /* open, features, four stanzas, close */
	CHECK(live == base);
	/* the reference: the events and bytes of a run that had all it asked for */
	int ref_n = got.n;
	enum splitter_event ref_ev[MAX_EVENTS];
	size_t ref_len[MAX_EVENTS];
	static char ref_bytes[sizeof got.bytes];
	memcpy(ref_ev, got.ev, sizeof ref_ev);
	memcpy(ref_len, got.len, sizeof ref_len);
	memcpy(ref_bytes, got.bytes, got.used);

	long n, failures = 0;
	for (n = 0;; n++) {
		arm(n);
		struct outcome o = run_stream();
		int refused = allocs > n;
		disarm();
		if (!refused) {
			CHECK(o.result == SPLITTER_OK && o.n == ref_n);
			break;
		}
		failures++;
		/* an allocation refused: an error, or nothing lost if it was spare */
		CHECK(o.result == SPLITTER_OK || o.result == SPLITTER_ERROR || o.result == SPLITTER_NO_MEMORY);
		CHECK(o.n <= ref_n);
		for (int i = 0; i < o.n && i < ref_n; i++)
			if (got.ev[i] != ref_ev[i] || got.len[i] != ref_len[i] ||
			    memcmp(got.bytes + got.off[i], ref_bytes + (got.off[i]), got.len[i]) != 0) {
				fprintf(stderr, "allocation %ld refused: event %d differs\n", n, i);
				check_failed++;
				break;
			}
		if (live != base) {
			fprintf(stderr, "allocation %ld refused: %ld blocks not freed\n", n, live - base);
			check_failed++;
			live = base;
		}
	}
	CHECK(failures > 20); /* expat, the copies, the park and the epilog all asked */
	printf("splitter: %ld allocations, each refused in turn\n", n);
}

/* ---- the <body/> parser ---------------------------------------------------- */

static const char *const bodies[] = {
	/* the fast path's kind: plain attributes, plain stanzas */
	"<body rid='1' sid='abc' xmlns='http://jabber.org/protocol/httpbind'>"
	"<message to='a@example.com' xmlns='jabber:client'><body>hi</body></message></body>",
	/* expat's: a prefixed attribute, references, a CDATA section */
	"<body rid='2' sid='abc' xml:lang='en' xmpp:version='1.0' xmlns:xmpp='urn:xmpp:xbosh' "
	"xmlns='http://jabber.org/protocol/httpbind'><message xmlns='jabber:client'>"
	"<body>a &amp; b <![CDATA[<c>]]></body></message></body>",
};

static void test_body_one(const char *text)
{
	struct body ref;
	char err[256];
	CHECK(body_parse(text, strlen(text), &ref, err, sizeof err) == 0);
	long base = live; /* the reference's blocks and body.c's kept parser, if it made one */
	long n, failures = 0;
	for (n = 0;; n++) {
		struct body b;
		err[0] = 0;
		arm(n);
		int rc = body_parse(text, strlen(text), &b, err, sizeof err);
		int refused = allocs > n;
		disarm();
		if (rc == 0) {
			CHECK(b.nattrs == ref.nattrs && b.payload_len == ref.payload_len &&
			      memcmp(b.payload, ref.payload, b.payload_len) == 0);
			for (size_t i = 0; i < b.nattrs && i < ref.nattrs; i++) {
				CHECK_STR(b.attrs[i].name, ref.attrs[i].name);
				CHECK_STR(b.attrs[i].value, ref.attrs[i].value);
			}
			body_free(&b);
		} else {
			CHECK(refused && err[0]); /* only for want of memory, and said */
		}
		if (!refused)
			break;
		failures++;
	}
	CHECK(live == base);
	body_free(&ref);
	CHECK(failures > 0);
	printf("body: %ld allocations, each refused in turn\n", n);
}

/* ---- XMPP over WebSocket: the message classifier ----------------------------- */

static const char *const messages[] = {
	"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>",
	"<message xmlns='jabber:client' to='a@example.com'><body>hi &amp; bye</body></message>",
	"<message xmlns='jabber:client'><body>one</body></message><message/>", /* two: refused */
	"<iq xmlns='jabber:client' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
	"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
};
#define NMESSAGES (sizeof messages / sizeof messages[0])

/* The kinds, one per message; -1 if the classifier could not be made. */
static void classify_all(enum xf_kind *kind)
{
	struct xf_classifier *x = xf_classifier_new();
	for (size_t i = 0; i < NMESSAGES; i++) {
		struct xf_msg m;
		kind[i] = x ? xf_classify(x, messages[i], strlen(messages[i]), &m) : (enum xf_kind)-1;
		if (x && kind[i] == XF_INVALID)
			CHECK(m.why && *m.why);
	}
	xf_classifier_free(x);
}

static void test_framing(void)
{
	long base = live;
	enum xf_kind ref[NMESSAGES], k[NMESSAGES];
	classify_all(ref);
	CHECK(ref[0] == XF_OPEN && ref[1] == XF_STANZA && ref[2] == XF_INVALID && ref[3] == XF_STANZA &&
	      ref[4] == XF_CLOSE);
	long n, failures = 0;
	for (n = 0;; n++) {
		arm(n);
		classify_all(k);
		int refused = allocs > n;
		disarm();
		/* the message that met the refusal is XF_INVALID; the next ones are
		 * classified as ever (one parser serves them all: it must recover) */
		int differ = 0;
		for (size_t i = 0; i < NMESSAGES; i++)
			if (k[i] != ref[i]) {
				differ++;
				if (k[i] != XF_INVALID && k[i] != (enum xf_kind)-1) {
					fprintf(stderr, "allocation %ld refused: message %zu classified %d, not %d\n", n, i,
					        k[i], ref[i]);
					check_failed++;
				}
			}
		CHECK(differ <= 1 || k[0] == (enum xf_kind)-1);
		if (live != base) {
			fprintf(stderr, "allocation %ld refused: %ld blocks not freed\n", n, live - base);
			check_failed++;
			live = base;
		}
		if (!refused)
			break;
		failures++;
	}
	CHECK(failures > 0);
	printf("framing: %ld allocations, each refused in turn\n", n);
}

int main(void)
{
	budget_init(0);
	test_splitter();
	body_fast_path(1);
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
		test_body_one(bodies[i]);
	body_fast_path(0); /* expat for the first too */
	test_body_one(bodies[0]);
	test_framing();
	return check_summary("oom");
}
