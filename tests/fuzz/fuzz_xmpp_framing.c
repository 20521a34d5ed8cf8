/* A client's WebSocket text message: the classifier answers, never
 * faults, answers the same twice (its parser is reset between messages),
 * and an <open/> built from what it extracted reads back the same. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "xmpp_framing.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static char *dup_or_null(const char *s)
{
	char *d = s ? strdup(s) : NULL;
	if (s && !d)
		abort();
	return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct xf_classifier *x;
	if (!x && !(x = xf_classifier_new()))
		abort();
	struct xf_msg a, b;
	enum xf_kind k = xf_classify(x, (const char *)data, size, &a);
	if (k != a.kind || (k == XF_INVALID && (!a.why || !*a.why)) || (k == XF_STANZA && (!a.ns || !a.name)))
		abort();
	char *why = dup_or_null(a.why), *to = dup_or_null(a.to), *from = dup_or_null(a.from),
	     *id = dup_or_null(a.id), *ver = dup_or_null(a.version), *lang = dup_or_null(a.lang);
	if (xf_classify(x, (const char *)data, size, &b) != k || !same(why, b.why))
		abort();
	if (k == XF_OPEN) {
		struct buf out = { 0 };
		if (xf_build_open(&out, from, id, ver, lang) < 0)
			abort();
		if (xf_classify(x, out.data, out.len, &b) != XF_OPEN || !same(b.from, from) || !same(b.id, id) ||
		    !same(b.version, ver) || !same(b.lang, lang) || b.to)
			abort();
		buf_free(&out);
	}
	free(why), free(to), free(from), free(id), free(ver), free(lang);
	return 0;
}
