/* metrics_report.c - the ring of the last hour, the process's figures,
 * the Prometheus text, and the counters across a restart (metrics_report.h). */
#define _GNU_SOURCE
#include "metrics_report.h"
#include "fcgi_conn.h"
#include "budget.h"
#include "control.h"
#include "log.h"
#include "sesstable.h"
#include "snapshot.h"
#include "store.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static struct loop *mloop;
static struct timer sampler;
static struct metrics_sample ring[METRICS_RING];
static size_t ring_next, ring_len;
static double started_at; /* carried over a restart: the service's start, not this exec's */

static const char *const transports[MT_N] = { "bosh", "websocket" };
static const char *const directions[MD_N] = { "to_server", "to_client" };
static const char *const results[MR_N] = { "ok", "failed" };
static const char *const tls_results[MTLS_N] = { "ok", "untrusted", "name_mismatch", "pin_mismatch",
                                                 "handshake_failed" };
static const char *const http_codes[MH_N] = { "200", "400", "403", "404", "405", "503", "4xx", "5xx",
                                              "other" };

/* ---- the ring ---- */

static int census_one(struct sess *c, void *ctx)
{
	struct metrics_census *k = ctx;
	struct store_row r;
	c->ops->describe(c, &r);
	k->by[metrics_transport(c->ops->transport)]
	     [strcmp(r.state, "active") == 0 ? 1 : strcmp(r.state, "ended") == 0 ? 2 : 0]++;
	k->held += (unsigned long)r.held;
	return 0;
}

void metrics_census(struct metrics_census *out)
{
	*out = (struct metrics_census){ .held = 0 };
	sesstable_each(census_one, out);
}

static void sample(void *ctx)
{
	(void)ctx;
	struct metrics_sample *s = &ring[ring_next];
	struct metrics_census k;
	metrics_census(&k);
	*s = (struct metrics_sample){ .at = loop_wallclock() };
	for (int t = 0; t < MT_N; t++)
		s->sessions[t] = k.by[t][0] + k.by[t][1]; /* live ones: not those ended */
	memcpy(s->stanzas, M.stanzas, sizeof s->stanzas);
	s->http_ok = M.http_responses[MH_200];
	for (int i = 0; i < MH_N; i++)
		s->http_error += i == MH_200 ? 0 : M.http_responses[i];
	ring_next = (ring_next + 1) % METRICS_RING;
	if (ring_len < METRICS_RING)
		ring_len++;
	timer_set(mloop, &sampler, loop_now(mloop) + METRICS_SAMPLE_MS);
}

void metrics_start(struct loop *l)
{
	mloop = l;
	if (!started_at)
		started_at = loop_wallclock();
	sampler = (struct timer){ .cb = sample };
	sample(NULL);
}

size_t metrics_ring_len(void) { return ring_len; }

const struct metrics_sample *metrics_ring_at(size_t i)
{
	if (i >= ring_len)
		return NULL;
	return &ring[(ring_next + METRICS_RING - ring_len + i) % METRICS_RING];
}

void metrics_rates(double *requests_per_s, double *stanzas_per_s)
{
	*requests_per_s = *stanzas_per_s = 0;
	size_t back = 60000 / METRICS_SAMPLE_MS;
	if (ring_len == 0)
		return;
	const struct metrics_sample *then = metrics_ring_at(ring_len > back ? ring_len - 1 - back : 0);
	double dt = loop_wallclock() - then->at;
	if (dt < 1)
		return;
	uint64_t http = 0;
	for (int i = 0; i < MH_N; i++)
		http += M.http_responses[i];
	*requests_per_s = (double)(http - then->http_ok - then->http_error) / dt;
	*stanzas_per_s = (double)(M.stanzas[0] + M.stanzas[1] - then->stanzas[0] - then->stanzas[1]) / dt;
}

/* ---- the process ---- */

static long count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	long n = 0;
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3; /* ".", ".." and the directory's own descriptor */
}

void metrics_process(struct metrics_process *p)
{
	struct rusage ru;
	struct rlimit rl;
	memset(p, 0, sizeof *p);
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		p->cpu_seconds = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	p->start_time = started_at;
	p->uptime = loop_wallclock() - started_at;
	FILE *f = fopen("/proc/self/statm", "r");
	long pages = 0, resident = 0;
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &resident) == 2)
			p->rss_bytes = resident * sysconf(_SC_PAGESIZE);
		fclose(f);
	}
	p->open_fds = count_fds();
	p->max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (long)rl.rlim_cur : -1;
}

