/* FastCGI requests as nginx sends them, in any split, and every refusal fcgi_rec.h lists. */
#include "check.h"
#include "fcgi_rec.h"

#include <stdint.h>

#define MAXP 4096
#define MAXS 4096

/* A byte stream of records, built by the tests. */
struct req {
	uint8_t b[8192];
	size_t len;
};

/* A record with pad bytes of padding; the padding is junk that must never be read as content. */
static void rec(struct req *q, int type, uint16_t id, const void *content, size_t clen, size_t pad)
{
	if (q->len + FCGI_HEADER_LEN + clen + pad > sizeof q->b) {
		fprintf(stderr, "test request too long\n");
		check_failed++;
		return;
	}
	fcgi_header(q->b + q->len, type, id, clen);
	q->b[q->len + 6] = (uint8_t)pad;
	q->len += FCGI_HEADER_LEN;
	if (clen)
		memcpy(q->b + q->len, content, clen);
	q->len += clen;
	memset(q->b + q->len, 0, pad); /* NULs: a NUL read as content is refused */
	q->len += pad;
}

static void begin(struct req *q, uint16_t id, int role, int flags)
{
	uint8_t c[8] = { (uint8_t)(role >> 8), (uint8_t)role, (uint8_t)flags, 0xee, 0xee, 0xee, 0xee, 0xee };
	rec(q, FCGI_BEGIN_REQUEST, id, c, sizeof c, 0);
}

/* A length in the encoding the pair writer picks: 4 bytes from 128 on, or when asked. */
static size_t put_len(uint8_t *p, size_t n, int long_form)
{
	if (n < 128 && !long_form) {
		p[0] = (uint8_t)n;
		return 1;
	}
	p[0] = (uint8_t)(n >> 24 | 0x80);
	p[1] = (uint8_t)(n >> 16);
	p[2] = (uint8_t)(n >> 8);
	p[3] = (uint8_t)n;
	return 4;
}

/* Parameter content: name-value pairs one after another. */
struct params {
	uint8_t b[2048];
	size_t len;
};

static void pair_n(struct params *p, const char *name, size_t nlen, const char *value, size_t vlen)
{
	p->len += put_len(p->b + p->len, nlen, 0);
	p->len += put_len(p->b + p->len, vlen, 0);
	memcpy(p->b + p->len, name, nlen);
	memcpy(p->b + p->len + nlen, value, vlen);
	p->len += nlen + vlen;
}

static void pair(struct params *p, const char *name, const char *value)
{
	pair_n(p, name, strlen(name), value, strlen(value));
}

static char big_value[201];

/* What nginx sends for a BOSH POST: one PARAMS record, padded to 8 bytes. */
static void nginx_params(struct params *p)
{
	memset(big_value, 'v', 200);
	p->len = 0;
	pair(p, "REQUEST_METHOD", "POST");
	pair(p, "CONTENT_LENGTH", "11");
	pair(p, "HTTP_ORIGIN", "https://chat.example.org");
	pair(p, "HTTP_X_BIG", big_value); /* 200 bytes: the 4-byte length form */
}

/* pad < 0: nginx's padding to a multiple of 8; else that many bytes on every record. */
static size_t padding(size_t clen, int pad)
{
	return pad < 0 ? (8 - clen % 8) % 8 : (size_t)pad;
}

static void nginx_request(struct req *q, uint16_t id, int flags, int pad)
{
	struct params p;
	nginx_params(&p);
	begin(q, id, FCGI_RESPONDER, flags);
	rec(q, FCGI_PARAMS, id, p.b, p.len, padding(p.len, pad));
	rec(q, FCGI_PARAMS, id, NULL, 0, padding(0, pad));
	rec(q, FCGI_STDIN, id, "hello ", 6, padding(6, pad));
	rec(q, FCGI_STDIN, id, "world", 5, padding(5, pad));
	rec(q, FCGI_STDIN, id, NULL, 0, padding(0, pad));
}

/* Scans q whole; decodes with a scratch of the size the header promises is enough. */
static int scan_decode(const struct req *q, struct fcgi_scan *s, char *scratch, size_t cap,
                       struct fcgi_request *r, const char **why)
{
	memset(s, 0, sizeof *s);
	if (fcgi_scan(s, q->b, q->len, MAXP, MAXS, why) != FCGI_SCAN_DONE)
		return -2;
	return fcgi_decode(s, q->b, scratch, cap, r, why);
}

