/* What the web server sends on a FastCGI connection, in pieces the first
 * byte picks: fcgi_scan() gives the same answer fed whole, in up to three
 * growing prefixes, and a byte at a time; a request it calls whole decodes
 * into the room the header promises (malloc'd to the byte, so ASan sees any
 * overrun), and into the exact room it then used. */
#include "fcgi_rec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* small enough that -max_len=8192 inputs reach them */
#define MAX_PARAMS 1500
#define MAX_STDIN 1500

struct run {
	int res;
	const char *why;
	struct fcgi_scan s;
};

/* Feeds data[0..size) as the prefixes cuts[0..n), then whole; stops at an answer. */
static struct run scan(const uint8_t *data, size_t size, const size_t *cuts, size_t n)
{
	struct run r = { FCGI_SCAN_MORE, NULL, { 0 } };
	for (size_t i = 0; i < n && r.res == FCGI_SCAN_MORE; i++)
		r.res = fcgi_scan(&r.s, data, cuts[i], MAX_PARAMS, MAX_STDIN, &r.why);
	if (r.res == FCGI_SCAN_MORE)
		r.res = fcgi_scan(&r.s, data, size, MAX_PARAMS, MAX_STDIN, &r.why);
	if (r.res != FCGI_SCAN_ERROR)
		r.why = NULL;
	return r;
}

static int same(const struct run *a, const struct run *b)
{
	return a->res == b->res && a->why == b->why && a->s.off == b->s.off && a->s.end == b->s.end &&
	       a->s.params_len == b->s.params_len && a->s.stdin_len == b->s.stdin_len && a->s.id == b->s.id &&
	       a->s.keep_conn == b->s.keep_conn && a->s.stage == b->s.stage;
}

/* Decodes into exactly cap malloc'd bytes; checks what comes out. Returns
 * the bytes used, or 0 if refused; *pairs: the bytes the pairs took. */
static size_t decode(const struct fcgi_scan *s, const uint8_t *data, size_t cap, int must_fit, size_t *pairs)
{
	char *scratch = malloc(cap ? cap : 1);
	if (!scratch)
		abort();
	struct fcgi_request r;
	const char *why = NULL;
	size_t used = 0;
	if (fcgi_decode(s, data, scratch, cap, &r, &why) < 0) {
		if (!why || !*why || (must_fit && strncmp(why, "no room", 7) == 0))
			abort();
	} else {
		if (r.id != s->id || r.keep_conn != s->keep_conn || r.params != scratch || r.body_len != s->stdin_len ||
		    r.body < scratch || r.body_len >= cap - (size_t)(r.body - scratch) || r.body[r.body_len] != 0)
			abort();
		/* every name is found, the first pair of a name wins, and the pairs end where the body starts */
		const char *p = r.params;
		for (size_t i = 0; i < r.nparams; i++) {
			const char *v = p + strlen(p) + 1, *found = fcgi_param(&r, p);
			if (!found || (i == 0 && found != v))
				abort();
			p = v + strlen(v) + 1;
		}
		if (p != r.body)
			abort();
		*pairs = (size_t)(r.body - scratch);
		used = *pairs + r.body_len + 1;
	}
	free(scratch);
	return used;
}

/* The request again with every PARAMS byte in a record of its own: what the
 * walk over records decodes must be what the one-record path decoded. */
