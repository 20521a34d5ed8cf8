/* metrics.c - sessiond's counters (see metrics.h). Nothing here depends on
 * the rest of sessiond, so that any module (and its unit test) can count. */
#define _GNU_SOURCE
#include "metrics.h"

#include <string.h>

struct metrics M;


const double metrics_hold_bounds[M_HOLD_BUCKETS] = { 0.01, 0.1, 0.5, 1, 5, 15, 30, 60 };
const double metrics_dbflush_bounds[M_DBFLUSH_BUCKETS] = { 0.001, 0.005, 0.01, 0.05, 0.25, 1 };

/* What ends sessions: XEP-0124's terminate conditions, RFC 7395 closes,
 * and ours. The position is the counter's index (at most 31: "other"). */
static const char *const conditions[] = {
	"terminate", "client-closed", "client-gone", "client-protocol-error", "ping-timeout",
	"inactivity", "bad-request", "host-gone", "host-unknown", "improper-addressing",
	"internal-server-error", "item-not-found", "other-request", "policy-violation",
	"remote-connection-failed", "remote-stream-error", "see-other-uri", "system-shutdown",
	"system-restart", "undefined-condition", "connection-timeout", "not-well-formed",
	"not-authorized", "other",
};
#define NCOND (sizeof conditions / sizeof conditions[0])
_Static_assert(NCOND <= 32, "sessions_ended has 32 slots");

size_t metrics_condition_count(void) { return NCOND; }
const char *metrics_condition_name(size_t i) { return i < NCOND ? conditions[i] : "other"; }

enum m_transport metrics_transport(const char *name)
{
	return strcmp(name, "websocket") == 0 ? MT_WEBSOCKET : MT_BOSH;
}

void metrics_session_ended(enum m_transport t, const char *condition)
{
	size_t i = 0;
	while (i < NCOND - 1 && (!condition || strcmp(conditions[i], condition) != 0))
		i++;
	/* client-closed-4000 and the like: the code is in the log, the counter says client-closed */
	if (i == NCOND - 1 && condition && strncmp(condition, "client-closed-", 14) == 0)
		i = 1;
	M.sessions_ended[t][i]++;
}

void metrics_http(int status)
{
	enum m_http h = status == 200 ? MH_200 : status == 400 ? MH_400 : status == 403 ? MH_403
	              : status == 404 ? MH_404 : status == 405 ? MH_405 : status == 503 ? MH_503
	              : status >= 400 && status < 500 ? MH_OTHER_4XX : status >= 500 && status < 600 ? MH_OTHER_5XX
	              : MH_OTHER;
	M.http_responses[h]++;
}

static void observe(uint64_t *buckets, const double *bounds, size_t n, double v)
{
	for (size_t i = 0; i < n; i++)
		if (v <= bounds[i]) {
			buckets[i]++;
			return;
		}
}

void metrics_held(double seconds)
{
	observe(M.hold_bucket, metrics_hold_bounds, M_HOLD_BUCKETS, seconds);
	M.hold_count++;
	M.hold_sum += seconds;
}

void metrics_db_flush(double seconds, int failed)
{
	observe(M.db_flush_bucket, metrics_dbflush_bounds, M_DBFLUSH_BUCKETS, seconds);
	M.db_flush_count++;
	M.db_flush_sum += seconds;
	M.db_flush_failures += failed != 0;
}

/* The handler let only well-formed XML through, so a scan that knows tags,
 * quotes, comments, CDATA and processing instructions finds the depth. */
size_t metrics_count_elements(const char *x, size_t len)
{
	size_t n = 0, i = 0;
	int depth = 0;
	while (i < len) {
		if (x[i] != '<') {
			i++;
			continue;
		}
		const char *end = NULL;
		if (i + 3 < len && memcmp(x + i, "<!--", 4) == 0)
			end = memmem(x + i, len - i, "-->", 3);
		else if (i + 8 < len && memcmp(x + i, "<![CDATA[", 9) == 0)
			end = memmem(x + i, len - i, "]]>", 3);
		else if (i + 1 < len && (x[i + 1] == '?' || x[i + 1] == '!'))
			end = memchr(x + i, '>', len - i);
		if (end) {
			i = (size_t)(end - x) + 1;
			continue;
		}
		int closing = i + 1 < len && x[i + 1] == '/';
		char quote = 0;
		size_t j = i + 1;
		for (; j < len && (quote || x[j] != '>'); j++)
			if (quote ? x[j] == quote : x[j] == '"' || x[j] == '\'')
				quote = quote ? 0 : x[j];
		int empty = j < len && x[j - 1] == '/';
		if (closing) {
			depth--;
		} else {
			n += depth == 0;
			depth += !empty;
		}
		i = j + 1;
	}
	return n;
}