static void check_nginx_decoded(const struct fcgi_request *r)
{
	CHECK(r->id == 1);
	CHECK(r->nparams == 4);
	CHECK_STR(fcgi_param(r, "REQUEST_METHOD"), "POST");
	CHECK_STR(fcgi_param(r, "CONTENT_LENGTH"), "11");
	CHECK_STR(fcgi_param(r, "HTTP_ORIGIN"), "https://chat.example.org");
	CHECK_STR(fcgi_param(r, "HTTP_X_BIG"), big_value);
	CHECK(fcgi_param(r, "request_method") == NULL); /* exact case */
	CHECK(fcgi_param(r, "REQUEST") == NULL);        /* exact name, not a prefix */
	CHECK(fcgi_param(r, "POST") == NULL);           /* values are not names */
	CHECK(fcgi_param(r, "QUERY_STRING") == NULL);
	CHECK_MEM(r->body, r->body_len, "hello world");
	CHECK(r->body[r->body_len] == 0);
}

static void test_nginx_whole(void)
{
	static const int pads[] = { 0, -1, 1, 255 };
	for (size_t i = 0; i < sizeof pads / sizeof pads[0]; i++) {
		struct req q = { .len = 0 };
		nginx_request(&q, 1, FCGI_KEEP_CONN, pads[i]);
		struct fcgi_scan s;
		struct fcgi_request r;
		const char *why = NULL;
		char scratch[2048];
		CHECK(scan_decode(&q, &s, scratch, sizeof scratch, &r, &why) == 0);
		CHECK(s.end == q.len);
		CHECK(s.off == q.len);
		CHECK(s.id == 1 && s.keep_conn == 1);
		CHECK(s.stdin_len == 11);
		check_nginx_decoded(&r);
		CHECK(r.keep_conn == 1);
		/* the header's bound is enough, and so is params_len + stdin_len + 1 */
		size_t loose = 2 * s.params_len + s.stdin_len + 1, tight = s.params_len + s.stdin_len + 1;
		CHECK(loose <= sizeof scratch);
		CHECK(fcgi_decode(&s, q.b, scratch, loose, &r, &why) == 0);
		CHECK(fcgi_decode(&s, q.b, scratch, tight, &r, &why) == 0);
		check_nginx_decoded(&r);
	}
}

/* Every prefix but the whole is MORE; the whole is DONE. */
static void test_byte_at_a_time(void)
{
	struct req q = { .len = 0 };
	nginx_request(&q, 1, FCGI_KEEP_CONN, -1);
	size_t one = q.len;
	struct fcgi_scan s = { 0 };
	const char *why = NULL;
	int early = 0;
	for (size_t len = 0; len < one; len++)
		if (fcgi_scan(&s, q.b, len, MAXP, MAXS, &why) != FCGI_SCAN_MORE)
			early++;
	CHECK(early == 0);
	CHECK(s.off < one);
	CHECK(fcgi_scan(&s, q.b, one, MAXP, MAXS, &why) == FCGI_SCAN_DONE);
	CHECK(s.end == one);

	/* keep-alive: the next request's bytes right behind; end stops at the first */
	nginx_request(&q, 1, 0, 0);
	memset(&s, 0, sizeof s);
	early = 0;
	size_t done_at = 0;
	for (size_t len = 0; len <= q.len && !done_at; len++) {
		int res = fcgi_scan(&s, q.b, len, MAXP, MAXS, &why);
		if (res == FCGI_SCAN_DONE)
			done_at = len;
		else if (res != FCGI_SCAN_MORE)
			early++;
	}
	CHECK(early == 0);
	CHECK(done_at == one);
	CHECK(s.end == one);
	/* all of it at once: the same end; and asking again changes nothing */
	memset(&s, 0, sizeof s);
	CHECK(fcgi_scan(&s, q.b, q.len, MAXP, MAXS, &why) == FCGI_SCAN_DONE);
	CHECK(s.end == one);
	CHECK(fcgi_scan(&s, q.b, q.len, MAXP, MAXS, &why) == FCGI_SCAN_DONE);
	CHECK(s.end == one && s.stdin_len == 11);

	/* the second request, moved to the front as the caller would */
	struct req q2 = { .len = q.len - one };
	memcpy(q2.b, q.b + one, q2.len);
	struct fcgi_request r;
	char scratch[2048];
	CHECK(scan_decode(&q2, &s, scratch, sizeof scratch, &r, &why) == 0);
	CHECK(s.end == q2.len && r.keep_conn == 0);
	check_nginx_decoded(&r);
}

/* Every split into two and three pieces gives what the whole gives. */
static void test_chunks(void)
{
	struct req q = { .len = 0 };
	nginx_request(&q, 7, FCGI_KEEP_CONN, 3);
	int bad = 0;
	for (size_t a = 0; a <= q.len; a++) {
		for (size_t b = a; b <= q.len; b += 37) {
			struct fcgi_scan s = { 0 };
			const char *why = NULL;
			int r1 = fcgi_scan(&s, q.b, a, MAXP, MAXS, &why);
			int r2 = fcgi_scan(&s, q.b, b, MAXP, MAXS, &why);
			int r3 = fcgi_scan(&s, q.b, q.len, MAXP, MAXS, &why);
			if (r1 != (a == q.len ? FCGI_SCAN_DONE : FCGI_SCAN_MORE) ||
			    r2 != (b == q.len ? FCGI_SCAN_DONE : FCGI_SCAN_MORE) || r3 != FCGI_SCAN_DONE ||
			    s.end != q.len || s.id != 7)
				bad++;
		}
	}
	CHECK(bad == 0);
}

