/* The restart snapshot: the writer and the reader obey the same limits,
 * records are framed so a bad one fails alone, and a stream header that the
 * splitter accepts always survives a snapshot. */
#include "check.h"
#include "snapshot.h"
#include "splitter.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- limits: what the writer writes, the reader reads ---- */

static void test_big_bytes_round_trip(void)
{
	/* A client queue past 64 MiB (max_client_buffer may be 64 MiB, and the
	 * stanzas of the read that crossed it come on top). */
	size_t big = (70u << 20) + 17;
	char *q = malloc(big);
	if (!q)
		abort();
	memset(q, 'q', big);
	q[big - 1] = '!';
	struct snap_w w = { 0 };
	snap_put_bytes(&w, q, big);
	snap_put_u64(&w, 42);
	CHECK(!w.failed && !w.over);
	struct snap_r r = { .data = w.data, .len = w.len };
	size_t len = 0;
	char *got = snap_get_bytes(&r, &len);
	CHECK(!snap_failed(&r) && len == big && got && got[big - 1] == '!' && memcmp(got, q, big) == 0);
	CHECK(snap_get_u64(&r) == 42 && !snap_failed(&r));
	free(got);
	free(q);
	free(w.data);
}

static void test_writer_stops_where_reader_would(void)
{
	static const char small[8];
	struct snap_w w = { 0 };
	snap_put_u64(&w, 1);
	size_t before = w.len;
	/* Checked before any byte is read: small is never read past its end. */
	snap_put_bytes(&w, small, (size_t)SNAP_MAX_BYTES + 1);
	CHECK(w.over && w.len == before);
	free(w.data);

	/* the reader refuses the same length, even when the bytes are there */
	uint64_t n = (uint64_t)SNAP_MAX_BYTES + 1;
	char hdr[8];
	memcpy(hdr, &n, sizeof n);
	struct snap_r r = { .data = hdr, .len = sizeof hdr };
	size_t len;
	CHECK(snap_get_bytes(&r, &len) == NULL && snap_failed(&r));

	struct snap_w c = { 0 };
	snap_put_count(&c, SNAP_MAX_ITEMS, SNAP_MAX_ITEMS);
	CHECK(!c.over);
	snap_put_count(&c, SNAP_MAX_ITEMS + 1, SNAP_MAX_ITEMS);
	CHECK(c.over);
	struct snap_r cr = { .data = c.data, .len = c.len };
	CHECK(snap_get_count(&cr, SNAP_MAX_ITEMS) == SNAP_MAX_ITEMS && !snap_failed(&cr));
	free(c.data);

	uint64_t many = SNAP_MAX_ITEMS + 1;
	struct snap_r mr = { .data = (const char *)&many, .len = sizeof many };
	CHECK(snap_get_count(&mr, SNAP_MAX_ITEMS) == 0 && snap_failed(&mr));
}

/* ---- records ---- */

static void put_named(struct snap_w *w, const char *name, uint64_t v)
{
	size_t mark = snap_record_begin(w);
	snap_put_str(w, name);
	snap_put_u64(w, v);
	CHECK(snap_record_end(w, mark) == 0);
}

static void test_bad_record_fails_alone(void)
{
	struct snap_w w = { 0 };
	snap_put_u64(&w, 3);
	put_named(&w, "first", 1);
	/* A record whose inside is malformed: a string longer than the record. */
	size_t mark = snap_record_begin(&w);
	snap_put_u64(&w, 1000);
	snap_put_raw(&w, "short", 5);
	CHECK(snap_record_end(&w, mark) == 0);
	put_named(&w, "third", 3);

	struct snap_r r = { .data = w.data, .len = w.len };
	uint64_t n = snap_get_u64(&r);
	const char *want[] = { "first", NULL, "third" };
	for (uint64_t i = 0; i < n; i++) {
		struct snap_r rec;
		CHECK(snap_get_record(&r, &rec) == 0);
		char *name = snap_get_str(&rec);
		uint64_t v = snap_get_u64(&rec);
		if (want[i]) {
			CHECK_STR(name, want[i]);
			CHECK(v == i + 1 && !snap_failed(&rec) && rec.off == rec.len);
		} else {
			CHECK(name == NULL && snap_failed(&rec));
		}
		free(name);
	}
	CHECK(!snap_failed(&r) && r.off == r.len);

	/* cut in the middle of the last record: the first two are still read */
	struct snap_r cut = { .data = w.data, .len = w.len - 3 };
	struct snap_r rec;
	snap_get_u64(&cut);
	CHECK(snap_get_record(&cut, &rec) == 0 && snap_get_record(&cut, &rec) == 0);
	CHECK(snap_get_record(&cut, &rec) < 0 && snap_failed(&cut) && snap_failed(&rec));
	free(w.data);
}

