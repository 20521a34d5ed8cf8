#include "ridwin.h"

#include <stdlib.h>
#include <string.h>

#define RID_MAX ((int64_t)1 << 53)

enum rid_verdict rid_check(int64_t next, int64_t rid, int window)
{
	if (rid == next)
		return RID_NEXT;
	if (rid > next && rid - next < window)
		return RID_AHEAD;
	if (rid < next && next - rid <= window)
		return RID_REPEAT;
	return RID_OUTSIDE;
}

int64_t rid_parse(const char *s)
{
	if (!s || !*s || strlen(s) > 16)
		return -1;
	int64_t v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v >= 1 && v < RID_MAX ? v : -1;
}

void ridwin_init(struct ridwin *w, int cap)
{
	memset(w, 0, sizeof *w);
	w->cap = (uint8_t)(cap < 1 ? 1 : cap > RIDWIN_MAX ? RIDWIN_MAX : cap);
}

int ridwin_put(struct ridwin *w, int64_t rid, const char *body, size_t len, uint64_t sent_at)
{
	char *copy = NULL;
	if (body && len) {
		copy = malloc(len);
		if (!copy)
			return -1;
		memcpy(copy, body, len);
	}
	struct ridwin_entry *slot;
	if (w->n < w->cap) {
		slot = &w->e[(w->head + w->n) % w->cap];
		w->n++;
	} else {
		slot = &w->e[w->head];
		free(slot->body);
		w->head = (uint8_t)((w->head + 1) % w->cap);
	}
	slot->rid = rid;
	slot->body = copy;
	slot->len = copy ? len : 0;
	slot->sent_at = sent_at;
	return 0;
}

const struct ridwin_entry *ridwin_find(const struct ridwin *w, int64_t rid)
{
	for (int i = 0; i < w->n; i++) {
		const struct ridwin_entry *e = &w->e[(w->head + i) % w->cap];
		if (e->rid == rid)
			return e;
	}
	return NULL;
}

void ridwin_ack(struct ridwin *w, int64_t rid)
{
	/* Answers are stored in rid order: the acknowledged ones are the oldest. */
	while (w->n && w->e[w->head].rid <= rid) {
		free(w->e[w->head].body);
		w->e[w->head].body = NULL;
		w->head = (uint8_t)((w->head + 1) % w->cap);
		w->n--;
	}
}

int ridwin_get(const struct ridwin *w, int64_t rid, const char **body, size_t *len)
{
	const struct ridwin_entry *e = ridwin_find(w, rid);
	if (!e)
		return 0;
	*body = e->body;
	*len = e->len;
	return 1;
}

void ridwin_clear(struct ridwin *w)
{
	for (int i = 0; i < w->n; i++)
		free(w->e[(w->head + i) % w->cap].body);
	int cap = w->cap;
	ridwin_init(w, cap);
}