/* A pair may be split anywhere between two PARAMS records, even inside a length. */
static void test_split_pair(void)
{
	struct params p;
	nginx_params(&p);
	int bad = 0;
	for (size_t k = 1; k < p.len; k++) {
		struct req q = { .len = 0 };
		begin(&q, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
		rec(&q, FCGI_PARAMS, 1, p.b, k, k % 3);
		rec(&q, FCGI_PARAMS, 1, p.b + k, p.len - k, 0);
		rec(&q, FCGI_PARAMS, 1, NULL, 0, 0);
		rec(&q, FCGI_STDIN, 1, "hello world", 11, 0);
		rec(&q, FCGI_STDIN, 1, NULL, 0, 0);
		struct fcgi_scan s;
		struct fcgi_request r;
		const char *why = NULL;
		char scratch[2048];
		if (scan_decode(&q, &s, scratch, sizeof scratch, &r, &why) != 0 || r.nparams != 4 ||
		    !fcgi_param(&r, "HTTP_X_BIG") || strcmp(fcgi_param(&r, "HTTP_X_BIG"), big_value) != 0 ||
		    !fcgi_param(&r, "REQUEST_METHOD") || strcmp(fcgi_param(&r, "REQUEST_METHOD"), "POST") != 0) {
			bad++;
			fprintf(stderr, "split at %zu: %s\n", k, why ? why : "");
		}
	}
	CHECK(bad == 0);
	/* one byte per record */
	struct req q = { .len = 0 };
	begin(&q, 1, FCGI_RESPONDER, 0);
	for (size_t i = 0; i < 60; i++)
		rec(&q, FCGI_PARAMS, 1, p.b + i, 1, 0);
	rec(&q, FCGI_PARAMS, 1, p.b + 60, p.len - 60, 0);
	rec(&q, FCGI_PARAMS, 1, NULL, 0, 0);
	rec(&q, FCGI_STDIN, 1, NULL, 0, 0);
	struct fcgi_scan s;
	struct fcgi_request r;
	const char *why = NULL;
	char scratch[2048];
	CHECK(scan_decode(&q, &s, scratch, sizeof scratch, &r, &why) == 0);
	CHECK(r.nparams == 4);
	CHECK_STR(fcgi_param(&r, "HTTP_ORIGIN"), "https://chat.example.org");
}

/* Records with id 0 are skipped, whatever their type, wherever they are. */
static void test_management(void)
{
	struct params p;
	nginx_params(&p);
	struct req q = { .len = 0 };
	rec(&q, FCGI_GET_VALUES, 0, "\x0f\x00" "FCGI_MPXS_CONNS", 17, 0);
	rec(&q, 42, 0, "junk", 4, 4);
	rec(&q, FCGI_STDIN, 0, "junk", 4, 0);
	begin(&q, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
	rec(&q, FCGI_PARAMS, 1, p.b, p.len, 0);
	rec(&q, FCGI_ABORT_REQUEST, 0, NULL, 0, 0); /* not for this request */
	rec(&q, FCGI_PARAMS, 0, "\x01\x01xy", 4, 0);
	rec(&q, FCGI_PARAMS, 1, NULL, 0, 0);
	rec(&q, FCGI_STDIN, 0, "junk", 4, 0);
	rec(&q, FCGI_STDIN, 1, "hello world", 11, 0);
	rec(&q, FCGI_BEGIN_REQUEST, 0, "12345678", 8, 0);
	rec(&q, FCGI_STDIN, 1, NULL, 0, 0);
	struct fcgi_scan s;
	struct fcgi_request r;
	const char *why = NULL;
	char scratch[2048];
	CHECK(scan_decode(&q, &s, scratch, sizeof scratch, &r, &why) == 0);
	CHECK(s.end == q.len);
	CHECK(s.params_len == p.len && s.stdin_len == 11);
	check_nginx_decoded(&r);
	CHECK(fcgi_param(&r, "x") == NULL);
}

/* Scanned whole and a byte at a time, q is refused, for the same reason. */
static int refused(const struct req *q, size_t maxp, size_t maxs)
{
	struct fcgi_scan s = { 0 };
	const char *why = NULL, *why2 = NULL;
	if (fcgi_scan(&s, q->b, q->len, maxp, maxs, &why) != FCGI_SCAN_ERROR || !why || !*why)
		return 0;
	memset(&s, 0, sizeof s);
	for (size_t len = 0; len <= q->len; len++) {
		int res = fcgi_scan(&s, q->b, len, maxp, maxs, &why2);
		if (res == FCGI_SCAN_ERROR)
			return why2 == why;
		if (res != FCGI_SCAN_MORE)
			return 0;
	}
	return 0;
}

#define CHECK_REFUSED(q) CHECK(refused(&(q), MAXP, MAXS))

static void test_scan_refusals(void)
{
	struct req q;

	q = (struct req){ .len = 0 };
	nginx_request(&q, 1, 0, 0);
	q.b[0] = 2; /* version 2 */
	CHECK_REFUSED(q);
	q.b[0] = 1;
	q.b[16] = 0; /* version 0 on the first PARAMS record */
	CHECK_REFUSED(q);

	q = (struct req){ .len = 0 };
	rec(&q, FCGI_STDIN, 1, "x", 1, 0); /* before BEGIN */
	begin(&q, 1, FCGI_RESPONDER, 0);
	CHECK_REFUSED(q);

	q = (struct req){ .len = 0 };
	rec(&q, FCGI_PARAMS, 1, NULL, 0, 0); /* before BEGIN */
	CHECK_REFUSED(q);

	q = (struct req){ .len = 0 };
	rec(&q, FCGI_ABORT_REQUEST, 1, NULL, 0, 0); /* before BEGIN */
	CHECK_REFUSED(q);

	q = (struct req){ .len = 0 };
	begin(&q, 1, FCGI_RESPONDER, 0);
	begin(&q, 1, FCGI_RESPONDER, 0); /* a second BEGIN */
	CHECK_REFUSED(q);

	q = (struct req){ .len = 0 };
	begin(&q, 1, FCGI_RESPONDER, 0);
	begin(&q, 2, FCGI_RESPONDER, 0); /* a second request on the connection */
	CHECK_REFUSED(q);

	static const int roles[] = { 0, 2, 3, 0x0101, 0xffff }; /* 0x0101: big-endian, not a byte */
	for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
		q = (struct req){ .len = 0 };
		begin(&q, 1, roles[i], 0);
		CHECK_REFUSED(q);
	}

	static const size_t blen[] = { 0, 7, 9 }; /* BEGIN's body is 8 bytes */
	for (size_t i = 0; i < sizeof blen / sizeof blen[0]; i++) {
		q = (struct req){ .len = 0 };
		rec(&q, FCGI_BEGIN_REQUEST, 1, "\x00\x01\x01\x00\x00\x00\x00\x00\x00", blen[i], 0);
		CHECK_REFUSED(q);
	}

	q = (struct req){ .len = 0 };
	begin(&q, 1, FCGI_RESPONDER, 0);
	rec(&q, FCGI_PARAMS, 2, "\x01\x01xy", 4, 0); /* another request id */
	CHECK_REFUSED(q);

	q = (struct req){ .len = 0 };
	begin(&q, 1, FCGI_RESPONDER, 0);
	rec(&q, FCGI_PARAMS, 1, "\x01\x01xy", 4, 0);
	rec(&q, FCGI_STDIN, 1, "body", 4, 0); /* before the empty PARAMS */
	CHECK_REFUSED(q);

	q = (struct req){ .len = 0 };
	begin(&q, 1, FCGI_RESPONDER, 0);
	rec(&q, FCGI_STDIN, 1, NULL, 0, 0); /* even an empty one */
	CHECK_REFUSED(q);

	q = (struct req){ .len = 0 };
	begin(&q, 1, FCGI_RESPONDER, 0);
	rec(&q, FCGI_PARAMS, 1, NULL, 0, 0);
	rec(&q, FCGI_PARAMS, 1, "\x01\x01xy", 4, 0); /* after the empty PARAMS */
	CHECK_REFUSED(q);

	q = (struct req){ .len = 0 };
	begin(&q, 1, FCGI_RESPONDER, 0);
	rec(&q, FCGI_PARAMS, 1, NULL, 0, 0);
	rec(&q, FCGI_PARAMS, 1, NULL, 0, 0); /* a second empty PARAMS */
	CHECK_REFUSED(q);

	q = (struct req){ .len = 0 };
	begin(&q, 1, FCGI_RESPONDER, 0);
	rec(&q, FCGI_PARAMS, 1, NULL, 0, 0);
	rec(&q, FCGI_STDIN, 2, "x", 1, 0); /* STDIN for another id */
	CHECK_REFUSED(q);

	static const int types[] = { FCGI_END_REQUEST, FCGI_STDOUT, FCGI_STDERR, FCGI_DATA, FCGI_GET_VALUES,
	                             FCGI_GET_VALUES_RESULT, FCGI_UNKNOWN_TYPE, 0, 12, 255 };
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		q = (struct req){ .len = 0 };
		begin(&q, 1, FCGI_RESPONDER, 0);
		rec(&q, types[i], 1, "x", 1, 0);
		CHECK_REFUSED(q);
	}

	/* refused on the header alone: no waiting for 64 KiB of junk */
	q = (struct req){ .len = 0 };
	memcpy(q.b, "POST / HTTP/1.1\r\n", 17);
	struct fcgi_scan s = { 0 };
	const char *why = NULL;
	CHECK(fcgi_scan(&s, q.b, 8, MAXP, MAXS, &why) == FCGI_SCAN_ERROR);
	memset(&s, 0, sizeof s);
	CHECK(fcgi_scan(&s, q.b, 7, MAXP, MAXS, &why) == FCGI_SCAN_MORE);

	/* a caller that hands fewer bytes than before gets an error, not a read out of bounds */
	q = (struct req){ .len = 0 };
	nginx_request(&q, 1, 0, 0);
	memset(&s, 0, sizeof s);
	CHECK(fcgi_scan(&s, q.b, q.len - 1, MAXP, MAXS, &why) == FCGI_SCAN_MORE && s.off > 16);
	CHECK(fcgi_scan(&s, q.b, 16, MAXP, MAXS, &why) == FCGI_SCAN_ERROR);
}

