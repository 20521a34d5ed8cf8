/* metrics_report.h - the counters of metrics.h as others see them: the
 * Prometheus text, the rates and charts of the last hour, the process's
 * own figures; and the counters across a graceful restart.
 *
 * Gauges (sessions by state, held requests, queued bytes, process figures)
 * are read when asked. A ring keeps the last hour, one sample every
 * METRICS_SAMPLE_MS: the charts of the status page and the rates of
 * `boshctl status`.
 */
#ifndef BOSH_METRICS_REPORT_H
#define BOSH_METRICS_REPORT_H

#include "buf.h"
#include "loop.h"
#include "metrics.h"

#define METRICS_SAMPLE_MS 10000
#define METRICS_RING (3600 * 1000 / METRICS_SAMPLE_MS)

/* The sessions in memory by transport and state (connecting, active, and
 * ended but still telling their client), and their held requests: one
 * pass over the table for the metrics, the ring and boshctl status. */
struct metrics_census {
	unsigned by[MT_N][3];
	unsigned long held;
};
void metrics_census(struct metrics_census *out);

/* Starts the sampling timer. */
void metrics_start(struct loop *l);

/* The text exposition format (Prometheus 0.0.4, which promtool checks). */
int metrics_prometheus(struct buf *out);

/* A sample of the ring. */
struct metrics_sample {
	double at;                /* wall clock */
	uint32_t sessions[MT_N];
	uint64_t stanzas[MD_N];   /* counters at that time */
	uint64_t http_ok, http_error;
};
/* The samples kept (at most METRICS_RING), and the i-th, oldest first. */
size_t metrics_ring_len(void);
const struct metrics_sample *metrics_ring_at(size_t i);
/* Rates per second over about the last minute (from the ring and now). */
void metrics_rates(double *requests_per_s, double *stanzas_per_s);

/* Process figures. */
struct metrics_process {
	double cpu_seconds, start_time, uptime;
	long rss_bytes, open_fds, max_fds;
};
void metrics_process(struct metrics_process *p);

/* Graceful restart: the counters go to the successor. */
struct snap_w;
struct snap_r;
void metrics_snapshot(struct snap_w *w);
void metrics_restore(struct snap_r *r);

#endif