/* ---- Prometheus text ---- */

static int help(struct buf *o, const char *name, const char *type, const char *text)
{
	return buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

static int labelled(struct buf *o, const char *name, const char *label, const char *const *values,
                    const uint64_t *counts, size_t n)
{
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = buf_printf(o, "%s{%s=\"%s\"} %llu\n", name, label, values[i], (unsigned long long)counts[i]);
	return rc;
}

static int histogram(struct buf *o, const char *name, const double *bounds, const uint64_t *buckets,
                     size_t n, uint64_t count, double sum)
{
	uint64_t cum = 0;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		cum += buckets[i];
		rc = buf_printf(o, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum);
	}
	if (rc == 0)
		rc = buf_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
		                (unsigned long long)count, name, sum, name, (unsigned long long)count);
	return rc;
}

static int sessions_text(struct buf *o)
{
	static const char *const states[3] = { "connecting", "active", "ended" };
	struct metrics_census g;
	metrics_census(&g);
	int rc = help(o, "bosh_sessions", "gauge", "Sessions in memory by transport and state.");
	for (int t = 0; t < MT_N && rc == 0; t++)
		for (int s = 0; s < 3 && rc == 0; s++)
			rc = buf_printf(o, "bosh_sessions{transport=\"%s\",state=\"%s\"} %llu\n", transports[t],
			                states[s], (unsigned long long)g.by[t][s]);
	rc = rc ? rc : help(o, "bosh_held_requests", "gauge", "BOSH requests held open, waiting for data.");
	rc = rc ? rc : buf_printf(o, "bosh_held_requests %llu\n", (unsigned long long)g.held);
	rc = rc ? rc : help(o, "bosh_sessions_created_total", "counter", "Sessions created, by transport.");
	rc = rc ? rc : labelled(o, "bosh_sessions_created_total", "transport", transports, M.sessions_created, MT_N);
	rc = rc ? rc : help(o, "bosh_sessions_ended_total", "counter", "Sessions ended, by transport and condition.");
	for (int t = 0; t < MT_N && rc == 0; t++)
		for (size_t c = 0; c < metrics_condition_count() && rc == 0; c++)
			rc = buf_printf(o, "bosh_sessions_ended_total{transport=\"%s\",condition=\"%s\"} %llu\n",
			                transports[t], metrics_condition_name(c), (unsigned long long)M.sessions_ended[t][c]);
	rc = rc ? rc : help(o, "bosh_sessions_kicked_total", "counter", "Sessions ended by boshctl kick.");
	rc = rc ? rc : buf_printf(o, "bosh_sessions_kicked_total %llu\n", (unsigned long long)M.kicks);
	return rc;
}

static int traffic_text(struct buf *o)
{
	int rc = help(o, "bosh_http_responses_total", "counter", "Answers to the web server, by HTTP status.");
	rc = rc ? rc : labelled(o, "bosh_http_responses_total", "code", http_codes, M.http_responses, MH_N);
	rc = rc ? rc : help(o, "bosh_request_hold_seconds", "histogram", "How long BOSH requests were held.");
	rc = rc ? rc : histogram(o, "bosh_request_hold_seconds", metrics_hold_bounds, M.hold_bucket, M_HOLD_BUCKETS,
	                         M.hold_count, M.hold_sum);
	rc = rc ? rc : help(o, "bosh_stanzas_total", "counter", "XMPP stanzas passed, by direction.");
	rc = rc ? rc : labelled(o, "bosh_stanzas_total", "direction", directions, M.stanzas, MD_N);
	rc = rc ? rc : help(o, "bosh_stanza_bytes_total", "counter", "Bytes of XMPP passed, by direction.");
	rc = rc ? rc : labelled(o, "bosh_stanza_bytes_total", "direction", directions, M.bytes, MD_N);
	rc = rc ? rc : help(o, "bosh_queued_bytes", "gauge", "Bytes held for clients and XMPP streams (the max_memory budget).");
	rc = rc ? rc : buf_printf(o, "bosh_queued_bytes %zu\n", budget_in_use());
	return rc;
}