/* Where a whole scan of q stops on an error: the start of the record refused. */
static size_t refused_at(const struct req *q, size_t maxp, size_t maxs)
{
	struct fcgi_scan s = { 0 };
	const char *why = NULL;
	return fcgi_scan(&s, q->b, q->len, maxp, maxs, &why) == FCGI_SCAN_ERROR ? s.off : (size_t)-1;
}

static void test_limits(void)
{
	struct req q = { .len = 0 };
	nginx_request(&q, 1, 0, -1);
	struct fcgi_scan s = { 0 };
	const char *why = NULL;
	CHECK(fcgi_scan(&s, q.b, q.len, MAXP, MAXS, &why) == FCGI_SCAN_DONE);
	size_t plen = s.params_len;
	memset(&s, 0, sizeof s);
	CHECK(fcgi_scan(&s, q.b, q.len, plen, 11, &why) == FCGI_SCAN_DONE); /* exactly at both limits */
	CHECK(refused(&q, plen - 1, 11));
	CHECK(refused(&q, plen, 10)); /* over on the second STDIN record */
	CHECK(refused(&q, plen, 5));  /* over on the first */
	CHECK(refused(&q, 0, 0));
	/* refused at the record that goes over, not at the next one */
	size_t stdin2 = 16 + 8 + plen + padding(plen, -1) + 8 + 8 + 6 + padding(6, -1);
	CHECK(refused_at(&q, plen - 1, 11) == 16);
	CHECK(refused_at(&q, plen, 10) == stdin2);

	/* a limit counts content over all records, not one record */
	q = (struct req){ .len = 0 };
	begin(&q, 1, FCGI_RESPONDER, 0);
	for (int i = 0; i < 5; i++)
		rec(&q, FCGI_PARAMS, 1, "\x01\x01xy", 4, 0);
	rec(&q, FCGI_PARAMS, 1, NULL, 0, 0);
	for (int i = 0; i < 5; i++)
		rec(&q, FCGI_STDIN, 1, "abc", 3, 0);
	rec(&q, FCGI_STDIN, 1, NULL, 0, 0);
	memset(&s, 0, sizeof s);
	CHECK(fcgi_scan(&s, q.b, q.len, 20, 15, &why) == FCGI_SCAN_DONE);
	CHECK(refused(&q, 19, 15));
	CHECK(refused(&q, 20, 14));
	CHECK(refused_at(&q, 19, 15) == 16 + 4 * 12);
	CHECK(refused_at(&q, 20, 14) == 16 + 5 * 12 + 8 + 4 * 11);
}

