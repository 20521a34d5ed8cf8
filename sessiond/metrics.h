/* metrics.h - what sessiond counts, for boshctl, Prometheus and the status
 * page (metrics_report.h shows them).
 *
 * Counters only grow, and go with a graceful restart into the successor,
 * so a scrape sees no reset then. Every label takes a value from a fixed
 * list: a session's end condition outside the list is counted as "other",
 * an HTTP status as its class.
 */
#ifndef BOSH_METRICS_H
#define BOSH_METRICS_H

#include <stddef.h>
#include <stdint.h>

enum m_transport { MT_BOSH, MT_WEBSOCKET, MT_N };
enum m_direction { MD_TO_SERVER, MD_TO_CLIENT, MD_N };
enum m_result { MR_OK, MR_FAILED, MR_N };
enum m_tls { MTLS_OK, MTLS_UNTRUSTED, MTLS_NAME, MTLS_PIN, MTLS_HANDSHAKE, MTLS_N };
enum m_http { MH_200, MH_400, MH_403, MH_404, MH_405, MH_503, MH_OTHER_4XX, MH_OTHER_5XX, MH_OTHER, MH_N };

/* How long held requests were held, seconds: the histogram's upper bounds. */
#define M_HOLD_BUCKETS 8
#define M_DBFLUSH_BUCKETS 6

struct metrics {
	uint64_t sessions_created[MT_N];
	uint64_t sessions_ended[MT_N][32];       /* by condition: metrics_condition_name() */
	uint64_t http_responses[MH_N];
	uint64_t hold_bucket[M_HOLD_BUCKETS];    /* cumulative when written out, not here */
	uint64_t hold_count;
	double hold_sum;
	uint64_t backend_connects[MR_N];
	uint64_t tls_handshakes[MTLS_N];
	uint64_t dns_lookups[MR_N];
	uint64_t stanzas[MD_N];
	uint64_t bytes[MD_N];
	uint64_t db_flush_bucket[M_DBFLUSH_BUCKETS];
	uint64_t db_flush_count, db_flush_failures;
	double db_flush_sum;
	uint64_t restarts, restart_refusals, drains;
	uint64_t kicks;
};

/* The one set of counters; modules add to it directly (M.stanzas[...]++). */
extern struct metrics M;

/* A transport's index from its name (sess_ops.transport). */
enum m_transport metrics_transport(const char *name);

/* The end of a session, by transport and condition. */
void metrics_session_ended(enum m_transport t, const char *condition);
/* An answer written to the web server. */
void metrics_http(int status);
/* A held request answered after seconds. */
void metrics_held(double seconds);
/* A database flush that took seconds; failed: it did not write. */
void metrics_db_flush(double seconds, int failed);
/* Top-level elements of a BOSH payload, for the stanza counter. */
size_t metrics_count_elements(const char *xml, size_t len);

/* The end conditions counted by name; others are "other". */
size_t metrics_condition_count(void);
const char *metrics_condition_name(size_t i);

/* The histograms' upper bounds. */
extern const double metrics_hold_bounds[M_HOLD_BUCKETS];
extern const double metrics_dbflush_bounds[M_DBFLUSH_BUCKETS];

#endif