static int backend_text(struct buf *o)
{
	int rc = help(o, "bosh_backend_connects_total", "counter", "Connections to XMPP servers, by result.");
	rc = rc ? rc : labelled(o, "bosh_backend_connects_total", "result", results, M.backend_connects, MR_N);
	rc = rc ? rc : help(o, "bosh_tls_handshakes_total", "counter", "TLS handshakes with XMPP servers, by result.");
	rc = rc ? rc : labelled(o, "bosh_tls_handshakes_total", "result", tls_results, M.tls_handshakes, MTLS_N);
	rc = rc ? rc : help(o, "bosh_dns_lookups_total", "counter", "DNS lookups (SRV, A, AAAA), by result.");
	rc = rc ? rc : labelled(o, "bosh_dns_lookups_total", "result", results, M.dns_lookups, MR_N);
	rc = rc ? rc : help(o, "bosh_db_flush_seconds", "histogram", "Time to write queued rows to the database.");
	rc = rc ? rc : histogram(o, "bosh_db_flush_seconds", metrics_dbflush_bounds, M.db_flush_bucket, M_DBFLUSH_BUCKETS,
	                         M.db_flush_count, M.db_flush_sum);
	rc = rc ? rc : help(o, "bosh_db_flush_failures_total", "counter", "Database flushes that failed.");
	rc = rc ? rc : buf_printf(o, "bosh_db_flush_failures_total %llu\n", (unsigned long long)M.db_flush_failures);
	rc = rc ? rc : help(o, "bosh_draining", "gauge", "1 while boshctl drain refuses new sessions.");
	rc = rc ? rc : buf_printf(o, "bosh_draining %d\n", control_draining());
	rc = rc ? rc : help(o, "bosh_restarts_total", "counter", "Graceful restarts in place.");
	rc = rc ? rc : buf_printf(o, "bosh_restarts_total %llu\n", (unsigned long long)M.restarts);
	rc = rc ? rc : help(o, "bosh_restart_refusals_total", "counter", "Graceful restarts refused (the new binary failed its check).");
	rc = rc ? rc : buf_printf(o, "bosh_restart_refusals_total %llu\n", (unsigned long long)M.restart_refusals);
	rc = rc ? rc : help(o, "bosh_drainers_total", "counter", "Processes forked to drain sessions over TLS at a restart.");
	rc = rc ? rc : buf_printf(o, "bosh_drainers_total %llu\n", (unsigned long long)M.drains);
	struct fcgi_conn_stats f;
	fcgi_conn_stats(&f);
	rc = rc ? rc : help(o, "bosh_fastcgi_connections", "gauge", "The web server's FastCGI connections sessiond reads (fcgi_direct).");
	rc = rc ? rc : buf_printf(o, "bosh_fastcgi_connections %llu\n", (unsigned long long)f.open);
	rc = rc ? rc : help(o, "bosh_fastcgi_connections_waiting", "gauge", "FastCGI connections accepted past the descriptor budget, waiting outside the descriptor table.");
	rc = rc ? rc : buf_printf(o, "bosh_fastcgi_connections_waiting %llu\n", (unsigned long long)f.waiting);
	rc = rc ? rc : help(o, "bosh_fastcgi_connections_accepted_total", "counter", "FastCGI connections sessiond took (fcgi_direct).");
	rc = rc ? rc : buf_printf(o, "bosh_fastcgi_connections_accepted_total %llu\n", (unsigned long long)f.accepted);
	rc = rc ? rc : help(o, "bosh_fastcgi_requests_total", "counter", "FastCGI requests sessiond read itself (fcgi_direct).");
	rc = rc ? rc : buf_printf(o, "bosh_fastcgi_requests_total %llu\n", (unsigned long long)f.requests);
	return rc;
}

static int process_text(struct buf *o)
{
	struct metrics_process p;
	metrics_process(&p);
	int rc = help(o, "process_cpu_seconds_total", "counter", "User and system CPU time of sessiond.");
	rc = rc ? rc : buf_printf(o, "process_cpu_seconds_total %.3f\n", p.cpu_seconds);
	rc = rc ? rc : help(o, "process_resident_memory_bytes", "gauge", "Resident memory of sessiond.");
	rc = rc ? rc : buf_printf(o, "process_resident_memory_bytes %ld\n", p.rss_bytes);
	rc = rc ? rc : help(o, "process_open_fds", "gauge", "Open file descriptors of sessiond.");
	rc = rc ? rc : buf_printf(o, "process_open_fds %ld\n", p.open_fds);
	rc = rc ? rc : help(o, "process_max_fds", "gauge", "The file descriptor limit of sessiond.");
	rc = rc ? rc : buf_printf(o, "process_max_fds %ld\n", p.max_fds);
	rc = rc ? rc : help(o, "process_start_time_seconds", "gauge", "When sessiond started (a graceful restart keeps it), Unix time.");
	rc = rc ? rc : buf_printf(o, "process_start_time_seconds %.3f\n", p.start_time);
	return rc;
}