/* Scans q (which must be whole) and decodes it into cap bytes. */
static int decode_with(const struct req *q, size_t cap, const char **why)
{
	struct fcgi_scan s = { 0 };
	struct fcgi_request r;
	char scratch[4096];
	if (cap > sizeof scratch || fcgi_scan(&s, q->b, q->len, MAXP, MAXS, why) != FCGI_SCAN_DONE)
		return -2;
	*why = NULL;
	int res = fcgi_decode(&s, q->b, scratch, cap, &r, why);
	return res < 0 && (!*why || !**why) ? -3 : res;
}

static void one_param_request(struct req *q, const void *params, size_t plen, const char *body)
{
	*q = (struct req){ .len = 0 };
	begin(q, 1, FCGI_RESPONDER, 0);
	rec(q, FCGI_PARAMS, 1, params, plen, 0);
	rec(q, FCGI_PARAMS, 1, NULL, 0, 0);
	if (*body)
		rec(q, FCGI_STDIN, 1, body, strlen(body), 0);
	rec(q, FCGI_STDIN, 1, NULL, 0, 0);
}

static void test_decode_refusals(void)
{
	static const struct {
		const char *params;
		size_t len;
	} bad[] = {
		{ "\x05\x01" "abc", 5 },                       /* name runs past */
		{ "\x01\x05" "abc", 5 },                       /* value runs past */
		{ "\x01\x01" "ab" "\x01", 5 },                 /* a second pair's lengths cut short */
		{ "\x01\x01" "ab" "\x01\x01", 6 },             /* a second pair with no bytes */
		{ "\x80\x00\x00", 3 },                         /* a 4-byte length cut short */
		{ "\x01\x80\x00\x00", 4 },                     /* a 4-byte value length cut short */
		{ "\xff\xff\xff\xff\x00" "abc", 8 },           /* 0x7fffffff */
		{ "\x00\xff\xff\xff\xff" "abc", 8 },
		{ "\x81\x00\x00\x01\x00" "a", 6 },            /* 0x01000001 bytes, not 1 */
		{ "\x80\x01\x00\x01\x00" "a", 6 },            /* 0x00010001 */
		{ "\x80\x00\x01\x01\x00" "a", 6 },            /* 0x00000101 */
		{ "\x80\x00\x00\x04\x00" "ab", 7 },            /* 4-byte form, runs past */
		{ "\x03\x01" "a\0b" "v", 6 },                  /* NUL in a name */
		{ "\x01\x03" "n" "v\0w", 6 },                  /* NUL in a value */
		{ "\x01\x01" "\0" "v", 4 },
		{ "\x01\x01" "n" "\0", 4 },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct req q;
		one_param_request(&q, bad[i].params, bad[i].len, "body");
		const char *why = NULL;
		int res = decode_with(&q, 4096, &why);
		if (res != -1) {
			check_failed++;
			fprintf(stderr, "decode bad[%zu]: %d\n", i, res);
		} else {
			check_passed++;
		}
	}

	/* room: exactly what the pairs and the body take, and a byte less */
	struct req q;
	struct params p;
	nginx_params(&p);
	one_param_request(&q, p.b, p.len, "hello world");
	size_t need = strlen("REQUEST_METHOD") + 4 + strlen("CONTENT_LENGTH") + 2 + strlen("HTTP_ORIGIN") +
	              strlen("https://chat.example.org") + strlen("HTTP_X_BIG") + 200 + 4 * 2 + 11 + 1;
	const char *why = NULL;
	CHECK(decode_with(&q, need, &why) == 0);
	CHECK(decode_with(&q, need - 1, &why) == -1);
	CHECK(decode_with(&q, need - 12, &why) == -1); /* no room for the body */
	CHECK(decode_with(&q, need - 13, &why) == -1); /* none for the last pair */
	CHECK(decode_with(&q, 0, &why) == -1);
	struct req e = { .len = 0 };
	begin(&e, 1, FCGI_RESPONDER, 0);
	rec(&e, FCGI_PARAMS, 1, NULL, 0, 0);
	rec(&e, FCGI_STDIN, 1, NULL, 0, 0);
	CHECK(decode_with(&e, 0, &why) == -1); /* the body's NUL needs a byte */
	CHECK(decode_with(&e, 1, &why) == 0);

	/* not scanned to the end */
	struct fcgi_scan s = { 0 };
	struct fcgi_request r;
	char scratch[64];
	CHECK(fcgi_decode(&s, q.b, scratch, sizeof scratch, &r, &why) == -1 && why);
}

