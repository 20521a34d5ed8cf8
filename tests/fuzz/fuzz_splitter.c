/* What an XMPP server sends, in any pieces: the splitter delivers or fails,
 * never faults, and a graceful restart in the middle (snapshot, restore)
 * changes nothing that is delivered. The first byte picks the split point.
 * And the fast path (xmlscan.h) against expat alone, after a stream header:
 * the same result and the same bytes delivered, whatever the input. */
#include "snapshot.h"
#include "splitter.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct out {
	char buf[1 << 16];
	size_t len;
};

static int collect(void *ctx, enum splitter_event ev, const char *data, size_t len)
{
	struct out *o = ctx;
	if (o->len + len + 1 < sizeof o->buf) {
		o->buf[o->len++] = (char)('0' + ev);
		memcpy(o->buf + o->len, data ? data : "", len);
		o->len += len;
	}
	return 0;
}

static void differential(const uint8_t *data, size_t size, size_t cut, struct out *fo, struct out *so)
{
	static const char head[] = "<stream:stream xmlns='jabber:client' "
	                           "xmlns:stream='http://etherx.jabber.org/streams'>";
	struct splitter *f = splitter_new(4096, collect, fo), *s = splitter_new(4096, collect, so);
	splitter_fast_path(s, 0);
	enum splitter_result rf = splitter_feed(f, head, sizeof head - 1);
	enum splitter_result rs = splitter_feed(s, head, sizeof head - 1);
	if (cut & 1)
		splitter_park(f);
	/* in two pieces: an element cut in two goes to expat, the next one back */
	if (rf == SPLITTER_OK)
		rf = splitter_feed(f, (const char *)data, cut);
	if (rf == SPLITTER_OK)
		rf = splitter_feed(f, (const char *)data + cut, size - cut);
	if (rs == SPLITTER_OK)
		rs = splitter_feed(s, (const char *)data, cut);
	if (rs == SPLITTER_OK)
		rs = splitter_feed(s, (const char *)data + cut, size - cut);
	if (rf != rs || fo->len != so->len || memcmp(fo->buf, so->buf, fo->len) != 0)
		abort();
	splitter_free(f);
	splitter_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t cut = size > 1 ? data[0] % size : 0;
	data++, size--;
	if (cut > size)
		cut = size;
	static struct out plain, restarted, fast, slow;
	plain.len = restarted.len = fast.len = slow.len = 0;
	differential(data, size, cut, &fast, &slow);
	struct splitter *a = splitter_new(4096, collect, &plain);
	enum splitter_result ra = splitter_feed(a, (const char *)data, size);
	struct splitter *b = splitter_new(4096, collect, &restarted);
	enum splitter_result rb = splitter_feed(b, (const char *)data, cut);
	struct snap_w w = { 0 };
	if (rb == SPLITTER_OK && splitter_snapshot(b, &w) == 0) {
		splitter_free(b);
		struct snap_r r = { .data = w.data, .len = w.len };
		b = splitter_restore(&r, 4096, collect, &restarted);
		if (!b)
			abort(); /* our own snapshot must restore */
		rb = splitter_feed(b, (const char *)data + cut, size - cut);
		/* Both fine: the same events. One failed: expat may see an error
		 * sooner or later depending on the pieces, so only what was
		 * delivered before it must agree. */
		size_t common = plain.len < restarted.len ? plain.len : restarted.len;
		if ((ra == SPLITTER_OK && rb == SPLITTER_OK && plain.len != restarted.len) ||
		    memcmp(plain.buf, restarted.buf, common) != 0)
			abort();
	}
	free(w.data);
	/* and a corrupt snapshot is refused, not half restored */
	struct snap_r junk = { .data = (const char *)data, .len = size };
	splitter_free(splitter_restore(&junk, 4096, collect, &restarted));
	splitter_free(a);
	splitter_free(b);
	return 0;
}