int metrics_prometheus(struct buf *out)
{
	if (sessions_text(out) < 0 || traffic_text(out) < 0 || backend_text(out) < 0 || process_text(out) < 0)
		return -1;
	return 0;
}

/* ---- graceful restart ---- */

static void put_array(struct snap_w *w, const uint64_t *a, size_t n)
{
	snap_put_count(w, n, SNAP_MAX_ITEMS);
	for (size_t i = 0; i < n; i++)
		snap_put_u64(w, a[i]);
}

/* An array of another length (a successor that counts more) keeps what both know. */
static void get_array(struct snap_r *r, uint64_t *a, size_t n)
{
	uint64_t have = snap_get_count(r, SNAP_MAX_ITEMS);
	for (uint64_t i = 0; i < have && !snap_failed(r); i++) {
		uint64_t v = snap_get_u64(r);
		if (i < n)
			a[i] = v;
	}
}

void metrics_snapshot(struct snap_w *w)
{
	snap_put_double(w, started_at);
	put_array(w, (const uint64_t *)&M.sessions_created, sizeof M.sessions_created / 8);
	put_array(w, (const uint64_t *)&M.sessions_ended, sizeof M.sessions_ended / 8);
	put_array(w, M.http_responses, MH_N);
	put_array(w, M.hold_bucket, M_HOLD_BUCKETS);
	put_array(w, M.backend_connects, MR_N);
	put_array(w, M.tls_handshakes, MTLS_N);
	put_array(w, M.dns_lookups, MR_N);
	put_array(w, M.stanzas, MD_N);
	put_array(w, M.bytes, MD_N);
	put_array(w, M.db_flush_bucket, M_DBFLUSH_BUCKETS);
	uint64_t scalars[] = { M.hold_count, M.db_flush_count, M.db_flush_failures, M.restarts,
	                       M.restart_refusals, M.drains, M.kicks };
	put_array(w, scalars, sizeof scalars / sizeof scalars[0]);
	snap_put_double(w, M.hold_sum);
	snap_put_double(w, M.db_flush_sum);
	snap_put_count(w, ring_len, SNAP_MAX_ITEMS);
	for (size_t i = 0; i < ring_len; i++)
		snap_put_raw(w, metrics_ring_at(i), sizeof ring[0]); /* same binary format: -T checks it */
}

void metrics_restore(struct snap_r *r)
{
	started_at = snap_get_double(r);
	get_array(r, (uint64_t *)&M.sessions_created, sizeof M.sessions_created / 8);
	get_array(r, (uint64_t *)&M.sessions_ended, sizeof M.sessions_ended / 8);
	get_array(r, M.http_responses, MH_N);
	get_array(r, M.hold_bucket, M_HOLD_BUCKETS);
	get_array(r, M.backend_connects, MR_N);
	get_array(r, M.tls_handshakes, MTLS_N);
	get_array(r, M.dns_lookups, MR_N);
	get_array(r, M.stanzas, MD_N);
	get_array(r, M.bytes, MD_N);
	get_array(r, M.db_flush_bucket, M_DBFLUSH_BUCKETS);
	uint64_t scalars[7] = { 0 };
	get_array(r, scalars, 7);
	M.hold_count = scalars[0];
	M.db_flush_count = scalars[1];
	M.db_flush_failures = scalars[2];
	M.restarts = scalars[3];
	M.restart_refusals = scalars[4];
	M.drains = scalars[5];
	M.kicks = scalars[6];
	M.hold_sum = snap_get_double(r);
	M.db_flush_sum = snap_get_double(r);
	uint64_t n = snap_get_count(r, SNAP_MAX_ITEMS);
	for (uint64_t i = 0; i < n && !snap_failed(r); i++) {
		struct metrics_sample s;
		if (r->len - r->off < sizeof s) {
			r->failed = 1;
			break;
		}
		memcpy(&s, r->data + r->off, sizeof s);
		r->off += sizeof s;
		if (i + METRICS_RING >= n) { /* the newest METRICS_RING */
			ring[ring_next] = s;
			ring_next = (ring_next + 1) % METRICS_RING;
			if (ring_len < METRICS_RING)
				ring_len++;
		}
	}
	if (snap_failed(r))
		log_error("restart: the counters of the last process are unreadable; they start again");
}