/* Each length encoding, decoded: the length bytes are given as they are sent. */
static void test_lengths(void)
{
	static const struct {
		size_t n;
		int long_form;
	} t[] = { { 0, 0 }, { 1, 0 }, { 127, 0 }, { 128, 0 }, { 200, 0 }, { 255, 0 }, { 256, 0 },
	          { 1000, 0 }, { 0, 1 }, { 5, 1 }, { 127, 1 } };
	char name[1001], value[1001];
	memset(name, 'n', sizeof name);
	memset(value, 'v', sizeof value);
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct params p = { .len = 0 };
		/* the name 3 bytes, the value n bytes; then the name n bytes, the value 3 */
		p.len += put_len(p.b + p.len, 3, 0);
		p.len += put_len(p.b + p.len, t[i].n, t[i].long_form);
		memcpy(p.b + p.len, "abc", 3);
		memcpy(p.b + p.len + 3, value, t[i].n);
		p.len += 3 + t[i].n;
		p.len += put_len(p.b + p.len, t[i].n, t[i].long_form);
		p.len += put_len(p.b + p.len, 3, 0);
		memcpy(p.b + p.len, name, t[i].n);
		memcpy(p.b + p.len + t[i].n, "xyz", 3);
		p.len += t[i].n + 3;
		struct req q;
		one_param_request(&q, p.b, p.len, "");
		struct fcgi_scan s;
		struct fcgi_request r;
		const char *why = NULL;
		char scratch[4096];
		int ok = scan_decode(&q, &s, scratch, sizeof scratch, &r, &why) == 0 && r.nparams == 2;
		const char *v = ok ? fcgi_param(&r, "abc") : NULL;
		ok = ok && v && strlen(v) == t[i].n && memcmp(v, value, t[i].n) == 0;
		name[t[i].n] = 0;
		const char *v2 = ok ? fcgi_param(&r, name) : NULL;
		name[t[i].n] = 'n';
		ok = ok && v2 && strcmp(v2, "xyz") == 0;
		if (ok) {
			check_passed++;
		} else {
			check_failed++;
			fprintf(stderr, "length %zu (long form %d): %s\n", t[i].n, t[i].long_form, why ? why : "");
		}
	}
}