static void test_record_over_a_limit_is_taken_back(void)
{
	static const char small[8];
	struct snap_w w = { 0 };
	put_named(&w, "kept", 1);
	size_t len = w.len;
	size_t mark = snap_record_begin(&w);
	snap_put_str(&w, "too big");
	snap_put_bytes(&w, small, (size_t)SNAP_MAX_BYTES + 1);
	snap_put_u64(&w, 7);
	CHECK(snap_record_end(&w, mark) < 0 && w.len == len && !w.over && !w.failed);
	put_named(&w, "after", 2);
	struct snap_r r = { .data = w.data, .len = w.len }, rec;
	char *a = NULL, *b = NULL;
	if (snap_get_record(&r, &rec) == 0)
		a = snap_get_str(&rec);
	if (snap_get_record(&r, &rec) == 0)
		b = snap_get_str(&rec);
	CHECK_STR(a, "kept");
	CHECK_STR(b, "after");
	CHECK(r.off == r.len);
	free(a);
	free(b);
	free(w.data);
}

/* ---- the splitter's stream header ---- */

struct seen {
	int n;
	char last[32768];
};

static int on_event(void *ctx, enum splitter_event ev, const char *data, size_t len)
{
	struct seen *s = ctx;
	if (ev == SPLIT_ELEMENT) {
		s->n++;
		snprintf(s->last, sizeof s->last, "%.*s", (int)len, data);
	}
	return 0;
}

/* A header with nattrs attributes and nns prefixed namespaces, then half a
 * stanza; snapshot, restore, the rest: the stanza comes out whole. */
static void header_survives(int nattrs, int nns)
{
	char *hdr = malloc(16384), *p = hdr;
	if (!hdr)
		abort();
	p += sprintf(p, "<stream:stream xmlns='jabber:client' "
	                "xmlns:stream='http://etherx.jabber.org/streams' id='i1' version='1.0'");
	for (int i = 0; i < nattrs; i++)
		p += sprintf(p, " a%d='%d'", i, i);
	for (int i = 0; i < nns; i++)
		p += sprintf(p, " xmlns:p%d='u%d'", i, i);
	strcpy(p, "><message id='m1'><body>first half");
	struct splitter *s = splitter_new(65536, NULL, NULL);
	CHECK(s && splitter_feed(s, hdr, strlen(hdr)) == SPLITTER_OK);
	struct snap_w w = { 0 };
	CHECK(splitter_snapshot(s, &w) == 0 && !w.over);
	splitter_free(s);
	struct seen seen = { 0 };
	struct snap_r r = { .data = w.data, .len = w.len };
	struct splitter *t = splitter_restore(&r, 65536, on_event, &seen);
	CHECK(t != NULL);
	if (!t) {
		fprintf(stderr, "a header of %d attributes and %d namespaces was not restored\n", nattrs, nns);
	} else {
		char name[16];
		snprintf(name, sizeof name, "a%d", nattrs - 1);
		CHECK(nattrs == 0 || splitter_stream_attr(t, name) != NULL);
		CHECK(splitter_feed(t, ", second half</body></message>", 30) == SPLITTER_OK);
		CHECK(seen.n == 1 && strstr(seen.last, "first half, second half") != NULL);
		CHECK(nns == 0 || strstr(seen.last, " xmlns:p0='u0'") != NULL);
		splitter_free(t);
	}
	free(w.data);
	free(hdr);
}

static void test_stream_header_survives(void)
{
	header_survives(3, 0);
	header_survives(100, 0); /* more than 64: refused by the reader before */
	header_survives(0, 70);
	header_survives(120, 80);
	/* as many as a header within the splitter's bound can hold */
	header_survives(700, 0);
	header_survives(0, 450);
}

int main(void)
{
	test_big_bytes_round_trip();
	test_writer_stops_where_reader_would();
	test_bad_record_fails_alone();
	test_record_over_a_limit_is_taken_back();
	test_stream_header_survives();
	return check_summary("snapshot");
}