static void split_params_agree(const struct fcgi_scan *s, const uint8_t *data)
{
	uint8_t *copy = malloc(s->end + 8 * s->params_len + 8);
	if (!copy)
		abort();
	size_t n = 0;
	for (size_t off = 0; off < s->end;) {
		const uint8_t *h = data + off;
		size_t clen = (size_t)h[4] << 8 | h[5], size = FCGI_HEADER_LEN + clen + h[6];
		uint16_t id = (uint16_t)(h[2] << 8 | h[3]);
		if (h[1] == FCGI_PARAMS && id == s->id && clen) {
			for (size_t k = 0; k < clen; k++) {
				uint8_t one[FCGI_HEADER_LEN] = { 1, FCGI_PARAMS, h[2], h[3], 0, 1, 0, 0 };
				memcpy(copy + n, one, sizeof one);
				copy[n + FCGI_HEADER_LEN] = h[FCGI_HEADER_LEN + k];
				n += FCGI_HEADER_LEN + 1;
			}
		} else {
			memcpy(copy + n, h, size);
			n += size;
		}
		off += size;
	}
	struct run split = scan(copy, n, NULL, 0);
	if (split.res != FCGI_SCAN_DONE || split.s.params_len != s->params_len || split.s.stdin_len != s->stdin_len)
		abort();
	size_t cap = 2 * s->params_len + s->stdin_len + 1;
	char *a = malloc(cap), *b = malloc(cap);
	if (!a || !b)
		abort();
	struct fcgi_request ra, rb;
	const char *wa = NULL, *wb = NULL;
	int ca = fcgi_decode(s, data, a, cap, &ra, &wa), cb = fcgi_decode(&split.s, copy, b, cap, &rb, &wb);
	if (ca != cb || (ca < 0 && strcmp(wa, wb) != 0))
		abort();
	if (ca == 0 && (ra.nparams != rb.nparams || ra.body_len != rb.body_len || ra.body - a != rb.body - b ||
	                memcmp(a, b, (size_t)(ra.body - a) + ra.body_len + 1) != 0))
		abort();
	free(a);
	free(b);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t pick = data[0];
	data++, size--;
	size_t cuts[2];
	cuts[0] = size * (pick & 15) / 16;
	cuts[1] = cuts[0] + (size - cuts[0]) * (pick >> 4) / 16;
	struct run whole = scan(data, size, NULL, 0), pieces = scan(data, size, cuts, 2);
	struct run bytes = { FCGI_SCAN_MORE, NULL, { 0 } };
	for (size_t len = 0; len <= size && bytes.res == FCGI_SCAN_MORE; len++)
		bytes.res = fcgi_scan(&bytes.s, data, len, MAX_PARAMS, MAX_STDIN, &bytes.why);
	if (bytes.res != FCGI_SCAN_ERROR)
		bytes.why = NULL;
	if (!same(&whole, &pieces) || !same(&whole, &bytes))
		abort();

	const struct fcgi_scan *s = &whole.s;
	if (s->off > size || s->params_len > MAX_PARAMS || s->stdin_len > MAX_STDIN)
		abort();
	if (whole.res == FCGI_SCAN_ERROR && (!whole.why || !*whole.why))
		abort();
	if (whole.res == FCGI_SCAN_ABORT && (size - s->off < FCGI_HEADER_LEN || data[s->off + 1] != FCGI_ABORT_REQUEST))
		abort();
	if (whole.res != FCGI_SCAN_DONE)
		return 0;
	if (s->end != s->off || s->end > size || s->end < 4 * FCGI_HEADER_LEN)
		abort();
	/* asking again changes nothing */
	struct run again = whole;
	again.res = fcgi_scan(&again.s, data, size, MAX_PARAMS, MAX_STDIN, &again.why);
	again.why = NULL;
	if (!same(&whole, &again))
		abort();

	split_params_agree(s, data);
	size_t pairs = 0, p2;
	size_t used = decode(s, data, 2 * s->params_len + s->stdin_len + 1, 1, &pairs);
	/* the tighter bound (two length bytes per pair pay for its two NULs) gives the same answer */
	if (decode(s, data, s->params_len + s->stdin_len + 1, 1, &p2) != used)
		abort();
	if (!used)
		return 0;
	if (decode(s, data, used, 1, &p2) != used)
		abort();
	/* a byte short anywhere, in the body or the last pair: refused, never overrun */
	size_t shorts[] = { used - 1, pairs, pairs ? pairs - 1 : 0, pairs > 1 ? pairs - 2 : 0, pick % used };
	for (size_t i = 0; i < sizeof shorts / sizeof shorts[0]; i++)
		if (decode(s, data, shorts[i], 0, &p2) != 0)
			abort();
	return 0;
}