/* A value longer than a record (70000 bytes: every byte of its length is used),
 * split over two PARAMS records as a web server must send it. */
static void test_big_pair(void)
{
	static uint8_t b[80000];
	static char scratch[2 * 80000];
	size_t vlen = 70000, len = 0;
	b[len++] = 4;
	len += put_len(b + len, vlen, 0);
	memcpy(b + len, "NAME", 4);
	len += 4;
	for (size_t i = 0; i < vlen; i++)
		b[len++] = (uint8_t)('a' + i % 26);
	static struct {
		uint8_t b[81000];
	} q;
	size_t n = 0, first = 65535;
	uint8_t c[8] = { 0, FCGI_RESPONDER, 0, 0, 0, 0, 0, 0 };
	fcgi_header(q.b + n, FCGI_BEGIN_REQUEST, 1, 8);
	memcpy(q.b + n + 8, c, 8);
	n += 16;
	fcgi_header(q.b + n, FCGI_PARAMS, 1, first);
	memcpy(q.b + n + 8, b, first);
	n += 8 + first;
	fcgi_header(q.b + n, FCGI_PARAMS, 1, len - first);
	memcpy(q.b + n + 8, b + first, len - first);
	n += 8 + len - first;
	fcgi_header(q.b + n, FCGI_PARAMS, 1, 0);
	fcgi_header(q.b + n + 8, FCGI_STDIN, 1, 0);
	n += 16;
	struct fcgi_scan s = { 0 };
	struct fcgi_request r;
	const char *why = NULL;
	CHECK(fcgi_scan(&s, q.b, n, len - 1, 0, &why) == FCGI_SCAN_ERROR);
	memset(&s, 0, sizeof s);
	CHECK(fcgi_scan(&s, q.b, n, len, 0, &why) == FCGI_SCAN_DONE);
	CHECK(fcgi_decode(&s, q.b, scratch, sizeof scratch, &r, &why) == 0);
	const char *v = fcgi_param(&r, "NAME");
	CHECK(v && strlen(v) == vlen && memcmp(v, b + 9, vlen) == 0);
}

static void test_abort(void)
{
	struct req q = { .len = 0 };
	begin(&q, 3, FCGI_RESPONDER, FCGI_KEEP_CONN);
	rec(&q, FCGI_PARAMS, 3, "\x01\x01xy", 4, 0);
	size_t before = q.len;
	rec(&q, FCGI_ABORT_REQUEST, 3, NULL, 0, 2);
	struct fcgi_scan s = { 0 };
	const char *why = NULL;
	int early = 0;
	for (size_t len = 0; len < q.len; len++)
		if (fcgi_scan(&s, q.b, len, MAXP, MAXS, &why) != FCGI_SCAN_MORE)
			early++;
	CHECK(early == 0);
	CHECK(fcgi_scan(&s, q.b, q.len, MAXP, MAXS, &why) == FCGI_SCAN_ABORT);
	CHECK(s.off == before); /* left at the ABORT_REQUEST record: */
	CHECK(fcgi_scan(&s, q.b, q.len, MAXP, MAXS, &why) == FCGI_SCAN_ABORT); /* it stays aborted */

	/* while the body comes */
	q = (struct req){ .len = 0 };
	begin(&q, 3, FCGI_RESPONDER, 0);
	rec(&q, FCGI_PARAMS, 3, NULL, 0, 0);
	rec(&q, FCGI_STDIN, 3, "abc", 3, 0);
	rec(&q, FCGI_ABORT_REQUEST, 3, NULL, 0, 0);
	rec(&q, FCGI_STDIN, 3, NULL, 0, 0);
	memset(&s, 0, sizeof s);
	CHECK(fcgi_scan(&s, q.b, q.len, MAXP, MAXS, &why) == FCGI_SCAN_ABORT);

	/* for another request: refused */
	q = (struct req){ .len = 0 };
	begin(&q, 3, FCGI_RESPONDER, 0);
	rec(&q, FCGI_ABORT_REQUEST, 4, NULL, 0, 0);
	CHECK_REFUSED(q);
}

static void test_keep_conn(void)
{
	static const struct {
		int flags;
		uint8_t keep;
	} t[] = { { 0, 0 }, { FCGI_KEEP_CONN, 1 }, { 0xff, 1 }, { 0xfe, 0 } };
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct req q = { .len = 0 };
		nginx_request(&q, 1, t[i].flags, 0);
		struct fcgi_scan s;
		struct fcgi_request r;
		const char *why = NULL;
		char scratch[2048];
		CHECK(scan_decode(&q, &s, scratch, sizeof scratch, &r, &why) == 0);
		CHECK(s.keep_conn == t[i].keep && r.keep_conn == t[i].keep);
	}
}

