/* ridwin.h - the rid window of one session (XEP-0124 §14.1, "Request IDs").
 *
 * rid_check() classifies an incoming rid against the next rid expected and
 * the window (the session's 'requests'). The response cache keeps the last
 * answers sent, so a repeated rid gets the very same response again.
 */
#ifndef BOSH_RIDWIN_H
#define BOSH_RIDWIN_H

#include <stddef.h>
#include <stdint.h>

#define RIDWIN_MAX 9 /* max_hold + 1 */

enum rid_verdict {
	RID_NEXT,   /* rid == next: process now */
	RID_AHEAD,  /* next < rid < next + window: keep until the gap is filled */
	RID_REPEAT, /* next - window <= rid < next: already received */
	RID_OUTSIDE /* anything else: item-not-found */
};

enum rid_verdict rid_check(int64_t next, int64_t rid, int window);

/* Parses a rid attribute: decimal, 1 .. 2^53 - 1 (XEP-0124 §7). -1 if bad. */
int64_t rid_parse(const char *s);

struct ridwin_entry {
	int64_t rid;
	char *body; /* NULL: the plain empty body */
	size_t len;
	uint64_t sent_at; /* caller's clock, for 'time' in reports (§9) */
};

struct ridwin {
	struct ridwin_entry e[RIDWIN_MAX];
	uint8_t n, cap, head; /* ring buffer of the last cap answers */
};

void ridwin_init(struct ridwin *w, int cap);
/* Copies body (NULL/0 stores the empty body without allocating). When the
 * ring is full the oldest answer goes. -1 on OOM. */
int ridwin_put(struct ridwin *w, int64_t rid, const char *body, size_t len, uint64_t sent_at);
/* 1 and body/len if rid is cached (body NULL means the empty body), else 0. */
int ridwin_get(const struct ridwin *w, int64_t rid, const char **body, size_t *len);
/* The entry for rid, or NULL. */
const struct ridwin_entry *ridwin_find(const struct ridwin *w, int64_t rid);
/* The client acknowledged every answer up to rid (§9): forget them. */
void ridwin_ack(struct ridwin *w, int64_t rid);
void ridwin_clear(struct ridwin *w);

#endif