/* The first of two pairs with one name wins; an empty name is kept. */
static void test_param_lookup(void)
{
	struct params p = { .len = 0 };
	pair(&p, "A", "1");
	pair(&p, "", "empty");
	pair(&p, "A", "2");
	pair(&p, "EMPTY_VALUE", "");
	pair(&p, "AB", "3");
	struct req q;
	one_param_request(&q, p.b, p.len, "");
	struct fcgi_scan s;
	struct fcgi_request r;
	const char *why = NULL;
	char scratch[256];
	CHECK(scan_decode(&q, &s, scratch, sizeof scratch, &r, &why) == 0);
	CHECK(r.nparams == 5);
	CHECK_STR(fcgi_param(&r, "A"), "1");
	CHECK_STR(fcgi_param(&r, "AB"), "3");
	CHECK_STR(fcgi_param(&r, ""), "empty");
	CHECK_STR(fcgi_param(&r, "EMPTY_VALUE"), "");
	CHECK(fcgi_param(&r, "B") == NULL);
	CHECK(fcgi_param(&r, "1") == NULL);
	CHECK(memcmp(r.params, "A\0" "1\0" "\0" "empty\0" "A\0" "2\0", 15) == 0);
}

/* No parameters, no body: still a request, with an empty NUL-terminated body. */
static void test_empty(void)
{
	struct req q = { .len = 0 };
	begin(&q, 0xabcd, FCGI_RESPONDER, 0);
	rec(&q, FCGI_PARAMS, 0xabcd, NULL, 0, 5);
	rec(&q, FCGI_STDIN, 0xabcd, NULL, 0, 0);
	struct fcgi_scan s;
	struct fcgi_request r;
	const char *why = NULL;
	char scratch[4];
	memset(scratch, 'x', sizeof scratch);
	CHECK(scan_decode(&q, &s, scratch, sizeof scratch, &r, &why) == 0);
	CHECK(q.len == 37 && s.end == 37);
	CHECK(r.id == 0xabcd && r.nparams == 0 && r.body_len == 0 && r.body[0] == 0);
	CHECK(fcgi_param(&r, "REQUEST_METHOD") == NULL);

	struct params p;
	nginx_params(&p);
	one_param_request(&q, p.b, p.len, "");
	char big[1024];
	CHECK(scan_decode(&q, &s, big, sizeof big, &r, &why) == 0);
	CHECK(r.nparams == 4 && r.body_len == 0 && r.body[0] == 0);
	CHECK_STR(fcgi_param(&r, "REQUEST_METHOD"), "POST");
}

/* Beyond the header's promise, but sessiond's oversized-body path counts on
 * it: after MORE in the body, end = off decodes the records whole so far. */
static void test_decode_so_far(void)
{
	struct req q = { .len = 0 };
	nginx_request(&q, 1, 0, 0);
	size_t cut = q.len - 8 - 8 - 5 + 3; /* inside the second STDIN record */
	struct fcgi_scan s = { 0 };
	const char *why = NULL;
	CHECK(fcgi_scan(&s, q.b, cut, MAXP, MAXS, &why) == FCGI_SCAN_MORE);
	CHECK(s.stdin_len == 6 && s.off == q.len - 8 - 13);
	s.end = s.off;
	struct fcgi_request r;
	char scratch[2048];
	CHECK(fcgi_decode(&s, q.b, scratch, sizeof scratch, &r, &why) == 0);
	CHECK(r.nparams == 4);
	CHECK_MEM(r.body, r.body_len, "hello ");
}

static void test_header(void)
{
	uint8_t h[FCGI_HEADER_LEN];
	memset(h, 0xee, sizeof h);
	fcgi_header(h, FCGI_STDOUT, 0x1234, 0xfedc);
	CHECK(memcmp(h, "\x01\x06\x12\x34\xfe\xdc\x00\x00", 8) == 0);
	fcgi_header(h, FCGI_END_REQUEST, 1, 8);
	CHECK(memcmp(h, "\x01\x03\x00\x01\x00\x08\x00\x00", 8) == 0);
	fcgi_header(h, FCGI_STDOUT, 65535, 0);
	CHECK(memcmp(h, "\x01\x06\xff\xff\x00\x00\x00\x00", 8) == 0);
}

int main(void)
{
	test_nginx_whole();
	test_byte_at_a_time();
	test_chunks();
	test_split_pair();
	test_management();
	test_scan_refusals();
	test_limits();
	test_decode_refusals();
	test_lengths();
	test_big_pair();
	test_abort();
	test_keep_conn();
	test_param_lookup();
	test_empty();
	test_decode_so_far();
	test_header();
	return check_summary("fcgi_rec");
}
